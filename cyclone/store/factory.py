"""Store tree from config: validation of each store node, building, live updates.

A node is an object with `"type"` (or `"store_type"`) and the fields of
that type. `substore` holds one child node, `stores` an object of named
children (order kept: the hash ring depends on it). Relative directories
are resolved against the config file's directory.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from cyclone.config import ConfigError, check_type
from cyclone.store.autocreate import AutocreateRules
from cyclone.store.base import Store

REQUIRED = object()

# type -> {field: (kind, default, live)}; kinds "store" and "stores" are children.
STORE_FIELDS: dict[str, dict[str, tuple[str, Any, bool]]] = {
    "disk": {
        "directory": ("str", REQUIRED, False),
        "open_file_cache_size": ("int", None, True),
    },
    "cached_disk": {
        "directory": ("str", REQUIRED, False),
        "open_file_cache_size": ("int", None, True),
        "directory_limit": ("int", 100_000, True),
        "file_limit": ("int", 1_000_000, True),
    },
    "write_buffer": {
        "substore": ("store", REQUIRED, False),
        "num_write_threads": ("int", 1, False),
        "batch_size": ("int", 1000, True),
        "max_update_metadatas_per_second": ("number", 0, True),
        "max_write_batches_per_second": ("number", 0, True),
        "disable_rate_limit_for_queue_length": ("int", 0, True),
        "merge_find_patterns": ("bool", True, True),
        "enable_deferred_deletes": ("bool", False, True),
        "max_buffered_points": ("int", 20_000_000, True),
        "close_timeout_secs": ("number", 120, True),
    },
    "multi": {"stores": ("stores", REQUIRED, False)},
    "read_only": {"substore": ("store", REQUIRED, False)},
    "empty": {},
    "query": {"substore": ("store", REQUIRED, False)},
}

Builder = Callable[[dict[str, Any], "BuildContext"], Store]
BUILDERS: dict[str, Builder] = {}


def register_store_type(name: str, fields: dict[str, tuple[str, Any, bool]], builder: Builder) -> None:
    """Add a store type (used by modules that define further types: hash, remote)."""
    STORE_FIELDS[name] = fields
    BUILDERS[name] = builder


def validate_store_config(path: str, node: Any, base_dir: str) -> dict[str, Any]:
    """Validate one node (recursively); returns it normalised with defaults filled in."""
    _ensure_types_loaded()
    if not isinstance(node, dict):
        raise ConfigError(f"{path}: expected a store object with a \"type\"")
    kind = node.get("type", node.get("store_type"))
    if kind is None:
        raise ConfigError(f"{path}.type: missing (one of {', '.join(sorted(STORE_FIELDS))})")
    if kind not in STORE_FIELDS:
        raise ConfigError(f"{path}.type: unknown store type {kind!r} (one of {', '.join(sorted(STORE_FIELDS))})")
    spec = STORE_FIELDS[kind]
    out: dict[str, Any] = {"type": kind}
    for name in node:
        if name not in spec and name not in ("type", "store_type"):
            raise ConfigError(f"{path}.{name}: unknown field for a {kind} store "
                              f"(known: {', '.join(sorted(spec)) or 'none'})")
    for name, (fkind, default, _live) in spec.items():
        fpath = f"{path}.{name}"
        if name not in node:
            if default is REQUIRED:
                raise ConfigError(f"{fpath}: missing (required for a {kind} store)")
            out[name] = default
            continue
        value = node[name]
        if fkind == "store":
            out[name] = validate_store_config(fpath, value, base_dir)
        elif fkind == "stores":
            if not isinstance(value, dict) or not value:
                raise ConfigError(f"{fpath}: expected an object of named stores")
            out[name] = {k: validate_store_config(f"{fpath}.{k}", v, base_dir) for k, v in value.items()}
        else:
            out[name] = check_type(fpath, value, fkind)
    if "directory" in out:
        out["directory"] = os.path.normpath(os.path.join(base_dir, out["directory"]))
    for name in ("num_write_threads", "batch_size"):
        if name in out and out[name] < 1:
            raise ConfigError(f"{path}.{name}: must be at least 1")
    return out


def store_shape(node: dict[str, Any]) -> Any:
    """What a restart is needed to change: types, children, and non-live fields."""
    spec = STORE_FIELDS[node["type"]]
    shape: list[Any] = [node["type"]]
    for name, (fkind, _d, live) in spec.items():
        if fkind == "store":
            shape.append((name, store_shape(node[name])))
        elif fkind == "stores":
            shape.append((name, [(k, store_shape(v)) for k, v in node[name].items()]))
        elif not live:
            shape.append((name, node[name]))
    return shape


class BuildContext:
    """What builders share: autocreate rules and top-level defaults."""

    def __init__(self, autocreate: AutocreateRules, open_file_cache_size: int = 16384) -> None:
        self.autocreate = autocreate
        self.open_file_cache_size = open_file_cache_size

    def build(self, node: dict[str, Any]) -> Store:
        return BUILDERS[node["type"]](node, self)


def build_store(node: dict[str, Any], autocreate: AutocreateRules,
                open_file_cache_size: int = 16384) -> Store:
    _ensure_types_loaded()
    return BuildContext(autocreate, open_file_cache_size).build(node)


def live_fields_of(node: dict[str, Any], open_file_cache_size: int) -> dict[str, Any]:
    spec = STORE_FIELDS[node["type"]]
    fields = {name: node[name] for name, (_k, _d, live) in spec.items() if live}
    if "open_file_cache_size" in fields and fields["open_file_cache_size"] is None:
        fields["open_file_cache_size"] = open_file_cache_size
    return fields


def apply_store_config(store: Store, node: dict[str, Any], open_file_cache_size: int) -> list[str]:
    """Apply live fields of `node` (same shape as the running tree); returns 'path.field' changed."""
    changed = [f"{node['type']}.{name}" for name in store.apply_config(live_fields_of(node, open_file_cache_size))]
    spec = STORE_FIELDS[node["type"]]
    children = store.children()
    child_nodes: list[dict[str, Any]] = []
    for name, (fkind, _d, _live) in spec.items():
        if fkind == "store":
            child_nodes.append(node[name])
        elif fkind == "stores":
            child_nodes.extend(node[name].values())
    for child, child_node in zip(children, child_nodes):
        changed.extend(apply_store_config(child, child_node, open_file_cache_size))
    return changed


# -- builders of the types defined in this package -------------------------------
def _build_disk(node: dict[str, Any], ctx: BuildContext) -> Store:
    from cyclone.store.disk import DiskStore

    return DiskStore(node["directory"], ctx.autocreate,
                     node["open_file_cache_size"] or ctx.open_file_cache_size)


def _build_cached_disk(node: dict[str, Any], ctx: BuildContext) -> Store:
    from cyclone.store.disk import CachedDiskStore

    return CachedDiskStore(node["directory"], ctx.autocreate,
                           node["open_file_cache_size"] or ctx.open_file_cache_size,
                           node["directory_limit"], node["file_limit"])


def _build_write_buffer(node: dict[str, Any], ctx: BuildContext) -> Store:
    from cyclone.store.write_buffer import WriteBufferStore

    return WriteBufferStore(
        ctx.build(node["substore"]), ctx.autocreate,
        num_write_threads=node["num_write_threads"],
        batch_size=node["batch_size"],
        max_update_metadatas_per_second=node["max_update_metadatas_per_second"],
        max_write_batches_per_second=node["max_write_batches_per_second"],
        disable_rate_limit_for_queue_length=node["disable_rate_limit_for_queue_length"],
        merge_find_patterns=node["merge_find_patterns"],
        enable_deferred_deletes=node["enable_deferred_deletes"],
        max_buffered_points=node["max_buffered_points"],
        close_timeout_secs=node["close_timeout_secs"],
    )


def _build_multi(node: dict[str, Any], ctx: BuildContext) -> Store:
    from cyclone.store.multi import MultiStore

    return MultiStore({name: ctx.build(child) for name, child in node["stores"].items()})


def _build_read_only(node: dict[str, Any], ctx: BuildContext) -> Store:
    from cyclone.store.read_only import ReadOnlyStore

    return ReadOnlyStore(ctx.build(node["substore"]))


def _build_empty(node: dict[str, Any], ctx: BuildContext) -> Store:
    from cyclone.store.empty import EmptyStore

    return EmptyStore()


def _build_query(node: dict[str, Any], ctx: BuildContext) -> Store:
    from cyclone.store.query import QueryStore

    return QueryStore(ctx.build(node["substore"]))


BUILDERS.update({
    "disk": _build_disk,
    "cached_disk": _build_cached_disk,
    "write_buffer": _build_write_buffer,
    "multi": _build_multi,
    "read_only": _build_read_only,
    "empty": _build_empty,
    "query": _build_query,
})

_OPTIONAL_TYPE_MODULES = ("cyclone.store.hash", "cyclone.store.remote")
_loaded = False


def _ensure_types_loaded() -> None:
    """Import modules that register further store types (hash, remote) if present."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for mod in _OPTIONAL_TYPE_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
