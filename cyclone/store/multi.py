"""MultiStore: replicates every change to all substores; reads and finds merge."""

from __future__ import annotations

from cyclone.series import DeleteResult, Error, FindResult, Points, ReadAllResult, ReadResult, SeriesMetadata
from cyclone.store.base import Store
from cyclone.store.merge import FanOut, merge_deletes, merge_errors, merge_finds, merge_reads


class MultiStore(Store):
    def __init__(self, stores: dict[str, Store]) -> None:
        super().__init__()
        self.names = list(stores)
        self.stores = list(stores.values())
        self.fanout = FanOut(len(self.stores), "multi")

    def children(self) -> list[Store]:
        return list(self.stores)

    def _all(self, call):
        return self.fanout.map(call, self.stores)

    def update_metadata(self, metadata_by_key: dict[str, SeriesMetadata], create_new: bool = True,
                        skip_existing: bool = False, truncate_existing: bool = False,
                        skip_buffering: bool = False, local_only: bool = False) -> dict[str, Error]:
        results = self._all(lambda s: s.update_metadata(metadata_by_key, create_new, skip_existing,
                                                        truncate_existing, skip_buffering, local_only))
        return merge_errors(results, self.names)

    def delete_series(self, patterns: list[str], deferred: bool = False,
                      local_only: bool = False) -> dict[str, DeleteResult]:
        return merge_deletes(self._all(lambda s: s.delete_series(patterns, deferred, local_only)))

    def rename_series(self, renames: dict[str, str], merge: bool = False,
                      local_only: bool = False) -> dict[str, Error]:
        return merge_errors(self._all(lambda s: s.rename_series(renames, merge, local_only)), self.names)

    def write(self, points_by_key: dict[str, Points], skip_buffering: bool = False,
              local_only: bool = False) -> dict[str, Error]:
        return merge_errors(self._all(lambda s: s.write(points_by_key, skip_buffering, local_only)),
                            self.names)

    def read(self, patterns: list[str], start: int, end: int,
             local_only: bool = False) -> dict[str, dict[str, ReadResult]]:
        return merge_reads(self._all(lambda s: s.read(patterns, start, end, local_only)))

    def read_all(self, key: str, local_only: bool = False) -> ReadAllResult:
        results = self._all(lambda s: s.read_all(key, local_only))
        for r in results:
            if r.error is None:
                return r
        return results[0]

    def find(self, patterns: list[str], local_only: bool = False) -> dict[str, FindResult]:
        return merge_finds(self._all(lambda s: s.find(patterns, local_only)))

    def close(self) -> None:
        super().close()
        self.fanout.shutdown()
