"""ReadOnlyStore: passes reads and finds to its substore, refuses every change."""

from __future__ import annotations

from cyclone.series import DeleteResult, Error, FindResult, Points, ReadAllResult, ReadResult, SeriesMetadata
from cyclone.store.base import Store

_REFUSED = "store is read-only"


class ReadOnlyStore(Store):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    def children(self) -> list[Store]:
        return [self.store]

    def update_metadata(self, metadata_by_key: dict[str, SeriesMetadata], create_new: bool = True,
                        skip_existing: bool = False, truncate_existing: bool = False,
                        skip_buffering: bool = False, local_only: bool = False) -> dict[str, Error]:
        self.stats_counters.add("refused_changes", len(metadata_by_key))
        return {k: Error(_REFUSED) for k in metadata_by_key}

    def delete_series(self, patterns: list[str], deferred: bool = False,
                      local_only: bool = False) -> dict[str, DeleteResult]:
        self.stats_counters.add("refused_changes", len(patterns))
        return {p: DeleteResult(error=Error(_REFUSED)) for p in patterns}

    def rename_series(self, renames: dict[str, str], merge: bool = False,
                      local_only: bool = False) -> dict[str, Error]:
        self.stats_counters.add("refused_changes", len(renames))
        return {k: Error(_REFUSED) for k in renames}

    def write(self, points_by_key: dict[str, Points], skip_buffering: bool = False,
              local_only: bool = False) -> dict[str, Error]:
        self.stats_counters.add("refused_changes", len(points_by_key))
        return {k: Error(_REFUSED) for k in points_by_key}

    def read(self, patterns: list[str], start: int, end: int,
             local_only: bool = False) -> dict[str, dict[str, ReadResult]]:
        return self.store.read(patterns, start, end, local_only)

    def read_all(self, key: str, local_only: bool = False) -> ReadAllResult:
        return self.store.read_all(key, local_only)

    def find(self, patterns: list[str], local_only: bool = False) -> dict[str, FindResult]:
        return self.store.find(patterns, local_only)
