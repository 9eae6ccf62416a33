"""Linen's lifted transforms over a bridged module: ``nn.scan`` over layers, ``nn.vmap``, ``nn.remat``, ``nn.jit``.

Oracles: a Python loop over the stacked slices, the members of the ensemble
one at a time, the untransformed parent; numbers against float64 with the
error model (stacked layers: ``pipelines.chain_oracle``, docs/error-model.md).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conformance.core import config
from conformance.helpers import pipelines as pl
from conformance.helpers.harness import case_x, given_data, numerics, place, seed_array, tree_paths, unbox
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import (
    assert_close, assert_inits_within_model, assert_product_close, assert_shape, assert_trees_differ,
    assert_trees_equal, reporting,
)
from conformance.numerics import errormodel

FRACTION = config.PIPELINE_EXAMPLE_FRACTION
SCAN = """
    from conformance.helpers import pipelines as pl
    stack = pl.scanned(x.shape[-1], {layers}, split={split})
    sv = stack.init(prng_key(seed), x)
    slices = pl.stacked_slices(pl.child(sv, 'layers', 'child'), {layers})
"""


def _draw_stack(data, device):
    """A square case and a scan length (labelled, and named in the failure's inputs)."""
    case = draw_pipeline_case(data, device, square=True, layers=True)
    return case, case.extra["layers"]


@pytest.mark.parametrize("split", [True, False], ids=["split_rngs", "shared_rngs"])
@given_data(FRACTION, shrink=False)
def test_scan_stacks_params_per_layer(device, split, data):
    case, layers = _draw_stack(data, device)
    check = SCAN.format(layers=layers, split=split).rstrip() + """
    from conformance.helpers.harness import tree_paths
    top = pl.top_level(x.shape[-1], x.shape[-1]).init(prng_key(seed), x)['params']
    for i, s in enumerate(slices):
        assert {{k: a.shape for k, a in tree_paths(s['params']).items()}} == {{k: a.shape for k, a in tree_paths(top).items()}}
    same = all((np.asarray(a) == np.asarray(b)).all() for a, b in zip(jax.tree.leaves(slices[0]['params']), jax.tree.leaves(slices[1]['params'])))
    assert same != {split}, "layers 0 and 1 have " + ("equal" if same else "distinct") + " params under split_rngs={split}"
    """.format(split=split)
    with numerics(case), reporting(f"nn.scan stacks params per layer (split_rngs={split})", case, check):
        x = case_x(case)
        sv = pl.jit_init(pl.scanned(case.width, layers, split=split))(seed_array(case.seed_int), x)
        stacked = pl.child(sv, "layers", pl.CHILD)
        top = tree_paths(pl.jit_init(pl.top_level(case.width, case.width))(seed_array(case.seed_int), x)["params"])
        for path, leaf in tree_paths(stacked["params"]).items():
            assert_shape(f"params/layers/child/{path}", leaf.shape, (layers, *top[path].shape))
        first, second = (s["params"] for s in pl.stacked_slices(stacked, layers)[:2])
        if split:
            assert_trees_differ("layer 0 vs layer 1", first, second, "split_rngs={'params': True} draws each layer's own")
        else:
            assert_trees_equal("layer 1 params", second, first, "layer 0's (split_rngs={'params': False} shares the key)")


@given_data(FRACTION, shrink=False)
def test_scan_matches_python_loop(device, data):
    case, layers = _draw_stack(data, device)
    check = SCAN.format(layers=layers, split=True).rstrip() + """
    top = pl.top_level(x.shape[-1], x.shape[-1])
    h = x
    for s in slices:
        h = top.apply(s, h)
    exact, bound = pl.chain_oracle(x, [s['params']['linear']['kernel'] for s in slices], [s['params']['linear']['bias'] for s in slices], 'float32')
    assert_close("nn.scan y", jax.jit(stack.apply)(sv, x), exact, bound)
    assert_close("python loop y", h, exact, bound)
    """
    with numerics(case), reporting("nn.scan over layers == a Python loop over the slices", case, check):
        x = case_x(case)
        stack = pl.scanned(case.width, layers)
        sv = pl.jit_init(stack)(seed_array(case.seed_int), x)
        slices = pl.stacked_slices(pl.child(sv, "layers", pl.CHILD), layers)
        top = pl.top_level(case.width, case.width)
        h = x
        for s in slices:
            h = pl.jit_apply(top)(s, h)
        kernels = [s["params"]["linear"]["kernel"] for s in slices]
        biases = [s["params"]["linear"]["bias"] for s in slices]
        exact, bound = pl.chain_oracle(x, kernels, biases, "float32")
        assert_close("nn.scan y", pl.jit_apply(stack)(sv, x), exact, bound, "the float64 chain of the stacked layers")
        assert_close("python-loop y", h, exact, bound, "the float64 chain of the stacked layers")


@given_data(FRACTION, shrink=False)
def test_vmap_ensemble_matches_members(device, data):
    case = draw_pipeline_case(data, device)
    n = config.PIPELINE_ENSEMBLE
    check = f"""
    from conformance.helpers import pipelines as pl
    ens = pl.vmapped(x.shape[-1], int(features))
    xe = jnp.stack([x * (i + 1) for i in range({n})])
    ev = ens.init(prng_key(seed), xe)
    ye = jax.jit(ens.apply)(ev, xe)
    for i, s in enumerate(pl.stacked_slices(pl.child(ev, 'child'), {n})):
        assert_product_close(f"member {{i}} y", ye[i], pl.top_level(x.shape[-1], int(features)).apply(s, xe[i]), xe[i], s)
    """
    with numerics(case), reporting("nn.vmap(variable_axes={'params': 0}) == its members one at a time", case, check):
        x = case_x(case)
        xe = place(np.stack([np.asarray(x) * (i + 1) for i in range(n)]), case.device)
        ens = pl.vmapped(case.width, case.features_int)
        ev = pl.jit_init(ens)(seed_array(case.seed_int), xe)
        ye = pl.jit_apply(ens)(ev, xe)
        assert_shape("ensemble y", ye.shape, (n, *x.shape[:-1], case.features_int))
        members = pl.stacked_slices(pl.child(ev, pl.CHILD), n)
        assert_trees_differ("member 0 vs member 1", members[0]["params"], members[1]["params"], "split_rngs={'params': True}")
        top = pl.top_level(case.width, case.features_int)
        for i, s in enumerate(members):
            assert_product_close(f"member {i} y", ye[i], pl.jit_apply(top)(s, xe[i]), xe[i], s,
                                 what="the top-level module applied to member i's slice")


@pl.per_module
def _loss_and_grads(module):
    """jit(value_and_grad) of sum(y * w) over params: w fixes the cotangent."""
    return jax.jit(jax.value_and_grad(lambda v, x, w: jnp.sum(module.apply(v, x) * w)))


@given_data(FRACTION, shrink=False)
def test_remat_outputs_and_grads_unchanged(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import pipelines as pl
    m = pl.wrapped('remat', x.shape[-1], int(features))
    v = m.init(prng_key(seed), x)
    w = np.ones(x.shape[:-1] + (int(features),), np.float32)
    g = jax.grad(lambda v: jnp.sum(m.apply(v, x) * w))(v)['params']['child']['linear']
    xa = np.asarray(x, np.float64)
    dk = xa.reshape(-1, xa.shape[-1]).T @ w.reshape(-1, w.shape[-1])
    bound = errormodel.dot_error(xa.size // xa.shape[-1], 'float32', np.abs(xa.reshape(-1, xa.shape[-1])).T @ np.abs(w.reshape(-1, w.shape[-1])))
    assert_close("remat grad kernel", g['kernel'], dk, bound)
    """
    with numerics(case), reporting("nn.remat: outputs and gradients unchanged", case, check):
        x = case_x(case)
        seed = seed_array(case.seed_int)
        plain, remat = pl.parent("compact_named", case.width, case.features_int), pl.wrapped("remat", case.width, case.features_int)
        v = pl.jit_init(plain)(seed, x)
        # Same key, another program: the sampler may round otherwise (error model, section 5), the zero bias may not.
        assert_inits_within_model("nn.remat variables", pl.jit_init(remat)(seed, x), v, "the plain parent's (remat changes no draw)")
        w = place(np.ones((*x.shape[:-1], case.features_int), np.float32), case.device)
        _, grads = _loss_and_grads(remat)(v, x, w)
        sub = pl.child(v, pl.CHILD)
        y = pl.jit_apply(remat)(v, x)
        assert_product_close("nn.remat y", y, pl.jit_apply(plain)(v, x), x, sub, what="the plain parent's y")
        rows_x = np.asarray(x, np.float64).reshape(-1, case.width)
        rows_w = np.asarray(w, np.float64).reshape(-1, case.features_int)
        g = unbox(grads)["params"][pl.CHILD]["linear"]
        n_rows = rows_x.shape[0]
        # d loss/dK = x^T w and d loss/db = sum_rows w: dot products of length n_rows (Higham's gamma_n).
        assert_close("nn.remat grad kernel", g["kernel"], rows_x.T @ rows_w,
                     errormodel.dot_error(n_rows, "float32", np.abs(rows_x).T @ np.abs(rows_w)), "x^T w in float64")
        assert_close("nn.remat grad bias", g["bias"], rows_w.sum(0),
                     errormodel.dot_error(n_rows, "float32", np.abs(rows_w).sum(0)), "sum over rows of w in float64")


@given_data(FRACTION, shrink=False)
def test_nn_jit_matches_plain_parent(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import pipelines as pl
    plain, jitted = pl.parent('compact_named', x.shape[-1], int(features)), pl.wrapped('jit', x.shape[-1], int(features))
    v = plain.init(prng_key(seed), x)
    assert_product_close("nn.jit y", jitted.apply(v, x), plain.apply(v, x), x, pl.child(v, 'child'))
    """
    with numerics(case), reporting("nn.jit: same variables and outputs as the plain parent", case, check):
        x = case_x(case)
        plain, jitted = pl.parent("compact_named", case.width, case.features_int), pl.wrapped("jit", case.width, case.features_int)
        key = jax.random.PRNGKey(case.seed_int)
        v = pl.init_in(plain, key, x)
        # nn.jit folds the scope's keys otherwise than a plain call, for Linen's own nn.Dense too: same layout, other draw.
        layout = pl.array_layout(v)
        jv = pl.init_in(jitted, key, x)
        assert pl.array_layout(jv) == layout, f"nn.jit variables {pl.array_layout(jv)}, but should have the layout {layout}"
        for variables in (v, jv):
            assert_product_close("nn.jit y", jitted.apply(variables, x), plain.apply(variables, x), x,
                                 pl.child(variables, pl.CHILD), what="the plain parent's eager y")


STATEFUL = """
    from conformance.helpers import pipelines as pl
    stack = pl.scanned_stateful(x.shape[-1], {layers}, {split})
    keys = {{'params': prng_key(seed), 'dropout': jax.random.fold_in(prng_key(seed), 1)}}
    sv = stack.init(keys, x)
    (y, masks), upd = jax.jit(lambda v, x, k: stack.apply(v, x, rngs={{'dropout': k}}, mutable=['batch_stats']))(sv, x, keys['dropout'])
"""


@pl.per_module
def _jit_stateful(stack):
    """jit(init) and a jitted training apply of the stateful stack: compiled once per shape and device."""
    return jax.jit(stack.init), jax.jit(lambda v, x_, k: stack.apply(v, x_, rngs={"dropout": k}, mutable=["batch_stats"]))


def _stateful(case, layers, split):
    x = case_x(case)
    stack = pl.scanned_stateful(case.width, layers, split)
    key = jax.random.PRNGKey(case.seed_int)
    keys = {"params": key, "dropout": jax.random.fold_in(key, 1)}
    init, train = _jit_stateful(stack)
    sv = init(keys, x)
    (_, masks), updates = train(sv, x, keys["dropout"])
    return x, stack, sv, train, keys, np.asarray(masks), updates


@pytest.mark.parametrize("split", [True, False], ids=["split_dropout", "shared_dropout"])
@given_data(FRACTION, shrink=False)
def test_scan_dropout_keys_follow_split_rngs(device, split, data):
    case, layers = _draw_stack(data, device)
    check = STATEFUL.format(layers=layers, split=split).rstrip() + f"""
    same = bool((np.asarray(masks[0]) == np.asarray(masks[1])).all())
    assert same != {split}, "layers 0 and 1 drop " + ("the same" if same else "other") + " cells under split_rngs={{'dropout': {split}}}"
    """
    with numerics(case), reporting(f"nn.scan: dropout keys split per layer or shared (split_rngs={split})", case, check):
        *_, masks, _ = _stateful(case, layers, split)
        assert_shape("masks", masks.shape, (layers, *case.x.shape))
        for i in range(1, layers):
            same = bool((masks[i] == masks[0]).all())
            if split:
                assert not same, (f"layer {i} drops the same {masks[0].size} cells as layer 0, but should draw its own "
                                  "mask (split_rngs={'dropout': True} gives each layer its own key)")
            else:
                assert same, (f"layer {i} drops other cells than layer 0 ({int((masks[i] != masks[0]).sum())} differ), "
                              "but should share its mask (split_rngs={'dropout': False} shares the key)")


@given_data(FRACTION, shrink=False)
def test_scan_batch_stats_stacked_and_fed_back(device, data):
    case, layers = _draw_stack(data, device)
    check = STATEFUL.format(layers=layers, split=True).rstrip() + """
    mean = np.asarray(jax.tree.leaves(upd['batch_stats']['layers']['child']['bn']['mean'])[0])
    exact = 0.1 * np.asarray(x, np.float64).mean(0)
    assert np.allclose(mean[0], exact, rtol=1e-5, atol=1e-6), f"layer 0's updated mean {mean[0]}, but should be {exact}"
    """
    with numerics(case), reporting("nn.scan: batch_stats stacked per layer, updated under mutable and fed back", case, check):
        x, stack, sv, train, keys, _, updates = _stateful(case, layers, True)
        before = tree_paths(sv["batch_stats"])
        after = tree_paths(updates.get("batch_stats", {}))
        assert after.keys() == before.keys(), f"apply(mutable=['batch_stats']) updated {sorted(after)}, but should update {sorted(before)}"
        for path, leaf in after.items():
            assert_shape(f"batch_stats/{path}", leaf.shape, (layers, case.width))
        mean = np.asarray(after[f"layers/{pl.CHILD}/bn/mean"], np.float64)
        m = config.ZOO_BN_MOMENTUM
        stat, stat_err = np.asarray(x, np.float64).mean(0), errormodel.batch_moments_error(x)[0]
        zero = np.zeros_like(stat)
        assert_close("layer 0's updated mean", mean[0], m * zero + (1 - m) * stat,
                     errormodel.momentum_error(m, zero, stat, zero, stat_err), "the momentum update of x's batch mean")
        # Layer 1 sees a normalised batch times a kernel: its batch mean is zero up to
        # rounding (exactly zero under some compilers), its variance is not.
        var = np.asarray(after[f"layers/{pl.CHILD}/bn/var"])
        assert not np.array_equal(var[1], np.ones_like(var[1])), "layer 1's var was not updated, but every layer's should be"
        (_, _), again = train({**sv, **updates}, x, keys["dropout"])
        second = np.asarray(tree_paths(again["batch_stats"])[f"layers/{pl.CHILD}/bn/mean"], np.float64)
        assert_close("layer 0's mean after a second fed-back step", second[0], m * mean[0] + (1 - m) * stat,
                     errormodel.momentum_error(m, mean[0], stat, zero, stat_err), "the momentum update of the fed-back mean")
