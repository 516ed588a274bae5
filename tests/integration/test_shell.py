"""Every shell command over a real socket to a real server process."""

from __future__ import annotations

import socket
import time

import pytest

from tests.integration.conftest import CycloneProcess, ShellClient


@pytest.fixture
def srv(cyclone_factory) -> CycloneProcess:
    return cyclone_factory(rules=[["auto.**", "1:1h", 0, "average"], ["cyclone.**", "60:1d", 0, "average"]]).start()


@pytest.fixture
def sh(srv: CycloneProcess):
    with srv.shell() as client:
        yield client


def _whisper_info(srv: CycloneProcess, key: str):
    import whisper

    try:
        info = whisper.info(str(srv.data_dir.joinpath(*key.split("."))) + ".wsp")
    except whisper.CorruptWhisperFile as e:  # caught between file creation and header write
        raise OSError(f"half-created file for {key}: {e}") from None
    if info is None:  # missing or being recreated
        raise OSError(f"no header for {key}")
    return info


def test_banner_help_and_unknown(sh: ShellClient) -> None:
    assert "type 'help'" in sh.banner
    text = sh.cmd("help")
    for name in ("find", "read", "write", "delete", "rename", "create", "update-metadata", "stats",
                 "thread-status", "verify start", "read-from-all", "profiler", "quit"):
        assert name in text
    assert sh.cmd("frobnicate now") == "error: unknown command 'frobnicate' (try 'help')"
    assert sh.cmd("") == ""
    assert sh.cmd("find +bogus x") .startswith("error: unknown option +bogus")


def test_write_read_find(srv: CycloneProcess, sh: ShellClient) -> None:
    now = int(time.time())
    assert sh.cmd(f"write auto.a.x {now - 30} 1.5 {now - 20} -2 {now - 10} 1e3") == \
        "[auto.a.x] ok: 3 points written"
    assert sh.cmd("write auto.a.y 0 7") == "[auto.a.y] ok: 1 points written"
    assert sh.cmd("write auto.b.z -5m 4") == "[auto.b.z] ok: 1 points written"
    assert sh.cmd("write auto.a.x 100") .startswith("error: usage: write")
    assert sh.cmd("write auto.a.x now abc") == "error: bad value 'abc'"
    assert sh.cmd(f"write noauto.q {now} 1").startswith("[noauto.q] error: ")
    # reads see buffered points at once; files follow
    text = sh.cmd("read auto.a.x")
    lines = text.splitlines()
    assert lines[0].startswith("series: auto.a.x (start=") and "step=1, 3 points)" in lines[0]
    assert lines[1:] == [f"{now - 30} 1.5", f"{now - 20} -2.0", f"{now - 10} 1000.0"]
    text = sh.cmd(f"read +start=-25s +end={now - 15} auto.a.x")
    assert text.splitlines()[1:] == [f"{now - 20} -2.0"]
    text = sh.cmd("read +start=-1h auto.a.* auto.b.*")
    assert "[auto.a.*]" in text and "[auto.b.*]" in text and "series: auto.a.y" in text
    assert "series: auto.b.z" in text and f"{now - 300} 4.0" in text
    assert sh.cmd("read nothing.here") == "no series match"
    assert sh.cmd("read +start=tomorrow x").startswith("error: bad time 'tomorrow'")
    assert sh.cmd("read +start=-1h +end=-2h x").startswith("error: start (")
    srv.wait_points("auto.a.x", {now - 30: 1.5, now - 20: -2.0, now - 10: 1000.0})
    assert sh.cmd("find auto.*") == "auto.a.*\nauto.b.*"
    assert sh.cmd("find auto.a.*") == "auto.a.x\nauto.a.y"
    assert sh.cmd("find") == "auto.*"
    assert sh.cmd("find +count auto.a.*") == "2 series, 0 directories"
    assert sh.cmd("find +count auto.*") == "0 series, 2 directories"
    assert sh.cmd("find auto.** auto.b.*") == "[auto.**] auto.a.x\n[auto.**] auto.a.y\n[auto.**] auto.b.z\n" \
        "[auto.b.*] auto.b.z"
    assert "error" in sh.cmd("find a..b")


def test_delete_and_rename(srv: CycloneProcess, sh: ShellClient) -> None:
    now = int(time.time())
    for k in ("auto.d.one", "auto.d.two", "auto.d.sub.three", "auto.r.src", "auto.r.dst", "auto.r.m1",
              "auto.r.m2"):
        sh.cmd(f"write {k} {now - 10} 1")
    sh.cmd(f"write auto.r.m1 {now - 5} 5")
    sh.cmd(f"write auto.r.m2 {now - 4} 6")
    srv.wait_points("auto.r.m2", {now - 10: 1.0, now - 4: 6.0})
    out = sh.cmd("delete auto.d.one")
    assert out.startswith("[auto.d.one] 1 series deleted from disk") or \
        out == "[auto.d.one] 0 series deleted from disk, 1 from the write buffer"
    assert sh.cmd("delete +defer auto.d.**").startswith("[auto.d.**] ")
    assert sh.cmd("find auto.d.**") == "(nothing found)"
    srv.wait_for(lambda: not srv.wsp_path("auto.d.sub.three").exists())
    assert sh.cmd("delete") == "error: delete needs at least one pattern"
    assert sh.cmd("rename auto.r.src auto.r.renamed") == "[auto.r.src] renamed to auto.r.renamed"
    assert srv.read_points("auto.r.renamed") == {now - 10: 1.0}
    assert not srv.wsp_path("auto.r.src").exists()
    assert sh.cmd("rename auto.r.m1 auto.r.m2").startswith("[auto.r.m1] error: ")
    assert sh.cmd("rename +merge auto.r.m1 auto.r.m2") == "[auto.r.m1] renamed to auto.r.m2"
    assert srv.read_points("auto.r.m2") == {now - 10: 1.0, now - 5: 5.0, now - 4: 6.0}
    assert sh.cmd("rename only_one").startswith("error: usage: rename")


def test_create_and_update_metadata(srv: CycloneProcess, sh: ShellClient) -> None:
    out = sh.cmd("create manual.a manual.b 60:90d,1h:5y +xff=0.25 +agg=max")
    assert out == "[manual.a] ok (60:129600,3600:43800 points, xff=0.25, max)\n" \
                  "[manual.b] ok (60:129600,3600:43800 points, xff=0.25, max)"
    srv.wait_for(lambda: _whisper_info(srv, "manual.b"))
    info = _whisper_info(srv, "manual.a")
    assert [(a["secondsPerPoint"], a["points"]) for a in info["archives"]] == [(60, 129600), (3600, 43800)]
    assert info["xFilesFactor"] == 0.25 and info["aggregationMethod"] == "max"
    # positional xff / aggregation, like the original shell
    assert sh.cmd("create manual.c 10:1h 0 sum").startswith("[manual.c] ok (10:360 points, xff=0.0, sum)")
    srv.wait_for(lambda: _whisper_info(srv, "manual.c"))
    now = int(time.time())
    sh.cmd(f"write manual.c {now - 60} 5")
    srv.wait_for(lambda: srv.read_points("manual.c"))
    # resample keeps data; +skip-existing leaves it alone; +truncate empties it
    assert sh.cmd("update-metadata manual.c 1:1h,10:1d +agg=last").startswith("[manual.c] ok")
    srv.wait_for(lambda: _whisper_info(srv, "manual.c")["archives"][0]["secondsPerPoint"] == 1)
    assert srv.wait_for(lambda: srv.read_points("manual.c")) == {now - 60 - (now - 60) % 10: 5.0}
    assert sh.cmd("update-metadata manual.c 60:1d +skip-existing").startswith("[manual.c] ok")
    sh.cmd("find manual.*")  # a round trip, then give the buffer a moment
    time.sleep(1.0)
    assert _whisper_info(srv, "manual.c")["archives"][0]["secondsPerPoint"] == 1
    assert sh.cmd("update-metadata manual.c 1:1h +truncate").startswith("[manual.c] ok")
    srv.wait_for(lambda: len(_whisper_info(srv, "manual.c")["archives"]) == 1)
    srv.wait_for(lambda: srv.read_points("manual.c") == {})
    assert sh.cmd("update-metadata manual.never 60:1d +no-create").startswith("[manual.never] ")
    time.sleep(1.0)
    assert not srv.wsp_path("manual.never").exists()
    # errors: one line each, the connection stays open
    assert sh.cmd("create manual.x") .startswith("error: usage: create")
    assert sh.cmd("create manual.x 60:1d +agg=median").startswith("error: unknown aggregation 'median'")
    assert sh.cmd("create manual.x 60:1d +xff=2").startswith("error: xFilesFactor must be between 0 and 1")
    assert sh.cmd("create manual.x 60:1d +truncate +skip-existing").startswith("error: +truncate and")
    assert sh.cmd("create manual.x 60:1d,90:1h").startswith("error: bad archives")
    assert sh.cmd("create manual.x 60:1d +no-create").startswith("error: unknown option +no-create")
    assert sh.cmd("find manual.*") == "manual.a\nmanual.b\nmanual.c"


def test_stats_thread_status_profiler(srv: CycloneProcess, sh: ShellClient) -> None:
    now = int(time.time())
    srv.send_lines([f"auto.s.a 1 {now - 3}", "bad"])
    srv.wait_points("auto.s.a", {now - 3: 1.0})
    stats = dict(line.split(" = ") for line in sh.cmd("stats").splitlines())
    assert stats["line_tcp.points"] == "1" and stats["line_tcp.bad_lines"] == "1"
    assert int(stats["shell.commands"]) >= 1
    assert "store.query.write_buffer.cached_disk.writes" in stats or \
        any(k.startswith("store.query.write_buffer.cached_disk.") for k in stats)
    assert int(stats["server.rss_bytes"]) > 0
    assert sh.cmd("stats extra") == "error: stats takes no arguments"
    ts = sh.cmd("thread-status")
    assert ts.startswith("store thread pool: ")
    assert "MainThread" in ts and "write buffer query.write_buffer: " in ts and "ingest: " in ts
    assert sh.cmd("profiler").startswith("profiler is off")
    assert sh.cmd("profiler on").startswith("profiler is on (threshold ")
    assert sh.cmd("profiler off").startswith("profiler is off")
    assert sh.cmd("profiler maybe") == "error: usage: profiler [on|off]"


def test_profiler_lists_slow_calls(cyclone_factory) -> None:
    srv = cyclone_factory(profiler_threshold_usecs=0).start()
    with srv.shell() as sh:
        sh.cmd("profiler on")
        sh.cmd("find *")
        out = sh.cmd("profiler")
    assert "store call" in out and "ms" in out


def test_verify_and_read_from_all_without_hash_store(sh: ShellClient) -> None:
    msg = "error: no hash store configured (verify and read-from-all need a hash store in store_config)"
    assert sh.cmd("verify start") == msg
    assert sh.cmd("verify start repair") == msg
    assert sh.cmd("verify cancel") == msg
    assert sh.cmd("verify status") == msg
    assert sh.cmd("read-from-all") == msg
    assert sh.cmd("read-from-all on") == msg
    assert sh.cmd("verify bogus") == "error: usage: verify start [repair] | verify cancel | verify status"
    assert sh.cmd("read-from-all maybe") == "error: usage: read-from-all [on|off]"
    assert sh.cmd("verify start now") == "error: usage: verify start [repair]"


def test_pipelined_commands_answer_in_order_and_quit(srv: CycloneProcess) -> None:
    now = int(time.time())
    with socket.create_connection(("127.0.0.1", srv.shell_port), timeout=30) as s:
        s.sendall(f"write auto.p.a {now - 2} 1\r\nfind auto.p.*\r\nbogus\r\nquit\r\nhelp\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    text = data.decode()
    parts = text.split("cyclone> ")
    assert "[auto.p.a] ok" in parts[1]
    assert parts[2].strip() == "auto.p.a"
    assert parts[3].startswith("error: unknown command 'bogus'")
    assert parts[4].strip() == "bye"
    assert "Commands" not in text  # nothing after quit


def test_exit_and_overlong_line(srv: CycloneProcess) -> None:
    with ShellClient(srv.shell_port) as sh:
        assert sh.cmd("x" * (2 << 20)).startswith("error: line longer than")
        assert sh.cmd("find auto.*") is not None   # still open
        sh.sock.sendall(b"exit\n")
        sh.sock.settimeout(10)
        rest = b""
        while chunk := sh.sock.recv(4096):
            rest += chunk
        assert rest.strip() == b"bye"
