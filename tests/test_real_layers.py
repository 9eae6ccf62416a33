"""Real layers: declarations that fit what teams write, errors that name the field, and the zoo's real-layer tier.

The tier (conformance/modules/zoo_layers.py: attention, a CNN with BatchNorm,
an LSTM, a gated MLP, a custom Variable type, bf16 params, token ids, init
keywords, a Linen-style train flag) runs here through every module property
and its golden record, and under the benign reordering of every product; its
faults run in the self-check (tests/test_selfcheck.py names the property that
catches each). The default run leaves it out (its programs take about 70 s more
to compile on two cores).
"""

import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conformance.modules import declare
from conformance.modules.declare import Call, ModuleSpec
from conformance.selfcheck import forked

TIER = "conformance.modules.zoo_layers:real_layer_specs"


def _module_properties() -> int:
    """How many module properties each declared layer gets: the test_module_* functions of properties/modules/."""
    import glob
    import re

    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conformance", "properties", "modules")
    return sum(len(re.findall(r"^def test_module_\w+\(", open(f).read(), re.M)) for f in glob.glob(os.path.join(here, "test_*.py")))


MODULE_PROPERTIES = _module_properties()


def _suite(tmp_path, *args, profile="selfcheck", env=None):
    xml = tmp_path / "out.xml"
    cmd = ["--pyargs", "conformance", "-q", "-p", "no:cacheprovider",
           f"--hypothesis-profile={profile}", f"--junitxml={xml}", "-W", "ignore::DeprecationWarning", *args]
    proc = forked.run_pytest(cmd, cwd=str(tmp_path), env={**os.environ, **(env or {})}, timeout=1800)
    cases = list(ET.parse(xml).getroot().iter("testcase")) if xml.exists() else []
    return proc, cases


def _outcome(case) -> str:
    for tag in ("failure", "error", "skipped"):
        if case.find(tag) is not None:
            return tag
    return "passed"


# --- declarations ----------------------------------------------------------------------------------


def _layer():
    from conformance.modules.zoo_layers import MHADropout

    return MHADropout


def test_a_call_takes_any_pytree_of_any_dtype():
    ids, mask = np.zeros((2, 5), np.int32), np.ones((2, 1, 5, 5), bool)
    spec = ModuleSpec(name="m", nnx_class=_layer(), inputs=(Call(args=(ids,), kwargs={"mask": mask}), ids))
    assert [c.leaves()[0][0] for c in spec.calls] == ["args[0]", "args[0]"]
    assert [n for n, _ in spec.calls[0].leaves()] == ["args[0]", "kwargs['mask']"]


@pytest.mark.parametrize("kw, error, match", [
    (dict(inputs=(Call(args=([1.0],)),)), TypeError, r"inputs\[0\]\.args\[0\]\[0\] must be a NumPy array"),
    (dict(inputs=(Call(kwargs={"mask": "yes"}),)), TypeError, r"inputs\[0\]\.kwargs\['mask'\] must be a NumPy array"),
    (dict(inputs=(np.float32(1.0),)), ValueError, r"inputs\[0\]\.args\[0\] has shape \(\), no axis 0 .*batch_axis=None"),
    (dict(inputs=(np.ones((2, 3), np.float32),), batch_axis=-1), ValueError, "batch_axis must be a non-negative int or None"),
    (dict(inputs=(np.ones((2, 3), np.float32),), method="nope"), ValueError, "method must name a method of MHADropout"),
    (dict(inputs=(np.ones((2, 3), np.float32),), init_kwargs=[("deterministic", True)]), TypeError,
     "init_kwargs must be a dict of keyword arguments"),
    (dict(inputs=(Call(),)), ValueError, r"inputs\[0\] holds no array"),
])
def test_declaration_errors_name_the_field(kw, error, match):
    with pytest.raises(error, match=match):
        ModuleSpec(name="m", nnx_class=_layer(), **kw)


def test_a_scalar_input_is_declarable_without_a_batch_axis():
    spec = ModuleSpec(name="m", nnx_class=_layer(), inputs=(np.float32(1.0),), batch_axis=None)
    assert spec.calls[0].args[0].shape == ()


def test_an_error_of_the_layer_names_the_declaration_field_that_fixes_it():
    """nnx.MultiHeadAttention with dropout cannot init without `deterministic`: the note says init_kwargs."""
    from conformance.modules import module_harness as zh

    q = np.ones((2, 5, 8), np.float32)
    spec = ModuleSpec(name="mha_without_init_kwargs", nnx_class=_layer(), kwargs=dict(width=8, heads=2),
                      inputs=(Call(args=(q, q)),), rng_streams=("dropout",))
    with pytest.raises(Exception) as info:
        zh.init(spec, 0, spec.calls[0])
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "ModuleSpec 'mha_without_init_kwargs'" in notes and "init_kwargs" in notes, notes


def test_the_tier_factory_is_the_one_the_faults_declare():
    from conformance.modules import zoo_layers
    from conformance.selfcheck import zoo_faults

    assert zoo_layers.TIER == zoo_faults.TIER == TIER
    specs = declare.load_factory(TIER)
    assert {s.name for s in specs} == {"real_attention", "real_cnn", "real_lstm", "real_gated_mlp", "real_counter",
                                       "real_bf16_params", "real_token_classifier", "real_mha_dropout", "real_train_flag",
                                       "real_zero_scale_norm", "real_reparam_encoder", "real_frozen_batchnorm",
                                       "real_train_eval"}


# --- the tier through the suite ----------------------------------------------------------------------


def test_the_tier_passes_every_module_property_and_its_golden_record(tmp_path):
    """Every module property and the golden record on each real layer, flax 0.12.8: no failure.

    Skips only where the declaration says so (no RNG stream, no mutable collection, no collection created during
    the call), or where the class run natively shows a premise does not hold: the reparameterising encoder samples
    in every mode, so its rows cannot be mapped one at a time and its numbers not compared with the class's.
    """
    proc, cases = _suite(tmp_path, "--module", TIER, "-k", "real_ or declared_modules")
    assert proc.returncode == 0, proc.stdout[-4000:]
    outcomes = {c.get("name"): _outcome(c) for c in cases}
    layers = declare.load_factory(TIER)
    assert sum(1 for n in outcomes if n.startswith("test_module_")) == len(layers) * MODULE_PROPERTIES, sorted(outcomes)
    skipped = {n for n, o in outcomes.items() if o == "skipped"}
    by_declaration = ("test_module_stream_keys_drive_randomness", "test_module_mutable_state_round_trip",
                      "test_module_created_collections_collected")
    by_premise = {"test_module_vmap_matches_batch[real_reparam_encoder]", "test_module_matches_native[real_reparam_encoder]"}
    assert all(n.split("[")[0] in by_declaration or n in by_premise for n in skipped), sorted(skipped)
    from conformance.core import config  # a premise skip carries the mark the gate compares across sides

    marks = {c.get("name"): c.find("skipped").get("message", "") for c in cases if c.get("name") in by_premise}
    assert marks and all(m.startswith(config.PREMISE_SKIP) for m in marks.values()), marks
    golden = {n: o for n, o in outcomes.items() if n.startswith("test_zoo_golden_declared_modules[")}
    names = {f"test_zoo_golden_declared_modules[{s.name}]" for s in layers}
    assert set(golden) == names and set(golden.values()) == {"passed"}, golden  # one per layer, each in the record


@pytest.mark.parametrize("perturbation", ["product_reordered_under_jit"])
def test_the_tier_accepts_its_products_summed_in_another_order(tmp_path, perturbation):
    """Every dot product of each layer summed as two halves under jit: accepted, and seen as drift."""
    proc, cases = _suite(tmp_path, "--module", TIER, "-p", "conformance.benign", "--perturb", perturbation,
                         "-k", "real_ and (jit_matches_eager or grads)")
    assert proc.returncode == 0, proc.stdout[-4000:]
    drifted = [c.get("name") for c in cases if any(p.get("name") == "conformance_drift" for p in c.iter("property"))]
    assert drifted, "no property of the tier drifted: the perturbation changed nothing it could see"


@pytest.mark.skipif(os.environ.get("CONFORMANCE_RANDOM_TIER") is None,
                    reason="ten runs of the random profile over the tier take minutes: set CONFORMANCE_RANDOM_TIER=1")
@pytest.mark.parametrize("run", range(10))
def test_the_tier_never_cries_wolf_under_random_draws(tmp_path, run):
    proc, _ = _suite(tmp_path, "--module", TIER, "-k", "real_", profile="random")
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_a_flag_passed_as_an_input_is_pointed_to_the_mode_keywords():
    with pytest.raises(TypeError, match="a flag that picks a code path goes in init_kwargs, train_kwargs and eval_kwargs"):
        ModuleSpec(name="m", nnx_class=_layer(), inputs=(Call(args=(np.ones((2, 3), np.float32),), kwargs={"train": True}),))


def test_a_wrong_mutable_name_is_named_with_the_collections_init_creates(tmp_path):
    """The counter's collection is 'CallCount' (its class): declared as 'call_count', the failure says which exist."""
    factory = tmp_path / "wrong_mutable.py"
    factory.write_text(
        "import dataclasses\n"
        "from conformance.modules import zoo_layers\n"
        "def specs():\n"
        "    s = {s.name: s for s in zoo_layers.real_layer_specs()}['real_counter']\n"
        "    return dataclasses.replace(s, name='counter_wrong', mutable=('call_count',))\n")
    proc, _ = _suite(tmp_path, "--module", "wrong_mutable:specs", "-k", "mutable_state_round_trip and counter_wrong",
                     env={"PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 1 and "mutable names ['call_count'], which init does not create" in proc.stdout \
        and "['CallCount']" in proc.stdout, proc.stdout[-3000:]


def test_the_tiers_variable_type_and_the_pipelines_work_in_one_process():
    """flax keeps one Variable class per collection name: the suite's own types must not share one (they did)."""
    import jax

    from conformance.helpers import pipelines as pl
    from conformance.modules import module_harness as zh
    from conformance.modules import zoo_layers

    spec = {s.name: s for s in zoo_layers.real_layer_specs()}["real_counter"]
    v = zh.init(spec, 0, spec.calls[0])
    _, upd = zh.train(spec, v, spec.calls[0], {})
    x = np.ones((2, 3), np.float32)
    m = pl.counting(3, 2)
    cv = m.init(jax.random.PRNGKey(0), x)
    name = pl.custom_collection(cv)
    _, cupd = m.apply(cv, x, mutable=[name])
    assert name != "CallCount" and sorted(upd) == ["CallCount"] and sorted(cupd) == [name]
