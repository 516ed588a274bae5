"""The server process: config -> store tree -> listeners -> reactor, reload, shutdown.

This module owns the process lifecycle and the `ServerContext` every
protocol module receives:

* `cyclone CONFIG` (`run_from_argv`): load the config (a `ConfigError` is
  printed on stderr, exit 2), set up logging per `log_level`, build the
  store tree, open every listener (a listener that cannot be opened, e.g.
  a port in use, is printed on stderr, exit 1), then run the reactor.
* Listener plug-in contract: a protocol module exposes
  `start_listeners(ctx) -> list[port]`. The modules `line`, `pickle`,
  `shell` always run; `cyclone.protocols.http` and
  `cyclone.protocols.thrift` run when they exist. Raise
  `cyclone.protocols.common.ListenError` (or twisted's CannotListenError)
  to fail startup with a clear message.
* Hot reload: the config file is polled every `config_poll_secs`; live
  fields (log level, stats interval, profiler threshold, poll interval,
  frame/line limits, store live fields, autocreate rules) apply at once,
  the rest is logged as needing a restart.
* Shutdown (SIGTERM/SIGINT or `ctx.shutdown()`): accept what is waiting in
  the listen backlogs, stop listening, keep reading the open ingest
  connections until each is idle with nothing left in its kernel buffer
  (or the client closes), drain UDP sockets the same way, hand every
  parsed point to the store, then `store.flush()` and `store.close()` on
  the store pool, and exit 0. Nothing the server accepted is lost.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import importlib
import logging
import signal
import struct
import sys
import termios
import threading
import time
from typing import Any, Callable

from cyclone.config import Config, ConfigError, ConfigWatcher, live_field_changes, load_config, restart_needed
from cyclone.protocols.common import IngestPipeline, ListenError
from cyclone.stats import Profiler, StatsRegistry, StatsReporter

log = logging.getLogger("cyclone.server")

CORE_PROTOCOLS = ("line", "pickle", "shell")
OPTIONAL_PROTOCOLS = ("http", "thrift")
#: config fields naming each protocol's listeners: a module none of whose fields lists an
#: address is not even imported (no memory spent on a protocol nobody listens for)
LISTEN_FIELDS = {
    "line": ("line_stream_listen", "line_datagram_listen"),
    "pickle": ("pickle_listen",),
    "shell": ("shell_listen",),
    "http": ("http_listen",),
    "thrift": ("thrift_port",),
}

LOG_LEVELS = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR,
              4: logging.CRITICAL + 10}

#: shutdown: an ingest connection is closed once it has been idle this long with nothing unread
DRAIN_IDLE_SECS = 0.3
#: shutdown: give up waiting for busy clients after this long
DRAIN_MAX_SECS = 30.0


class ServerContext:
    """What every protocol module gets: config, store, reactor, threads, stats, hooks.

    Attributes:
      config        the current `Config` (replaced on reload; read fields at use time)
      store         the root Store of the tree
      autocreate    the tree's shared AutocreateRules (replaced in place on reload)
      reactor       the Twisted reactor
      threadpool    the store ThreadPool (`store_threads` threads)
      stats         `StatsRegistry`: `ctx.stats.group("http").add("requests")`
      profiler      `Profiler`: `ctx.profiler.record(what, usecs)`
      host          the name in self-metrics (`cyclone.<host>.*`)
      started_at    epoch seconds at startup
      ingest        `IngestPipeline` (line/UDP/pickle -> store, backpressure)
      verify        None, or an object with start_verify(repair) -> bool,
                    cancel_verify() -> bool, get_verify_status() -> dict[str, int]
                    (set by the cluster code when the tree has a hash store)
      read_from_all None, or an object with get_read_from_all() -> bool and
                    set_read_from_all(on) -> bool (returns the previous state)
      cluster       `cyclone.verify.ClusterControl` (inert without a hash store), or None
                    if that module is missing; verify/read_from_all are set to it when
                    the tree has a hash store
    """

    def __init__(self, config: Config, store: Any, autocreate: Any, reactor: Any, threadpool: Any) -> None:
        self.config = config
        self.store = store
        self.autocreate = autocreate
        self.reactor = reactor
        self.threadpool = threadpool
        self.stats = StatsRegistry()
        self.profiler = Profiler(config.profiler_threshold_usecs)
        self.host = config.host
        self.started_at = time.time()
        self.verify: Any = None
        self.read_from_all: Any = None
        self.cluster: Any = None
        self.running_tasks: dict[int, tuple[str, float]] = {}
        self.connections: set[Any] = set()
        self.ports: list[Any] = []
        self.shutdown_hooks: list[Callable[[], Any]] = []
        self.exit_code = 0
        self.shutting_down = False
        self.ingest = IngestPipeline(self)
        self.stats.add_gauge("ingest.queued_points", lambda: self.ingest.queued_points)
        self.stats.add_gauge("ingest.paused", lambda: int(self.ingest.paused))

    # -- store calls off the reactor -------------------------------------------------
    def call_store(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking call on the store pool; returns a Deferred with its result."""
        from twisted.internet.threads import deferToThreadPool

        desc = getattr(fn, "__qualname__", None) or repr(fn)
        tasks = self.running_tasks
        profiler = self.profiler

        def run() -> Any:
            ident = threading.get_ident()
            t0 = time.monotonic()
            tasks[ident] = (desc, t0)
            try:
                return fn(*args, **kwargs)
            finally:
                tasks.pop(ident, None)
                profiler.record(f"store call {desc}", (time.monotonic() - t0) * 1e6)

        return deferToThreadPool(self.reactor, self.threadpool, run)

    # -- connections that must be drained at shutdown ------------------------------
    def track_connection(self, proto: Any) -> None:
        """An ingest stream connection (needs `transport` and `last_data`)."""
        self.connections.add(proto)

    def untrack_connection(self, proto: Any) -> None:
        self.connections.discard(proto)

    def add_shutdown_hook(self, fn: Callable[[], Any]) -> None:
        """`fn()` (may return a Deferred) runs after ingest drained, before the store closes."""
        self.shutdown_hooks.append(fn)

    def shutdown(self) -> None:
        """Begin a graceful shutdown (idempotent; safe from the reactor thread)."""
        if self.shutting_down:
            return
        self.shutting_down = True
        log.info("shutting down")
        if self.reactor.running:
            self.reactor.stop()


def limit_malloc_arenas(n: int = 2) -> None:
    """Fewer glibc malloc arenas: the GIL serialises allocation anyway, and every
    thread's own arena keeps freed memory resident (measured: -8 MB peak RSS)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, n)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def setup_logging(level: int) -> None:
    root = logging.getLogger()
    if not any(getattr(h, "_cyclone", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._cyclone = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    set_log_level(level)


def set_log_level(level: int) -> None:
    logging.getLogger().setLevel(LOG_LEVELS.get(level, logging.INFO))
    # twisted's own chatter ("... starting on 2003") only at debug
    logging.getLogger("twisted").setLevel(logging.DEBUG if level == 0 else logging.WARNING)


def _route_twisted_logs() -> None:
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    globalLogBeginner.beginLoggingTo([STDLibLogObserver()], discardBuffer=True, redirectStandardIO=False)


def start_all_listeners(ctx: ServerContext) -> list[Any]:
    """Open every protocol's listeners; on any failure close those opened and raise ListenError."""
    from twisted.internet.error import CannotListenError

    ports: list[Any] = []
    try:
        for name in CORE_PROTOCOLS + OPTIONAL_PROTOCOLS:
            fields = LISTEN_FIELDS.get(name, ())
            if fields and not any(getattr(ctx.config, f, None) not in (None, [], "") for f in fields):
                log.debug("no %s listeners configured", name)
                continue
            modname = f"cyclone.protocols.{name}"
            try:
                mod = importlib.import_module(modname)
            except ModuleNotFoundError as e:
                if name in OPTIONAL_PROTOCOLS and e.name == modname:
                    log.debug("%s not available yet; no %s listeners", modname, name)
                    continue
                raise
            ports.extend(mod.start_listeners(ctx) or [])
    except CannotListenError as e:
        _close_ports(ports)
        raise ListenError(f"cannot listen on {e.interface or '*'}:{e.port}: {e.socketError}") from None
    except BaseException:
        _close_ports(ports)
        raise
    return ports


def _close_ports(ports: list[Any]) -> None:
    for p in ports:
        try:
            p.stopListening()
        except Exception:
            pass


def _pending_bytes(obj: Any) -> int:
    """Bytes waiting unread in a socket's kernel buffer (0 if unknown)."""
    try:
        fd = obj.fileno()
        if fd < 0:
            return 0
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except Exception:
        return 0


class Server:
    """One server process: owns the context, the reload loop, the reporter and shutdown."""

    def __init__(self, config: Config, reactor: Any) -> None:
        from twisted.python.threadpool import ThreadPool

        from cyclone.store.autocreate import AutocreateRules
        from cyclone.fdlimit import raise_fd_limit
        from cyclone.store.factory import build_store

        self.reactor = reactor
        raise_fd_limit()
        rules = AutocreateRules(config.autocreate_rules)
        store = build_store(config.store_config, rules, config.open_file_cache_size)
        pool = ThreadPool(minthreads=0, maxthreads=config.store_threads, name="store")
        self.ctx = ServerContext(config, store, rules, reactor, pool)
        self._wire_cluster()
        from cyclone.verify import ClusterControl

        # verify / read-from-all hooks (shell, Thrift, stats): inert without a hash store
        cluster = ClusterControl.from_store(store)
        self.ctx.cluster = cluster
        if cluster.enabled:
            self.ctx.verify = cluster
            self.ctx.read_from_all = cluster
        self.reporter = StatsReporter(self.ctx)
        self.watcher = ConfigWatcher(config, self._on_config_change)
        self.watch_loop: Any = None

    def _wire_cluster(self) -> None:
        """verify / read-from-all hooks: `cyclone.verify.ClusterControl` when the tree has a hash store."""
        try:
            from cyclone.verify import ClusterControl
        except ModuleNotFoundError as e:
            if e.name != "cyclone.verify":
                raise
            return
        cluster = ClusterControl.from_store(self.ctx.store)
        self.ctx.cluster = cluster
        if cluster.enabled:
            self.ctx.verify = cluster
            self.ctx.read_from_all = cluster

    # -- startup --------------------------------------------------------------------
    def listen(self) -> None:
        self.ctx.ports = start_all_listeners(self.ctx)

    def start(self) -> None:
        """Called once the reactor runs."""
        ctx = self.ctx
        ctx.threadpool.start()
        self.reactor.addSystemEventTrigger("before", "shutdown", self._graceful_shutdown)
        self.reporter.start(ctx.config.stats_report_usecs)
        self._start_watch(ctx.config.config_poll_secs)
        ctx.ingest.write_buffers()  # registers drain listeners for backpressure
        depth = ctx.config.prepopulate_depth
        if depth > 0:
            for store in ctx.store.walk():
                if hasattr(store, "prepopulate"):
                    ctx.call_store(store.prepopulate, depth).addCallbacks(
                        lambda n, s=store: log.info("prepopulated %d directories of %s", n, s.describe()),
                        lambda f: log.error("prepopulate failed: %s", f.getErrorMessage()))
        # long-lived objects (the store tree, caches) leave the GC's generations;
        # ingest allocates many short-lived containers, so collect less often
        gc.freeze()
        gc.set_threshold(50_000, 20, 50)
        log.info("cyclone ready (host %s): %d listeners, store: %s", ctx.host, len(ctx.ports),
                 " > ".join(s.describe() for s in ctx.store.walk()))

    def _on_signal(self, signum: int, frame: Any) -> None:
        # runs on the main thread between bytecodes: hand over to the reactor loop
        if self.ctx.shutting_down:
            log.warning("signal %d: already shutting down", signum)
            return
        self.reactor.callFromThread(self.ctx.shutdown)

    def _start_watch(self, secs: float) -> None:
        from twisted.internet.task import LoopingCall

        if self.watch_loop is not None and self.watch_loop.running:
            self.watch_loop.stop()
        self.watch_loop = None
        if secs > 0:
            self.watch_loop = LoopingCall(self._check_config)
            self.watch_loop.clock = self.reactor
            self.watch_loop.start(secs, now=False)

    def _check_config(self) -> None:
        try:
            self.watcher.check()
        except Exception:
            log.exception("config reload failed")

    # -- hot reload -----------------------------------------------------------------
    def _on_config_change(self, old: Config, new: Config) -> None:
        from cyclone.store.autocreate import AutocreateRules
        from cyclone.store.factory import apply_store_config, store_shape

        ctx = self.ctx
        ctx.config = new
        changes = live_field_changes(old, new)
        if "log_level" in changes:
            set_log_level(new.log_level)
        if "stats_report_usecs" in changes:
            self.reporter.start(new.stats_report_usecs)
        if "config_poll_secs" in changes:
            self._start_watch(new.config_poll_secs)
        if "profiler_threshold_usecs" in changes:
            ctx.profiler.threshold_usecs = new.profiler_threshold_usecs
        try:
            ctx.autocreate.replace(AutocreateRules(new.autocreate_rules))
        except Exception as e:  # validated already; belt and braces
            log.error("config reload: autocreate rules not applied: %s", e)
        needs_restart = restart_needed(old, new)
        if needs_restart:
            log.warning("config reload: %s changed; restart the server to apply", ", ".join(needs_restart))
        log.info("config reloaded from %s; live changes: %s", new.path,
                 ", ".join(f"{k}={v}" for k, v in changes.items()) or "none at top level")
        if store_shape(old.store_config) == store_shape(new.store_config):
            ctx.call_store(apply_store_config, ctx.store, new.store_config, new.open_file_cache_size
                           ).addCallbacks(
                lambda changed: changed and log.info("config reload: store fields changed: %s",
                                                     ", ".join(changed)),
                lambda f: log.error("config reload: store fields not applied: %s", f.getErrorMessage()))

    # -- shutdown -------------------------------------------------------------------
    def _graceful_shutdown(self) -> Any:
        from twisted.internet import defer

        return defer.ensureDeferred(self._shutdown_steps())

    async def _shutdown_steps(self) -> None:
        from twisted.internet import defer, udp

        ctx = self.ctx
        ctx.shutting_down = True
        t0 = time.monotonic()
        self.reporter.stop()
        if self.watch_loop is not None and self.watch_loop.running:
            self.watch_loop.stop()
        udp_ports = [p for p in ctx.ports if isinstance(p, udp.Port)]
        stream_ports = [p for p in ctx.ports if p not in udp_ports]
        # connections the kernel completed but we have not accepted yet carry data too
        for p in stream_ports:
            if getattr(p, "connected", False) and hasattr(p, "doRead"):
                try:
                    p.doRead()
                except Exception:
                    log.debug("accepting backlog failed", exc_info=True)
        await defer.DeferredList([defer.maybeDeferred(p.stopListening) for p in stream_ports])
        ctx.ingest.begin_drain()
        log.info("shutdown: stopped listening; draining %d ingest connections and %d datagram sockets",
                 len(ctx.connections), len(udp_ports))
        await self._drain(udp_ports)
        for hook in list(ctx.shutdown_hooks):
            try:
                await defer.maybeDeferred(hook)
            except Exception:
                log.exception("shutdown hook failed")
        await ctx.ingest.wait_idle()
        if ctx.verify is not None:
            try:
                await ctx.call_store(ctx.verify.cancel_verify)
            except Exception as e:
                log.warning("shutdown: cancelling verify failed: %s", e)
        log.info("shutdown: all received data handed to the store (%.2f s); flushing",
                 time.monotonic() - t0)
        try:
            await ctx.call_store(self._flush_and_close)
        except Exception as e:
            ctx.exit_code = 1
            log.error("shutdown: flushing the store failed: %s", e)
        ctx.threadpool.stop()
        log.info("shutdown complete in %.2f s", time.monotonic() - t0)

    def _flush_and_close(self) -> None:
        store = self.ctx.store
        t0 = time.monotonic()
        store.close()  # write buffers flush first, bounded by their close_timeout_secs
        log.info("store flushed and closed in %.2f s", time.monotonic() - t0)

    def _drain(self, udp_ports: list[Any]) -> Any:
        from twisted.internet import defer
        from twisted.internet.task import LoopingCall

        ctx = self.ctx
        done = defer.Deferred()
        deadline = time.monotonic() + DRAIN_MAX_SECS
        udp_open = list(udp_ports)
        udp_quiet_since: dict[Any, float] = {}
        closing: set[Any] = set()

        def check() -> None:
            now = time.monotonic()
            late = now > deadline
            for proto in list(ctx.connections):
                transport = getattr(proto, "transport", None)
                if transport is None or proto in closing:
                    continue
                idle = now - getattr(proto, "last_data", 0.0) >= DRAIN_IDLE_SECS
                if late or (idle and _pending_bytes(transport) == 0):
                    closing.add(proto)
                    transport.loseConnection()
            for port in list(udp_open):
                if _pending_bytes(port) > 0 and not late:
                    udp_quiet_since.pop(port, None)
                    try:
                        port.doRead()
                    except Exception:
                        pass
                    continue
                first_quiet = udp_quiet_since.setdefault(port, now)
                if late or now - first_quiet >= DRAIN_IDLE_SECS:
                    udp_open.remove(port)
                    port.stopListening()
            if late and ctx.connections:
                log.warning("shutdown: %d clients still sending after %.0f s; closing them",
                            len(ctx.connections), DRAIN_MAX_SECS)
                for proto in list(ctx.connections):
                    if getattr(proto, "transport", None) is not None:
                        proto.transport.abortConnection()
            if not udp_open and not ctx.connections:
                if loop.running:
                    loop.stop()
                if not done.called:
                    done.callback(None)

        loop = LoopingCall(check)
        loop.clock = self.reactor
        loop.start(0.05, now=True)
        return done


def run_from_argv(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="cyclone", description="Cyclone time-series server")
    parser.add_argument("config", help="path to the JSON config file (see cyclone.conf.json)")
    args = parser.parse_args(argv)
    # a SIGTERM/SIGINT from here on is a graceful shutdown, even during startup
    holder: dict[str, Any] = {"server": None, "early": False}

    def on_signal(signum: int, frame: Any) -> None:
        if holder["server"] is None:
            holder["early"] = True
        else:
            holder["server"]._on_signal(signum, frame)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"cyclone: bad config: {e}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    limit_malloc_arenas()
    _route_twisted_logs()
    from twisted.internet import reactor

    try:
        server = Server(config, reactor)
    except Exception as e:
        print(f"cyclone: cannot build the store tree: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    try:
        server.listen()
    except ListenError as e:
        print(f"cyclone: {e}", file=sys.stderr)
        _close_store(server)
        return 1
    holder["server"] = server
    reactor.callWhenRunning(server.start)
    if holder["early"]:
        reactor.callWhenRunning(server.ctx.shutdown)
    reactor.run(installSignalHandlers=False)
    return server.ctx.exit_code


def _close_store(server: Server) -> None:
    try:
        server.ctx.store.close()
    except Exception:
        log.exception("closing the store failed")
