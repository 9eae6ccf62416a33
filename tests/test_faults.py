"""The fault corpus: well-formed, spread over the areas, and each fault really breaks something."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conformance.selfcheck import faults
from conformance.helpers.harness import kernel_bias
from reference import linen_module

AREAS = {"init key", "params flow", "output shape", "output dtype", "device", "jit only", "vmap only", "batched only",
         "width", "features", "dtype", "initializer", "gradients", "variables tree", "numerics", "module"}


def test_corpus_size_and_spread():
    assert len(faults.FAULTS) >= 20
    assert AREAS <= {f.area for f in faults.FAULTS.values()}
    for f in faults.FAULTS.values():
        assert f.description and "\n" not in f.description
        assert f.init or f.apply or f.kwargs or f.attrs or f.reference or f.apply_kw or f.modules or f.patch or f.construct


def test_every_fault_is_named_in_the_selfcheck_doc():
    import pathlib

    doc = (pathlib.Path(__file__).parents[1] / "docs" / "selfcheck.md").read_text()
    missing = sorted(n for n in faults.FAULTS if f"`{n}`" not in doc)
    assert not missing, f"faults docs/selfcheck.md does not name: {missing}"


def test_the_readme_counts_the_corpus_and_the_benign_perturbations_as_they_are():
    import pathlib
    import re

    from conformance.benign import PERTURBATIONS

    readme = " ".join((pathlib.Path(__file__).parents[1] / "README.md").read_text().split())
    said = re.search(r"runs the suite against (\d+) deliberately broken bridges", readme)
    assert said, "README.md no longer says how many deliberately broken bridges the self-check runs"
    assert int(said.group(1)) == len(faults.FAULTS), (
        f"README.md says {said.group(1)} deliberately broken bridges, but the corpus has {len(faults.FAULTS)}")
    benign = re.search(r"and against (\d+) benign perturbations", readme)
    assert benign and int(benign.group(1)) == len(PERTURBATIONS), (
        f"README.md says {benign and benign.group(1)} benign perturbations, but there are {len(PERTURBATIONS)}")


def test_pipeline_faults_are_in_the_corpus():
    pipelines = {n for n, f in faults.FAULTS.items() if f.area.startswith("pipelines")}
    assert len(pipelines) == 13, sorted(pipelines)
    assert {"nested_name_dropped", "method_ignored", "partition_names_dropped", "partition_names_lost_under_transform",
            "kernel_box_static", "update_collection_dropped"} <= pipelines  # the examples #18 names


def test_zoo_faults_are_in_the_corpus():
    zoo = {n for n, f in faults.FAULTS.items() if f.area.startswith("zoo") or f.area == "user module"}
    assert zoo == {"dropout_key_ignored", "init_error_hides_missing_stream", "batch_stats_not_updated", "kwarg_dtype_swallowed",
                   "user_module_ignores_params", "attention_dropout_key_ignored", "recurrent_carry_reset",
                   "embedding_row_shifted", "custom_collection_not_written_back", "readonly_state_reinitialised",
                   "created_collection_dropped", "unknown_streams_dropped", "constant_params_redrawn"}


def test_user_module_fault_declares_a_module(monkeypatch):
    from conformance.modules import declare

    # setenv records the variable's state before install() writes it, so undo restores it: a declaration
    # left in os.environ would reach every later subprocess of this worker (the selfcheck test's runs too).
    monkeypatch.setenv(declare.MODULE_ENV, "")
    monkeypatch.setattr(faults, "ACTIVE", None)
    faults.install("user_module_ignores_params")
    (spec,) = declare.load_factory(faults.FAULTS["user_module_ignores_params"].modules)
    assert spec.name == "user_ignores_params"
    assert declare.declared_factories([])[0] == faults.FAULTS["user_module_ignores_params"].modules


@pytest.fixture
def swapped(request):
    from flax.nnx import bridge

    real = bridge.to_linen
    faults.install(request.param)
    linen_module.cache_clear()
    yield request.param
    bridge.to_linen = real
    faults.ACTIVE = None  # else a later repro snippet in this process would re-apply it
    linen_module.cache_clear()


@pytest.mark.parametrize("swapped", ["init_key_ignored", "apply_ignores_bias"], indirect=True)
def test_install_swaps_the_bridge(swapped):
    x = jnp.arange(3.0)
    m = linen_module(3, 2)
    assert type(m).__name__.startswith("Faulty_")
    v1, v2 = m.init(jax.random.PRNGKey(1), x), m.init(jax.random.PRNGKey(2), x)
    if swapped == "init_key_ignored":
        assert np.array_equal(kernel_bias(v1)[0], kernel_bias(v2)[0])
    else:
        v = jax.tree.map(lambda a: a + 1.0, v1)
        assert np.allclose(m.apply(v, x), x @ kernel_bias(v)[0])  # bias dropped


def test_unknown_fault_is_a_clear_error():
    with pytest.raises(ValueError, match="is not a fault of the corpus; one of: "):
        faults.install("no_such_fault")


def test_catchers_first_moves_the_named_properties_to_the_front():
    import types

    items = [types.SimpleNamespace(originalname=n, name=f"{n}[cpu:0]") for n in ("test_a", "test_b", "test_c", "test_d")]
    got = [i.originalname for i in faults.catchers_first(items, ("test_c", "test_a"))]
    assert got == ["test_c", "test_a", "test_b", "test_d"]
    got = [i.originalname for i in faults.catchers_first(items, ("test_d", "test_c", "test_a", "test_d"))]
    assert got == ["test_d", "test_c", "test_a", "test_b"]  # a name listed twice keeps its first place


def test_catchers_first_puts_the_faults_own_modules_before_the_zoos():
    import types

    def item(name, source):
        spec = types.SimpleNamespace(source=source)
        return types.SimpleNamespace(originalname=name, name=f"{name}[x]", callspec=types.SimpleNamespace(params={"spec": spec}))

    items = [item("test_b", ""), item("test_a", ""), item("test_a", "mine:specs"), item("test_c", "mine:specs")]
    got = [(i.originalname, i.callspec.params["spec"].source) for i in faults.catchers_first(items, ("test_a",), "mine:specs")]
    assert got == [("test_a", "mine:specs"), ("test_a", ""), ("test_c", "mine:specs"), ("test_b", "")]


def test_catchers_first_puts_the_named_layer_first_within_its_catcher():
    import types

    def item(name, module):
        spec = types.SimpleNamespace(source="mine:specs", name=module)
        return types.SimpleNamespace(originalname=name, name=f"{name}[{module}]",
                                     callspec=types.SimpleNamespace(params={"spec": spec}))

    items = [item("test_b", "m3"), item("test_a", "m1"), item("test_a", "m2"), item("test_a", "m3")]
    got = [i.name for i in faults.catchers_first(items, ("test_a",), "mine:specs", "m3")]
    assert got == ["test_a[m3]", "test_a[m1]", "test_a[m2]", "test_b[m3]"]  # the named layer only within a catcher's rank
    golden = [types.SimpleNamespace(originalname="test_g", name=f"test_g[{m}]",
                                    callspec=types.SimpleNamespace(params={"declared_module": m})) for m in ("m1", "m3")]
    assert [i.name for i in faults.catchers_first(golden, ("test_g",), None, "m3")] == ["test_g[m3]", "test_g[m1]"]


def test_each_faults_first_layer_is_a_layer_of_the_tier_it_declares():
    from conformance.core import config
    from conformance.modules import declare

    for name, layer in config.FAULT_FIRST_MODULES.items():
        assert faults.FAULTS[name].modules, f"{name}: names a first layer but declares no modules"
        layers = {s.name for s in declare.load_factory(faults.FAULTS[name].modules)}
        assert layer in layers, f"{name}: first layer {layer!r}, but its modules declare {sorted(layers)}"


def test_module_properties_are_grouped_by_declared_module_within_their_file():
    """conftest's grouping: one layer's tests together (one worker compiles it), properties in order, others untouched."""
    import pathlib
    import types

    from conformance import conftest

    def item(prop, spec=None, path="test_modules.py"):
        params = {} if spec is None else {"spec": types.SimpleNamespace(name=spec)}
        return types.SimpleNamespace(name=f"{prop}[{spec}]", path=pathlib.Path(path), callspec=types.SimpleNamespace(params=params))

    items = [item("test_x", path="test_other.py"), item("test_a", "m1"), item("test_a", "m2"), item("test_b", "m1"),
             item("test_b", "m2"), item("test_y", path="test_other.py"), item("test_c", "m2", "test_golden.py"),
             item("test_c", "m1", "test_golden.py")]
    conftest._group_by_declared_module(items)
    assert [i.name for i in items] == ["test_x[None]", "test_a[m1]", "test_b[m1]", "test_a[m2]", "test_b[m2]",
                                       "test_y[None]", "test_c[m2]", "test_c[m1]"]


def test_first_catch_order_names_properties_of_the_suite():
    from conformance.core import config
    from conformance.core import deviations

    named = set(config.FIRST_CATCH_ORDER) | set(config.PIPELINE_FIRST_CATCH_ORDER)
    named |= {p for catchers in config.FAULT_FIRST_CATCHERS.values() for p in catchers}
    unknown = named - deviations.suite_test_names()
    assert not unknown, f"the first-catch orders name no property of the suite: {sorted(unknown)}"
    assert set(config.FAULT_FIRST_CATCHERS) <= set(faults.FAULTS), sorted(set(config.FAULT_FIRST_CATCHERS) - set(faults.FAULTS))


@pytest.mark.parametrize("swapped", ["eager_only_shifted"], indirect=True)
def test_output_faults_reach_mutable_applies_and_keyed_inits(swapped):
    """The zoo's calls (a key per stream, apply(mutable=...)) get the fault on the output, not a TypeError."""
    from flax.nnx import bridge

    from conformance.modules import zoo

    spec = zoo.batchnorm_spec()
    x = spec.inputs[0]
    keys = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
    faulty = bridge.to_linen(spec.nnx_class, *spec.args, **spec.kwargs)
    real = bridge._conformance_real_to_linen(spec.nnx_class, *spec.args, **spec.kwargs)
    v = faulty.init(keys, x)
    call = dict(rngs={"dropout": jax.random.PRNGKey(2)}, mutable=["batch_stats"], use_running_average=False,
                deterministic=True)
    (y, upd), (y_real, upd_real) = faulty.apply(v, x, **call), real.apply(v, x, **call)
    assert np.allclose(np.asarray(y) - np.asarray(y_real), 1e-4, atol=1e-6)  # eager_only_shifted: + 1e-4
    assert np.array_equal(np.asarray(upd["batch_stats"]["bn"]["mean"]), np.asarray(upd_real["batch_stats"]["bn"]["mean"]))


@pytest.fixture
def tonnx_patched(request):
    """A fault of the ToNNX direction installed (it patches ToNNX's call), then undone."""
    from conformance.selfcheck import tonnx_hooks

    faults.install(request.param)
    yield request.param
    tonnx_hooks.restore_call()
    faults.ACTIVE = None


@pytest.mark.parametrize("tonnx_patched", ["tonnx_init_key_ignored", "tonnx_call_drops_bias"], indirect=True)
def test_tonnx_faults_patch_the_call_and_lazy_init(tonnx_patched):
    from reference import linen_inside_nnx, nnx_model, nnx_params

    x = jnp.arange(3.0)
    p1, p2 = nnx_params(nnx_model(1, x, 2)), nnx_params(nnx_model(2, x, 2))
    if tonnx_patched == "tonnx_init_key_ignored":
        assert np.array_equal(p1["kernel"], p2["kernel"])
    else:
        model = nnx_model(1, x, 2)
        model.bias[...] = model.bias[...] + 1.0
        assert np.allclose(model(x), x @ nnx_params(model)["kernel"])  # bias dropped
        assert linen_inside_nnx(1, x, 2).shape == (2,)


def test_tonnx_faults_are_in_the_corpus_and_name_first_catchers():
    from conformance.core import config
    from conformance.selfcheck import to_nnx_faults

    assert to_nnx_faults in faults.CORPUS
    tonnx = {n for n in faults.FAULTS if hasattr(to_nnx_faults, n)}
    assert len(tonnx) == 18 and all(n.startswith("tonnx_") for n in tonnx), sorted(tonnx)
    assert tonnx <= set(config.FAULT_FIRST_CATCHERS), sorted(tonnx - set(config.FAULT_FIRST_CATCHERS))
