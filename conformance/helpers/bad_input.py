"""Bad arguments of either direction's contract, and the check that the reference itself rejects them.

The error must come from the reference's own checks, before flax runs (flax
answers some of these with ZeroDivisionError, IndexError or silent truncation).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import strategies as st

from conformance.helpers.harness import place
import reference

REFERENCE_DIR = os.path.dirname(os.path.abspath(reference.__file__))


def bad_integral(lo: int, hi: int) -> st.SearchStrategy:
    """(value, expected exception) for seeds or features outside [lo, hi] or not integral."""
    value_errors = st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf, np.float64(math.nan), np.float32(math.inf)]),
        st.floats(-1e6, 1e6).filter(lambda v: not float(v).is_integer()),
        st.sampled_from([lo - 1, hi + 1, lo - 1.0, hi + 1.0, 2**40, -(2**40), np.int64(hi) + 1]),
        st.integers(hi + 1, 2**64),
        st.integers(-(2**64), lo - 1),
    ).map(lambda v: (v, ValueError))
    type_errors = st.sampled_from([None, "3", [1], True, False, np.bool_(True), 1 + 2j, object()]).map(lambda v: (v, TypeError))
    return st.one_of(value_errors, type_errors)


def bad_x() -> st.SearchStrategy:
    return st.sampled_from(
        [
            (lambda d: place(np.ones((0,), np.float32), d), ValueError, "zero-width last axis"),
            (lambda d: place(np.ones((3, 0), np.float32), d), ValueError, "zero-width last axis"),
            (lambda d: place(np.float32(1.0).reshape(()), d), ValueError, "0-d array"),
            (lambda d: place(np.ones((3,), bool), d), TypeError, "bool"),
            (lambda d: place(np.ones((3,), np.complex64), d), TypeError, "complex64"),
            (lambda d: [1.0, 2.0, 3.0], TypeError, "list"),
            (lambda d: 1.0, TypeError, "float"),
            (lambda d: None, TypeError, "NoneType"),
        ]
    )


def raise_from_reference(call, exc_type, argument: str, mentions: str = ""):
    __tracebackhide__ = True
    with pytest.raises(exc_type) as info:
        call()
    msg = str(info.value)
    assert msg.startswith(f"{argument} must be"), f"error message {msg!r} should name the argument {argument!r}"
    assert mentions in msg, f"error message {msg!r} should mention {mentions!r}"
    origin = os.path.abspath(info.traceback[-1].path)
    assert origin.startswith(REFERENCE_DIR), f"{exc_type.__name__} raised from {origin}, not by the reference's own checks"
