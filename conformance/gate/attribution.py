"""Where a change comes from: cross environments (flax or jax?) and bisection over flax releases.

Pure logic: every environment is run through an injected ``runner(spec,
properties) -> EnvRun``, so the project's tests drive it with canned outcomes.
``conformance/gate/command.py`` supplies the real runner (build the environment, run
only the named properties, parse the JUnit XML).

Attribution. For a change between a baseline (flax Fb, jax Jb) and a
candidate (Fc, Jc), two cross environments isolate each side's contribution:
Fc with Jb (does the candidate's flax alone bring the change?) and Fb with Jc
(does the candidate's jax alone?). Both are resolved as of the later of the two
sides' dates, with flax, jax and jaxlib pinned, so both pins exist; the other
dependencies (numpy, optax, ...) come from that later date, so "jax" below
means "jax, or another dependency that moved with it".

Bisection. For each change, the first flax release between baseline and
candidate that shows it, each release resolved with the jax of its time
(``--exclude-newer`` its upload date). Binary search on every interval whose
ends behave differently: a pass/fail property flips once; a bitwise property
that names its value (the zoo's dropout masks) may step several times, and
every step is found. The release after each step is checked too, and a
behaviour that comes back is reported ("not monotone"). A change that appears
and goes away again between two releases that agree is invisible to it; the
release-by-release matrix is the tool for that.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import re
from typing import Callable

from conformance.gate.verdict import BEHAVIOUR, Cell

PINNED = ("flax", "jax", "jaxlib")


@dataclasses.dataclass
class EnvSpec:
    """An environment to build and run: requirements, resolution date, a name for the report."""

    name: str
    requirements: list[str]
    exclude_newer: str | None
    note: str = ""


@dataclasses.dataclass
class EnvRun:
    """What running some properties in an environment gave: cells by property, or an error."""

    cells: dict[str, Cell] | None
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    error: str | None = None
    spec: EnvSpec | None = None  # how it was built (for cross environments around a bisection boundary)


Runner = Callable[[EnvSpec, list[str]], EnvRun]


def behaviour(cell: Cell | None) -> str | None:
    """pass / deviation / fail (with the value a bitwise property saw), or None where the run says nothing."""
    seen = BEHAVIOUR.get(cell.outcome) if cell is not None else None
    return f"{seen} [{cell.fingerprint}]" if seen and cell.fingerprint else seen


def _requirement_name(req: str) -> str:
    m = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
    return m.group(1).lower().replace("_", "-") if m else ""


def other_requirements(requirements: list[str]) -> list[str]:
    """A side's requirements without its flax, jax and jaxlib ones (the cross environments pin those)."""
    return [r for r in requirements if _requirement_name(r) not in PINNED]


def later_date(a: str | None, b: str | None) -> str | None:
    """The later of two RFC 3339 dates; None (resolve as of today) when either side is undated."""
    if a is None or b is None:
        return None
    parse = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return a if parse(a) >= parse(b) else b


def pins(flax: str, jax: str, jaxlib: str | None) -> list[str]:
    return [f"flax=={flax}", f"jax=={jax}"] + ([f"jaxlib=={jaxlib}"] if jaxlib else [])


def cross_specs(base: dict, cand: dict) -> dict[str, EnvSpec]:
    """The cross environments for a baseline and a candidate side.

    ``base`` / ``cand``: ``{"versions": {...}, "requirements": [...], "exclude_newer": str | None}``.
    Keys: ``"flax"`` (the candidate's flax with the baseline's jax) and ``"jax"``
    (the baseline's flax with the candidate's jax); a key is left out where the
    two sides already agree on that package.
    """
    vb, vc = base["versions"], cand["versions"]
    when = later_date(base.get("exclude_newer"), cand.get("exclude_newer"))
    out = {}
    if vb.get("flax") != vc.get("flax") and vb.get("jax") != vc.get("jax"):
        out["flax"] = EnvSpec(f"flax-{vc['flax']}+jax-{vb['jax']}",
                              pins(vc["flax"], vb["jax"], vb.get("jaxlib")) + other_requirements(cand["requirements"]),
                              when, "the candidate's flax with the baseline's jax")
        out["jax"] = EnvSpec(f"flax-{vb['flax']}+jax-{vc['jax']}",
                             pins(vb["flax"], vc["jax"], vc.get("jaxlib")) + other_requirements(base["requirements"]),
                             when, "the baseline's flax with the candidate's jax")
    return out


def origin_of(b: str, c: str, flax_alone: str | None, jax_alone: str | None,
              names: dict[str, str] | None = None) -> tuple[str, str]:
    """(origin, explanation) of a change from behaviour ``b`` to ``c``.

    ``flax_alone``: the behaviour with the candidate's flax and the baseline's
    jax; ``jax_alone``: with the baseline's flax and the candidate's jax; None
    where that environment could not be resolved or run. ``names``: how to call
    the four environments in the explanation (keys base, cand, flax, jax).
    """
    n = {"base": "the baseline", "cand": "the candidate", "flax": "the candidate's flax with the baseline's jax",
         "jax": "the baseline's flax with the candidate's jax", **(names or {})}

    def says(key, x):
        like = f"like {n['cand']}" if x == c else f"like {n['base']}" if x == b else "like neither side"
        return f"{n[key]}: {x} ({like})"

    if flax_alone is not None and jax_alone is not None:
        text = f"{says('flax', flax_alone)}; {says('jax', jax_alone)}"
        if flax_alone == c and jax_alone == b:
            return "flax", text
        if flax_alone == b and jax_alone == c:
            return "jax", text
        if flax_alone == b and jax_alone == b:
            return "the pair", text + ": only the two together change it"
        if flax_alone == c and jax_alone == c:
            return "either", text + ": each of the two alone changes it"
        return "unclear", text
    if flax_alone is not None:
        text = f"{says('flax', flax_alone)}; {n['jax']}: no result (unresolved or not run)"
        return ("flax" if flax_alone == c else "jax or the pair" if flax_alone == b else "unclear"), text
    if jax_alone is not None:
        text = f"{n['flax']}: no result (unresolved or not run); {says('jax', jax_alone)}"
        return ("jax" if jax_alone == c else "flax or the pair" if jax_alone == b else "unclear"), text
    return "unknown", "no cross environment could be resolved or run"


def attribute(properties: list[str], base: dict, cand: dict, runner: Runner) -> dict:
    """Origins of the changed ``properties``: ``{"cross_envs": [...], "origins": {property: {...}}}``.

    ``base`` / ``cand``: as for :func:`cross_specs`, plus ``"cells"`` (property -> Cell).
    """
    out = {"cross_envs": [], "origins": {}}
    if not properties:
        return out
    vb, vc = base["versions"], cand["versions"]
    same_flax, same_jax = vb.get("flax") == vc.get("flax"), vb.get("jax") == vc.get("jax")
    specs = cross_specs(base, cand)
    with concurrent.futures.ThreadPoolExecutor(max(1, len(specs))) as pool:  # the two cross environments at once
        futures = {key: pool.submit(runner, spec, properties) for key, spec in specs.items()}
        runs = {key: f.result() for key, f in futures.items()}
    for key, spec in specs.items():
        run = runs[key]
        out["cross_envs"].append({"name": spec.name, "role": key, "note": spec.note, "requirements": spec.requirements,
                                  "exclude_newer": spec.exclude_newer, "versions": run.versions, "error": run.error})
    for p in properties:
        b, c = behaviour(base["cells"].get(p)), behaviour(cand["cells"].get(p))
        entry = {"baseline": b, "candidate": c}
        fb, jb, fc, jc = vb.get("flax"), vb.get("jax"), vc.get("flax"), vc.get("jax")
        if same_flax and same_jax:
            entry["origin"] = "neither"
            entry["explanation"] = f"flax {fb} and jax {jb} on both sides: another dependency changed it"
        elif same_jax:
            entry["origin"], entry["explanation"] = "flax", f"jax {jb} on both sides; flax {fb} -> {fc}"
        elif same_flax:
            entry["origin"], entry["explanation"] = "jax", f"flax {fb} on both sides; jax {jb} -> {jc}"
        else:
            seen = {k: (behaviour(r.cells.get(p)) if r.cells is not None else None) for k, r in runs.items()}
            names = {"base": f"flax {fb} + jax {jb}", "cand": f"flax {fc} + jax {jc}",
                     "flax": f"flax {fc} + jax {jb}", "jax": f"flax {fb} + jax {jc}"}
            entry["origin"], entry["explanation"] = origin_of(b, c, seen.get("flax"), seen.get("jax"), names)
            entry["cross"] = seen
        out["origins"][p] = entry
    return out


# --- bisection over flax releases ---------------------------------------------------------------


def releases_between(releases: list[str], low: str, high: str) -> list[str]:
    """Final releases ``low < v <= high`` in version order (pre-releases, dev and yanked ones already left out)."""
    from packaging.version import Version

    lo, hi = Version(low), Version(high)
    return sorted((v for v in releases if lo < Version(v) <= hi and not Version(v).is_prerelease
                   and not Version(v).is_devrelease), key=Version)


def releases_from(releases: list[str], baseline: str, candidate: str) -> list[str]:
    """The releases to search, in order from the baseline towards the candidate, the candidate's last.

    Upgrading: ``baseline < v <= candidate``, oldest first. Going back to an
    older release: ``candidate <= v < baseline``, newest first.
    """
    from packaging.version import Version

    if Version(candidate) >= Version(baseline):
        return releases_between(releases, baseline, candidate)
    lo, hi = Version(candidate), Version(baseline)
    return sorted((v for v in releases if lo <= Version(v) < hi and not Version(v).is_prerelease
                   and not Version(v).is_devrelease), key=Version, reverse=True)


def search_steps(b: str, c: str, outcome_at: Callable[[int], str | None], n: int) -> dict:
    """Every step between behaviours over releases ``0..n-1`` (index -1 is the baseline ``b``, n-1 the candidate ``c``).

    ``outcome_at(i)`` -> behaviour at release i, None where it cannot be run
    (that release is left out). Binary search on every interval whose two ends
    differ: with two behaviours that is one flip; with more (a bitwise
    property's values: every routing change) each is found, on the assumption
    that a value, once gone, does not come back. Returns ``{"tested": {i:
    behaviour}, "unknown": [...]}``; :func:`steps_of` reads the steps off it.
    """
    known: dict[int, str] = {-1: b, n - 1: c}
    unknown: list[int] = []

    def segment(lo: int, hi: int) -> None:
        while True:
            inner = [i for i in range(lo + 1, hi) if i not in unknown]
            if not inner:
                return
            mid = inner[len(inner) // 2]
            o = outcome_at(mid)
            if o is not None:
                break
            unknown.append(mid)
        known[mid] = o
        if o != known[lo]:
            segment(lo, mid)
        if o != known[hi]:
            segment(mid, hi)

    if b != c and n:
        segment(-1, n - 1)
    return {"tested": {i: o for i, o in known.items() if i >= 0}, "unknown": unknown}


def steps_of(b: str, tested: dict[int, str]) -> list[tuple[int, int]]:
    """(last index before, first index after) for each change of behaviour along the tested releases."""
    seq = [(-1, b)] + sorted(tested.items())
    return [(i, j) for (i, x), (j, y) in zip(seq, seq[1:]) if x != y]


def bisect_changes(properties: list[str], base: dict, cand: dict, releases: list[str],
                   run_release: Callable[[str, list[str]], EnvRun], memo: dict | None = None) -> dict:
    """The first release of each change, and of every later step of it: ``{property: {...}}``.

    ``releases``: the flax releases from the baseline's towards the candidate's,
    the candidate's last (:func:`releases_from`). ``run_release(version,
    properties)`` runs the properties with that flax and the jax of its time;
    each release runs once, for every changed property at once (memoised).
    ``steps`` lists each change of behaviour found on the way (a bitwise
    property with a fingerprint can step several times: A -> B -> C).
    """
    memo = {} if memo is None else memo  # release -> EnvRun, shared by candidates
    n = len(releases)
    if n and cand.get("cells") is not None and releases[-1] not in memo:
        memo[releases[-1]] = EnvRun(cand["cells"], cand.get("versions", {}), spec=cand.get("spec"))

    def run(i: int) -> EnvRun:
        v = releases[i]
        if v not in memo:
            memo[v] = run_release(v, properties)
        return memo[v]

    def at(p):
        def outcome(i):
            r = run(i)
            return behaviour(r.cells.get(p)) if r.cells is not None else None
        return outcome

    def release_and_jax(i):
        if i < 0:
            return base.get("versions", {}).get("flax", "the baseline"), base.get("versions", {}).get("jax")
        return releases[i], run(i).versions.get("jax")

    out = {}
    for p in properties:
        b, c = behaviour(base["cells"].get(p)), behaviour(cand["cells"].get(p))
        if not n:
            out[p] = {"first": None, "explanation": "no release between the two sides"}
            continue
        found = search_steps(b, c, at(p), n)
        tested = found["tested"]
        # The release after each step: still the new behaviour? (binary search saw only the ends of each interval)
        for _, hi in steps_of(b, tested):
            if hi + 1 < n and hi + 1 not in tested and hi + 1 not in found["unknown"]:
                o = at(p)(hi + 1)
                if o is not None:
                    tested[hi + 1] = o
                else:
                    found["unknown"].append(hi + 1)
        steps = steps_of(b, tested)
        runs = [o for _, o in [(-1, b)] + sorted(tested.items())]
        runs = [o for k, o in enumerate(runs) if k == 0 or o != runs[k - 1]]  # behaviours in order, repeats merged
        contradictions = sorted({o for o in runs if runs.count(o) > 1})  # a behaviour that came back
        entries = []
        for lo, hi in steps:
            (prev, jprev), (first, jfirst) = release_and_jax(lo), release_and_jax(hi)
            entries.append({"previous": prev, "first": first, "previous_jax": jprev, "first_jax": jfirst,
                            "from": tested.get(lo, b), "to": tested[hi]})
        if not entries:  # the candidate's own behaviour was seen by no tested release (cannot happen with c != b)
            entries = [{"previous": None, "first": None, "previous_jax": None, "first_jax": None, "from": b, "to": c}]
        e0 = entries[0]
        text = "; ".join(f"{e['previous']} (jax {e['previous_jax'] or '?'}) {e['from']} -> "
                         f"{e['first']} (jax {e['first_jax'] or '?'}) {e['to']}" for e in entries)
        text += "; tested " + ", ".join(f"{releases[i]} {o}" for i, o in sorted(tested.items()))
        if found["unknown"]:
            text += "; could not run " + ", ".join(releases[i] for i in sorted(found["unknown"]))
        if contradictions:
            text += ("; NOT MONOTONE (bisection assumes a behaviour, once gone, does not come back): "
                     + ", ".join(f"{releases[i]} {o}" for i, o in sorted(tested.items()) if o in contradictions))
        out[p] = {"first": e0["first"], "previous": e0["previous"], "first_jax": e0["first_jax"],
                  "previous_jax": e0["previous_jax"], "steps": entries, "monotone": not contradictions,
                  "tested": {releases[i]: o for i, o in sorted(tested.items())},
                  "unknown": [releases[i] for i in sorted(found["unknown"])], "explanation": text}
    return out


def attribute_boundaries(bisected: dict, base: dict, memo: dict[str, EnvRun], runner: Runner) -> None:
    """Attribution at each bisection boundary (the release before and the first release showing a change).

    Adds ``"origin"`` and ``"origin_explanation"`` to each entry of
    ``bisected``; the cross environments of a boundary are shared by the
    changes that flip there.
    """
    by_step: dict[tuple, list[str]] = {}
    for p, b in bisected.items():
        for step in b.get("steps") or ([b] if b.get("first") else []):
            if step.get("first"):
                by_step.setdefault((step["previous"], step["first"]), []).append(p)
    for (prev, first), props in by_step.items():
        lo = memo.get(prev)
        side = lambda run: {"versions": run.versions, "cells": run.cells or {},  # noqa: E731
                            "requirements": run.spec.requirements if run.spec else [],
                            "exclude_newer": run.spec.exclude_newer if run.spec else None}
        low = side(lo) if lo is not None else base
        found = attribute(props, low, side(memo[first]), runner)
        for p in props:
            o = found["origins"][p]
            for step in bisected[p].get("steps") or []:
                if (step["previous"], step["first"]) == (prev, first):
                    step["origin"], step["origin_explanation"] = o["origin"], o["explanation"]
            if (bisected[p]["previous"], bisected[p]["first"]) == (prev, first):  # the first step
                bisected[p]["origin"], bisected[p]["origin_explanation"] = o["origin"], o["explanation"]
                bisected[p]["cross_envs"] = found["cross_envs"]
