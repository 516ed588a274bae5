"""The server config: commented JSON, validation, defaults, hot reload.

The file is JSON with `//` and `/* */` comments and trailing commas (parsed
with json5). `load_config` validates every field and returns a `Config`;
errors are `ConfigError` whose message names the field (e.g.
`store_config.substore.batch_size: expected an integer, got "x"`).

`ConfigWatcher` re-reads the file when its mtime or size changes. A broken
edit is logged and the running config kept; a good one is diffed against
the running one and the changeable fields are applied to the live store
tree and server (the tree's shape and the listeners need a restart).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any, Callable

import json5

from cyclone.store.autocreate import AutocreateRules

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the field."""


ListenSpec = int | str

_NUMBER = (int, float)


def _type_name(value: Any) -> str:
    return "null" if value is None else {bool: "a boolean", int: "an integer", float: "a number",
                                         str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__)


def check_type(path: str, value: Any, kind: str) -> Any:
    """Validate one field value against a kind name; returns the (normalised) value."""
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {_type_name(value)} {value!r}")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, _NUMBER):
            raise ConfigError(f"{path}: expected a number, got {_type_name(value)} {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_type_name(value)} {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {_type_name(value)} {value!r}")
        return value
    if kind == "listen":
        return check_listen(path, value)
    if kind == "listen_list":
        if isinstance(value, (int, str)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list of listen addresses, got {_type_name(value)}")
        return [check_listen(f"{path}[{i}]", v) for i, v in enumerate(value)]
    raise AssertionError(kind)


def check_listen(path: str, value: Any) -> ListenSpec:
    """A listen address: a port number, "addr:port", or a unix socket path (contains '/')."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 65535:
            raise ConfigError(f"{path}: port {value} out of range 0-65535")
        return value
    if isinstance(value, str):
        if "/" in value:
            return value
        host, sep, port = value.rpartition(":")
        if sep and host and port.isdigit() and int(port) <= 65535:
            return value
        raise ConfigError(f'{path}: expected a port, "addr:port" or a unix socket path, got {value!r}')
    raise ConfigError(f"{path}: expected a port, \"addr:port\" or a unix socket path, got {_type_name(value)}")


# Top-level fields: name -> (kind, default, live?). Live fields apply on reload.
TOP_LEVEL_FIELDS: dict[str, tuple[str, Any, bool]] = {
    "hostname": ("str", "", False),
    "line_stream_listen": ("listen_list", [2003], False),
    "line_datagram_listen": ("listen_list", [2003], False),
    "pickle_listen": ("listen_list", [2004], False),
    "shell_listen": ("listen_list", ["127.0.0.1:2001"], False),
    "http_listen": ("listen_list", [5050], False),
    "thrift_port": ("listen", "127.0.0.1:2000", False),
    "store_threads": ("int", 8, False),
    "stats_report_usecs": ("int", 60_000_000, True),
    "open_file_cache_size": ("int", 16384, True),
    "prepopulate_depth": ("int", 0, False),
    "log_level": ("int", 1, True),
    "profiler_threshold_usecs": ("int", 1_000_000, True),
    "max_pickle_frame_bytes": ("int", 64 * 1024 * 1024, True),
    "max_line_bytes": ("int", 4096, True),
    "config_poll_secs": ("number", 5, True),
}


@dataclass
class Config:
    """A validated config. `raw` is the parsed file; `store_config` is normalised."""

    path: str
    raw: dict[str, Any]
    fields: dict[str, Any]
    store_config: dict[str, Any]
    autocreate_rules: list[list[Any]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(name)

    @property
    def base_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    @property
    def host(self) -> str:
        return self.fields["hostname"] or socket.gethostname().split(".")[0]


def parse_text(text: str, source: str = "<config>") -> dict[str, Any]:
    try:
        data = json5.loads(text)
    except ValueError as e:
        raise ConfigError(f"{source}: not valid JSON (comments and trailing commas are fine): {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be an object")
    return data


def load_config(path: str) -> Config:
    """Read, parse and validate a config file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
    return validate(parse_text(text, path), path)


def validate(raw: dict[str, Any], path: str = "<config>") -> Config:
    from cyclone.store.factory import validate_store_config

    known = set(TOP_LEVEL_FIELDS) | {"store_config", "autocreate_rules"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown field (known fields: {', '.join(sorted(known))})")
    fields: dict[str, Any] = {}
    for name, (kind, default, _live) in TOP_LEVEL_FIELDS.items():
        fields[name] = check_type(name, raw[name], kind) if name in raw else copy.deepcopy(default)
    if not 0 <= fields["log_level"] <= 4:
        raise ConfigError("log_level: expected 0 (debug) to 4 (nothing)")
    for name in ("store_threads", "open_file_cache_size"):
        if fields[name] < 1:
            raise ConfigError(f"{name}: must be at least 1")
    if "store_config" not in raw:
        raise ConfigError("store_config: missing (the store tree; see cyclone.conf.json)")
    base_dir = os.path.dirname(os.path.abspath(path))
    store_config = validate_store_config("store_config", raw["store_config"], base_dir)
    rules = raw.get("autocreate_rules", [])
    if not isinstance(rules, list):
        raise ConfigError("autocreate_rules: expected a list of [pattern, retentions, xff, aggregation]")
    for i, rule in enumerate(rules):
        try:
            AutocreateRules([rule])
        except Exception as e:
            raise ConfigError(f"autocreate_rules[{i}]: {e}") from None
    return Config(path, raw, fields, store_config, rules)


def live_field_changes(old: Config, new: Config) -> dict[str, Any]:
    """Top-level live fields whose values differ."""
    return {
        name: new.fields[name]
        for name, (_k, _d, live) in TOP_LEVEL_FIELDS.items()
        if live and old.fields[name] != new.fields[name]
    }


def restart_needed(old: Config, new: Config) -> list[str]:
    """Fields changed in `new` that only a restart applies."""
    from cyclone.store.factory import store_shape

    out = [
        name for name, (_k, _d, live) in TOP_LEVEL_FIELDS.items()
        if not live and old.fields[name] != new.fields[name]
    ]
    if store_shape(old.store_config) != store_shape(new.store_config):
        out.append("store_config (shape)")
    return out


class ConfigWatcher:
    """Polls a config file and calls `on_change(old, new)` with a validated new config."""

    def __init__(self, config: Config, on_change: Callable[[Config, Config], None]) -> None:
        self.config = config
        self.on_change = on_change
        self._stamp = self._file_stamp()
        self.reloads = 0
        self.reload_errors = 0
        self.last_error = ""

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            st = os.stat(self.config.path)
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def check(self) -> bool:
        """Reload if the file changed; True if a new config was applied."""
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            new = load_config(self.config.path)
        except ConfigError as e:
            self.reload_errors += 1
            self.last_error = str(e)
            log.error("config reload failed, keeping the running config: %s", e)
            return False
        old, self.config = self.config, new
        self.reloads += 1
        self.on_change(old, new)
        return True
