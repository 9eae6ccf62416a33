"""``ToLinen``'s own signature: its fields given by position and by keyword, and each field's documented effect.

Oracle: the documented field order (``nnx_class, args, kwargs, skip_rng,
metadata_fn``; ``name`` by keyword). A module built by position equals the one
built by keyword (``==``, equal hashes) and initialises the same variables, bit
for bit; ``args`` reach the constructor by position (the kernel's shape),
``kwargs`` by keyword (no bias when ``use_bias=False``), ``skip_rng=True``
builds a module whose constructor takes no ``rngs``, and ``metadata_fn`` decides
what a leaf holds (``get_value``: a bare array; the default: a box with the
kernel's partition names). A release that inserts a field moves a positional
``metadata_fn`` into another slot (flax 0.11 did: ``abstract_init``).
"""

import numpy as np
from flax.core import FrozenDict
from hypothesis import strategies as st

from conformance.core import config
from conformance.helpers import pipelines as pl
from conformance.helpers import surface as sf
from conformance.helpers.harness import case_x, given_data, numerics, tree_paths
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_trees_equal, reporting
from reference import _compat, prng_key

FRACTION = config.SURFACE_EXAMPLE_FRACTION


@given_data(FRACTION, shrink=False)
def test_tolinen_fields_by_position_and_keyword(device, data):
    case = draw_pipeline_case(data, device)
    use_bias = data.draw(st.booleans(), label="use_bias")
    check = f"""
    from conformance.helpers import surface as sf, pipelines as pl
    from reference import _compat
    kw = sf.linear_kwargs({use_bias})
    pos = sf.tolinen_by_position(_compat.nnx.Linear, (x.shape[-1], int(features)), kw, False, _compat.get_value)
    key = sf.tolinen_by_keyword(nnx_class=_compat.nnx.Linear, args=(x.shape[-1], int(features)), kwargs=kw,
                                skip_rng=False, metadata_fn=_compat.get_value)
    assert pos == key and hash(pos) == hash(key), f"ToLinen by position {{pos}} != by keyword {{key}}"
    assert_trees_equal("ToLinen(by position) variables", pl.init_in(pos, prng_key(seed), x),
                       pl.init_in(key, prng_key(seed), x), "ToLinen(by keyword)'s")
    """
    with numerics(case), reporting("ToLinen's fields by position == by keyword, each with its effect", case, check):
        x = case_x(case)
        width, features = case.width, case.features_int
        kw = sf.linear_kwargs(use_bias)
        values = (_compat.nnx.Linear, (width, features), kw, False, _compat.get_value)
        pos = sf.tolinen_by_position(*values)
        key = sf.tolinen_by_keyword(**dict(zip(sf.POSITIONAL_FIELDS, values)))
        for name, value in zip(sf.POSITIONAL_FIELDS, values):
            got = getattr(pos, name)
            assert got == value, (f"ToLinen({', '.join(sf.POSITIONAL_FIELDS)}) by position: .{name}={got!r}, "
                                  f"but should be {value!r} (the value given in its slot)")
        assert pos == key and hash(pos) == hash(key), (
            f"ToLinen by position {pos} is not equal (with an equal hash) to ToLinen by keyword {key}, but should be")
        seed = prng_key(case.seed_int)
        v_pos, v_key = pl.init_in(pos, seed, x), pl.init_in(key, seed, x)
        assert_trees_equal("ToLinen(by position) variables", v_pos, v_key, "ToLinen(by keyword) variables, same seed")
        # Each field's effect: args by position, kwargs by keyword, metadata_fn on every leaf.
        layout = pl.array_layout(v_pos)
        want = {"params/kernel": ((width, features), "float32")}
        if use_bias:
            want["params/bias"] = ((features,), "float32")
        assert layout == want, f"ToLinen(nnx.Linear, args={(width, features)}, kwargs=use_bias={use_bias}) holds " \
                               f"{layout}, but should hold {want}"
        assert not sf.boxed_paths(v_pos), (f"metadata_fn=get_value: leaves {sf.boxed_paths(v_pos)} are still boxed, "
                                         "but metadata_fn decides what a leaf holds (a bare array here)")
        default = pl.init_in(sf.tolinen_by_position(_compat.nnx.Linear, (width, features), kw), seed, x)
        assert sf.boxed_paths(default) == ["params/kernel"], (
            f"the default metadata_fn boxes {sf.boxed_paths(default)}, but should box params/kernel (its partition names)")
        # skip_rng: a constructor without rngs, by position and by keyword.
        ramp = sf.no_rngs_class()
        r_pos = sf.tolinen_by_position(ramp, (width, features), FrozenDict(), True)
        r_key = sf.tolinen_by_keyword(nnx_class=ramp, args=(width, features), skip_rng=True)
        assert r_pos == r_key, f"ToLinen(..., skip_rng=True) by position {r_pos} != by keyword {r_key}"
        k_ramp = np.asarray(tree_paths(pl.init_in(r_pos, seed, x))["params/kernel"])
        assert np.array_equal(k_ramp, sf.ramp_kernel(width, features)), (
            "skip_rng=True by position: the kernel is not the constructor's ramp")
