"""The reference follows the contract and guards its arguments."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conformance.core import config
from reference import check_features, check_seed, check_x, init_variables, linen_module, nnx_inside_linen


def test_contract_by_hand():
    x = jnp.arange(3.0)
    y = nnx_inside_linen(5.0, x, 4.0)
    v = linen_module(3, 4).init(jax.random.PRNGKey(5), x)
    k, b = v["params"]["linear"]["kernel"], v["params"]["linear"]["bias"]
    np.testing.assert_allclose(y, x @ k + b, rtol=1e-6)
    assert y.shape == (4,)


@pytest.mark.parametrize("seed", [0, 0.0, np.int32(7), np.int64(-3), np.float64(2.0), config.SEED_MIN, config.SEED_MAX, np.array(4)])
def test_accepted_seeds(seed):
    assert check_seed(seed) == int(seed)


@pytest.mark.parametrize(
    "seed, exc",
    [(1.5, ValueError), (np.nan, ValueError), (np.inf, ValueError), (config.SEED_MAX + 1, ValueError),
     (config.SEED_MIN - 1, ValueError), (True, TypeError), ("1", TypeError), (None, TypeError), (1j, TypeError)],
)
def test_rejected_seeds_name_the_argument(seed, exc):
    with pytest.raises(exc, match=r"^seed must be an integer in \[-2147483648, 2147483647\]"):
        check_seed(seed)


@pytest.mark.parametrize("features, exc", [(0, ValueError), (-1, ValueError), (1.5, ValueError), (np.float32("nan"), ValueError), (False, TypeError)])
def test_rejected_features(features, exc):
    with pytest.raises(exc, match=r"^features must be"):
        check_features(features)


@pytest.mark.parametrize(
    "x, exc",
    [(jnp.ones(0), ValueError), (jnp.ones((2, 0)), ValueError), (jnp.float32(1), ValueError), (jnp.ones(2, bool), TypeError),
     (np.ones(2, np.complex64), TypeError), ([1.0], TypeError)],
)
def test_rejected_x(x, exc):
    with pytest.raises(exc, match=r"^x must be"):
        check_x(x)


def test_flax_alone_would_not_say_why():
    """Why the reference checks first: flax answers zero widths with ZeroDivisionError."""
    with pytest.raises(ValueError, match="zero-width"):
        nnx_inside_linen(0, jnp.ones(0), 2)
    with pytest.raises(ValueError, match="features must be"):
        init_variables(0, jnp.ones(3), 0)


def test_negative_seeds_depend_on_x64():
    """Documented JAX behaviour: PRNGKey of a negative seed differs with x64 on and off."""
    from reference import _compat

    off = np.asarray(jax.random.key_data(jax.random.PRNGKey(-1)))
    with _compat.enable_x64(True):
        on = np.asarray(jax.random.key_data(jax.random.PRNGKey(-1)))
    assert not np.array_equal(off, on)
    assert not jax.config.jax_enable_x64, "x64 leaked out of its scope"


# --- the other direction: a Linen nn.Dense inside an NNX model -------------------------------------


def test_linen_inside_nnx_by_hand():
    """ToNNX(nn.Dense) lazily initialised from nnx.Rngs(params=seed): the params stream is the seed's key."""
    import flax.linen as nn
    from flax import nnx
    from flax.nnx import bridge

    from reference import linen_inside_nnx, nnx_model, nnx_params

    x = jnp.arange(3.0)
    y = linen_inside_nnx(5.0, x, 4.0)
    by_hand = bridge.ToNNX(nn.Dense(4), rngs=nnx.Rngs(params=5))
    bridge.lazy_init(by_hand, x)
    params = nnx_params(nnx_model(5, x, 4))
    assert sorted(params) == ["bias", "kernel"]
    np.testing.assert_array_equal(params["kernel"], by_hand.kernel[...])
    np.testing.assert_allclose(y, x @ params["kernel"] + params["bias"], rtol=1e-6)
    assert y.shape == (4,)


BAD_CALLS = [
    (None, jnp.ones(3), 2), (1.5, jnp.ones(3), 2), (config.SEED_MAX + 1, jnp.ones(3), 2), (True, jnp.ones(3), 2),
    (0, jnp.ones(3), 0), (0, jnp.ones(3), 1.5), (0, jnp.ones(3), False),
    (0, jnp.ones(0), 2), (0, jnp.ones((2, 0)), 2), (0, jnp.float32(1), 2), (0, jnp.ones(2, bool), 2),
    (0, np.ones(2, np.complex64), 2), (0, [1.0], 2),
]


@pytest.mark.parametrize("seed, x, features", BAD_CALLS)
def test_linen_inside_nnx_rejects_as_nnx_inside_linen_does(seed, x, features):
    """Same exception type, same message, from the same checks: the two directions validate alike."""
    from reference import linen_inside_nnx, nnx_model

    with pytest.raises((ValueError, TypeError)) as want:
        nnx_inside_linen(seed, x, features)
    for call in (linen_inside_nnx, nnx_model):
        with pytest.raises(type(want.value)) as got:
            call(seed, x, features)
        assert str(got.value) == str(want.value)
