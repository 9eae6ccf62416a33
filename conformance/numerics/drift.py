"""Drift: comparisons that differ in bits but stay within the error model, counted per test.

Every comparison of two computations has three outcomes: identical (bit for
bit), drift (other bits, within the error model: passes, counted here) and
changed (beyond the model: fails). The plugin resets the count before each
test and attaches it to the test's report as the user property ``PROPERTY``
(a JUnit ``<property>`` too), which the terminal summary, the JSON report and
the gate read.
"""

from __future__ import annotations

import json

PROPERTY = "conformance_drift"
# A bitwise property (the zoo's dropout masks) also names the value it saw, as
# a short hash: the gate's bisection then tells one changed value from another
# (every routing change between two releases, not only the first).
FINGERPRINT = "conformance_fingerprint"

_EMPTY = {"comparisons": 0, "drifted": 0, "max_ulps": 0.0, "max_rel": 0.0, "max_fraction_of_bound": 0.0, "worst": ""}
_state: dict = dict(_EMPTY)


def reset() -> None:
    _state.clear()
    _state.update(_EMPTY)


def record(name: str, drifted: bool, ulps: float = 0.0, rel: float = 0.0, fraction: float = 0.0) -> None:
    """One comparison's outcome; the worst drift (by fraction of its bound) names the summary."""
    _state["comparisons"] += 1
    if not drifted:
        return
    _state["drifted"] += 1
    _state["max_ulps"] = max(_state["max_ulps"], float(ulps))
    _state["max_rel"] = max(_state["max_rel"], float(rel))
    if fraction >= _state["max_fraction_of_bound"]:
        _state["max_fraction_of_bound"] = float(fraction)
        _state["worst"] = name


def summary() -> dict | None:
    """This test's drift, or None when every comparison was identical (or none was made)."""
    return dict(_state) if _state["drifted"] else None


def from_properties(user_properties) -> dict | None:
    """The drift summary a report carries, if any."""
    for key, value in user_properties or ():
        if key == PROPERTY:
            return json.loads(value) if isinstance(value, str) else dict(value)
    return None


def describe(d: dict) -> str:
    return (f"{d['drifted']} of {d['comparisons']} comparisons drift, at most {d['max_ulps']:.3g} ulp, "
            f"relative {d['max_rel']:.2e}, {d['max_fraction_of_bound']:.2g} of the bound (worst: {d['worst']})")
