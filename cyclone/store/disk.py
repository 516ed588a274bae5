"""DiskStore and CachedDiskStore: series as whisper files under one directory.

Key `a.b.c` lives at `<directory>/a/b/c.wsp` (mapping and validation in
`cyclone.patterns`, which never lets a key escape the directory). Byte
layout and arithmetic live in `cyclone.store.whisper`; this module owns
files, directories, descriptors and locking:

- an LRU of open file descriptors (`open_file_cache_size`, cut to what the
  open-file limit leaves: `cyclone.fdlimit`); an evicted descriptor is
  closed once no thread is using it, never under the cache's lock;
- striped per-key locks, so two threads never touch one file at once;
- a write to a missing series makes its file by the autocreate rules with
  one open(O_CREAT) (no failed open first); a file that is empty (a crash
  between create and header write) gets its header then, like a new one.
  The first points usually go in the same write as the header
  (`whisper.new_file`). As with whisper.create, another process may see a
  header-less file for the moment between the open and the header write;
- a write of many series opens those not open (making the new ones, with
  their first points) on two threads of its own, each file under its key
  lock: creating a file is mostly kernel time, which the threads overlap
  while the calling thread waits without the GIL. A file whose header is
  not cached is tried with an exclusive create first (a new one then needs
  no fstat). Each directory goes to one thread, as creations in one
  directory are serialized by its lock; rounds of OPEN_ROUND files (a
  small first one, so the threads start early) bound the descriptors open
  beyond the cache's, and what the cache evicts meanwhile is closed on the
  same threads;
- DiskStore re-reads the header on every call (other processes may edit
  files underneath it); CachedDiskStore keeps the header of an open file
  with its descriptor, caches headers of closed ones (`file_limit`) and
  directory listings (`directory_limit`), assuming it is the only writer
  of its directory.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator, NamedTuple

import numpy as np
from lru import LRU

from cyclone import patterns
from cyclone.fdlimit import fd_budget
from cyclone.series import (
    AGGREGATION_NAMES,
    ArchiveArg,
    CycloneError,
    DeleteResult,
    Error,
    FindResult,
    Points,
    ReadAllResult,
    ReadResult,
    SeriesMetadata,
)
from cyclone.store import whisper
from cyclone.store.autocreate import AutocreateRules
from cyclone.store.base import Store, timed

SUFFIX = ".wsp"
LOCK_STRIPES = 1024
# files a write opens (creating new series) on threads of their own: creating a
# file is mostly kernel time, which two threads overlap (see the module docstring;
# four threads are no faster than two on ext4, and threads do not help on tmpfs)
OPEN_THREADS = 2
OPEN_BATCH_MIN = 16
OPEN_ROUND = 256  # files a round opens; at most 3 rounds open at once, inside fdlimit.RESERVED_FDS
OPEN_FIRST_ROUND = 32


def _open_making_dirs(path: str, flags: int) -> tuple[int, bool]:
    """os.open(path, flags), making the parent directories if missing: (fd, made them)."""
    try:
        return os.open(path, flags, 0o644), False
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return os.open(path, flags, 0o644), True


def _open_or_create(path: str, new: whisper.NewFile, exists: bool = True) -> tuple[int, int, bool]:
    """Open a series file, making it (and its directories) if missing; an empty
    file gets `new`'s bytes. (fd, size before, made directories); caller holds
    the key lock, so an empty file is never written twice. With `exists` False
    (the file is probably new) an exclusive create comes first, which needs no
    fstat when it succeeds."""
    if not exists:
        try:
            fd, made_dirs = _open_making_dirs(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            pass
        else:
            try:
                whisper.write_new_file(fd, new)
            except BaseException:
                os.close(fd)
                raise
            return fd, 0, made_dirs
    fd, made_dirs = _open_making_dirs(path, os.O_RDWR | os.O_CREAT)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            whisper.write_new_file(fd, new)
    except BaseException:
        os.close(fd)
        raise
    return fd, size, made_dirs


class _OpenJob(NamedTuple):
    """One file of a batch open (see DiskStore._open_many)."""

    lock: threading.Lock  # the key's
    path: str
    new: whisper.NewFile  # what the file gets if it is new (or empty)
    key: str
    points: int  # how many points `new` carries
    exists: bool  # the file is probably there: no exclusive create first


def _open_or_create_all(jobs: list[_OpenJob]) -> list[tuple[int, int, bool] | OSError]:
    """_open_or_create for many jobs, each under its key lock (runs on an open thread)."""
    out: list[tuple[int, int, bool] | OSError] = []
    for job in jobs:
        with job.lock:
            try:
                out.append(_open_or_create(job.path, job.new, job.exists))
            except OSError as e:
                out.append(e)
    return out


def _changed_listings(key: str, made_dirs: bool) -> list[str]:
    """Directories (relative) whose listing changes when `key`'s file appears: its
    own, and with `made_dirs` every ancestor's."""
    if made_dirs:
        parts = key.split(".")[:-1]
        return [os.sep.join(parts[:i]) for i in range(len(parts) + 1)]
    return [key.rpartition(".")[0].replace(".", os.sep)]


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _split_by_directory(jobs: list[_OpenJob], n: int) -> list[list[_OpenJob]]:
    """`n` shares of jobs, each directory in one share where there are several:
    creating files in one directory is serialized by its lock, so threads
    overlap only across directories. One directory: every n-th job."""
    by_dir: dict[str, list[_OpenJob]] = {}
    for job in jobs:
        by_dir.setdefault(job.key.rpartition(".")[0], []).append(job)
    if len(by_dir) < n:
        return [jobs[i::n] for i in range(n)]
    parts: list[list[_OpenJob]] = [[] for _ in range(n)]
    for group in sorted(by_dir.values(), key=len, reverse=True):
        min(parts, key=len).extend(group)
    return parts


class _Handle:
    """An open descriptor shared by threads; closed when retired and unused."""

    __slots__ = ("fd", "header", "users", "retired")

    def __init__(self, fd: int, header: whisper.Header) -> None:
        self.fd = fd
        self.header = header  # as read or written when the file was opened
        self.users = 0
        self.retired = False


def _first_points(points: Points) -> tuple[Points, bool]:
    """(non-empty points deduplicated and in time order, whether a value is NaN: a delete)."""
    n = points.timestamps.shape[0]
    if n == 1:
        return points, math.isnan(points.values[0])
    points = dedupe_last_wins(points)
    if n <= whisper.SMALL_BATCH:  # numpy's any() costs more than a few floats in Python
        return points, any(map(math.isnan, points.values.tolist()))
    return points, bool(np.isnan(points.values).any())


def dedupe_last_wins(points: Points) -> Points:
    """Keep the last occurrence of each timestamp (input order), sorted by time."""
    ts = points.timestamps
    if len(ts) <= 1 or whisper.strictly_ascending(ts):
        return points
    uniq, idx = np.unique(ts[::-1], return_index=True)
    return Points(uniq, points.values[::-1][idx])


class DiskStore(Store):
    live_fields = ("open_file_cache_size",)

    def __init__(
        self,
        directory: str,
        autocreate: AutocreateRules | None = None,
        open_file_cache_size: int = 16384,
    ) -> None:
        super().__init__()
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.autocreate = autocreate if autocreate is not None else AutocreateRules()
        self._key_locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._fd_lock = threading.Lock()
        self._open_file_cache_size = open_file_cache_size
        # key -> _Handle; an evicted handle is retired (closed once unused)
        self._fds = LRU(max(1, fd_budget(open_file_cache_size)), callback=self._evicted)
        self._open_threads: ThreadPoolExecutor | None = None
        self._unused_fds: list[int] = []  # retired descriptors no thread uses, to close
        self._layouts: dict[int, tuple] = {}  # id(metadata) -> (metadata, Header, header bytes)

    # -- config ------------------------------------------------------------
    @property
    def open_file_cache_size(self) -> int:
        return self._open_file_cache_size

    @open_file_cache_size.setter
    def open_file_cache_size(self, size: int) -> None:
        with self._fd_lock:
            self._open_file_cache_size = size
            self._fds.set_size(max(1, fd_budget(size)))
        self._close_unused()

    def describe(self) -> str:
        return f"{type(self).__name__}({self.directory})"

    # -- descriptors and locks -----------------------------------------
    def _lock_for(self, key: str) -> threading.Lock:
        return self._key_locks[hash(key) % LOCK_STRIPES]

    @contextmanager
    def _locked(self, *keys: str) -> Iterator[None]:
        locks = sorted({id(l): l for l in (self._lock_for(k) for k in keys)}.items())
        for _, lock in locks:
            lock.acquire()
        try:
            yield
        finally:
            for _, lock in reversed(locks):
                lock.release()

    def _evicted(self, _key: str, handle: _Handle) -> None:
        self._retire(handle)

    def _retire(self, handle: _Handle) -> None:
        """Take a handle out of use (_fd_lock held): its descriptor is closed once
        no thread uses it, by whoever then calls _close_unused (not under the lock)."""
        handle.retired = True
        if handle.users == 0:
            self._unused_fds.append(handle.fd)

    def _take_unused_fds(self) -> list[int]:
        with self._fd_lock:
            fds, self._unused_fds = self._unused_fds, []
        return fds

    def _close_unused(self) -> None:
        if self._unused_fds:
            _close_all(self._take_unused_fds())

    def _series_handle(self, key: str, path: str | None, create: bool = False,
                       first_points: Points | None = None) -> tuple[_Handle, whisper.Header, bool]:
        """(descriptor handle, header, points written) of a series; caller holds
        the key lock and releases the handle with `_release_fd`.

        With `create`, a missing series is made by the first matching
        autocreate rule (CycloneError if none matches); otherwise a missing
        series raises FileNotFoundError. A series made here may get
        `first_points` (ascending) in the same write as its header: then
        "points written" is True. The file's size is checked against its
        header when the header is read or the file opened, not on every call.
        `path` (None: from the key) is only needed when the file is not open.
        """
        with self._fd_lock:
            handle = self._fds.get(key)
            if handle is not None:
                handle.users += 1
        if handle is not None:
            self.stats_counters.add("fd_cache_hits")
            try:
                return handle, self._fd_cache_hit_header(key, handle), False
            except whisper.CorruptWhisperFile:
                self._release_fd(handle)
                self._forget(key)
                raise
            except BaseException:
                self._release_fd(handle)
                raise
        self.stats_counters.add("fd_cache_misses")
        if path is None:
            path = self._path(key)
        fd, header, written = self._open_file(key, path, create, first_points)
        handle = self._install(key, fd, header, users=1)
        self._close_unused()
        return handle, header, written

    def _install(self, key: str, fd: int, header: whisper.Header, users: int = 0) -> _Handle:
        """Put a just-opened descriptor in the cache (retiring one another thread put
        there, and what the cache evicts: the caller then calls _close_unused)."""
        handle = _Handle(fd, header)
        handle.users = users
        with self._fd_lock:
            fds = self._fds
            if key in fds:  # cheaper than pop(key, None) for the usual miss
                self._retire(fds.pop(key))
            fds[key] = handle
        return handle

    def _open_file(self, key: str, path: str, create: bool,
                   first_points: Points | None = None) -> tuple[int, whisper.Header, bool]:
        """Open a series file (making it if `create` and a rule matches):
        (fd, header, whether `first_points` went into a new file with its header)."""
        metadata = self.autocreate.metadata_for(key) if create else None
        if metadata is None:
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                if create:
                    self.stats_counters.add("autocreate_refused")
                    raise CycloneError(f"{key}: series does not exist and no autocreate rule matches")
                raise
            return (fd, *self._opened(key, path, None, fd, None, False))
        # one open that finds or makes the file: an empty file is a new series
        # (or one a crash left before its header was written) and gets its header
        new = self._new_file(metadata, first_points)
        try:
            fd, size, made_dirs = _open_or_create(path, new)
        except OSError:
            self._creation_failed(key)
            raise
        header, written = self._opened(key, path, new, fd, size, made_dirs)
        return fd, header, written

    def _new_file(self, metadata: SeriesMetadata, first_points: Points | None) -> whisper.NewFile:
        """What a new file of `metadata` gets (the layout is computed once per rule)."""
        cached = self._layouts.get(id(metadata))
        if cached is None or cached[0] is not metadata:
            if len(self._layouts) >= 64:
                self._layouts.clear()
            cached = (metadata, *whisper.layout_header(metadata.archive_tuples(), metadata.x_files_factor,
                                                       metadata.agg_method))
            self._layouts[id(metadata)] = cached
        _, header, data = cached
        if first_points is None:
            return whisper.NewFile(header, data, None)
        return whisper.new_file_in_layout(header, data, first_points.timestamps, first_points.values,
                                          ascending=True)

    def _opened(self, key: str, path: str, new: whisper.NewFile | None, fd: int, size: int | None,
                made_dirs: bool, created: list[tuple[str, bool]] | None = None) -> tuple[whisper.Header, bool]:
        """After an open (key lock held): (header, whether the points in `new` are
        written). `new` is what an empty file got (None: opened without creating;
        `size` None: not known). A new series is counted and its listings
        invalidated here, or, with `created`, appended there for the caller to do
        in one go. Closes `fd` if it raises."""
        try:
            if new is None or size:
                return self._opened_header(key, fd, path, size), False
            try:
                whisper.propagate_first_run(fd, new)
            finally:  # the file exists, whatever went wrong
                if created is None:
                    self._series_created(key, made_dirs)
                else:
                    created.append((key, made_dirs))
            self._remember_header(key, new.header)
            return new.header, new.intervals is not None
        except BaseException as e:
            os.close(fd)
            if isinstance(e, whisper.CorruptWhisperFile):
                self._forget_header(key)
            raise

    def _creation_failed(self, key: str) -> None:
        self._listings_changed(key, made_dirs=True)  # a file or directories may exist now

    def _series_created(self, key: str, made_dirs: bool) -> None:
        self._many_created([(key, made_dirs)])

    def _many_created(self, created: list[tuple[str, bool]]) -> None:
        """Count new series (key, made directories) and invalidate their listings."""
        if not created:
            return
        self.stats_counters.add("series_created", len(created))
        changed: set[str] = set()
        for key, made_dirs in created:
            changed.update(_changed_listings(key, made_dirs))
        for relpath in changed:
            self._listing_changed(relpath)

    def _listings_changed(self, key: str, made_dirs: bool) -> None:
        for relpath in _changed_listings(key, made_dirs):
            self._listing_changed(relpath)

    def _release_fd(self, handle: _Handle) -> None:
        with self._fd_lock:
            handle.users -= 1
            unused = handle.retired and handle.users == 0
        if unused:
            os.close(handle.fd)

    def _forget(self, key: str) -> None:
        """Drop cached state of a key whose file was replaced or removed."""
        with self._fd_lock:
            handle = self._fds.pop(key, None)
            if handle is not None:
                self._retire(handle)
        self._close_unused()
        self._forget_header(key)

    # header caching is a CachedDiskStore feature
    def _header(self, key: str, fd: int, path: str) -> whisper.Header:
        """The header of an open series (DiskStore: re-read, size-checked, every call)."""
        return whisper.read_header(fd, path)

    def _fd_cache_hit_header(self, key: str, handle: _Handle) -> whisper.Header:
        """The header of a series whose file is open in the fd cache."""
        return self._header(key, handle.fd, self._path(key))

    def _opened_header(self, key: str, fd: int, path: str, size: int | None = None) -> whisper.Header:
        """The header of a just-opened file, checked against the file's size (if known: `size`)."""
        return whisper.read_header(fd, path)

    def _remember_header(self, key: str, header: whisper.Header) -> None:
        pass

    def _probably_exists(self, key: str) -> bool:
        """Whether the file of a key not open is likely there (a hint: decides
        which open is tried first)."""
        return False

    def _forget_header(self, key: str) -> None:
        pass

    # directory listing caching is a CachedDiskStore feature
    def _list_dir(self, relpath: str) -> tuple[list[str], list[str]]:
        """(subdirectory names, series names) of a directory relative to the root."""
        return self._scan_dir(relpath)

    def _scan_dir(self, relpath: str) -> tuple[list[str], list[str]]:
        dirs: list[str] = []
        files: list[str] = []
        try:
            with os.scandir(os.path.join(self.directory, relpath)) as it:
                for entry in it:
                    name = entry.name
                    if name.startswith("."):
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        dirs.append(name)
                    elif name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
                        files.append(name[: -len(SUFFIX)])
        except (FileNotFoundError, NotADirectoryError):
            pass
        dirs.sort()
        files.sort()
        return dirs, files

    def _listing_changed(self, relpath: str) -> None:
        pass

    def _subtree_removed(self, relpath: str) -> None:
        pass

    # -- file-level helpers ------------------------------------------------
    def _path(self, key: str) -> str:
        return patterns.key_to_path(self.directory, key)

    @contextmanager
    def _open_series(self, key: str, path: str,
                     create: bool = False) -> Iterator[tuple[int, whisper.Header]]:
        """Yield (fd, header) of a series; caller holds the key lock (see `_series_handle`)."""
        handle, header, _ = self._series_handle(key, path, create)
        try:
            yield handle.fd, header
        finally:
            self._release_fd(handle)

    def _create(self, key: str, path: str, metadata: SeriesMetadata) -> None:
        """Create a new series file; caller holds the key lock. Exists -> FileExistsError."""
        fd, made_dirs = _open_making_dirs(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        try:
            header = whisper.create_fd(
                fd, metadata.archive_tuples(), metadata.x_files_factor, metadata.agg_method
            )
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        self._install(key, fd, header)
        self._close_unused()
        self._remember_header(key, header)
        self._series_created(key, made_dirs)

    def _remove_empty_parents(self, path: str) -> None:
        parent = os.path.dirname(path)
        while parent != self.directory and parent.startswith(self.directory + os.sep):
            try:
                os.rmdir(parent)
            except OSError:
                break
            rel = os.path.relpath(parent, self.directory)
            self._subtree_removed(rel)
            parent = os.path.dirname(parent)
            grand = os.path.relpath(parent, self.directory)
            self._listing_changed("" if grand == "." else grand)

    # -- API: update_metadata ----------------------------------------------
    def update_metadata(self, metadata_by_key: dict[str, SeriesMetadata], create_new: bool = True,
                        skip_existing: bool = False, truncate_existing: bool = False,
                        skip_buffering: bool = False, local_only: bool = False) -> dict[str, Error]:
        errors: dict[str, Error] = {}
        for key, metadata in metadata_by_key.items():
            try:
                self._update_one(key, metadata, create_new, skip_existing, truncate_existing)
                self.stats_counters.add("update_metadata_series")
            except CycloneError as e:
                errors[key] = e.to_error()
            except (whisper.WhisperException, ValueError, OSError) as e:
                errors[key] = Error(f"{key}: {e}", isinstance(e, OSError))
        if errors:
            self.stats_counters.add("update_metadata_errors", len(errors))
        return errors

    def _update_one(self, key: str, metadata: SeriesMetadata, create_new: bool,
                    skip_existing: bool, truncate_existing: bool) -> None:
        path = self._path(key)
        whisper.validateArchiveList(metadata.archive_tuples())
        if metadata.agg_method not in AGGREGATION_NAMES:
            raise CycloneError(f"{key}: unknown aggregation method {metadata.agg_method}")
        if not 0.0 <= metadata.x_files_factor <= 1.0:
            raise CycloneError(f"{key}: x_files_factor must be in [0, 1]")
        with self._locked(key):
            exists = os.path.exists(path)
            if not exists:
                if not create_new:
                    raise CycloneError(f"{key}: series does not exist")
                self._create(key, path, metadata)
                return
            if skip_existing:
                return
            if truncate_existing:
                self._forget(key)
                os.unlink(path)
                self._create(key, path, metadata)
                self.stats_counters.add("series_truncated")
                return
            self._forget(key)
            whisper.resize(path, metadata.archive_tuples(), metadata.x_files_factor,
                           metadata.agg_method)
            self.stats_counters.add("series_resampled")

    # -- API: write ------------------------------------------------------------
    def write(self, points_by_key: dict[str, Points], skip_buffering: bool = False,
              local_only: bool = False) -> dict[str, Error]:
        errors: dict[str, Error] = {}
        written = deleted = 0
        with timed(self.stats_counters, "write_usecs"):
            done = self._open_many(points_by_key) if len(points_by_key) >= OPEN_BATCH_MIN else {}
            for key, points in points_by_key.items():
                if key in done:
                    written += done[key]
                    continue
                try:
                    w, d = self._write_one(key, points)
                    written += w
                    deleted += d
                except CycloneError as e:
                    errors[key] = e.to_error()
                except whisper.WhisperException as e:
                    errors[key] = Error(str(e))
                except OSError as e:
                    errors[key] = Error(f"{key}: {e.strerror or e}", recoverable=True)
        self.stats_counters.add_many({
            "write_batches": 1,
            "write_series": len(points_by_key),
            "points_written": written,
            "points_deleted": deleted,
            "write_errors": len(errors),
        })
        return errors

    def _open_many(self, points_by_key: dict[str, Points]) -> dict[str, int]:
        """Open the files of a write's keys that are not open, making new series
        with their first points, on OPEN_THREADS threads; returns key -> points
        written that way. Keys it cannot do (no rule, an invalid key, an error)
        are left to the per-key path, which reports them."""
        with self._fd_lock:
            fds = self._fds
            misses = [(k, p) for k, p in points_by_key.items() if k not in fds and p.timestamps.shape[0]]
        if len(misses) < OPEN_BATCH_MIN:
            return {}
        pool = self._open_pool()

        def submit(chunk: list[_OpenJob]) -> tuple[list[list[_OpenJob]], list[Future]]:
            parts = _split_by_directory(chunk, OPEN_THREADS)
            return parts, [pool.submit(_open_or_create_all, part) for part in parts]

        # rounds of at most OPEN_ROUND files, each made when the one before it is
        # submitted and opening while the one before that is put in the cache: the
        # open threads start early, and a bounded number of descriptors is open
        # beyond the cache's
        chunks = self._open_rounds(misses)
        in_flight = deque(submit(chunk) for chunk in itertools.islice(chunks, 2))
        done: dict[str, int] = {}
        while in_flight:
            parts, futures = in_flight.popleft()
            following = next(chunks, None)
            if following is not None:
                in_flight.append(submit(following))
            created: list[tuple[str, bool]] = []
            for part, future in zip(parts, futures):
                for job, result in zip(part, future.result()):
                    key = job.key
                    if isinstance(result, OSError):
                        self._creation_failed(key)
                        continue
                    fd, size, made_dirs = result
                    with job.lock:
                        try:
                            header, written = self._opened(key, job.path, job.new, fd, size, made_dirs, created)
                        except Exception:  # the per-key path opens it again and reports
                            continue
                        self._install(key, fd, header)
                    if written:
                        done[key] = job.points
            self._many_created(created)
            # descriptors the cache evicted are closed on the open threads too (closing
            # a new ext4 file is kernel time, about a quarter of this thread's otherwise)
            unused = self._take_unused_fds()
            for share in (unused[i::OPEN_THREADS] for i in range(OPEN_THREADS)):
                if share:
                    pool.submit(_close_all, share)
        return done

    def _open_rounds(self, misses: list[tuple[str, Points]]) -> Iterator[list[_OpenJob]]:
        """Rounds of jobs for the keys _open_many can do; the first round is
        small, so the open threads start while the rest is made. A file that is
        probably there gets no points with its NewFile: the per-key path writes
        them (preparing them here too would be done twice)."""
        rules = self.autocreate
        locks = self._key_locks
        size = OPEN_FIRST_ROUND
        jobs: list[_OpenJob] = []
        for key, points in misses:
            metadata = rules.metadata_for(key)
            if metadata is None:
                continue
            try:
                path = self._path(key)
            except CycloneError:
                continue
            lock = locks[hash(key) % LOCK_STRIPES]
            if self._probably_exists(key):
                jobs.append(_OpenJob(lock, path, self._new_file(metadata, None), key, 0, True))
            else:
                points, has_nan = _first_points(points)
                jobs.append(_OpenJob(lock, path, self._new_file(metadata, None if has_nan else points), key,
                                     points.timestamps.shape[0], False))
            if len(jobs) == size:
                self.stats_counters.add("fd_cache_misses", size)
                yield jobs
                jobs, size = [], OPEN_ROUND
        if jobs:
            self.stats_counters.add("fd_cache_misses", len(jobs))
            yield jobs

    def _open_pool(self) -> ThreadPoolExecutor:
        with self._fd_lock:
            if self._open_threads is None:
                self._open_threads = ThreadPoolExecutor(OPEN_THREADS, thread_name_prefix="open")
            return self._open_threads

    def _write_one(self, key: str, points: Points) -> tuple[int, int]:
        n = len(points)
        if n == 0:
            return 0, 0
        points, has_nan = _first_points(points)
        with self._lock_for(key):
            handle, header, written = self._series_handle(key, None, create=True,
                                                          first_points=None if has_nan else points)
            try:
                if written:
                    return len(points), 0
                fd = handle.fd
                if not has_nan:
                    # the size was checked when the header was read or the file opened
                    whisper.update_many_fd(fd, header, points.timestamps, points.values,
                                           check_size=False)
                    return len(points), 0
                if n == 1:
                    whisper.delete_points_fd(fd, header, points.timestamps)
                    return 0, 1
                nan = np.isnan(points.values)
                keep = ~nan
                if keep.any():
                    whisper.update_many_fd(fd, header, points.timestamps[keep], points.values[keep])
                whisper.delete_points_fd(fd, header, points.timestamps[nan])
                return int(keep.sum()), int(nan.sum())
            finally:
                self._release_fd(handle)

    # -- API: read ---------------------------------------------------------------
    def read(self, patterns_: list[str], start: int, end: int,
             local_only: bool = False) -> dict[str, dict[str, ReadResult]]:
        out: dict[str, dict[str, ReadResult]] = {}
        now = int(time.time())
        with timed(self.stats_counters, "read_usecs"):
            for pattern in patterns_:
                try:
                    keys = self._matching_keys(pattern)
                except CycloneError as e:
                    out[pattern] = {pattern: ReadResult(error=e.to_error())}
                    continue
                out[pattern] = {key: self.read_key(key, start, end, now) for key in keys}
        self.stats_counters.add("reads", len(patterns_))
        return out

    def read_key(self, key: str, start: int, end: int, now: int | None = None) -> ReadResult:
        """Fetch one existing series; errors are returned in the result."""
        try:
            path = self._path(key)
            with self._locked(key), self._open_series(key, path) as (fd, header):
                fetched = whisper.fetch_fd(fd, header, start, end, now)
        except FileNotFoundError:
            return ReadResult(error=Error(f"{key}: series does not exist"))
        except CycloneError as e:
            self.stats_counters.add("read_errors")
            return ReadResult(error=e.to_error())
        except (whisper.WhisperException, OSError) as e:
            self.stats_counters.add("read_errors")
            return ReadResult(error=Error(str(e), isinstance(e, OSError)))
        if fetched is None:
            return ReadResult()
        start_i, end_i, step, values = fetched
        return ReadResult(None, start_i, end_i, step, values)

    def metadata(self, key: str) -> SeriesMetadata | None:
        """Metadata of an existing series, or None if it does not exist."""
        path = self._path(key)
        try:
            with self._locked(key), self._open_series(key, path) as (_fd, header):
                return _metadata_of(header)
        except FileNotFoundError:
            return None

    def read_all(self, key: str, local_only: bool = False) -> ReadAllResult:
        try:
            path = self._path(key)
            with self._locked(key), self._open_series(key, path) as (fd, header):
                ts, values = whisper.read_all_fd(fd, header)
        except FileNotFoundError:
            return ReadAllResult(error=Error(f"{key}: series does not exist"))
        except CycloneError as e:
            return ReadAllResult(error=e.to_error())
        except (whisper.WhisperException, OSError) as e:
            return ReadAllResult(error=Error(str(e), isinstance(e, OSError)))
        return ReadAllResult(None, _metadata_of(header), Points(ts, values))

    # -- API: find -----------------------------------------------------------------
    def find(self, patterns_: list[str], local_only: bool = False) -> dict[str, FindResult]:
        out: dict[str, FindResult] = {}
        with timed(self.stats_counters, "find_usecs"):
            for pattern in patterns_:
                try:
                    out[pattern] = FindResult(results=self._find_one(pattern))
                except CycloneError as e:
                    out[pattern] = FindResult(error=e.to_error())
        self.stats_counters.add("finds", len(patterns_))
        return out

    def _walk_dirs(self, components: list[str]) -> list[str]:
        """Relative directories matched by all of `components` (dir parts only)."""
        current = [""]
        for comp in components:
            nxt = []
            for rel in current:
                dirs, _files = self._list_dir(rel)
                for name in patterns.filter_names(comp, dirs):
                    nxt.append(os.path.join(rel, name) if rel else name)
            current = nxt
            if not current:
                break
        return current

    def _subtree_keys(self, rel: str) -> list[str]:
        keys: list[str] = []
        stack = [rel]
        while stack:
            d = stack.pop()
            dirs, files = self._list_dir(d)
            prefix = patterns.relpath_to_key(d) + "." if d else ""
            keys.extend(prefix + f for f in files)
            stack.extend(os.path.join(d, name) if d else name for name in dirs)
        return keys

    def _find_one(self, pattern: str) -> list[str]:
        patterns.check_pattern(pattern)
        comps = patterns.split_pattern(pattern)
        if comps[-1] == "**":
            results = []
            for rel in self._walk_dirs(comps[:-1]):
                results.extend(self._subtree_keys(rel))
            return sorted(results)
        results = []
        for rel in self._walk_dirs(comps[:-1]):
            dirs, files = self._list_dir(rel)
            prefix = patterns.relpath_to_key(rel) + "." if rel else ""
            results.extend(prefix + name + ".*" for name in patterns.filter_names(comps[-1], dirs))
            results.extend(prefix + name for name in patterns.filter_names(comps[-1], files))
        return sorted(results)

    def _matching_keys(self, pattern: str) -> list[str]:
        """Series (leaves only) matching a pattern or a plain key."""
        if not patterns.is_pattern(pattern):
            patterns.check_key(pattern)
            return [pattern] if os.path.isfile(self._path(pattern)) else []
        return [k for k in self._find_one(pattern) if not k.endswith(".*")]

    # -- API: delete / rename -------------------------------------------------------
    def delete_series(self, patterns_: list[str], deferred: bool = False,
                      local_only: bool = False) -> dict[str, DeleteResult]:
        out: dict[str, DeleteResult] = {}
        for pattern in patterns_:
            try:
                out[pattern] = DeleteResult(disk_series_deleted=self._delete_one(pattern))
            except CycloneError as e:
                out[pattern] = DeleteResult(error=e.to_error())
            except OSError as e:
                out[pattern] = DeleteResult(error=Error(f"{pattern}: {e}", recoverable=True))
        self.stats_counters.add("series_deleted", sum(r.disk_series_deleted for r in out.values()))
        return out

    def _delete_one(self, pattern: str) -> int:
        patterns.check_pattern(pattern)
        comps = patterns.split_pattern(pattern)
        if comps[-1] == "**":
            if len(comps) == 1:
                raise CycloneError("refusing to delete '**' (every series); name a subtree like 'a.**'")
            count = 0
            for rel in self._walk_dirs(comps[:-1]):
                keys = self._subtree_keys(rel)
                for key in keys:
                    self._forget(key)
                shutil.rmtree(os.path.join(self.directory, rel), ignore_errors=True)
                self._subtree_removed(rel)
                parent = os.path.dirname(rel)
                self._listing_changed(parent)
                self._remove_empty_parents(os.path.join(self.directory, rel))
                count += len(keys)
            return count
        count = 0
        for key in self._matching_keys(pattern):
            path = self._path(key)
            with self._locked(key):
                self._forget(key)
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    continue
            count += 1
            rel = os.path.relpath(os.path.dirname(path), self.directory)
            self._listing_changed("" if rel == "." else rel)
            self._remove_empty_parents(path)
        return count

    def rename_series(self, renames: dict[str, str], merge: bool = False,
                      local_only: bool = False) -> dict[str, Error]:
        errors: dict[str, Error] = {}
        for src, dst in renames.items():
            try:
                self._rename_one(src, dst, merge)
                self.stats_counters.add("series_renamed")
            except CycloneError as e:
                errors[src] = e.to_error()
            except (whisper.WhisperException, OSError) as e:
                errors[src] = Error(f"{src}: {e}", isinstance(e, OSError))
        return errors

    def _rename_one(self, src: str, dst: str, merge: bool) -> None:
        src_path, dst_path = self._path(src), self._path(dst)
        if src == dst:
            raise CycloneError(f"{src}: source and destination are the same")
        with self._locked(src, dst):
            if not os.path.isfile(src_path):
                raise CycloneError(f"{src}: series does not exist")
            if os.path.exists(dst_path):
                if not merge:
                    raise CycloneError(f"{dst}: destination exists (use merge)")
                with self._open_series(src, src_path) as (sfd, sheader):
                    ts, values = whisper.read_all_fd(sfd, sheader)
                with self._open_series(dst, dst_path) as (dfd, dheader):
                    if len(ts):
                        whisper.update_many_fd(dfd, dheader, ts, values)
                self._forget(src)
                os.unlink(src_path)
            else:
                self._forget(src)
                self._forget(dst)
                parent = os.path.dirname(dst_path)
                os.makedirs(parent, exist_ok=True)
                os.rename(src_path, dst_path)
                rel = os.path.relpath(parent, self.directory)
                parts = [] if rel == "." else rel.split(os.sep)
                for i in range(len(parts) + 1):
                    self._listing_changed(os.sep.join(parts[:i]))
        rel = os.path.relpath(os.path.dirname(src_path), self.directory)
        self._listing_changed("" if rel == "." else rel)
        self._remove_empty_parents(src_path)

    # -- lifecycle ---------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        with self._fd_lock:
            self.stats_counters.set("open_files", len(self._fds))
        return super().stats()

    def close(self) -> None:
        with self._fd_lock:
            pool, self._open_threads = self._open_threads, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._fd_lock:
            for handle in list(self._fds.values()):
                self._retire(handle)
            self._fds.clear()
        self._close_unused()

    def prepopulate(self, depth: int) -> int:
        """Warm the directory cache down to `depth` levels; returns directories listed."""
        listed = 0
        level = [""]
        for _ in range(max(0, depth)):
            nxt = []
            for rel in level:
                dirs, _files = self._list_dir(rel)
                listed += 1
                nxt.extend(os.path.join(rel, d) if rel else d for d in dirs)
            level = nxt
        return listed


class CachedDiskStore(DiskStore):
    """DiskStore plus LRU caches of file headers and directory listings."""

    live_fields = ("open_file_cache_size", "directory_limit", "file_limit")

    def __init__(self, directory: str, autocreate: AutocreateRules | None = None,
                 open_file_cache_size: int = 16384, directory_limit: int = 100000,
                 file_limit: int = 1000000) -> None:
        super().__init__(directory, autocreate, open_file_cache_size)
        self._cache_lock = threading.Lock()
        self._directory_limit = directory_limit
        self._file_limit = file_limit
        # lru-dict, not cachetools: about 35 instead of 130 bytes per cached series
        self._headers = LRU(max(1, file_limit))
        self._dirs = LRU(max(1, directory_limit))
        self._dirs_epoch = 0  # bumped by every listing change

    @property
    def directory_limit(self) -> int:
        return self._directory_limit

    @directory_limit.setter
    def directory_limit(self, n: int) -> None:
        with self._cache_lock:
            self._directory_limit = n
            self._dirs.set_size(max(1, n))

    @property
    def file_limit(self) -> int:
        return self._file_limit

    @file_limit.setter
    def file_limit(self, n: int) -> None:
        with self._cache_lock:
            self._file_limit = n
            self._headers.set_size(max(1, n))
            if n <= 0:
                self._headers.clear()

    def _header(self, key: str, fd: int, path: str) -> whisper.Header:
        with self._cache_lock:
            header = self._headers.get(key)
        if header is not None:
            self.stats_counters.add("header_cache_hits")
            return header
        self.stats_counters.add("header_cache_misses")
        header = whisper.read_header(fd, path)
        self._remember_header(key, header)
        return header

    def _fd_cache_hit_header(self, key: str, handle: _Handle) -> whisper.Header:
        # every change of a series' header replaces its handle (see _forget)
        return handle.header

    def _opened_header(self, key: str, fd: int, path: str, size: int | None = None) -> whisper.Header:
        with self._cache_lock:
            header = self._headers.get(key)
        if header is None:
            return self._header(key, fd, path)
        self.stats_counters.add("header_cache_hits")
        whisper.check_file_size(fd, header, size)
        return header

    def _remember_header(self, key: str, header: whisper.Header) -> None:
        with self._cache_lock:
            if self._file_limit > 0:  # 0: no header cache (saves ~100 bytes a series)
                self._headers[key] = header

    def _forget_header(self, key: str) -> None:
        with self._cache_lock:
            self._headers.pop(key, None)

    def _probably_exists(self, key: str) -> bool:
        return key in self._headers  # a cached header: the file was there

    def _list_dir(self, relpath: str) -> tuple[list[str], list[str]]:
        with self._cache_lock:
            cached = self._dirs.get(relpath)
        if cached is not None:
            self.stats_counters.add("directory_cache_hits")
            return cached
        self.stats_counters.add("directory_cache_misses")
        with self._cache_lock:
            epoch = self._dirs_epoch
        listing = self._scan_dir(relpath)
        with self._cache_lock:
            # a directory changed while we scanned: the listing may miss it, don't keep it
            if self._dirs_epoch == epoch:
                self._dirs[relpath] = listing
        return listing

    def _listing_changed(self, relpath: str) -> None:
        with self._cache_lock:
            self._dirs_epoch += 1
            self._dirs.pop(relpath, None)

    def _subtree_removed(self, relpath: str) -> None:
        prefix = relpath + os.sep
        with self._cache_lock:
            self._dirs_epoch += 1
            for rel in [r for r in self._dirs.keys() if r == relpath or r.startswith(prefix)]:
                del self._dirs[rel]
            if relpath:
                key_prefix = patterns.relpath_to_key(relpath) + "."
                for key in [k for k in self._headers.keys() if k.startswith(key_prefix)]:
                    del self._headers[key]

    def stats(self) -> dict[str, int]:
        with self._cache_lock:
            self.stats_counters.set("cached_headers", len(self._headers))
            self.stats_counters.set("cached_directories", len(self._dirs))
        return super().stats()


def _metadata_of(header: whisper.Header) -> SeriesMetadata:
    return SeriesMetadata(
        [ArchiveArg(a.seconds_per_point, a.points) for a in header.archives],
        float(header.x_files_factor),
        int(header.aggregation_method),
    )

