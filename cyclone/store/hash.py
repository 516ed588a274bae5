"""ConsistentHashMultiStore: routes each key to one substore by a consistent hash.

Two ring algorithms, chosen by the sign of `precision`:

- `precision` < 0 — `CarbonHashRing`: carbon's `ConsistentHashRing`
  (carbon 1.1.x, hash_type "carbon_ch") reproduced exactly, so a Cyclone
  node can take over from a carbon-relay without moving a file. Every node
  contributes `-precision` replicas. The replica key of replica `i` of a
  node is `"%s:%d" % (node, i)`; carbon's nodes are `(host, instance)`
  tuples, so its replica keys read `"('host', 'inst'):0"`, and a Cyclone
  substore *named* `('host', 'inst')` in the config produces exactly the
  same strings (the name is used verbatim). A position is the first four
  hex digits of the md5 of a string, as an int (0..65535). On a collision
  the new replica moves to position + 1 until free (positions may pass
  65535; they never wrap), so placement depends on the order of the
  substores in the config: keep it. A key goes to the first ring entry at
  or after its own position, wrapping to the first entry.

- `precision` > 0 — `ConstantHashRing`: a table of 2^precision slots
  (precision 1..24). Each node puts `CONSTANT_RING_POINTS` points on the
  32-bit circle at `mmh3("<name>:<i>")`; a slot belongs to the first point
  at or after the slot's start (wrapping). A key's slot is the top
  `precision` bits of its unsigned 32-bit mmh3 hash, so a lookup is one
  hash and one table index. Existing points never move when a node is
  added, so a new node takes over only the slots just before its own
  points: about 1/N of the keys move, all of them to the new node.

Routing (see DESIGN "Store types"):

- write, update_metadata: each key goes to its owner.
- rename: to the owner when source and destination have the same owner;
  otherwise the series is moved (read_all from the source owner, create
  on the destination owner, write, delete the source).
- read: a plain key goes to its owner; a pattern goes to every substore;
  results merge (`merge_reads`). With read-from-all on, every read goes to
  every substore.
- read_all: the owner (with read-from-all: the owner first, then the
  others until one has the series).
- find, delete: every substore, merged.

`local_only` (a call forwarded by another node): such a call must only
touch this node's own data, so it never loops between nodes. The hash
store's *local* substores are the one named by the `local` field (it must
not contain a remote store), or, if `local` is empty, every substore whose
subtree contains no remote store.
With `local_only`, keyed calls go to the owner if the owner is local, else
to the first local substore (the peer's ring may differ from ours while a
cluster is being reconfigured; verify moves such series later), and
pattern calls go to every local substore. A hash store without a local
substore refuses `local_only` calls per key.

Read-from-all is on while `read_from_all` (a live config field, also set
by the shell and Thrift) is on, or while a verify run (cyclone.verify) has
it forced on.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import threading
from typing import Any, Callable, Sequence

import mmh3
import numpy as np

from cyclone import patterns
from cyclone.series import (
    DeleteResult,
    Error,
    FindResult,
    Points,
    ReadAllResult,
    ReadResult,
    SeriesMetadata,
)
from cyclone.store.base import Store
from cyclone.store.merge import FanOut, merge_deletes, merge_errors, merge_finds, merge_reads
from cyclone.store.remote import committed_writes

log = logging.getLogger(__name__)

#: points per node on the 32-bit circle of the constant-time ring
CONSTANT_RING_POINTS = 256
MAX_PRECISION = 24
DEFAULT_PRECISION = -100  # carbon's default: 100 replicas per node


# -- rings ---------------------------------------------------------------------
class HashRing:
    """Maps a key to the index of a node (in the order the nodes were given)."""

    nodes: list[str]

    def node_for(self, key: str) -> int:
        raise NotImplementedError

    def nodes_for(self, keys: Sequence[str]) -> list[int]:
        node_for = self.node_for
        return [node_for(k) for k in keys]


def carbon_position(s: str) -> int:
    """carbon's `carbonHash(s, 'carbon_ch')`: first 4 hex digits of md5, as an int."""
    return int(hashlib.md5(s.encode("utf-8")).hexdigest()[:4], 16)


class CarbonHashRing(HashRing):
    """carbon's md5 consistent-hash ring with `replicas` entries per node."""

    def __init__(self, nodes: Sequence[str], replicas: int = 100) -> None:
        if not nodes:
            raise ValueError("a hash ring needs at least one node")
        if replicas < 1:
            raise ValueError("replica count must be at least 1")
        self.nodes = list(nodes)
        self.replicas = replicas
        taken: set[int] = set()
        entries: list[tuple[int, int]] = []
        for index, node in enumerate(self.nodes):
            for i in range(replicas):
                position = carbon_position("%s:%d" % (node, i))
                while position in taken:
                    position += 1
                taken.add(position)
                entries.append((position, index))
        entries.sort()
        self.positions = [p for p, _ in entries]
        self.owners = [n for _, n in entries]

    def node_for(self, key: str) -> int:
        i = bisect.bisect_left(self.positions, carbon_position(key))
        return self.owners[i if i < len(self.owners) else 0]


class ConstantHashRing(HashRing):
    """A 2^precision-slot table over an mmh3 point ring; O(1) lookups."""

    def __init__(self, nodes: Sequence[str], precision: int,
                 points_per_node: int = CONSTANT_RING_POINTS) -> None:
        if not nodes:
            raise ValueError("a hash ring needs at least one node")
        if not 1 <= precision <= MAX_PRECISION:
            raise ValueError(f"precision must be 1..{MAX_PRECISION} (or negative for carbon's ring)")
        if len(nodes) > 65535:
            raise ValueError("too many nodes")
        self.nodes = list(nodes)
        self.precision = precision
        self.shift = 32 - precision
        points = np.array([mmh3.hash(f"{node}:{i}", signed=False)
                           for node in self.nodes for i in range(points_per_node)], dtype=np.uint64)
        owners = np.repeat(np.arange(len(self.nodes), dtype=np.uint16), points_per_node)
        order = np.argsort(points, kind="stable")  # ties: the node listed first wins
        points, owners = points[order], owners[order]
        slot_starts = np.arange(1 << precision, dtype=np.uint64) << np.uint64(self.shift)
        idx = np.searchsorted(points, slot_starts, side="left")
        idx[idx == len(points)] = 0
        self.table = owners[idx]
        self._table_list = self.table.tolist()

    def node_for(self, key: str) -> int:
        return self._table_list[mmh3.hash(key, signed=False) >> self.shift]


def make_ring(nodes: Sequence[str], precision: int) -> HashRing:
    if precision < 0:
        return CarbonHashRing(nodes, -precision)
    if precision > 0:
        return ConstantHashRing(nodes, precision)
    raise ValueError("precision must not be 0: > 0 for the constant-time ring, < 0 for carbon's ring")


# -- moving one series between stores -------------------------------------------
def flush_keys(store: Store, keys: Sequence[str]) -> None:
    """Push buffered points of `keys` in `store` down to disk (a skip_buffering empty write).

    A write buffer writes a key's buffered points straight through before a
    skip_buffering write of that key; other stores ignore an empty write.
    """
    if keys:
        store.write({k: Points.empty() for k in keys}, skip_buffering=True, local_only=True)


def copy_series(src: Store, dst: Store, keys: dict[str, str], merge: bool = True,
                src_local_only: bool = True) -> dict[str, Error]:
    """Copy series `src_key -> dst_key` from `src` to `dst`, metadata and every point.

    The destination series is created with the source's layout if missing;
    an existing one keeps its layout and the source points are written over
    it (the source wins for equal timestamps). Both land on the
    destination's disk before this returns (`committed_writes`). Nothing is
    deleted. Returns an Error per source key that was not copied completely.
    """
    with committed_writes():
        return _copy_series(src, dst, keys, merge, src_local_only)


def _copy_series(src: Store, dst: Store, keys: dict[str, str], merge: bool,
                 src_local_only: bool) -> dict[str, Error]:
    errors: dict[str, Error] = {}
    flush_keys(src, list(keys))
    metadata: dict[str, SeriesMetadata] = {}
    points: dict[str, Points] = {}
    for s, d in keys.items():
        ra = src.read_all(s, local_only=src_local_only)
        if ra.error is not None or ra.metadata is None:
            errors[s] = ra.error or Error(f"{s}: no metadata")
            continue
        metadata[d] = ra.metadata
        if len(ra.points):
            points[d] = ra.points
    if not metadata:
        return errors
    back = {d: s for s, d in keys.items()}
    errs = dst.update_metadata(metadata, create_new=True, skip_existing=merge, truncate_existing=False,
                               skip_buffering=True, local_only=True)
    for d, err in errs.items():
        if not err.ignored:
            errors[back.get(d, d)] = err
            points.pop(d, None)
    if points:
        for d, err in dst.write(points, skip_buffering=True, local_only=True).items():
            errors[back.get(d, d)] = err
    return errors


# -- the store ----------------------------------------------------------------------
def _is_remote(store: Store) -> bool:
    return any(getattr(s, "is_remote", False) for s in store.walk())


class ConsistentHashMultiStore(Store):
    """Hash store: one owner per key among named substores (see module docstring)."""

    live_fields = ("read_from_all",)

    def __init__(self, stores: dict[str, Store], precision: int = DEFAULT_PRECISION,
                 local: str = "", read_from_all: bool = False) -> None:
        super().__init__()
        if not stores:
            raise ValueError("a hash store needs at least one substore")
        self.names = list(stores)
        self.stores = list(stores.values())
        self.precision = precision
        self.ring = make_ring(self.names, precision)
        if local:
            if local not in stores:
                raise ValueError(f"local substore {local!r} is not one of {', '.join(self.names)}")
            if _is_remote(stores[local]):
                # local_only calls would be forwarded to a peer with local_only again: a loop
                raise ValueError(f"local substore {local!r} forwards to another node (a remote store)")
            self.local_indexes = [self.names.index(local)]
        else:
            self.local_indexes = [i for i, s in enumerate(self.stores) if not _is_remote(s)]
        self.local_set = set(self.local_indexes)
        self._read_from_all = read_from_all
        self._config_read_from_all = read_from_all
        self._forced = 0  # verify runs holding read-from-all on
        self._lock = threading.Lock()
        # several store threads fan out at once: room for a few calls per substore
        self.fanout = FanOut(max(4, 4 * len(self.stores)), "hash")
        #: the cyclone.verify.Verifier of this store, set by ClusterControl
        self.verifier: Any = None

    # -- tree ----------------------------------------------------------------------
    def children(self) -> list[Store]:
        return list(self.stores)

    def describe(self) -> str:
        kind = f"carbon ring, {-self.precision} replicas" if self.precision < 0 else \
            f"constant ring, 2^{self.precision} slots"
        local = ", ".join(self.names[i] for i in self.local_indexes) or "none"
        return f"ConsistentHashMultiStore({kind}; local: {local})"

    # -- read-from-all ------------------------------------------------------------------
    @property
    def read_from_all(self) -> bool:
        """Effective read-from-all: switched on, or forced on by a running verify."""
        return self._read_from_all or self._forced > 0

    @read_from_all.setter
    def read_from_all(self, value: bool) -> None:
        self._read_from_all = bool(value)

    def set_read_from_all(self, value: bool) -> bool:
        """Switch read-from-all; returns the previous effective value."""
        with self._lock:
            prev = self.read_from_all
            self._read_from_all = bool(value)
        return prev

    def force_read_from_all(self, on: bool) -> None:
        """Hold (on=True) or release read-from-all on behalf of a verify run."""
        with self._lock:
            self._forced = self._forced + 1 if on else max(0, self._forced - 1)

    def apply_config(self, fields: dict[str, Any]) -> list[str]:
        # Only a changed config value applies, so a reload of other fields
        # does not undo `read-from-all on` given in the shell.
        if "read_from_all" in fields and fields["read_from_all"] != self._config_read_from_all:
            self._config_read_from_all = fields["read_from_all"]
            self._read_from_all = fields["read_from_all"]
            return ["read_from_all"]
        return []

    # -- routing helpers ------------------------------------------------------------------
    def owner_index(self, key: str) -> int:
        return self.ring.node_for(key)

    def owner_name(self, key: str) -> str:
        return self.names[self.ring.node_for(key)]

    def _target(self, key: str, local_only: bool) -> int | None:
        owner = self.ring.node_for(key)
        if not local_only or owner in self.local_set:
            return owner
        return self.local_indexes[0] if self.local_indexes else None

    def _group(self, keys, local_only: bool) -> tuple[dict[int, list[str]], list[str]]:
        groups: dict[int, list[str]] = {}
        refused: list[str] = []
        for key in keys:
            t = self._target(key, local_only)
            if t is None:
                refused.append(key)
            else:
                groups.setdefault(t, []).append(key)
        return groups, refused

    def _scope(self, local_only: bool) -> list[int]:
        return list(self.local_indexes) if local_only else list(range(len(self.stores)))

    def _run(self, calls: list[tuple[int, Callable[[Store], Any]]],
             on_error: Callable[[int, Exception], Any]) -> list[Any]:
        """Run (substore index, call) pairs concurrently; an exception becomes on_error's value."""
        def one(item: tuple[int, Callable[[Store], Any]]) -> Any:
            index, call = item
            try:
                return call(self.stores[index])
            except Exception as e:  # a substore bug must not fail the whole batch
                log.exception("hash store: substore %s failed", self.names[index])
                self.stats_counters.add("substore_exceptions")
                return on_error(index, e)
        return self.fanout.map(one, calls)

    def _keyed(self, items: dict[str, Any], local_only: bool,
               call: Callable[[Store, dict[str, Any]], dict[str, Error]],
               committed: bool = False) -> dict[str, Error]:
        groups, refused = self._group(items, local_only)

        def run(s: Store, sub: dict[str, Any]) -> dict[str, Error]:
            if not committed:
                return call(s, sub)
            with committed_writes():  # a client's skip_buffering reaches the owner's disk
                return call(s, sub)
        calls = [(i, (lambda s, sub={k: items[k] for k in keys}: run(s, sub)))
                 for i, keys in groups.items()]
        names = [self.names[i] for i, _ in calls]

        def fail(index: int, e: Exception) -> dict[str, Error]:
            return {k: Error(f"{self.names[index]}: {e}", recoverable=True) for k in groups[index]}
        results = self._run(calls, fail)
        out: dict[str, Error] = {}
        for name, result in zip(names, results):
            for key, err in result.items():
                out[key] = err
        for key in refused:
            out[key] = Error(f"{key}: local_only call and this hash store has no local substore")
        return out

    # -- API ------------------------------------------------------------------------------
    def update_metadata(self, metadata_by_key: dict[str, SeriesMetadata], create_new: bool = True,
                        skip_existing: bool = False, truncate_existing: bool = False,
                        skip_buffering: bool = False, local_only: bool = False) -> dict[str, Error]:
        self.stats_counters.add("update_metadata_keys", len(metadata_by_key))
        return self._keyed(metadata_by_key, local_only,
                           lambda s, sub: s.update_metadata(sub, create_new, skip_existing,
                                                            truncate_existing, skip_buffering, local_only),
                           committed=skip_buffering)

    def write(self, points_by_key: dict[str, Points], skip_buffering: bool = False,
              local_only: bool = False) -> dict[str, Error]:
        self.stats_counters.add_many({"write_batches": 1, "write_keys": len(points_by_key)})
        return self._keyed(points_by_key, local_only,
                           lambda s, sub: s.write(sub, skip_buffering, local_only),
                           committed=skip_buffering)

    def delete_series(self, patterns_: list[str], deferred: bool = False,
                      local_only: bool = False) -> dict[str, DeleteResult]:
        def fail(index: int, e: Exception) -> dict[str, DeleteResult]:
            return {p: DeleteResult(error=Error(f"{self.names[index]}: {e}", True)) for p in patterns_}
        results = self._run([(i, lambda s: s.delete_series(patterns_, deferred, local_only))
                             for i in self._scope(local_only)], fail)
        if not results:
            return {p: DeleteResult(error=Error("no local substore")) for p in patterns_}
        return merge_deletes(results)

    def rename_series(self, renames: dict[str, str], merge: bool = False,
                      local_only: bool = False) -> dict[str, Error]:
        same: dict[str, str] = {}
        moves: list[tuple[str, str, int, int]] = []
        errors: dict[str, Error] = {}
        for src, dst in renames.items():
            so, do = self._target(src, local_only), self._target(dst, local_only)
            if so is None or do is None:
                errors[src] = Error(f"{src}: local_only call and this hash store has no local substore")
            elif so == do:
                same[src] = dst
            else:
                moves.append((src, dst, so, do))
        if same:
            errors.update(self._keyed(same, local_only,
                                      lambda s, sub: s.rename_series(sub, merge, local_only)))
        for src, dst, so, do in moves:
            err = self._move(src, dst, self.stores[so], self.stores[do], merge)
            if err is not None:
                errors[src] = err
        self.stats_counters.add_many({"renames": len(renames), "renames_moved": len(moves)})
        return errors

    def _move(self, src: str, dst: str, so: Store, do: Store, merge: bool) -> Error | None:
        """A rename whose source and destination have different owners."""
        if src == dst:
            return Error(f"{src}: source and destination are the same")
        if not merge:
            found = do.find([dst], local_only=True).get(dst)
            if found is not None and dst in found.results:
                return Error(f"{dst}: destination exists (use merge)")
        errs = copy_series(so, do, {src: dst}, merge=merge)
        if src in errs:
            return errs[src]
        deleted = so.delete_series([src], False, local_only=True).get(src)
        if deleted is not None and deleted.error is not None:
            return deleted.error
        return None

    def read(self, patterns_: list[str], start: int, end: int,
             local_only: bool = False) -> dict[str, dict[str, ReadResult]]:
        everywhere = self._scope(local_only)
        per_store: dict[int, list[str]] = {}
        if self.read_from_all or local_only:
            for i in everywhere:
                per_store[i] = list(patterns_)
        else:
            for p in patterns_:
                if patterns.is_pattern(p):
                    for i in everywhere:
                        per_store.setdefault(i, []).append(p)
                else:
                    per_store.setdefault(self.ring.node_for(p), []).append(p)
        self.stats_counters.add_many({"reads": len(patterns_),
                                      "read_substore_calls": len(per_store)})
        if not per_store:
            return {p: {p: ReadResult(error=Error("no local substore"))} for p in patterns_}

        def fail(index: int, e: Exception) -> dict[str, dict[str, ReadResult]]:
            return {p: {p: ReadResult(error=Error(f"{self.names[index]}: {e}", True))}
                    for p in per_store[index]}
        results = self._run([(i, lambda s, ps=ps: s.read(ps, start, end, local_only))
                             for i, ps in per_store.items()], fail)
        merged = merge_reads(results)
        return {p: merged.get(p, {}) for p in patterns_}

    def read_all(self, key: str, local_only: bool = False) -> ReadAllResult:
        scope = self._scope(local_only)
        if not scope:
            return ReadAllResult(error=Error("no local substore"))
        owner = self.ring.node_for(key)
        if not (self.read_from_all or local_only) or len(scope) == 1:
            target = owner if owner in scope else scope[0]
            return self.stores[target].read_all(key, local_only)
        order = sorted(scope, key=lambda i: i != owner)  # the owner first
        first: ReadAllResult | None = None
        for i in order:
            r = self.stores[i].read_all(key, local_only)
            if r.error is None:
                return r
            first = first or r
        assert first is not None
        return first

    def find(self, patterns_: list[str], local_only: bool = False) -> dict[str, FindResult]:
        scope = self._scope(local_only)
        if not scope:
            return {p: FindResult(error=Error("no local substore")) for p in patterns_}

        def fail(index: int, e: Exception) -> dict[str, FindResult]:
            return {p: FindResult(error=Error(f"{self.names[index]}: {e}", True)) for p in patterns_}
        self.stats_counters.add("finds", len(patterns_))
        return merge_finds(self._run([(i, lambda s: s.find(patterns_, local_only)) for i in scope], fail))

    # -- stats and lifecycle ------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        self.stats_counters.set("read_from_all", int(self.read_from_all))
        return super().stats()

    def close(self) -> None:
        verifier = self.verifier
        if verifier is not None:
            verifier.cancel()
            verifier.join(timeout=30)
        super().close()
        self.fanout.shutdown()


# -- config ---------------------------------------------------------------------------------
def _build_hash(node: dict[str, Any], ctx: Any) -> Store:
    from cyclone.config import ConfigError

    stores = {name: ctx.build(child) for name, child in node["stores"].items()}
    try:
        return ConsistentHashMultiStore(stores, node["precision"], node["local"], node["read_from_all"])
    except ValueError as e:
        raise ConfigError(f"hash store: {e}") from None


def _register() -> None:
    from cyclone.store.factory import REQUIRED, register_store_type

    register_store_type("hash", {
        "stores": ("stores", REQUIRED, False),
        "precision": ("int", DEFAULT_PRECISION, False),
        "local": ("str", "", False),
        "read_from_all": ("bool", False, True),
    }, _build_hash)


_register()
