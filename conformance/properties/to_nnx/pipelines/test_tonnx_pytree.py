"""A Linen layer wrapped by ``bridge.ToNNX`` flattens as an NNX module of the same release does.

Oracle: ``nnx.Linear`` of the installed flax. Where its modules are pytrees
(flax 0.11 on), code passes a model to ``jax.tree.map``, ``jax.jit`` or an
optimiser as a tree of its arrays; the wrapped model must be one too, its
leaves those of its ``nnx.state`` (Linen's variables and the RNG streams it
keeps), and a model rebuilt from its own leaves computes the same output.
Where native modules are not pytrees, a model is one opaque leaf, as they are.
"""

import functools

from conformance.core import config
from conformance.helpers import pipelines_nnx as pn
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import assert_equal, reporting

FRACTION = config.TONNX_EXAMPLE_FRACTION


def _is_pytree(obj) -> bool:
    import jax

    leaves = jax.tree_util.tree_leaves(obj)
    return not (len(leaves) == 1 and leaves[0] is obj)


@functools.lru_cache(maxsize=None)
def _native_modules_are_pytrees() -> bool:
    """A fact of the installed flax, read once a process: does ``nnx.Linear`` flatten to its arrays?"""
    from flax import nnx

    return _is_pytree(nnx.Linear(2, 3, rngs=nnx.Rngs(0)))


@given_data(FRACTION, shrink=False)
def test_tonnx_model_is_a_pytree_as_native_modules_are(device, data):
    case = draw_pipeline_case(data, device)
    check = """
    import jax
    from flax import nnx
    from conformance.helpers import pipelines_nnx as pn
    m = pn.wrapped("block", int(features), int(seed), x)
    native = nnx.Linear(2, 3, rngs=nnx.Rngs(0))
    assert (jax.tree_util.tree_leaves(native) != [native]) == (jax.tree_util.tree_leaves(m) != [m]), "pytree or not, unlike nnx.Linear"
    """
    with numerics(case), reporting("a ToNNX model is a pytree exactly when a native NNX module is, its leaves its state's",
                                   case, check):
        import jax
        import numpy as np
        from flax import nnx

        x = case_x(case)
        m = pn.wrapped("block", case.features_int, case.seed_int, x)
        native_tree, model_tree = _native_modules_are_pytrees(), _is_pytree(m)
        assert model_tree == native_tree, (
            f"jax.tree_util.tree_leaves(model) is {'a list of its arrays' if model_tree else '[model]'}, but should be "
            f"{'a list of its arrays' if native_tree else '[model]'}, as for nnx.Linear of this flax: a ToNNX model "
            f"{'is' if model_tree else 'is not'} a pytree where native NNX modules {'are' if native_tree else 'are not'}")
        if not native_tree:
            return
        leaves, state_leaves = jax.tree_util.tree_leaves(m), jax.tree_util.tree_leaves(nnx.state(m))
        assert len(leaves) == len(state_leaves), (
            f"the model has {len(leaves)} pytree leaves, but should have {len(state_leaves)}, those of nnx.state(model)")
        for i, (leaf, want) in enumerate(zip(leaves, state_leaves)):
            got, ref = np.asarray(pn.with_key_data(leaf)), np.asarray(pn.with_key_data(want))
            assert got.shape == ref.shape and np.array_equal(got, ref), (
                f"pytree leaf {i} of the model (shape {got.shape}) differs from leaf {i} of nnx.state(model) "
                f"(shape {ref.shape}), but should be the same array")
        rebuilt = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(m), leaves)
        assert_equal("tree_unflatten(tree_structure(m), leaves)(x)", rebuilt(x), m(x), "the model's own output")
