"""Attribution and bisection with a fake world: no environment is built, nothing is fetched.

The fake world knows, per (flax, jax) pair, how each property behaves; the
runner answers from it the way a real environment would.
"""

from __future__ import annotations

import pytest

from conformance.gate import attribution
from conformance.gate.attribution import EnvRun, EnvSpec
from conformance.gate.verdict import DEVIATION, FAIL, PASS, Cell

RELEASES = ["0.10.0", "0.10.1", "0.10.2", "0.10.3", "0.10.4", "0.10.5", "0.10.6", "0.11.0", "0.11.1", "0.11.2",
            "0.12.0", "0.12.1"]
# The jax of each flax release's time.
JAX_OF = {"0.10.0": "0.4.34", "0.10.1": "0.4.35", "0.10.2": "0.4.35", "0.10.3": "0.5.0", "0.10.4": "0.5.1",
          "0.10.5": "0.5.3", "0.10.6": "0.6.0", "0.11.0": "0.7.0", "0.11.1": "0.7.0", "0.11.2": "0.7.1",
          "0.12.0": "0.7.2", "0.12.1": "0.8.1"}


def v(text):
    return tuple(int(p) for p in text.split("."))


def world(flax, jax):
    """How each property behaves with this flax and jax."""
    return {
        "test_missing_leaf": DEVIATION if v(flax) >= v("0.12.0") else PASS,   # flax's doing
        "test_golden_numerics": PASS if v(jax) >= v("0.5.0") else DEVIATION,  # jax's doing
        "test_pair": FAIL if v(flax) >= v("0.11.0") and v(jax) >= v("0.7.0") else PASS,  # the two together
        "test_hashable": PASS if v(flax) >= v("0.10.2") else DEVIATION,
    }


def pin(reqs, name):
    for r in reqs:
        if r.startswith(name + "=="):
            return r.split("==", 1)[1]
    return None


class FakeRunner:
    def __init__(self, unresolvable=()):
        self.calls = []
        self.unresolvable = set(unresolvable)

    def __call__(self, spec: EnvSpec, properties):
        self.calls.append((spec.name, tuple(properties), spec.exclude_newer))
        flax = pin(spec.requirements, "flax")
        jax = pin(spec.requirements, "jax") or JAX_OF[flax]
        if (flax, jax) in self.unresolvable:
            return EnvRun(None, {}, f"uv could not resolve flax=={flax} with jax=={jax}", spec)
        cells = {p: Cell(o) for p, o in world(flax, jax).items() if p in properties}
        return EnvRun(cells, {"flax": flax, "jax": jax, "jaxlib": jax}, None, spec)

    def release(self, version, properties):
        return self(EnvSpec(f"flax-{version}", [f"flax=={version}"], f"2025-01-{RELEASES.index(version) + 1:02d}T23:59:59Z"), properties)


def side(flax, date="2025-01-01T23:59:59Z", extra=()):
    jax = JAX_OF[flax]
    return {"versions": {"flax": flax, "jax": jax, "jaxlib": jax}, "requirements": [f"flax=={flax}", *extra],
            "exclude_newer": date, "cells": {p: Cell(o) for p, o in world(flax, jax).items()}}


def test_cross_environments_pin_flax_and_jax_at_the_later_date():
    base = side("0.10.2", "2024-11-20T23:59:59Z", ["optax<0.3"])
    cand = side("0.10.3", "2025-02-11T23:59:59Z", ["jax>=0.4", "optax<0.4"])
    specs = attribution.cross_specs(base, cand)
    assert specs["flax"].requirements == ["flax==0.10.3", "jax==0.4.35", "jaxlib==0.4.35", "optax<0.4"]
    assert specs["jax"].requirements == ["flax==0.10.2", "jax==0.5.0", "jaxlib==0.5.0", "optax<0.3"]
    assert specs["flax"].exclude_newer == specs["jax"].exclude_newer == "2025-02-11T23:59:59Z"
    assert attribution.later_date("2025-02-11T23:59:59Z", None) is None


@pytest.mark.parametrize("base, cand, prop, origin", [
    ("0.10.2", "0.10.3", "test_golden_numerics", "jax"),
    ("0.11.2", "0.12.0", "test_missing_leaf", "flax"),
    ("0.10.6", "0.11.0", "test_pair", "the pair"),
])
def test_attribution_names_flax_jax_or_the_pair(base, cand, prop, origin):
    runner = FakeRunner()
    found = attribution.attribute([prop], side(base), side(cand), runner)
    assert found["origins"][prop]["origin"] == origin
    assert [c["role"] for c in found["cross_envs"]] == ["flax", "jax"] and len(runner.calls) == 2
    assert all(call[1] == (prop,) for call in runner.calls)  # only the changed property runs


def test_an_unresolvable_cross_pin_is_reported_and_the_other_side_still_answers():
    runner = FakeRunner(unresolvable={("0.12.0", "0.7.1")})
    found = attribution.attribute(["test_missing_leaf"], side("0.11.2"), side("0.12.0"), runner)
    flax_env = next(c for c in found["cross_envs"] if c["role"] == "flax")
    assert "could not resolve flax==0.12.0 with jax==0.7.1" in flax_env["error"]
    o = found["origins"]["test_missing_leaf"]
    assert o["origin"] == "flax or the pair" and "no result (unresolved or not run)" in o["explanation"]


def test_same_jax_on_both_sides_needs_no_cross_environment():
    base, cand = side("0.11.0"), side("0.11.1")  # both jax 0.7.0
    runner = FakeRunner()
    found = attribution.attribute(["test_pair"], base, cand, runner)
    assert found["origins"]["test_pair"]["origin"] == "flax" and not runner.calls


@pytest.mark.parametrize("flax_alone, jax_alone, origin", [
    (DEVIATION, PASS, "flax"), (PASS, DEVIATION, "jax"), (PASS, PASS, "the pair"), (DEVIATION, DEVIATION, "either"),
    (FAIL, PASS, "unclear"), (None, DEVIATION, "jax"), (None, PASS, "flax or the pair"), (None, None, "unknown"),
])
def test_origin_rules(flax_alone, jax_alone, origin):
    assert attribution.origin_of(PASS, DEVIATION, flax_alone, jax_alone)[0] == origin


# --- bisection ---------------------------------------------------------------------------------------


def test_releases_between_leaves_out_the_baseline_and_pre_releases():
    got = attribution.releases_between(["0.12.0", "0.10.0", "0.11.0rc1", "0.10.10", "0.10.2", "0.13.0"], "0.10.0", "0.12.0")
    assert got == ["0.10.2", "0.10.10", "0.12.0"]


def test_bisection_finds_the_first_release_of_every_change():
    base, cand = side("0.10.0"), side("0.12.1")
    runner = FakeRunner()
    props = ["test_missing_leaf", "test_golden_numerics", "test_hashable"]
    releases = attribution.releases_between(RELEASES, "0.10.0", "0.12.1")
    found = attribution.bisect_changes(props, base, cand, releases, runner.release)
    assert {p: f["first"] for p, f in found.items()} == {
        "test_missing_leaf": "0.12.0", "test_golden_numerics": "0.10.3", "test_hashable": "0.10.2"}
    assert all(f["monotone"] for f in found.values())
    assert found["test_golden_numerics"]["previous"] == "0.10.2" and found["test_golden_numerics"]["first_jax"] == "0.5.0"
    # Each release runs once, for all changes at once; far fewer than the 11 releases.
    names = [c[0] for c in runner.calls]
    assert len(names) == len(set(names)) <= 8
    assert all(c[1] == tuple(props) for c in runner.calls)


def test_bisection_reports_a_change_that_is_not_monotone():
    outcomes = {0: PASS, 1: PASS, 2: DEVIATION, 3: PASS, 4: PASS, 5: DEVIATION}  # flips, flips back, flips again
    rel = [f"1.0.{i}" for i in range(6)]

    def run_release(version, properties):
        i = int(version.rsplit(".", 1)[1])
        return EnvRun({"test_x": Cell(outcomes[i])}, {"flax": version, "jax": "j"})

    base = {"versions": {"flax": "0.9.9"}, "cells": {"test_x": Cell(PASS)}}
    cand = {"versions": {"flax": "1.0.5"}, "cells": {"test_x": Cell(DEVIATION)}}
    found = attribution.bisect_changes(["test_x"], base, cand, rel, run_release)["test_x"]
    assert found["first"] == "1.0.2" and not found["monotone"]
    assert "NOT MONOTONE" in found["explanation"] and "1.0.3 pass" in found["explanation"]


def test_bisection_skips_a_release_that_will_not_build():
    runner = FakeRunner()

    def run_release(version, properties):
        if version == "0.11.1":
            return EnvRun(None, {}, "no wheel for this python")
        return runner.release(version, properties)

    releases = attribution.releases_between(RELEASES, "0.10.6", "0.12.1")
    found = attribution.bisect_changes(["test_missing_leaf"], side("0.10.6"), side("0.12.1"), releases, run_release)
    assert found["test_missing_leaf"]["first"] == "0.12.0"
    assert found["test_missing_leaf"]["unknown"] in ([], ["0.11.1"])


def test_boundaries_are_attributed_with_cross_environments():
    base, cand = side("0.10.0"), side("0.12.1")
    runner = FakeRunner()
    releases = attribution.releases_between(RELEASES, "0.10.0", "0.12.1")
    memo = {}
    found = attribution.bisect_changes(["test_golden_numerics", "test_missing_leaf"], base, cand, releases,
                                       runner.release, memo)
    attribution.attribute_boundaries(found, base, memo, runner)
    assert found["test_golden_numerics"]["origin"] == "jax"   # 0.10.2 -> 0.10.3 moved jax 0.4.35 -> 0.5.0
    assert found["test_missing_leaf"]["origin"] == "flax"     # 0.11.2 -> 0.12.0


def test_going_back_to_an_older_release_searches_newest_first():
    assert attribution.releases_from(RELEASES, "0.11.0", "0.10.4") == ["0.10.6", "0.10.5", "0.10.4"]
    assert attribution.releases_from(RELEASES, "0.10.4", "0.10.6") == ["0.10.5", "0.10.6"]
    base, cand = side("0.12.1"), side("0.10.0")
    found = attribution.bisect_changes(["test_missing_leaf"], base, cand, attribution.releases_from(RELEASES, "0.12.1", "0.10.0"),
                                       FakeRunner().release)
    assert found["test_missing_leaf"]["first"] == "0.11.2"  # going back, the first release without the re-init


def test_bisection_finds_every_step_of_a_value_that_changes_several_times():
    """Dropout routing A -> B -> C -> D: each step is found, with the releases and jax around it."""
    routing = {"0.10.0": "a", "0.10.1": "a", "0.10.2": "a", "0.10.3": "b", "0.10.4": "b", "0.10.5": "b",
               "0.10.6": "c", "0.11.0": "d", "0.11.1": "d", "0.11.2": "d", "0.12.0": "d", "0.12.1": "d"}
    calls = []

    def cell(version):
        return Cell(PASS if routing[version] == "a" else FAIL, fingerprint=f"masks:{routing[version]}")

    def run_release(version, properties):
        calls.append(version)
        return EnvRun({"test_masks": cell(version)}, {"flax": version, "jax": JAX_OF[version]})

    base = {"versions": {"flax": "0.10.0", "jax": "0.4.34"}, "cells": {"test_masks": cell("0.10.0")}}
    cand = {"versions": {"flax": "0.12.1", "jax": "0.8.1"}, "cells": {"test_masks": cell("0.12.1")}}
    releases = attribution.releases_between(RELEASES, "0.10.0", "0.12.1")
    found = attribution.bisect_changes(["test_masks"], base, cand, releases, run_release)["test_masks"]
    assert [(s["previous"], s["first"]) for s in found["steps"]] == [("0.10.2", "0.10.3"), ("0.10.5", "0.10.6"),
                                                                    ("0.10.6", "0.11.0")]
    assert found["first"] == "0.10.3" and found["first_jax"] == "0.5.0" and found["monotone"]
    assert found["steps"][1]["from"] == "fail [masks:b]" and found["steps"][1]["to"] == "fail [masks:c]"
    assert len(calls) == len(set(calls)) < len(releases)  # each release once, not all of them


def test_a_pass_fail_property_still_flips_once():
    found = attribution.search_steps(PASS, FAIL, lambda i: PASS if i < 6 else FAIL, 11)
    assert attribution.steps_of(PASS, found["tested"]) == [(5, 6)] and len(found["tested"]) <= 5


def test_the_fingerprint_travels_from_junit_to_the_behaviour():
    from junit_helpers import junit

    from conformance.gate import verdict

    xml = junit('<testcase classname="c" name="test_zoo_golden_dropout_masks"><properties>'
                '<property name="conformance_fingerprint" value="masks:abc"/></properties></testcase>')
    cell = verdict.collapse(verdict.parse_junit(xml))["test_zoo_golden_dropout_masks"]
    assert (cell.outcome, cell.fingerprint) == (PASS, "masks:abc")
    assert attribution.behaviour(cell) == "pass [masks:abc]"
