"""Every shipped config validates and names a buildable store tree."""

import glob
import os

import pytest

from cyclone.config import load_config
from cyclone.store.autocreate import AutocreateRules

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = [os.path.join(REPO, "cyclone.conf.json")] + sorted(glob.glob(os.path.join(REPO, "conf", "*.json")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_validates(path):
    cfg = load_config(path)
    rules = AutocreateRules(cfg.autocreate_rules)
    assert rules.metadata_for("some.random.key") is not None


def test_carbon_compatible_rules_pick_aggregation_by_suffix():
    cfg = load_config(os.path.join(REPO, "conf", "carbon-compatible.json"))
    rules = AutocreateRules(cfg.autocreate_rules)
    assert rules.metadata_for("stats.requests.count").agg_method == 2
    assert rules.metadata_for("stats.latency.max").agg_method == 4
    assert rules.metadata_for("carbon.agents.a.cpu").archive_tuples() == [(60, 129600)]
    assert rules.metadata_for("web1.cpu").archive_tuples() == [(60, 20160), (300, 25920), (3600, 17520)]
