"""Config: commented JSON, validation messages naming the field, factory, hot reload."""

from __future__ import annotations

import json
import os
import time

import pytest

from cyclone.config import ConfigError, ConfigWatcher, load_config, parse_text, validate
from cyclone.store.autocreate import AutocreateRules
from cyclone.store.disk import CachedDiskStore
from cyclone.store.factory import apply_store_config, build_store
from cyclone.store.query import QueryStore
from cyclone.store.write_buffer import WriteBufferStore

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_default_config_builds_the_default_tree():
    cfg = load_config(os.path.join(REPO, "cyclone.conf.json"))
    assert cfg.line_stream_listen == [2003] and cfg.pickle_listen == [2004]
    assert cfg.shell_listen == ["127.0.0.1:2001"] and cfg.thrift_port == "127.0.0.1:2000"
    assert cfg.store_config["substore"]["substore"]["directory"] == os.path.join(REPO, "cyclone-data")
    assert cfg.autocreate_rules[-1] == ["**", "60:90d", 0, "average"]


def test_comments_and_trailing_commas():
    raw = parse_text('{\n // c\n "store_config": {"type": "empty",}, /* x */\n}')
    assert raw == {"store_config": {"type": "empty"}}


@pytest.mark.parametrize("raw, message", [
    ({"store_config": {"type": "write_buffer", "batch_size": "x",
                       "substore": {"type": "empty"}}},
     "store_config.batch_size: expected an integer, got a string 'x'"),
    ({"store_config": {"type": "nope"}}, "store_config.type: unknown store type 'nope'"),
    ({"store_config": {"type": "disk"}}, "store_config.directory: missing"),
    ({"store_config": {"type": "empty", "bogus": 1}}, "store_config.bogus: unknown field"),
    ({"store_config": {"type": "empty"}, "log_levl": 1}, "log_levl: unknown field"),
    ({"store_config": {"type": "empty"}, "pickle_listen": ["nohost"]}, "pickle_listen[0]: expected a port"),
    ({"store_config": {"type": "empty"}, "autocreate_rules": [["**", "60:1x", 0, "average"]]},
     "autocreate_rules[0]:"),
    ({"store_config": {"type": "empty"}, "autocreate_rules": [["**", "60:1d", 0, "median"]]},
     "autocreate_rules[0]: autocreate rule"),
    ({}, "store_config: missing"),
])
def test_validation_messages_name_the_field(raw, message):
    with pytest.raises(ConfigError) as e:
        validate(raw)
    assert message in str(e.value)


def write_config(path, batch_size: int, file_limit: int = 1000):
    path.write_text("// test config\n" + json.dumps({
        "store_config": {
            "type": "query",
            "substore": {"type": "write_buffer", "batch_size": batch_size,
                         "substore": {"type": "cached_disk", "directory": "./d", "file_limit": file_limit}},
        },
        "autocreate_rules": [["**", "60:1d", 0, "average"]],
    }))


def test_factory_and_hot_reload_apply_live_fields(tmp_path):
    path = tmp_path / "c.json"
    write_config(path, 10)
    cfg = load_config(str(path))
    rules = AutocreateRules(cfg.autocreate_rules)
    store = build_store(cfg.store_config, rules, cfg.open_file_cache_size)
    assert isinstance(store, QueryStore)
    wb = store.children()[0]
    disk = wb.children()[0]
    assert isinstance(wb, WriteBufferStore) and isinstance(disk, CachedDiskStore)
    assert disk.directory == str(tmp_path / "d")

    applied = []

    def on_change(old, new):
        applied.extend(apply_store_config(store, new.store_config, new.open_file_cache_size))
        rules.replace(AutocreateRules(new.autocreate_rules))

    watcher = ConfigWatcher(cfg, on_change)
    assert not watcher.check()
    time.sleep(0.01)
    write_config(path, 25, 50)
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert watcher.check()
    assert wb.batch_size == 25 and disk.file_limit == 50
    assert sorted(applied) == ["cached_disk.file_limit", "write_buffer.batch_size"]
    # a broken edit keeps the running config
    path.write_text("{ not json")
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert not watcher.check()
    assert watcher.reload_errors == 1 and "not valid JSON" in watcher.last_error
    assert watcher.config.store_config["substore"]["batch_size"] == 25
    store.close()
