// Cyclone's Thrift interface (framed transport, binary protocol).
//
// Wire-compatible with the original Cyclone IDL: the method names, argument
// field ids, struct field ids and types below must never change, or old
// clients and old cluster nodes stop understanding us. New fields may be
// added with new ids.
//
// Regenerate the Python code with `make thrift` (writes thrift/gen-py).
//
// Conventions used by every call:
// - local_only: false for external clients. Cyclone nodes set it to true when
//   they forward a call to another node, so that node answers from its own
//   store only instead of forwarding again.
// - Results are per key (or per pattern): one bad key never fails a batch.
//   An unset Error, or one with an empty description, means success.

namespace py cyclone_if

// A per-key (or per-pattern) error.
struct Error {
  // What went wrong; empty on success.
  1: string description;
  // True if retrying the same call may succeed (e.g. a remote node was
  // unreachable); false for errors that will repeat (e.g. an invalid key).
  2: bool recoverable;
  // True if the caller may treat this error as a success (e.g. a series
  // that was skipped on purpose).
  3: bool ignored;
}

// One point of a series.
struct Datapoint {
  // Unix time in seconds.
  1: i64 timestamp;
  // The value; NaN in a write deletes the point at this timestamp.
  2: double value;
}

// One archive of a series: `points` slots, each `precision` seconds wide.
struct ArchiveArg {
  // Seconds per point.
  1: i32 precision;
  // Number of points kept in this archive.
  2: i32 points;
}

// The storage format of a series.
struct SeriesMetadata {
  // Archives, highest resolution first.
  1: list<ArchiveArg> archive_args;
  // Fraction (0..1) of known points needed to propagate a value to the next
  // lower-resolution archive.
  2: double x_files_factor;
  // Aggregation method when propagating, with whisper's ids: 1 average,
  // 2 sum, 3 last, 4 max, 5 min, 6 avg_zero, 7 absmax, 8 absmin.
  3: i32 agg_method;
}

// The datapoints of one series over a time range.
struct ReadResult {
  // Set if this series could not be read.
  1: Error error;
  // Non-null points in the range, in time order.
  2: list<Datapoint> data;
  // (Field 3 is unused: it was never part of the protocol.)
  // The range actually covered, aligned to the archive's resolution.
  4: i64 start_time;
  5: i64 end_time;
  // Seconds between points of the archive that answered the read.
  6: i64 step;
}

// Everything stored for one series (used by verify/repair to move series).
struct ReadAllResult {
  // Set if the series could not be read.
  1: Error error;
  // Its storage format.
  2: SeriesMetadata metadata;
  // Every non-null point of the highest-resolution data, in time order.
  3: list<Datapoint> data;
}

// The answer to one find pattern.
struct FindResult {
  // Set if the pattern could not be searched.
  1: Error error;
  // Matching keys and directories; a directory ends with ".*".
  2: list<string> results;
}

// The answer to one delete pattern.
struct DeleteResult {
  // Set if the pattern could not be (fully) deleted.
  1: Error error;
  // Number of series files deleted from disk.
  2: i64 disk_series_deleted;
  // Number of series whose buffered (not yet flushed) writes were dropped.
  3: i64 buffer_series_deleted;
}

service Cyclone {

  // ---- write commands

  // Creates series and/or changes their storage format. For each key: if the
  // series does not exist, it is created when create_new is true. If it
  // exists and skip_existing_series is true, nothing happens; if it exists
  // and truncate_existing_series is true, it is recreated empty with the new
  // format; if it exists and neither flag is set, its data is resampled into
  // the new format under a write lock. With write buffering, the call
  // returns before the change reaches disk unless skip_buffering is true.
  // Returns an Error for each key.
  map<string, Error> update_metadata(
      1: map<string, SeriesMetadata> metadata,
      2: bool create_new = true,
      3: bool skip_existing_series = false,
      4: bool truncate_existing_series = false,
      5: bool skip_buffering = false,
      6: bool local_only = false);

  // Deletes whole series, with any buffered writes for them. Patterns are
  // allowed; a pattern ending in ".**" deletes a whole subtree. With
  // deferred, the deletion may complete in the background (buffered points
  // are dropped at once). Returns the number of series deleted from disk
  // and from the write buffer for each pattern.
  map<string, DeleteResult> delete_series(
      1: list<string> patterns,
      3: bool deferred = false,
      2: bool local_only = false);

  // Renames series (map of old key to new key). If the new key exists, the
  // rename fails for that key unless merge is true, in which case the old
  // series' points are written into the existing one and the old series is
  // deleted. Returns an Error for each old key.
  map<string, Error> rename_series(
      1: map<string, string> renames,
      3: bool merge = false,
      2: bool local_only = false);

  // Writes datapoints (keys, not patterns). A NaN value deletes the point at
  // that timestamp. A missing series is created by the first matching
  // autocreate rule, or the write is refused for that key. With write
  // buffering, the call returns before the points reach disk unless
  // skip_buffering is true. Returns an Error for each key.
  map<string, Error> write(
      1: map<string, list<Datapoint>> data,
      2: bool skip_buffering = false,
      3: bool local_only = false);

  // ---- read commands

  // Reads datapoints between start_time and end_time (Unix seconds) for
  // each target; targets may be patterns. Returns, for each target, a map of
  // each matching key to its ReadResult. Buffered writes are included.
  map<string, map<string, ReadResult>> read(
      1: list<string> targets,
      2: i64 start_time,
      3: i64 end_time,
      4: bool local_only = false);

  // Reads the metadata and all stored points of one series (a key, not a
  // pattern). Buffered writes are not included. Used by verify/repair.
  ReadAllResult read_all(
      1: string series,
      2: bool local_only = false);

  // Finds keys and directories matching each pattern. A result ending with
  // ".*" is a directory; anything else is a series. A pattern ending in
  // ".**" lists every series below that directory.
  map<string, FindResult> find(
      1: list<string> patterns,
      2: bool local_only = false);

  // Returns the server's current counters.
  map<string, i64> stats();

  // ---- administration commands

  // Returns the counters of the current (or last) verify run.
  map<string, i64> get_verify_status();

  // Starts a verify run, which checks that every local series belongs on
  // this node; with repair, series that belong elsewhere are moved to their
  // owner (merged with any data there). Returns true if a run was started,
  // false if one is already running.
  bool start_verify(1: bool repair);

  // Cancels the running verify. Returns true if one was running.
  bool cancel_verify();

  // Gets or sets read-from-all: when on, reads and finds query every node
  // of the cluster, not only the owner of each key. Turn it on on every
  // node before a verify+repair and off after it ends (verify turns it on
  // by itself while it runs). set_read_from_all returns the previous value.
  bool get_read_from_all();
  bool set_read_from_all(1: bool read_from_all);
}
