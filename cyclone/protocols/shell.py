"""The admin shell: a line-oriented text protocol for telnet / nc.

This module parses commands and formats answers; every store call runs on
the store thread pool (`ctx.call_store`), never on the reactor. Commands
on one connection run one at a time, in order. An error is one line
starting with `error: `; the connection stays open. Every answer ends
with the prompt `cyclone> ` on its own line, so scripts can read up to it.

Commands are listed in HELP below (the `help` command prints it).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable

import numpy as np
from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol

from cyclone.protocols.common import listen_stream
from cyclone.series import AGGREGATION_METHODS, Points, SeriesMetadata

log = logging.getLogger(__name__)

PROMPT = b"cyclone> "
_TOO_LONG = "\x00too-long"
MAX_LINE = 1 << 20

HELP = """\
Commands (options start with +; times are epoch seconds, "now", or relative
like -30s, -5m, -24h, -30d, -2w, -1y):

  help
      This text.
  find [+count] [<pattern> ...]
      Series and directories matching each pattern (directories end in .*).
      No pattern lists the top level. A pattern ending in .** lists a whole
      subtree. +count prints only how many series and directories match.
  read [+start=<time>] [+end=<time>] <pattern> [<pattern> ...]
      Datapoints of every series matching the patterns. Default: the last
      hour (start=-1h, end=now). Prints each series' window and its
      non-empty points as "<timestamp> <value>".
  write <series> <timestamp> <value> [<timestamp> <value> ...]
      Write datapoints to one series (timestamp 0 or "now" = now; a value of
      nan deletes the point). Unknown series are created by autocreate rules.
  delete [+defer] <pattern> [<pattern> ...]
      Delete whole series (and their buffered points). A pattern ending in
      .** deletes a subtree. +defer returns before the disk delete when the
      write buffer allows deferred deletes.
  rename [+merge] <from> <to> [<from> <to> ...]
      Rename series. +merge writes the source's data into an existing
      destination instead of failing.
  create <series> [<series> ...] <archives> [<xff>] [<agg>] [+xff=<x>] [+agg=<method>]
         [+truncate | +skip-existing]
      Create series. <archives> is precision:retention pairs, e.g.
      60:90d,1h:5y (units s m h d w y). xFilesFactor defaults to 0.5,
      aggregation to average (average sum last max min avg_zero absmax
      absmin). An existing series is resampled into the new layout, unless
      +skip-existing (leave it) or +truncate (recreate it empty).
  update-metadata <series> [<series> ...] <archives> [...same options...] [+no-create]
      Like create, but +no-create leaves series that do not exist alone.
  stats
      Server counters (per protocol, ingest, process) and every store's
      counters, as "name = value".
  thread-status
      What the store threads are doing, all threads, queue lengths.
  verify start [repair] | verify cancel | verify status
      Check (and with repair, move) series that the hash ring places on
      another node. Needs a hash store.
  read-from-all [on|off]
      Show or set whether hash-store reads go to every node.
  profiler [on|off]
      Show or set the profiler: when on, store calls slower than
      profiler_threshold_usecs are logged and listed here.
  quit | exit
      Close the connection.
"""


class ShellError(Exception):
    """A user error: printed as one `error: ...` line."""


# -- argument parsing helpers ------------------------------------------------------------
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400,
          "mon": 30 * 86400, "y": 365 * 86400}
_REL_RE = re.compile(r"^([+-])(\d+)(s|sec|min|m|h|d|w|mon|y)?$")


def parse_time(token: str, now: int) -> int:
    """Epoch seconds from "now", an epoch number, or a relative time like -24h / +5m."""
    t = token.strip().lower()
    if t == "now":
        return now
    m = _REL_RE.match(t)
    if m:
        sign, n, unit = m.groups()
        delta = int(n) * _UNITS[unit or "s"]
        return now - delta if sign == "-" else now + delta
    try:
        return int(float(t))
    except ValueError:
        raise ShellError(f"bad time {token!r} (use epoch seconds, now, or relative like -24h)") from None


def split_options(tokens: list[str], allowed: dict[str, bool]) -> tuple[dict[str, str | bool], list[str]]:
    """Separate +options (name -> takes a value?) from positional arguments."""
    opts: dict[str, str | bool] = {}
    args: list[str] = []
    for tok in tokens:
        if tok.startswith("+") and len(tok) > 1 and not tok[1:2].isdigit():
            name, eq, value = tok[1:].partition("=")
            if name not in allowed:
                raise ShellError(f"unknown option +{name} (allowed: "
                                 f"{', '.join('+' + n + ('=...' if v else '') for n, v in allowed.items()) or 'none'})")
            if allowed[name] and not eq:
                raise ShellError(f"option +{name} needs a value (+{name}=...)")
            if not allowed[name] and eq:
                raise ShellError(f"option +{name} takes no value")
            opts[name] = value if allowed[name] else True
        else:
            args.append(tok)
    return opts, args


def fmt_value(v: float) -> str:
    return repr(float(v))


def _err(e: Any) -> str:
    return getattr(e, "description", None) or str(e)


class ShellProtocol(Protocol):
    """One shell connection; commands run one at a time."""

    def __init__(self, ctx: Any, counters: Any) -> None:
        self.ctx = ctx
        self.counters = counters
        self._buf = b""
        self._queue: list[str] = []
        self._busy = False
        self._closing = False
        self._discarding = False

    # -- connection ---------------------------------------------------------------
    def connectionMade(self) -> None:
        self.counters.add_many({"connections": 1, "connections_open": 1})
        self.transport.write(f"cyclone shell ({self.ctx.host}); type 'help' for commands\n".encode()
                             + PROMPT)

    def connectionLost(self, reason: Any = None) -> None:
        self._closing = True
        self.counters.add("connections_open", -1)

    def dataReceived(self, data: bytes) -> None:
        buf = self._buf + data
        while True:
            idx = buf.find(b"\n")
            if idx < 0:
                break
            line, buf = buf[:idx], buf[idx + 1:]
            if self._discarding:
                self._discarding = False
                continue
            self._queue.append(line.rstrip(b"\r").decode("utf-8", "replace"))
        if len(buf) > MAX_LINE:
            buf = b""
            self._discarding = True
            self._queue.append(_TOO_LONG)
        self._buf = buf
        self._pump()

    def _pump(self) -> None:
        while not self._busy and self._queue and not self._closing:
            line = self._queue.pop(0)
            self._busy = True
            d = defer.maybeDeferred(self.execute, line)
            d.addCallbacks(self._answer, self._failed)
            d.addBoth(self._done)

    def _done(self, _: Any) -> None:
        self._busy = False
        if self._queue and not self._closing:
            self.ctx.reactor.callLater(0, self._pump)

    def _answer(self, text: str | None) -> None:
        if self._closing or text is None:
            return
        if text and not text.endswith("\n"):
            text += "\n"
        self.transport.write(text.encode("utf-8", "replace") + PROMPT)

    def _failed(self, failure: Any) -> None:
        self.counters.add("command_errors")
        if failure.check(ShellError):
            msg = str(failure.value)
        else:
            log.error("shell command failed: %s", failure.getTraceback())
            msg = f"internal error: {type(failure.value).__name__}: {failure.value}"
        if not self._closing:
            self.transport.write(f"error: {msg}\n".encode("utf-8", "replace") + PROMPT)

    # -- dispatch -------------------------------------------------------------------
    def execute(self, line: str) -> Any:
        if line is _TOO_LONG:
            raise ShellError(f"line longer than {MAX_LINE} bytes ignored")
        tokens = line.split()
        if not tokens:
            return ""
        self.counters.add("commands")
        name, args = tokens[0].lower(), tokens[1:]
        if name in ("quit", "exit"):
            self._closing = True
            self.transport.write(b"bye\n")
            self.transport.loseConnection()
            return None
        handler: Callable[[list[str]], Any] | None = getattr(self, "cmd_" + name.replace("-", "_"), None)
        if handler is None:
            raise ShellError(f"unknown command {tokens[0]!r} (try 'help')")
        t0 = time.perf_counter()
        d = defer.maybeDeferred(handler, args)

        def timed(result: Any) -> Any:
            self.ctx.profiler.record(f"shell {name}", (time.perf_counter() - t0) * 1e6)
            return result

        return d.addBoth(timed)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.ctx.call_store(fn, *args)

    # -- commands -----------------------------------------------------------------
    def cmd_help(self, args: list[str]) -> str:
        return HELP

    def cmd_find(self, args: list[str]) -> Any:
        opts, patterns = split_options(args, {"count": False})
        patterns = patterns or ["*"]
        many = len(patterns) > 1

        def fmt(results: dict[str, Any]) -> str:
            out = []
            for p in patterns:
                fr = results.get(p)
                prefix = f"[{p}] " if many else ""
                if fr is None:
                    out.append(f"{prefix}no result")
                elif fr.error is not None:
                    out.append(f"{prefix}error: {_err(fr.error)}")
                elif opts.get("count"):
                    dirs = sum(1 for r in fr.results if r.endswith(".*"))
                    out.append(f"{prefix}{len(fr.results) - dirs} series, {dirs} directories")
                else:
                    out.extend(f"{prefix}{r}" for r in sorted(fr.results))
                    if not fr.results and many:
                        out.append(f"{prefix}(nothing)")
            return "\n".join(out) if out else "(nothing found)"

        return self.call(self.ctx.store.find, patterns).addCallback(fmt)

    def cmd_read(self, args: list[str]) -> Any:
        opts, patterns = split_options(args, {"start": True, "end": True})
        if not patterns:
            raise ShellError("read needs at least one pattern")
        now = int(time.time())
        end = parse_time(str(opts["end"]), now) if "end" in opts else now
        start = parse_time(str(opts["start"]), now) if "start" in opts else end - 3600
        if start > end:
            raise ShellError(f"start ({start}) is after end ({end})")

        def fmt(results: dict[str, dict[str, Any]]) -> str:
            out = []
            for p in patterns:
                by_key = results.get(p) or {}
                if len(patterns) > 1:
                    out.append(f"[{p}]")
                if not by_key:
                    out.append("no series match")
                for key in sorted(by_key):
                    rr = by_key[key]
                    if rr.error is not None:
                        out.append(f"series: {key} error: {_err(rr.error)}")
                        continue
                    if rr.step == 0:
                        out.append(f"series: {key} (no data in this window)")
                        continue
                    pts = rr.datapoints()
                    out.append(f"series: {key} (start={rr.start_time}, end={rr.end_time}, "
                               f"step={rr.step}, {len(pts)} points)")
                    out.extend(f"{t} {fmt_value(v)}" for t, v in pts)
            return "\n".join(out)

        return self.call(self.ctx.store.read, patterns, start, end).addCallback(fmt)

    def cmd_write(self, args: list[str]) -> Any:
        if len(args) < 3 or len(args) % 2 != 1:
            raise ShellError("usage: write <series> <timestamp> <value> [<timestamp> <value> ...]")
        key = args[0]
        now = int(time.time())
        ts = []
        vals = []
        for t_tok, v_tok in zip(args[1::2], args[2::2]):
            t = now if t_tok == "0" else parse_time(t_tok, now)
            try:
                v = float(v_tok)
            except ValueError:
                raise ShellError(f"bad value {v_tok!r}") from None
            if v in (float("inf"), float("-inf")):
                raise ShellError(f"bad value {v_tok!r}: infinite values are not stored")
            ts.append(t)
            vals.append(v)
        points = Points(np.array(ts, dtype=np.int64), np.array(vals, dtype=np.float64))

        def fmt(errors: dict[str, Any]) -> str:
            if key in errors:
                return f"[{key}] error: {_err(errors[key])}"
            return f"[{key}] ok: {len(points)} points written"

        return self.call(self.ctx.store.write, {key: points}).addCallback(fmt)

    def cmd_delete(self, args: list[str]) -> Any:
        opts, patterns = split_options(args, {"defer": False})
        if not patterns:
            raise ShellError("delete needs at least one pattern")

        def fmt(results: dict[str, Any]) -> str:
            out = []
            for p in patterns:
                r = results.get(p)
                if r is None:
                    out.append(f"[{p}] nothing deleted")
                elif r.error is not None:
                    out.append(f"[{p}] error: {_err(r.error)}")
                else:
                    out.append(f"[{p}] {r.disk_series_deleted} series deleted from disk, "
                               f"{r.buffer_series_deleted} from the write buffer")
            return "\n".join(out)

        return self.call(self.ctx.store.delete_series, patterns, bool(opts.get("defer"))).addCallback(fmt)

    def cmd_rename(self, args: list[str]) -> Any:
        opts, names = split_options(args, {"merge": False})
        if not names or len(names) % 2:
            raise ShellError("usage: rename [+merge] <from> <to> [<from> <to> ...]")
        renames = dict(zip(names[0::2], names[1::2]))

        def fmt(errors: dict[str, Any]) -> str:
            return "\n".join(f"[{src}] error: {_err(errors[src])}" if src in errors
                             else f"[{src}] renamed to {dst}" for src, dst in renames.items())

        return self.call(self.ctx.store.rename_series, renames, bool(opts.get("merge"))).addCallback(fmt)

    def _metadata_command(self, args: list[str], create: bool) -> Any:
        from cyclone.store.autocreate import parse_retentions

        allowed = {"xff": True, "agg": True, "truncate": False, "skip-existing": False}
        if not create:
            allowed["no-create"] = False
            allowed["create"] = False
        opts, pos = split_options(args, allowed)
        usage = (f"usage: {'create' if create else 'update-metadata'} <series> [<series> ...] "
                 "<archives like 60:90d,1h:5y> [<xff>] [<agg>] [options]")
        arch_i = next((i for i, tok in enumerate(pos) if i > 0 and ":" in tok and _looks_like_archives(tok)),
                      None)
        if arch_i is None:
            raise ShellError(usage)
        keys, archives, rest = pos[:arch_i], pos[arch_i], pos[arch_i + 1:]
        try:
            archive_args = parse_retentions(archives)
        except Exception as e:
            raise ShellError(f"bad archives {archives!r}: {e}") from None
        xff: Any = opts.get("xff")
        agg: Any = opts.get("agg")
        for tok in rest:
            if tok.lower() in AGGREGATION_METHODS and agg is None:
                agg = tok
            elif xff is None:
                xff = tok
            else:
                raise ShellError(f"unexpected argument {tok!r}; {usage}")
        try:
            xff_f = 0.5 if xff is None else float(xff)
        except ValueError:
            raise ShellError(f"bad xFilesFactor {xff!r}") from None
        if not 0 <= xff_f <= 1:
            raise ShellError(f"xFilesFactor must be between 0 and 1, got {xff_f}")
        agg_name = "average" if agg is None else str(agg).lower()
        if agg_name not in AGGREGATION_METHODS:
            raise ShellError(f"unknown aggregation {agg!r} (one of {', '.join(AGGREGATION_METHODS)})")
        if opts.get("truncate") and opts.get("skip-existing"):
            raise ShellError("+truncate and +skip-existing exclude each other")
        metadata = SeriesMetadata(list(archive_args), xff_f, AGGREGATION_METHODS[agg_name])
        create_new = create or not opts.get("no-create")
        by_key = {k: metadata for k in keys}
        desc = ",".join(f"{a.precision}:{a.points}" for a in archive_args)

        def fmt(errors: dict[str, Any]) -> str:
            return "\n".join(f"[{k}] error: {_err(errors[k])}" if k in errors
                             else f"[{k}] ok ({desc} points, xff={xff_f}, {agg_name})" for k in keys)

        return self.call(self.ctx.store.update_metadata, by_key, create_new,
                         bool(opts.get("skip-existing")), bool(opts.get("truncate"))).addCallback(fmt)

    def cmd_create(self, args: list[str]) -> Any:
        return self._metadata_command(args, create=True)

    def cmd_update_metadata(self, args: list[str]) -> Any:
        return self._metadata_command(args, create=False)

    def cmd_stats(self, args: list[str]) -> Any:
        if args:
            raise ShellError("stats takes no arguments")
        from cyclone.stats import collect_all

        ctx = self.ctx
        server_stats = ctx.stats.snapshot()

        def work() -> dict[str, int]:
            verify = None
            if ctx.verify is not None:
                try:
                    verify = ctx.verify.get_verify_status()
                except Exception:
                    verify = None
            return collect_all(server_stats, ctx.store, ctx.started_at, verify)

        return self.call(work).addCallback(
            lambda stats: "\n".join(f"{k} = {v}" for k, v in sorted(stats.items())))

    def cmd_thread_status(self, args: list[str]) -> str:
        ctx = self.ctx
        now = time.monotonic()
        pool = ctx.threadpool
        out = [f"store thread pool: {len(pool.threads)} threads (max {pool.max}), "
               f"{len(pool.working)} working, {pool._queue.qsize()} queued"]
        tasks = dict(ctx.running_tasks)
        for t in sorted(threading.enumerate(), key=lambda t: t.name):
            task = tasks.get(t.ident)
            what = f"running {task[0]} for {now - task[1]:.3f} s" if task else (
                "reactor" if t is threading.main_thread() else "idle" if t.name.startswith("PoolThread-store") else "")
            out.append(f"  {t.name}{' (daemon)' if t.daemon else ''}: {what}".rstrip(": "))
        out.append(f"ingest: {ctx.ingest.queued_points} points queued for the store, "
                   f"sockets {'PAUSED (write buffer full)' if ctx.ingest.paused else 'reading'}")
        from cyclone.stats import store_stat_names

        for path, store in store_stat_names(ctx.store):
            if hasattr(store, "buffered_points"):
                out.append(f"write buffer {path}: {store.buffered_points()} points buffered, "
                           f"{store.queue_series()} series, limit {store.max_buffered_points}")
        return "\n".join(out)

    def _hook(self, name: str) -> Any:
        hook = getattr(self.ctx, name)
        if hook is None:
            raise ShellError("no hash store configured (verify and read-from-all need a hash store "
                             "in store_config)")
        return hook

    def cmd_verify(self, args: list[str]) -> Any:
        if not args or args[0] not in ("start", "cancel", "status"):
            raise ShellError("usage: verify start [repair] | verify cancel | verify status")
        sub = args[0]
        if sub == "start":
            if args[1:] not in ([], ["repair"]):
                raise ShellError("usage: verify start [repair]")
        elif len(args) != 1:
            raise ShellError(f"usage: verify {sub}")
        hook = self._hook("verify")
        if sub == "start":
            repair = len(args) == 2
            what = "verify+repair" if repair else "verify"
            return self.call(hook.start_verify, repair).addCallback(
                lambda ok: f"{what} started" if ok else f"{what} not started (one is already running)")
        if sub == "cancel":
            return self.call(hook.cancel_verify).addCallback(
                lambda ok: "verify cancelled" if ok else "no verify is running")
        return self.call(hook.get_verify_status).addCallback(
            lambda st: "\n".join(f"{k} = {v}" for k, v in sorted(st.items())) or "verify was never run")

    def cmd_read_from_all(self, args: list[str]) -> Any:
        if len(args) > 1 or (args and args[0] not in ("on", "off")):
            raise ShellError("usage: read-from-all [on|off]")
        hook = self._hook("read_from_all")
        if not args:
            return self.call(hook.get_read_from_all).addCallback(
                lambda on: f"read-from-all is {'on' if on else 'off'}")
        enable = args[0] == "on"
        return self.call(hook.set_read_from_all, enable).addCallback(
            lambda prev: f"read-from-all is {'on' if enable else 'off'} (was {'on' if prev else 'off'})")

    def cmd_profiler(self, args: list[str]) -> str:
        if len(args) > 1 or (args and args[0] not in ("on", "off")):
            raise ShellError("usage: profiler [on|off]")
        prof = self.ctx.profiler
        if args:
            prof.enabled = args[0] == "on"
        out = [f"profiler is {'on' if prof.enabled else 'off'} "
               f"(threshold {prof.threshold_usecs} usecs)"]
        for when, what, usecs in list(prof.slow)[-20:]:
            out.append(f"  {time.strftime('%H:%M:%S', time.localtime(when))} {usecs / 1000:.1f} ms {what}")
        return "\n".join(out)


def _looks_like_archives(tok: str) -> bool:
    return all(re.fullmatch(r"\d+[a-z]*:\d+[a-z]*", part.strip().lower()) for part in tok.split(",") if part)


class ShellFactory(Factory):
    noisy = False

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.counters = ctx.stats.group("shell")

    def buildProtocol(self, addr: Any) -> ShellProtocol:
        proto = ShellProtocol(self.ctx, self.counters)
        proto.factory = self
        return proto


def start_listeners(ctx: Any) -> list[Any]:
    """Shell listeners for `shell_listen`."""
    factory = ShellFactory(ctx)
    return [listen_stream(ctx.reactor, spec, factory, "shell") for spec in ctx.config.shell_listen]


__all__ = ["ShellProtocol", "ShellFactory", "start_listeners", "parse_time", "HELP"]
