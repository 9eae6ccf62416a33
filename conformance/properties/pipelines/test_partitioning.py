"""Partition metadata and sharding: ``nnx.with_partitioning`` names, read by ``nn.get_partition_spec`` and placed on a mesh.

Oracle: the names the pipeline annotated (``pipelines.expected_spec``), as
Linen's own ``nn.Partitioned`` reports them, at the top level and under
``nn.scan``/``nn.vmap`` (with ``metadata_params``' name for the stacked axis).
The mesh spans every device of a platform (the forced CPU devices in CI).
"""

import functools

import jax
import pytest

from conformance.core import config
from conformance.helpers import mesh
from conformance.helpers import pipelines as pl
from conformance.helpers.devices import device_id
from conformance.helpers.harness import case_x, given_data, numerics, outputs_same_params, place, seed_array, tree_paths, unbox
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_inits_within_model, assert_within_model, reporting
from reference import prng_key

FRACTION = config.PIPELINE_EXAMPLE_FRACTION
ANNOTATED = """
    from conformance.helpers import mesh, pipelines as pl
    m = pl.bridged(x.shape[-1], int(features), partitioned=True)
    pv = pl.init_in(m, prng_key(seed), x)
"""


def _assert_specs(name, specs: dict, shapes: dict, stacked: bool):
    __tracebackhide__ = True
    for path, spec in specs.items():
        want = mesh.expected_spec(path, stacked)
        assert tuple(spec) == want, f"{name}: get_partition_spec(...)[{path!r}]={tuple(spec)}, but should be {want}"
        assert len(tuple(spec)) <= len(shapes[path]), (
            f"{name}: the spec of {path} names {len(tuple(spec))} axes, but the leaf has rank {len(shapes[path])}")


def _mesh_case(data, platform: str):
    """A case on the platform's first device, its feature count divisible by the platform's device count."""
    devices = mesh.platform_devices(platform)
    return draw_pipeline_case(data, device_id(devices[0]), features_multiple_of=len(devices))


def _shapes(tree) -> dict:
    return {p: tuple(a.shape) for p, a in tree_paths(tree).items()}


@functools.lru_cache(maxsize=None)
def _annotated_plain(width: int, features: int):
    """An annotated module with jit(init) and jit(apply) outside any mesh or sharding context."""
    m = pl.bridged(width, features, partitioned=True)
    return m, jax.jit(lambda seed, x_: m.init(prng_key(seed), x_)), jax.jit(m.apply)


@given_data(FRACTION, shrink=False)
def test_partition_spec_top_level(device, data):
    case = draw_pipeline_case(data, device)
    check = ANNOTATED.rstrip() + """
    specs = mesh.partition_specs(pv)
    assert tuple(specs['params/linear/kernel']) == pl.PARTITION, f"kernel spec {specs['params/linear/kernel']}, but should be {pl.PARTITION}"
    assert mesh.partition_specs(jax.eval_shape(lambda: pl.init_in(m, prng_key(seed), x))) == specs
    """
    with numerics(case), reporting("nn.get_partition_spec names what nnx.with_partitioning annotated", case, check):
        x = case_x(case)
        m = pl.bridged(case.width, case.features_int, partitioned=True)
        pv = pl.jit_init(m)(seed_array(case.seed_int), x)
        specs = mesh.partition_specs(pv)
        _assert_specs("top level", specs, _shapes(pv), stacked=False)
        abstract = jax.eval_shape(pl.jit_init(m), seed_array(case.seed_int), x)
        assert mesh.partition_specs(abstract) == specs, (
            f"specs of the abstract init {mesh.partition_specs(abstract)}, but should be those of init {specs} "
            "(reading a spec is pure metadata, as for Linen's nn.Partitioned)")


def _lifted_snippet(transform: str) -> str:
    """The repro lines that stack an annotated module under nn.scan or nn.vmap and read its kernel's spec."""
    builder = (f"pl.scanned(x.shape[-1], {config.PIPELINE_LAYERS[0]}, partitioned=True)" if transform == "scan"
               else "pl.vmapped(x.shape[-1], int(features), partitioned=True)")
    xin = "x" if transform == "scan" else f"jnp.stack([x] * {config.PIPELINE_ENSEMBLE})"
    return f"""
    from conformance.helpers import mesh, pipelines as pl
    m = {builder}
    pv = pl.init_in(m, prng_key(seed), {xin})
    specs = mesh.partition_specs(pv)
    kernel = [p for p in specs if p.endswith('kernel')][0]
    """


def _lifted_init(case, transform: str):
    """The variables of the case's annotated module stacked under nn.scan (its first length) or nn.vmap."""
    x = case_x(case)
    if transform == "scan":
        m = pl.scanned(case.width, config.PIPELINE_LAYERS[0], partitioned=True)
    else:
        m = pl.vmapped(case.width, case.features_int, partitioned=True)
        x = place(jax.numpy.stack([x] * config.PIPELINE_ENSEMBLE), case.device)
    return pl.jit_init(m)(seed_array(case.seed_int), x)


@pytest.mark.parametrize("transform", ["scan", "vmap"])
@given_data(FRACTION, shrink=False)
def test_partition_spec_under_lifted_transforms(device, transform, data):
    case = draw_pipeline_case(data, device, square=True)
    check = _lifted_snippet(transform).rstrip() + """
    assert tuple(specs[kernel]) == mesh.expected_spec(kernel, True), f"{kernel}: {specs[kernel]}, but should be {mesh.expected_spec(kernel, True)}"
    """
    with numerics(case), reporting(f"partition names under nn.{transform} carry the stacked axis", case, check):
        pv = _lifted_init(case, transform)
        _assert_specs(f"under nn.{transform}", mesh.partition_specs(pv), _shapes(pv), stacked=True)


@pytest.mark.parametrize("transform", ["scan", "vmap"])
@given_data(FRACTION, shrink=False)
def test_partition_names_survive_lifted_transforms(device, transform, data):
    """The names a team annotated stay on the kernel's own axes under nn.scan/nn.vmap.

    What a sharded pipeline needs first: its 'model' axis. It holds whether or
    not the stacked axis is named too (the known deviation of
    test_partition_spec_under_lifted_transforms), so it guards every release.
    """
    case = draw_pipeline_case(data, device, square=True)
    declared = tuple(config.PIPELINE_PARTITION)
    check = _lifted_snippet(transform).rstrip() + f"""
    assert tuple(specs[kernel])[-{len(declared)}:] == {declared!r}, f"{{kernel}}: {{specs[kernel]}}"
    """
    with numerics(case), reporting(f"partition names survive nn.{transform}", case, check):
        pv = _lifted_init(case, transform)
        specs, shapes = mesh.partition_specs(pv), _shapes(pv)
        for path, spec in specs.items():
            spec = tuple(spec)
            assert len(spec) <= len(shapes[path]), (
                f"under nn.{transform}: the spec of {path} names {len(spec)} axes, but the leaf has rank {len(shapes[path])}")
            # Before the annotated names (or on an unannotated leaf) only the stacked axis may be named:
            # Linen's own nn.Partitioned gets it from metadata_params, a release may give it to every box.
            own = declared if path.endswith("kernel") else ()
            if own:
                assert spec[-len(own):] == own, (
                    f"under nn.{transform}: get_partition_spec(...)[{path!r}]={spec}, but its last axes should keep "
                    f"the annotated names {own} (the stacked axis may come first)")
            extra = {n for n in spec[:len(spec) - len(own)] if n is not None} - {config.PIPELINE_STACK_AXIS}
            assert not extra, (f"under nn.{transform}: {path} is named {spec}, but only {own or 'no names'} were "
                               f"annotated (and {config.PIPELINE_STACK_AXIS!r} for the stacked axis)")


@given_data(FRACTION, shrink=False)
def test_jit_init_places_leaves_as_annotated(mesh_platform, data):
    case = _mesh_case(data, mesh_platform)
    check = ANNOTATED.rstrip() + """
    grid = mesh.mesh_for(jax.devices()[0].platform, int(features))
    import flax.linen as nn
    specs = nn.get_partition_spec(jax.eval_shape(lambda: pl.init_in(m, prng_key(seed), x)))
    sv = jax.jit(lambda: pl.init_in(m, prng_key(seed), x), out_shardings=mesh.shardings(grid, specs))()
    from conformance.helpers.harness import tree_paths
    for p, a in tree_paths(sv).items():
        assert tuple(a.sharding.spec) == mesh.expected_spec(p), f"{p} placed as {a.sharding.spec}, but should be {mesh.expected_spec(p)}"
    """
    with numerics(case), reporting("jit(init, out_shardings=...) places every leaf as annotated", case, check):
        x = case_x(case)
        m = pl.bridged(case.width, case.features_int, partitioned=True)
        grid = mesh.mesh_for(mesh_platform, case.features_int)
        sv = mesh.sharded_init(m, grid)(seed_array(case.seed_int), mesh.replicated(x, grid))  # the batch on the same mesh
        for path, leaf in tree_paths(sv).items():
            spec = tuple(leaf.sharding.spec)
            want = mesh.expected_spec(path)
            assert spec == want, f"{path} is placed as {spec} on the mesh {dict(grid.shape)}, but should be {want}"
        # A partitioned program may compile the sampler otherwise: the init model (error model, section 5) judges it.
        assert_inits_within_model("sharded init", sv, pl.jit_init(m)(seed_array(case.seed_int), x), "the unsharded init of the same seed")


@given_data(FRACTION, shrink=False)
def test_sharded_apply_matches_unsharded(mesh_platform, data):
    case = _mesh_case(data, mesh_platform)
    check = ANNOTATED.rstrip() + """
    import flax.linen as nn
    grid = mesh.mesh_for(jax.devices()[0].platform, int(features))
    sv = jax.device_put(pv, mesh.shardings(grid, nn.get_partition_spec(pv)))
    assert_within_model("sharded y", pl.apply_in(m, sv, mesh.replicated(x, grid)), pl.apply_in(m, pv, x), errormodel.affine_error(x.shape[-1], 'float32', np.abs(np.asarray(x, np.float64)) @ np.abs(np.asarray(nn.unbox(pv)['params']['linear']['kernel'], np.float64))) * 2)
    """
    with numerics(case), reporting("a sharded apply == the unsharded apply", case, check):
        x = case_x(case)
        m = pl.bridged(case.width, case.features_int, partitioned=True)
        pv = pl.jit_init(m)(seed_array(case.seed_int), x)
        grid = mesh.mesh_for(mesh_platform, case.features_int)
        sv = mesh.place_sharded(pv, grid)
        xr = mesh.replicated(x, grid)  # a pipeline feeds its batch on the same mesh
        y_sharded = pl.apply_in(m, sv, xr)  # eager: each op runs on the shards it is given
        assert_within_model("sharded y", y_sharded, pl.jit_apply(m)(pv, x), outputs_same_params(x, unbox(pv)),
                            f"the unsharded y (mesh {dict(grid.shape)})")


@given_data(FRACTION, shrink=False)
def test_annotated_module_needs_no_mesh(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    from conformance.helpers import pipelines as pl
    m = pl.bridged(x.shape[-1], int(features), partitioned=True)
    v = m.init(prng_key(seed), x)  # no mesh, no sharding context: annotations are metadata, as with nn.Partitioned
    m.apply(v, x)
    """
    with numerics(case), reporting("an annotated module initialises and applies without a mesh", case, check):
        x = case_x(case)
        _, init, apply = _annotated_plain(case.width, case.features_int)
        v = init(seed_array(case.seed_int), x)
        y = apply(v, x)
        assert y.shape == (*x.shape[:-1], case.features_int), f"y.shape={y.shape}, but should be {(*x.shape[:-1], case.features_int)}"
