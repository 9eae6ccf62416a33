"""The declared modules' golden record closes its loop: record, then a plain run compares against it.

Records are keyed by the declaration's fingerprint (a module of the same
name from another declaration is never compared), and a module's numbers are
compared within the running-error bound of its own computation at the
recorded variables and inputs: a 1% change in any recorded float output of
any layer of the real-layer tier fails, the unchanged record passes.
"""

import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import golden_helpers
from cache_helpers import private_cache_env
from conformance.core import config
from conformance.golden import declarations, records, zoo_modules
from conformance.modules import declare
from conformance.modules.declare import Call, ModuleSpec
from conformance.selfcheck import forked

HERE = os.path.dirname(os.path.abspath(__file__))
USER_PROJECT = os.path.join(HERE, "user_project")
FACTORY = "resmlp_layers.conformance_specs:specs"
TIER = "conformance.modules.zoo_layers:real_layer_specs"
COMMITTED = os.path.join(config.ZOO_RECORDS_DIR, "flax-0.12.8_jax-0.10.2.json")


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """An empty cache directory and no record named: the lookup a plain run makes."""
    monkeypatch.setenv(config.CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(config.ZOO_RECORD_ENV, raising=False)
    return tmp_path / "cache"


def _tier():
    return {s.name: s for s in declare.load_factory(TIER)}


def _committed_entry(name):
    return records.load(COMMITTED)["modules"][name]


# --- fingerprints ------------------------------------------------------------------------------------------


def _other_class():
    from conformance.modules.zoo_layers import GatedMLP

    return GatedMLP


def test_the_fingerprint_covers_what_changes_the_record_and_nothing_else():
    base = _tier()["real_cnn"]
    same = [dataclasses.replace(base, name="renamed", source="elsewhere:specs", batch_axis=0),
            dataclasses.replace(base, inputs=(np.zeros((4, 8, 8, 1), np.float32),))]  # values do not count, shapes do
    for s in same:
        assert declarations.fingerprint(s) == declarations.fingerprint(base), declarations.differences(
            declarations.describe(s), declarations.describe(base))
    changed = {
        "nnx_class": dataclasses.replace(base, nnx_class=_other_class()),
        "kwargs": dataclasses.replace(base, kwargs=dict(channels=1, classes=4)),
        "inputs": dataclasses.replace(base, inputs=(np.zeros((2, 8, 8, 1), np.float32),)),
        "train_kwargs": dataclasses.replace(base, train_kwargs={"train": False}),
        "mutable": dataclasses.replace(base, mutable=()),
        "rng_streams": dataclasses.replace(base, rng_streams=("dropout", "noise")),
        "mode_switch": dataclasses.replace(base, mode_switch="train_eval"),
    }
    for field, s in changed.items():
        assert declarations.fingerprint(s) != declarations.fingerprint(base), f"{field} does not change the fingerprint"
        assert field in declarations.differences(declarations.describe(s), declarations.describe(base))
    dtype = dataclasses.replace(base, inputs=(np.zeros((4, 8, 8, 1), np.float16),))
    assert declarations.fingerprint(dtype) != declarations.fingerprint(base), "the calls' dtypes must count"


def test_every_field_but_the_ignored_ones_is_in_the_fingerprint():
    names = {f.name for f in dataclasses.fields(ModuleSpec)} - set(declarations.IGNORED_FIELDS)
    assert set(declarations.describe(_tier()["real_attention"])) == names


def test_the_stable_repr_has_no_addresses_and_names_callables():
    import jax.numpy as jnp

    from reference import _compat

    text = declarations.stable_repr({"act": _compat.nnx.relu, "dtype": jnp.bfloat16, "x": np.ones((2, 3), np.int8),
                                     "call": Call(args=(np.ones(3, np.float32),)), "obj": object()})
    assert " at 0x" not in text and "relu" in text and "array(shape=(2, 3), dtype=int8)" in text, text


# --- which record ------------------------------------------------------------------------------------------


def test_a_module_named_like_a_tier_module_is_not_compared_with_its_record(own_cache):
    """A team's real_cnn of another class: skipped with both fingerprints, never compared with the tier's entry."""
    team = ModuleSpec(name="real_cnn", nnx_class=_other_class(), kwargs=dict(width=8, hidden=16),
                      inputs=(np.ones((2, 10), np.float32),), source="team_layers:specs")
    choice = zoo_modules.choose(team)
    assert choice.entry is None
    tier_print = _committed_entry("real_cnn")["fingerprint"]
    assert tier_print in choice.reason and declarations.fingerprint(team) in choice.reason, choice.reason
    assert "another declaration" in choice.reason and "nnx_class" in choice.reason, choice.reason
    assert "python -m conformance record --module team_layers:specs" in choice.reason, choice.reason


def test_the_tier_reads_the_committed_record_and_known_deviations_apply(own_cache):
    for spec in _tier().values():
        choice = zoo_modules.choose(spec)
        assert choice.path == COMMITTED and choice.entry is not None, choice.reason
        assert zoo_modules.reference_is_committed(spec)


def test_a_record_in_the_first_format_is_read_and_never_compared(tmp_path, monkeypatch):
    old = records.load(COMMITTED)
    old["modules"] = {"real_cnn": {"outputs": _committed_entry("real_cnn")["outputs"], "params": 1, "updates": {}}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    monkeypatch.setenv(config.ZOO_RECORD_ENV, str(path))
    choice = zoo_modules.choose(_tier()["real_cnn"])
    assert choice.entry is None and "first record format" in choice.reason, choice.reason


def test_a_missing_module_names_the_command_that_records_it(own_cache):
    (spec,) = [dataclasses.replace(s, name="team_block", source="team_layers:specs") for s in [_tier()["real_cnn"]]]
    reason = zoo_modules.choose(spec).reason
    assert "`python -m conformance record --module team_layers:specs`" in reason, reason
    assert zoo_modules.written_record() in reason, reason


def _write_own_record(spec) -> str:
    """The record ``record --module`` would write for the installed versions, holding ``spec`` alone."""
    path = zoo_modules.written_record()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rec = records.load(COMMITTED)
    rec["modules"] = {spec.name: rec["modules"][spec.name]}
    with open(path, "w") as fh:
        json.dump(rec, fh)
    return path


def test_a_missing_module_under_a_named_record_says_how_to_record_into_it(own_cache, tmp_path, monkeypatch):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"versions": {"flax": "0", "jax": "0"}, "modules": {}}))
    monkeypatch.setenv(config.ZOO_RECORD_ENV, str(path))
    reason = zoo_modules.choose(dataclasses.replace(_tier()["real_cnn"], source="team_layers:specs")).reason
    assert f"--module team_layers:specs --zoo-out {path}" in reason and "CONFORMANCE_ZOO_RECORD" in reason, reason


def test_the_written_record_comes_before_the_committed_one(own_cache):
    """What record --module writes for the installed versions is looked up first; deviations then do not apply."""
    spec = _tier()["real_gated_mlp"]
    path = _write_own_record(spec)
    assert zoo_modules.candidate_records()[0] == path
    assert zoo_modules.choose(spec).path == path and not zoo_modules.reference_is_committed(spec)
    assert zoo_modules.choose(_tier()["real_cnn"]).path == COMMITTED  # not in the written one: the committed one


def test_recording_again_keeps_the_other_modules(own_cache, tmp_path, monkeypatch):
    """record --module a, then --module b: the cache's record holds both; --zoo-out writes only what it is given."""
    from conformance.golden import zoo

    monkeypatch.setattr(zoo, "compute", lambda specs=None: {"dropout_masks": {}, "batch_stats": {},
                                                            "modules": {s: {"format": 2} for s in specs}})
    zoo.record(specs=["a"])
    assert zoo.record(specs=["b"]) == zoo_modules.written_record()
    assert sorted(records.load(zoo_modules.written_record())["modules"]) == ["a", "b"]
    assert sorted(records.load(zoo.record(str(tmp_path / "out.json"), ["c"]))["modules"]) == ["c"]


class _Item:
    def __init__(self, module):
        self.name, self.originalname = f"test_zoo_golden_declared_modules[{module}]", "test_zoo_golden_declared_modules"
        self.callspec = type("CallSpec", (), {"params": {"declared_module": module}})()
        self.markers, self.user_properties = [], []

    def add_marker(self, marker):
        self.markers.append(marker)


class _Config:
    def __init__(self):
        self.stash = {}  # what pytest's Config.stash offers the suite: get(key, default)

    def getoption(self, name, default=None):
        return [TIER] if name == "conformance_modules" else default


def test_a_modules_deviation_applies_against_the_committed_record_only(own_cache, monkeypatch):
    """Known deviations describe the committed record: against the record written for these versions, none applies."""
    from conformance import conftest
    from conformance.core import deviations

    entry = deviations.Deviation("test_zoo_golden_declared_modules[real_gated_mlp]", ("flax>=0",), "why", 1)
    monkeypatch.setattr(deviations, "load", lambda: [entry])
    monkeypatch.setattr(deviations, "installed_versions", lambda: {"flax": "0.12.8"})
    item = _Item("real_gated_mlp")
    conftest.pytest_collection_modifyitems(_Config(), [item])
    assert [m.name for m in item.markers] == ["xfail"]
    _write_own_record(_tier()["real_gated_mlp"])
    item = _Item("real_gated_mlp")
    conftest.pytest_collection_modifyitems(_Config(), [item])
    assert item.markers == []


# --- bounds ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, -1e-7])
def test_a_nan_or_negative_bound_is_an_error(bad):
    with pytest.raises(AssertionError, match="a bound must be a non-negative number"):
        zoo_modules._check_bound("m/y", {"y": np.array([0.0, bad])})


@pytest.mark.parametrize("name", sorted(_tier()))
def test_a_one_percent_change_of_any_recorded_float_output_fails(name):
    """Every float leaf of the outputs and updates, scaled by 1.01 in the record: the golden comparison fails."""
    golden_helpers.assert_every_one_percent_change_fails(_tier()[name], _committed_entry(name), COMMITTED)


@pytest.mark.parametrize("name", ["real_attention", "real_cnn"])
def test_params_drawn_otherwise_change_the_init_part_only(name):
    """A record from a release whose sampler drew other params (a kernel 1% larger, outputs computed from it)."""
    from conformance.modules import module_harness as zh

    spec, entry = _tier()[name], _committed_entry(name)
    other = copy.deepcopy(entry)
    kernel = next(p for p in other["variables"] if p.endswith("kernel"))
    other["variables"][kernel]["values"] = [v * 1.01 for v in other["variables"][kernel]["values"]]
    call, keys = zoo_modules.recorded_inputs(spec, other)
    variables = zoo_modules._rebuilt(zh.init(spec, zoo_modules.PARAMS_SEED, call), other["variables"])
    y, updates = zh.jit_train(spec)(variables, call, keys)
    other["outputs"], other["updates"] = (zoo_modules.leaves(zh.array_leaves(t)) for t in (y, updates))
    with pytest.raises(AssertionError) as info:
        zoo_modules.compare(spec, zoo_modules.Choice(COMMITTED, other))
    msg = str(info.value)
    assert "the installed init's variables against the recorded ones: changed beyond the error model" in msg, msg
    assert f"{name}/variables/{kernel}" in msg, msg
    assert "(the other part: outputs from the recorded variables, call and keys: identical)" in msg, msg


# --- the loop, end to end ----------------------------------------------------------------------------------


def _suite(tmp_path, env, *args):
    xml = tmp_path / "out.xml"
    cmd = ["--pyargs", "conformance", "-q", "-p", "no:cacheprovider", "--hypothesis-profile=selfcheck",
           f"--junitxml={xml}", "--module", FACTORY, "-k", "test_zoo_golden_declared_modules", *args]
    proc = forked.run_pytest(cmd, cwd=str(tmp_path), env=env)  # forked; USER_PROJECT goes on sys.path
    (case,) = list(ET.parse(xml).getroot().iter("testcase"))
    return proc, case


def test_a_plain_run_after_record_compares_against_it(tmp_path):
    """Skip naming the command; run the command; the next plain run (no variable set) compares and passes."""
    env = private_cache_env(tmp_path / "cache", {k: v for k, v in os.environ.items() if k != config.ZOO_RECORD_ENV})
    env["PYTHONPATH"] = USER_PROJECT
    proc, case = _suite(tmp_path, env)
    skipped = case.find("skipped")
    assert proc.returncode == 0 and skipped is not None, proc.stdout[-3000:]
    assert f"python -m conformance record --module {FACTORY}" in skipped.get("message", ""), skipped.get("message")
    rec = subprocess.run([sys.executable, "-m", "conformance", "record", "--module", FACTORY], capture_output=True,
                         text=True, env=env, cwd=tmp_path)
    assert rec.returncode == 0, rec.stderr[-2000:]
    written = tmp_path / "cache" / "records" / "zoo"
    assert [p.name for p in written.iterdir()], rec.stdout
    proc, case = _suite(tmp_path, env)
    assert proc.returncode == 0 and case.find("skipped") is None and case.find("failure") is None, proc.stdout[-3000:]


def test_a_bridge_that_draws_other_params_fails_the_init_part_only(tmp_path):
    """The corpus fault init_key_rerouted (init's key through an extra fold_in): init changed, outputs identical."""
    env = private_cache_env(tmp_path / "cache", {k: v for k, v in os.environ.items() if k != config.ZOO_RECORD_ENV})
    xml = tmp_path / "out.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "conformance", "-q", "-p", "no:cacheprovider",
                           "--hypothesis-profile=selfcheck", f"--junitxml={xml}", "--module", TIER,
                           "-p", "conformance.faults", "--fault", "init_key_rerouted",
                           "-k", "test_zoo_golden_declared_modules and real_gated_mlp"],
                          cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 1, proc.stdout[-3000:]
    (case,) = list(ET.parse(xml).getroot().iter("testcase"))
    msg = case.find("failure").get("message", "")
    assert "the installed init's variables against the recorded ones: changed beyond the error model" in msg, msg
    # The outputs part replays the committed record on this machine's CPU: its own code generation may round
    # otherwise (bit-identical where the record was made, 32 ulp on an AVX-512 FP16 host): unchanged, either way.
    assert re.search(r"\(the other part: outputs from the recorded variables, call and keys: (identical|drift)\)", msg), msg
