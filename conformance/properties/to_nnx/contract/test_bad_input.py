"""Bad input through ToNNX: each invalid argument raises the ValueError or TypeError ``nnx_inside_linen`` raises.

The error comes from the reference's own checks (shared by both directions),
before ``ToNNX`` or ``lazy_init`` runs.
"""

from conformance.core import config
from conformance.helpers.bad_input import bad_integral, bad_x, raise_from_reference
from conformance.helpers.harness import given_data, place
from conformance.helpers.hypothesis_helpers import make_x
from reference import linen_inside_nnx


@given_data(0.25)
def test_tonnx_rejects_bad_seed(device, data):
    value, exc = data.draw(bad_integral(config.SEED_MIN, config.SEED_MAX), label="bad seed")
    x = place(make_x((3,), "float32"), device)
    raise_from_reference(lambda: linen_inside_nnx(value, x, 2), exc, "seed", f"[{config.SEED_MIN}, {config.SEED_MAX}]")


@given_data(0.25)
def test_tonnx_rejects_bad_features(device, data):
    value, exc = data.draw(bad_integral(config.FEATURES_MIN, config.FEATURES_MAX), label="bad features")
    x = place(make_x((3,), "float32"), device)
    raise_from_reference(lambda: linen_inside_nnx(0, x, value), exc, "features",
                         f"[{config.FEATURES_MIN}, {config.FEATURES_MAX}]")


@given_data(0.25)
def test_tonnx_rejects_bad_x(device, data):
    make, exc, mentions = data.draw(bad_x(), label="bad x")
    raise_from_reference(lambda: linen_inside_nnx(0, make(device), 2), exc, "x", mentions)
