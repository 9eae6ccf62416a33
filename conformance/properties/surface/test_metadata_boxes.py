"""``apply`` on variables a Linen pipeline holds: Linen's own metadata boxes, the same path in two collections.

Params restored from a Linen checkpoint hold ``nn.LogicallyPartitioned`` or
``nn.Partitioned`` boxes; a pipeline may keep a copy of params in another
collection. Oracle: ``apply`` on the bare params. The boxes only annotate, so
applied outside a mesh and inside one (``helpers/mesh.py``: the kernel's
columns on 'model'), and beside a second collection holding the same paths,
the output is the bare params' (within the error model of the product: two
programs of one product).
"""

import jax
import pytest

from conformance.core import config
from conformance.helpers import mesh as mh
from conformance.helpers import pipelines as pl
from conformance.helpers import surface as sf
from conformance.helpers.harness import case_x, given_data, numerics, seed_array, unbox
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_product_close, reporting

FRACTION = config.SURFACE_EXAMPLE_FRACTION
PLACES = ("outside_mesh", "inside_mesh")


@pl.per_module
def _jit_apply_boxed(module, box: str):
    """Apply with the params boxed inside the program (a box is a pytree node: jit sees its arrays)."""
    return jax.jit(lambda v, x: pl.apply_in(module, {**v, "params": sf.linen_boxed(v["params"], box)}, x))


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("box", config.SURFACE_LINEN_BOXES)
@given_data(FRACTION, shrink=False)
def test_apply_on_linen_boxed_params(device, box, place, data):
    platform = device.split(":")[0]
    case = draw_pipeline_case(data, device, features_multiple_of=len(mh.platform_devices(platform)))
    check = f"""
    import flax.linen as nn
    from conformance.helpers import pipelines as pl, surface as sf, mesh as mh
    top = pl.top_level(x.shape[-1], int(features))
    v = top.init(prng_key(seed), x)
    boxed = {{**v, 'params': sf.linen_boxed(v['params'], {box!r})}}
    mesh = mh.mesh_for({platform!r}, int(features))
    import contextlib
    inside = {place!r} == 'inside_mesh'
    with (sf.mesh_context(mesh) if inside else contextlib.nullcontext()), nn.logical_axis_rules([('model', 'model')]):
        y_boxed = jax.jit(top.apply)(mh.replicated(boxed, mesh) if inside else boxed, mh.replicated(x, mesh) if inside else x)
    assert_product_close("apply(boxed params) y", y_boxed, jax.jit(top.apply)(v, x), x, v)
    """
    with numerics(case), reporting(f"apply on {box} boxes ({place}) == apply on bare params", case, check):
        import contextlib

        import flax.linen as nn

        x = case_x(case)
        top = pl.top_level(case.width, case.features_int)
        v = unbox(pl.jit_init(top)(seed_array(case.seed_int), x))
        y_bare = pl.jit_apply(top)(v, x)
        context, v_in, x_in = contextlib.nullcontext(), v, x
        if place == "inside_mesh":  # the arrays replicated over the mesh, which is the ambient one
            mesh = mh.mesh_for(platform, case.features_int)
            context, v_in, x_in = sf.mesh_context(mesh), mh.replicated(v, mesh), mh.replicated(x, mesh)
        with context, nn.logical_axis_rules([("model", "model")]):
            y_boxed = _jit_apply_boxed(top, box)(v_in, x_in)
        assert_product_close(f"apply(params in {box} boxes, {place}) y", y_boxed, y_bare, x, v,
                             what="apply on the bare params (a box only annotates)")


@given_data(FRACTION, shrink=False)
def test_apply_with_the_same_paths_in_two_collections(device, data):
    case = draw_pipeline_case(data, device)
    shadow = config.SURFACE_SHADOW_COLLECTION
    check = f"""
    from conformance.helpers import pipelines as pl
    top = pl.top_level(x.shape[-1], int(features))
    v = top.init(prng_key(seed), x)
    y2 = jax.jit(top.apply)({{**v, {shadow!r}: v['params']}}, x)
    assert_product_close("apply(params + {shadow}) y", y2, jax.jit(top.apply)(v, x), x, v)
    """
    with numerics(case), reporting(f"apply with params and a '{shadow}' copy == apply on params", case, check):
        x = case_x(case)
        top = pl.top_level(case.width, case.features_int)
        v = unbox(pl.jit_init(top)(seed_array(case.seed_int), x))
        y_two = pl.jit_apply(top)({**v, shadow: v["params"]}, x)
        assert_product_close(f"apply(params and a '{shadow}' collection holding the same paths) y", y_two,
                             pl.jit_apply(top)(v, x), x, v, what="apply on params alone")
