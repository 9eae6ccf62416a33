"""Attribute reads off a bridged module, as Linen code reads its submodules' hyperparameters.

Oracle: what the module was built with. ``to_linen(nnx.Linear, width, features,
use_bias=b)`` read outside any parent, in a parent's ``setup`` and inside
``@nn.compact``: ``.args`` is ``(width, features)``, ``.kwargs`` is
``{'use_bias': b}``, ``.use_bias`` is ``b`` (a keyword argument reads as an
attribute); a positional argument read by its parameter name (``.in_features``)
is its value or an ``AttributeError`` naming it, never another value; an NNX
method reads as a callable; a name the module does not have raises
``AttributeError`` naming it. The parent's init then holds a bias exactly when
``use_bias`` says so.
"""

import jax
import pytest
from hypothesis import strategies as st

from conformance.core import config
from conformance.helpers import surface as sf
from conformance.helpers.harness import case_x, given_data, numerics
from conformance.helpers.hypothesis_helpers import draw_pipeline_case
from conformance.helpers.pytest_helpers import reporting
from reference import _compat, prng_key

FRACTION = config.SURFACE_EXAMPLE_FRACTION
WHERE = ("outside", "setup", "compact")


def _check_reads(where: str, read: dict, width: int, features: int, use_bias: bool) -> None:
    __tracebackhide__ = True
    assert read["args"] == (width, features), f"{where}: module.args={read['args']}, but should be {(width, features)}"
    assert read["kwargs"] == {"use_bias": use_bias}, (
        f"{where}: module.kwargs={read['kwargs']}, but should be {{'use_bias': {use_bias}}}")
    assert read["use_bias"] is use_bias, (
        f"{where}: module.use_bias={read['use_bias']!r}, but should be {use_bias} (a constructor keyword reads as an attribute)")
    for name, value in (("in_features", width), ("out_features", features)):
        got = read[name]
        if isinstance(got, tuple) and got and got[0] == "AttributeError":
            assert name in got[1], f"{where}: module.{name} raised AttributeError({got[1]!r}), which should name {name!r}"
        else:
            assert got == value, f"{where}: module.{name}={got!r}, but should be {value} or an AttributeError"


@pytest.mark.parametrize("where", WHERE)
@given_data(FRACTION, shrink=False)
def test_constructor_arguments_read_off_the_module(device, where, data):
    case = draw_pipeline_case(data, device)
    use_bias = data.draw(st.booleans(), label="use_bias")
    check = f"""
    from conformance.helpers import surface as sf
    from reference import _compat
    m = _compat.to_linen(_compat.nnx.Linear, x.shape[-1], int(features), use_bias={use_bias})
    assert m.use_bias is {use_bias}, f"module.use_bias={{m.use_bias!r}}, but should be {use_bias}"
    assert tuple(m.args) == (x.shape[-1], int(features)) and dict(m.kwargs) == {{'use_bias': {use_bias}}}
    parent, box = sf.attributes_parent(x.shape[-1], int(features), {where!r}, {use_bias})
    parent.init(prng_key(seed), x) if {where!r} != 'outside' else None
    print(box)
    """
    with numerics(case), reporting(f"constructor arguments read off the bridged module ({where})", case, check):
        x = case_x(case)
        width, features = case.width, case.features_int
        if where == "outside":
            m = _compat.to_linen(_compat.nnx.Linear, width, features, use_bias=use_bias)
            _check_reads(where, sf.read_constructor_attributes(m), width, features, use_bias)
            shaped = sf.shaped_top(width, features)
            assert callable(getattr(shaped, "negated", None)), (
                "module.negated is not callable, but should be: an NNX method reads off the bridged module")
            try:
                got = getattr(shaped, "no_such_attribute")
            except AttributeError as exc:
                assert "no_such_attribute" in str(exc), f"AttributeError({exc}) should name 'no_such_attribute'"
            else:
                raise AssertionError(f"module.no_such_attribute={got!r}, but should raise AttributeError")
            return
        parent, box = sf.attributes_parent(width, features, where, use_bias)
        v = parent.init(prng_key(case.seed_int), x)
        assert "read" in box, f"the parent's {where} never read the child's attributes"
        _check_reads(where, box["read"], width, features, use_bias)
        leaves = {"/".join(str(getattr(k, "key", k)) for k in path)
                  for path, _ in jax.tree_util.tree_flatten_with_path(v["params"])[0]}
        has_bias = any(p.endswith("bias") for p in leaves)
        assert has_bias is use_bias, f"params hold {sorted(leaves)}: a bias {'is' if has_bias else 'is not'} there, " \
                                     f"but use_bias={use_bias}"
