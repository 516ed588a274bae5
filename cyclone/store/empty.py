"""EmptyStore: holds nothing, accepts nothing, finds nothing."""

from __future__ import annotations

from cyclone.series import DeleteResult, Error, FindResult, Points, ReadAllResult, ReadResult, SeriesMetadata
from cyclone.store.base import Store


class EmptyStore(Store):
    def update_metadata(self, metadata_by_key: dict[str, SeriesMetadata], create_new: bool = True,
                        skip_existing: bool = False, truncate_existing: bool = False,
                        skip_buffering: bool = False, local_only: bool = False) -> dict[str, Error]:
        return {k: Error("empty store holds no series") for k in metadata_by_key}

    def delete_series(self, patterns: list[str], deferred: bool = False,
                      local_only: bool = False) -> dict[str, DeleteResult]:
        return {p: DeleteResult() for p in patterns}

    def rename_series(self, renames: dict[str, str], merge: bool = False,
                      local_only: bool = False) -> dict[str, Error]:
        return {k: Error("series does not exist") for k in renames}

    def write(self, points_by_key: dict[str, Points], skip_buffering: bool = False,
              local_only: bool = False) -> dict[str, Error]:
        return {k: Error("empty store holds no series") for k in points_by_key}

    def read(self, patterns: list[str], start: int, end: int,
             local_only: bool = False) -> dict[str, dict[str, ReadResult]]:
        return {p: {} for p in patterns}

    def read_all(self, key: str, local_only: bool = False) -> ReadAllResult:
        return ReadAllResult(error=Error("series does not exist"))

    def find(self, patterns: list[str], local_only: bool = False) -> dict[str, FindResult]:
        return {p: FindResult() for p in patterns}
