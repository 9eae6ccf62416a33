"""What a Linen pipeline relies on beyond the numbers.

Real flax releases differ here; docs/known-deviations.md and
conformance/known_deviations.txt record which, and why.
"""

import warnings

import jax
import numpy as np
import pytest
from hypothesis import strategies as st

from conformance.helpers.harness import BIAS, KERNEL, affine_bound, case_x, given_data, init_jit, kernel_bias, module, numerics, oracle
from conformance.helpers.hypothesis_helpers import draw_case
from conformance.helpers.pytest_helpers import assert_close, reporting
from reference import _compat

RANDOM_PRIMITIVES = ("random_seed", "random_bits", "random_fold_in", "random_split", "random_wrap", "threefry2x32")


def _without(variables, path):
    v = {c: dict(t) for c, t in variables.items()}
    lin = dict(v["params"]["linear"])
    del lin[path[-1]]
    v["params"] = {**v["params"], "linear": lin}
    return v


@given_data(0.25, shrink=False)
def test_apply_rejects_missing_leaf(device, data):
    case = draw_case(data, device, dtype_names=("float32",))
    missing = data.draw(st.sampled_from([KERNEL, BIAS]), label="missing leaf")
    check = f"""
    lin = {{k: v for k, v in variables['params']['linear'].items() if k != '{missing[-1]}'}}  # {'/'.join(missing)} deleted
    try:
        y_broken = linen_module(x.shape[-1], int(features)).apply({{**variables, 'params': {{**variables['params'], 'linear': lin}}}}, x)
    except Exception as exc:
        print("raised, as it should:", type(exc).__name__, exc)
    else:
        raise AssertionError(f"apply with {'/'.join(missing)} missing returned {{np.asarray(y_broken)[:4]}}... instead of raising")
    """
    with numerics(case), reporting("missing leaf raises", case, check):
        x = case_x(case)
        broken = _without(init_jit(case), missing)
        try:
            y = module(case.width, case.features_int).apply(broken, x)
        except Exception:  # noqa: BLE001 - any error is the wanted answer
            return
        raise AssertionError(f"apply with {'/'.join(missing)} missing returned {np.asarray(y)[:4]}... instead of raising")


@given_data(0.25, shrink=False)
def test_apply_flags_unknown_leaf(device, data):
    case = draw_case(data, device, dtype_names=("float32",))
    check = """
    import warnings
    lin = {**variables['params']['linear'], 'extra': np.zeros(3, np.float32)}  # params/linear/extra added
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            linen_module(x.shape[-1], int(features)).apply({**variables, 'params': {**variables['params'], 'linear': lin}}, x)
            raised = False
        except Exception:
            raised = True
    assert raised or caught, "apply accepted an unknown leaf params/linear/extra silently (no error, no warning)"
    """
    with numerics(case), reporting("unknown leaf raises or warns", case, check):
        x = case_x(case)
        v = init_jit(case)
        extra = {**v, "params": {**v["params"], "linear": {**v["params"]["linear"], "extra": np.zeros(3, np.float32)}}}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                module(case.width, case.features_int).apply(extra, x)
            except Exception:  # noqa: BLE001 - raising is an accepted answer
                return
        assert caught, "apply accepted an unknown leaf params/linear/extra silently (no error, no warning)"


@given_data(0.25, shrink=False)
def test_apply_is_pure(device, data):
    case = draw_case(data, device, batched=None)
    check = f"""
    jaxpr = str(jax.make_jaxpr(linen_module(x.shape[-1], int(features)).apply)(variables, x))
    rng = [p for p in {RANDOM_PRIMITIVES!r} if p in jaxpr]
    assert not rng, f"apply's jaxpr contains random-number primitives {{rng}}: it re-runs initializers"
    """
    with numerics(case), reporting("apply is a pure function of params and x", case, check):
        x = case_x(case)
        v = init_jit(case)
        jaxpr = jax.make_jaxpr(module(case.width, case.features_int).apply)(v, x)
        names = set()

        def walk(j):
            for eqn in j.eqns:
                names.add(eqn.primitive.name)
                for p in eqn.params.values():
                    inner = getattr(p, "jaxpr", None)
                    if inner is not None:
                        walk(getattr(inner, "jaxpr", inner))

        walk(jaxpr.jaxpr)
        rng = sorted(n for n in names if n in RANDOM_PRIMITIVES)
        assert not rng, f"apply's jaxpr contains random-number primitives {rng}: it re-runs initializers"
        expected, mag = oracle(x, *kernel_bias(v))
        assert_close("y", module(case.width, case.features_int).apply(v, x), expected, affine_bound(x, mag))


def test_kwargs_reach_the_module_or_are_rejected():
    class Probe(_compat.nnx.Module):
        def __init__(self, out_features, rngs):
            self.linear = _compat.nnx.Linear(2, out_features, rngs=rngs)

        def __call__(self, x):
            return self.linear(x)

    x = np.ones(2, np.float32)
    v = _compat.to_linen(Probe, out_features=3).init(jax.random.PRNGKey(0), x)
    assert kernel_bias(v)[0].shape == (2, 3), "out_features passed to to_linen did not reach the module"
    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is flax's choice; silence is the failure
        _compat.to_linen(Probe, out_features=3, bogus=1).init(jax.random.PRNGKey(0), x)
    assert "bogus" in str(info.value), f"an unknown keyword was rejected without naming it: {info.value}"


def test_module_is_hashable_and_a_static_argument():
    m = module(3, 2)
    hash(m)
    x = np.ones(3, np.float32)
    v = m.init(jax.random.PRNGKey(0), x)
    y = jax.jit(lambda mod, v, x: mod.apply(v, x), static_argnums=0)(m, v, x)
    assert y.shape == (2,)


@given_data(0.25, shrink=False)
def test_variables_tree_structure(device, data):
    """Collections, leaf paths, shapes and leaf types (raw arrays, not boxed) as the pipeline addresses them."""
    from flax.core import meta

    case = draw_case(data, device, batched=None)
    check = """
    from flax.core import meta
    assert sorted(variables) == ['params'], f"collections {sorted(variables)}, but should be ['params']"
    flat, _ = jax.tree_util.tree_flatten_with_path(variables, is_leaf=lambda a: isinstance(a, meta.AxisMetadata))
    boxed = {jax.tree_util.keystr(p): type(a).__name__ for p, a in flat if not isinstance(a, jax.Array)}
    assert not boxed, f"leaves {boxed} should be raw jax.Arrays (not boxed)"
    """
    with numerics(case), reporting("variables tree structure", case, check):
        v = init_jit(case)
        assert sorted(v) == ["params"], f"collections {sorted(v)}, but should be ['params']"
        flat, _ = jax.tree_util.tree_flatten_with_path(v, is_leaf=lambda a: isinstance(a, meta.AxisMetadata))
        paths = {"/".join(str(getattr(k, "key", k)) for k in p): leaf for p, leaf in flat}
        want = {"params/linear/kernel": (case.width, case.features_int), "params/linear/bias": (case.features_int,)}
        assert sorted(paths) == sorted(want), f"leaf paths {sorted(paths)}, but should be {sorted(want)}"
        for p, leaf in paths.items():
            assert isinstance(leaf, jax.Array), f"{p} is a {type(leaf).__name__}, but should be a raw jax.Array (not boxed)"
            assert leaf.shape == want[p], f"{p}.shape={leaf.shape}, but should be {want[p]}"
