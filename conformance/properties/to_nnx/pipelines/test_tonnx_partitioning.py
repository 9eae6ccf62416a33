"""Linen partition metadata (``nn.with_partitioning``, ``nn.with_logical_partitioning``) as NNX sharding on a mesh.

Oracle: the names the Linen module annotated. After ``lazy_init`` under a mesh
(and the logical rules), the kernel's NNX variable reports those names
(``nnx.get_partition_spec``), and placed by them (flax >= 0.12 places on
creation; a pipeline on an older one with ``jax.device_put``) its value sits
on the mesh as they say (the logical names mapped by the rules), the bias
replicated. The same seed
without a mesh gives the same params (within the sampler's model), and the
sharded model computes the unsharded one's output within the error model.
The mesh spans every device of a platform (the forced CPU devices in CI).
"""

import jax
import pytest

from conformance.core import config
from conformance.helpers import mesh
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.devices import device_id
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, assert_inits_within_model, assert_within_model, reporting
from reference import _compat

FRACTION = config.TONNX_EXAMPLE_FRACTION


def _mesh_case(data, platform: str):
    """A case on the platform's first device, its feature count divisible by the platform's device count."""
    devices = mesh.platform_devices(platform)
    return draw_pipeline_case(data, device_id(devices[0]), features_multiple_of=len(devices))


@pytest.mark.parametrize("box", pn.BOXES)
@given_data(FRACTION, shrink=False)
def test_tonnx_partition_metadata_becomes_sharding(mesh_platform, box, data):
    case = _mesh_case(data, mesh_platform)
    check = f"""
    from conformance.helpers import mesh, pipelines_nnx as pn
    grid = mesh.mesh_for(jax.devices()[0].platform, int(features))
    with pn.on_mesh(grid):
        m = pn.wrapped("block", int(features), int(seed), mesh.replicated(x, grid), box={box!r})
    specs = pn.partition_specs(m)
    assert specs["dense/kernel"] == pn.annotated_names({box!r}), f"the kernel's spec is {{specs['dense/kernel']}}"
    pn.place_by_names(m, grid)
    kernel = pn.linen_variables(m)["params"]["dense"]["kernel"]
    assert tuple(kernel.sharding.spec) == pn.mesh_names({box!r}), f"the kernel is placed as {{kernel.sharding}}"
    """
    with numerics(case), reporting(f"nn.{box} names become NNX sharding on a mesh", case, check):
        x = case_x(case)
        grid = mesh.mesh_for(mesh_platform, case.features_int)
        xr = mesh.replicated(x, grid)  # a pipeline feeds its batch on the same mesh
        with pn.on_mesh(grid):
            m = pn.wrapped("block", case.features_int, case.seed_int, xr, box=box)
        specs = pn.partition_specs(m)
        want = {"dense/kernel": pn.annotated_names(box), "dense/bias": ()}
        assert specs == want, (f"nnx.get_partition_spec of the model's params is {specs}, but should be {want} "
                               f"(the names nn.{box} annotated the kernel with)")
        pn.place_by_names(m, grid)
        params = pn.collection(m, "params")
        for name, names in (("kernel", pn.mesh_names(box)), ("bias", ())):
            leaf = params["dense"][name]
            placed = getattr(leaf.sharding, "spec", None)
            assert placed is not None and tuple(placed) == names and leaf.sharding.mesh.shape == grid.shape, (
                f"dense/{name} is placed as {leaf.sharding}, but should be a NamedSharding on the mesh "
                f"{dict(grid.shape)} with the spec {names}")
        with _compat.lazy_sharding():  # the same seed, names kept as metadata, nothing placed
            plain = pn.wrapped("block", case.features_int, case.seed_int, x, box=box)
        plain_params = pn.collection(plain, "params")
        assert_inits_within_model("sharded params", params, plain_params, "the unsharded lazy_init of the same seed")
        with pn.on_mesh(grid):
            y = m(xr)
        bound = pn.dense_outputs_difference(x, plain_params["dense"]["kernel"], plain_params["dense"]["bias"])
        assert_within_model("sharded model's y", y, plain(x), bound, f"the unsharded model's y (mesh {dict(grid.shape)})")


@pytest.mark.parametrize("box", pn.BOXES)
@given_data(FRACTION, shrink=False)
def test_tonnx_annotated_module_needs_no_mesh(device, box, data):
    """Linen's own init and apply of an annotated module need no mesh: the names are metadata. So must lazy_init's."""
    case = draw_pipeline_case(data, device)
    check = f"""
    from conformance.helpers import pipelines_nnx as pn
    m = pn.wrapped("block", int(features), int(seed), x, box={box!r})  # no mesh, no sharding context
    native = pn.linen_module("block", int(features), box={box!r}).apply(pn.linen_variables(m), x)
    assert_equal("m(x)", m(x), native, "Linen's own apply")
    """
    with numerics(case), reporting(f"a Linen module annotated with nn.{box} lazy_inits and runs without a mesh", case, check):
        x = case_x(case)
        linen = pn.linen_module("block", case.features_int, box=box)
        linen.init({"params": jax.random.key(case.seed_int)}, x)  # the premise: Linen's own init needs no mesh
        m = pn.wrapped("block", case.features_int, case.seed_int, x, box=box)
        specs = pn.partition_specs(m)
        assert specs["dense/kernel"] == pn.annotated_names(box), (
            f"the kernel's spec is {specs['dense/kernel']}, but should be {pn.annotated_names(box)}: the names are kept")
        assert_equal("m(x) without a mesh", m(x), linen.apply(pn.linen_variables(m), x), "Linen's own apply")


@pytest.mark.parametrize("box", pn.BOXES)
@given_data(FRACTION, shrink=False)
def test_tonnx_layer_reads_its_boxes_as_under_linen(device, box, data):
    """Inside the wrapper, the Linen layer's ``self.variables`` hold its ``nn.{box}`` boxes, as under Linen's own apply.

    Oracle: Linen's own ``apply(variables, method=...)`` on what its ``init``
    returns. A layer reading its params' names (to constrain its activations by
    them, as large Linen models do) must read the same inside an NNX model;
    metadata kept by ``nnx.get_partition_spec`` alone does not reach it.
    """
    case = draw_pipeline_case(data, device)
    check = f"""
    from conformance.helpers import pipelines_nnx as pn
    from reference import _compat, prng_key
    linen = pn.linen_module("block", int(features), {box!r})
    want = linen.apply(linen.init(prng_key(int(seed)), x), method="annotation")
    with _compat.lazy_sharding():
        m = pn.wrapped("block", int(features), int(seed), x, box={box!r})
        got = m(method="annotation")
    assert got == want, f"inside the wrapper the layer reads {{got}}, under Linen {{want}}"
    """
    with numerics(case), reporting(f"the Linen layer reads its nn.{box} boxes inside the wrapper", case, check):
        from reference import prng_key

        x = case_x(case)
        linen = pn.linen_module("block", case.features_int, box)
        want = linen.apply(linen.init(prng_key(case.seed_int), x), method="annotation")
        with _compat.lazy_sharding():  # names kept as metadata, nothing placed: no mesh needed in any release
            m = pn.wrapped("block", case.features_int, case.seed_int, x, box=box)
            got = m(method="annotation")
        assert got == want, (
            f"inside the wrapper the layer reads its kernel as {got[0]} with names {got[1]}, but should read "
            f"{want[0]} with names {want[1]}, as under Linen's own apply: the boxes do not reach the layer")
