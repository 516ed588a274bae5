"""`local=1` on a 2-node Cyclone cluster: the HTTP API passes local_only to the store.

Two real server processes, each with a hash store (carbon ring) whose local
substore is write_buffer -> cached_disk and whose other substore is the peer
over Thrift. With local=1 a node answers only from its own data (the two
answers are disjoint and together make the whole); without it, either node
answers for the whole cluster. graphite-web pointed at one node with
`?local=0` in its CLUSTER_SERVERS entry sees everything.
"""

from __future__ import annotations

import json
import pickle
import time

import pytest

from tests.integration.test_http_helpers import GraphiteWeb, HttpCyclone, free_port

pytestmark = pytest.mark.timeout(180)

N_KEYS = 40


def node_config(tmp, me: int, ports: dict[int, dict[str, int]]) -> dict:
    names = {n: f"('127.0.0.1', 'node{n}')" for n in ports}
    stores = {}
    for n in sorted(ports):
        if n == me:
            stores[names[n]] = {"type": "write_buffer", "num_write_threads": 1,
                                "substore": {"type": "cached_disk", "directory": str(tmp / f"data{n}")}}
        else:
            stores[names[n]] = {"type": "remote", "hostname": "127.0.0.1", "port": ports[n]["thrift"]}
    p = ports[me]
    return {
        "hostname": f"node{me}",
        "line_stream_listen": [f"127.0.0.1:{p['line']}"],
        "line_datagram_listen": [],
        "pickle_listen": [],
        "shell_listen": [],
        "http_listen": [f"127.0.0.1:{p['http']}"],
        "thrift_port": f"127.0.0.1:{p['thrift']}",
        "store_threads": 4,
        "stats_report_usecs": 0,
        "log_level": 2,
        "store_config": {"type": "query", "substore": {
            "type": "hash", "precision": -100, "local": names[me], "stores": stores}},
        "autocreate_rules": [["**", "10:1d", 0, "average"]],
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http_cluster")
    ports = {n: {"http": free_port(), "thrift": free_port(), "line": free_port()} for n in (1, 2)}
    nodes = []
    for n in (1, 2):
        d = tmp / f"node{n}"
        d.mkdir()
        nodes.append(HttpCyclone(d, config=node_config(tmp, n, ports)))
    for node in nodes:
        node.start()
    now = int(time.time())
    ts = now - now % 10 - 600
    nodes[0].send_lines([f"clu.k{i:02d} {i + 0.5} {ts}" for i in range(N_KEYS)])

    def everything_visible():
        got = nodes[0].get_json("/render", {"target": "clu.*", "from": ts - 5, "until": ts + 5, "format": "json"})
        return len(got) == N_KEYS and all(s["datapoints"][0][0] is not None for s in got)

    nodes[0].wait_for(everything_visible, timeout=30, interval=0.2)
    yield nodes, ts
    for node in nodes:
        node.stop()


def names(node: HttpCyclone, path: str, params: dict) -> list[str]:
    status, _h, body = node.get(path, params)
    assert status == 200, body
    return [s["name"] if "name" in s else s["path"] for s in pickle.loads(body)]


def test_render_local_only(cluster):
    (n1, n2), ts = cluster
    params = {"target": "clu.*", "from": ts - 5, "until": ts + 5, "format": "pickle"}
    everything = [f"clu.k{i:02d}" for i in range(N_KEYS)]
    assert names(n1, "/render", params) == everything
    assert names(n2, "/render", params) == everything
    local1 = names(n1, "/render", dict(params, local="1"))
    local2 = names(n2, "/render", dict(params, local="1"))
    assert local1 and local2 and not set(local1) & set(local2)
    assert sorted(local1 + local2) == everything
    # values come from the owner either way
    for s in pickle.loads(n2.get("/render", dict(params, local="1"))[2]):
        assert s["values"] == [int(s["name"][-2:]) + 0.5]


def test_find_and_index_local_only(cluster):
    (n1, n2), _ts = cluster
    everything = [f"clu.k{i:02d}" for i in range(N_KEYS)]
    assert sorted(names(n1, "/metrics/find", {"query": "clu.*", "format": "pickle"})) == everything
    local1 = names(n1, "/metrics/find", {"query": "clu.*", "format": "pickle", "local": "1"})
    local2 = names(n2, "/metrics/find", {"query": "clu.*", "format": "pickle", "local": "1"})
    assert sorted(local1 + local2) == everything and not set(local1) & set(local2)
    index1 = [k for k in json.loads(n1.get("/metrics/index.json", {"local": "1"})[2]) if k.startswith("clu.")]
    assert sorted(index1) == sorted(local1)


def test_graphite_web_with_local_0_sees_the_whole_cluster(cluster, tmp_path):
    (n1, _n2), ts = cluster
    with GraphiteWeb(tmp_path / "gw", cluster_servers=[f"127.0.0.1:{n1.http_port}?local=0"]) as gw:
        got = gw.get_json("/render", {"target": "clu.*", "from": ts - 5, "until": ts + 5, "format": "json"})
        assert [(s["target"], s["datapoints"]) for s in got] == [
            (f"clu.k{i:02d}", [[i + 0.5, ts]]) for i in range(N_KEYS)]
