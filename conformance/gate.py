"""The upgrade gate: the suite in a baseline and in candidate environments, side by side.

    python -m conformance gate --baseline flax==0.12.8 --candidate flax==0.9.0 [--candidate ...]

Each side gets an isolated virtual environment built with uv and resolved as of
its flax release (``--exclude-newer`` the day after the wheel's PyPI upload),
the side's requirements plus this project's own dependencies, then this suite:
a wheel of the installed distribution running the gate (conformance/dist.py),
or the checkout given with ``--project``. Without uv it falls back to venv and
pip (resolution then not dated: pip has no ``--exclude-newer``). The suite runs in every
environment (``pytest --pyargs conformance`` from a temporary directory), the
JUnit XMLs become a matrix property x environment, and a candidate *regresses*
when a property that passes on the baseline fails on it. Known deviations,
golden-record drift and skips are reported, never regressions.

The verdict logic is pure (``parse_junit`` -> ``build_matrix`` -> ``verdict``),
so tests run it on synthetic XML; environment building and pytest runs are the
only side effects and live in ``build_env`` / ``run_side``.

Exit codes: 0 no candidate regresses; 1 a candidate regresses; 2 the gate could
not decide (wrong usage, an environment would not build, or a run produced no
results).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from conformance import versions

# --- outcomes ---------------------------------------------------------------------------

PASS, SKIPPED, DEVIATION, DRIFT, FIXED, FAIL, MISSING = "pass", "skipped", "deviation", "drift", "fixed", "fail", "missing"
# Collapsing a property's device instances: the worst outcome wins.
SEVERITY = {PASS: 0, SKIPPED: 1, DEVIATION: 2, DRIFT: 3, FIXED: 4, MISSING: 5, FAIL: 6}
GOLDEN = {"test_golden_numerics": "numerics drift", "test_golden_structure": "structure change"}
DEVIATION_PREFIX = "known deviation"
DEVICE_ID = re.compile(r"^(cpu|gpu|tpu|cuda|rocm|METAL|mps):\d+$", re.I)

PYPI_JSON = "https://pypi.org/pypi/{package}/{version}/json"
PYPI_PROJECT_JSON = "https://pypi.org/pypi/{package}/json"  # fallback where the per-version endpoint is not served
# Installed versions reported per environment.
REPORTED = ("flax", "jax", "jaxlib", "numpy", "optax", "ml_dtypes", "hypothesis", "pytest", "pytest-xdist")


@dataclasses.dataclass
class Result:
    """One testcase of a JUnit XML, classified."""

    property: str
    test: str  # the full test id, device included
    outcome: str
    message: str = ""
    category: str = ""  # for drift: "numerics drift" or "structure change"


@dataclasses.dataclass
class Cell:
    """One property in one environment, device instances collapsed."""

    outcome: str
    message: str = ""
    category: str = ""
    tests: int = 0


# --- parsing ---------------------------------------------------------------------------


def property_of(name: str) -> str:
    """``test_x[cpu:0]`` -> ``test_x``; a non-device parameter stays (``test_x[a]``); device parts of ``a-cpu:0`` go."""
    m = re.match(r"^(?P<base>[^\[]+)\[(?P<param>.*)\]$", name)
    if not m:
        return name
    kept = [p for p in m.group("param").split("-") if not DEVICE_ID.match(p)]
    return m.group("base") + (f"[{'-'.join(kept)}]" if kept else "")


def _first_line(text: str | None, limit: int = 400) -> str:
    text = (text or "").strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def classify(case: ET.Element) -> Result:
    """A JUnit ``<testcase>`` as a :class:`Result`."""
    name = case.get("name", "")
    prop = property_of(name)
    for child in case:
        tag = child.tag
        msg = child.get("message") or (child.text or "")
        if tag in ("failure", "error"):
            if "XPASS(strict)" in msg:
                return Result(prop, name, FIXED, _first_line(msg.replace("[XPASS(strict)]", "").strip()))
            if prop in GOLDEN and tag == "failure":
                return Result(prop, name, DRIFT, _first_line(msg), GOLDEN[prop])
            return Result(prop, name, FAIL, _first_line(msg))
    for child in case:
        if child.tag == "skipped":
            msg = child.get("message") or (child.text or "")
            if child.get("type") == "pytest.xfail":
                if msg.startswith(DEVIATION_PREFIX):
                    return Result(prop, name, DEVIATION, _first_line(msg))
                return Result(prop, name, SKIPPED, _first_line("xfail: " + msg))
            return Result(prop, name, SKIPPED, _first_line(msg))
    return Result(prop, name, PASS)


def parse_junit(source) -> list[Result]:
    """Every testcase of a JUnit XML (a path, a file object or the XML text), classified."""
    if isinstance(source, str) and source.lstrip().startswith("<"):
        root = ET.fromstring(source)
    else:
        root = ET.parse(source).getroot()
    return [classify(c) for c in root.iter("testcase")]


def collapse(results: list[Result]) -> dict[str, Cell]:
    """One cell per property: the worst outcome of its instances, with the first message of that outcome."""
    cells: dict[str, Cell] = {}
    for r in results:
        cell = cells.get(r.property)
        if cell is None:
            cells[r.property] = Cell(r.outcome, r.message, r.category, 1)
            continue
        cell.tests += 1
        if SEVERITY[r.outcome] > SEVERITY[cell.outcome]:
            cell.outcome, cell.message, cell.category = r.outcome, r.message, r.category
        elif r.outcome == cell.outcome and not cell.message and r.message:
            cell.message = r.message
    return cells


# --- the matrix and the verdict --------------------------------------------------------------


def build_matrix(results_by_env: dict[str, list[Result] | None]) -> dict:
    """``{"properties": [...], "envs": [...], "cells": {env: {property: Cell}}}``.

    ``None`` for an environment means it produced no results: its column is
    ``missing`` throughout. Properties keep their order of first appearance.
    """
    order: list[str] = []
    seen = set()
    cells: dict[str, dict[str, Cell]] = {}
    for env, results in results_by_env.items():
        collapsed = collapse(results or [])
        cells[env] = collapsed
        for p in collapsed:
            if p not in seen:
                seen.add(p)
                order.append(p)
    for env in cells:
        for p in order:
            cells[env].setdefault(p, Cell(MISSING, "no result for this property in this environment"))
    return {"properties": order, "envs": list(results_by_env), "cells": cells}


def compare(matrix: dict, baseline: str, candidate: str) -> dict:
    """The candidate against the baseline: regressions, drift, fixed deviations and every change."""
    base, cand = matrix["cells"][baseline], matrix["cells"][candidate]
    out = {"candidate": candidate, "regressions": [], "drift": [], "fixed": [], "new_deviations": [], "changes": []}
    for p in matrix["properties"]:
        b, c = base[p], cand[p]
        if b.outcome == PASS and c.outcome in (FAIL, MISSING):
            out["regressions"].append({"property": p, "message": c.message})
        if c.outcome == DRIFT:
            out["drift"].append({"property": p, "category": c.category, "message": c.message})
        if c.outcome == FIXED:
            out["fixed"].append({"property": p, "message": c.message})
        if c.outcome == DEVIATION and b.outcome != DEVIATION:
            out["new_deviations"].append({"property": p, "message": c.message})
        if b.outcome != c.outcome:
            out["changes"].append({"property": p, "baseline": b.outcome, "candidate": c.outcome, "message": c.message})
    out["regressed"] = bool(out["regressions"])
    return out


def verdict(matrix: dict, baseline: str, candidates: list[str], errors: dict[str, str] | None = None) -> dict:
    """Per-candidate comparisons and the exit code (0 ok, 1 a candidate regresses, 2 undecided)."""
    errors = errors or {}
    comparisons = [] if baseline in errors else [compare(matrix, baseline, c) for c in candidates if c not in errors]
    if baseline in errors:
        code = 2
    elif any(c["regressed"] for c in comparisons):
        code = 1
    elif any(c in errors for c in candidates):
        code = 2
    else:
        code = 0
    return {"baseline": baseline, "candidates": candidates, "comparisons": comparisons, "errors": errors, "exit_code": code}


# --- reports -------------------------------------------------------------------------------

SYMBOL = {PASS: "pass", SKIPPED: "skip", DEVIATION: "deviation", DRIFT: "drift", FIXED: "FIXED", FAIL: "**FAIL**",
          MISSING: "**missing**"}


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(matrix: dict, result: dict, headers: dict[str, str] | None = None) -> str:
    headers = headers or {}
    envs, baseline = matrix["envs"], result["baseline"]
    regress = {(c["candidate"], r["property"]) for c in result["comparisons"] for r in c["regressions"]}
    cols = [headers.get(e, e) + (" (baseline)" if e == baseline else "") for e in envs]
    lines = ["| property | " + " | ".join(cols) + " |", "|---|" + "---|" * len(envs)]
    for p in matrix["properties"]:
        row = []
        for e in envs:
            cell = matrix["cells"][e][p]
            text = SYMBOL[cell.outcome]
            if (e, p) in regress:
                text = "**FAIL (regression)**"
            row.append(text)
        lines.append(f"| `{p}` | " + " | ".join(row) + " |")
    lines.append("")
    lines.append("Cells: pass; skip (with reason, below); deviation (a recorded known deviation, xfailed); "
                 "drift (golden record differs); FIXED (a recorded deviation no longer deviates); FAIL.")
    lines.append("")
    for e, err in result["errors"].items():
        lines.append(f"- **{headers.get(e, e)}: no verdict**: {_md(err)}")
    for c in result["comparisons"]:
        name = headers.get(c["candidate"], c["candidate"])
        state = "REGRESSES" if c["regressed"] else "no regression"
        lines.append(f"- **{name}** vs baseline: {state}")
        for r in c["regressions"]:
            lines.append(f"  - regression `{r['property']}`: {_md(r['message'])}")
        for d in c["drift"]:
            lines.append(f"  - {d['category']} `{d['property']}`: {_md(d['message'])}")
        for d in c["new_deviations"]:
            lines.append(f"  - deviation `{d['property']}`: {_md(d['message'])}")
        for d in c["fixed"]:
            lines.append(f"  - fixed `{d['property']}` (update known_deviations.txt): {_md(d['message'])}")
    skips = {}
    for e in envs:
        for p in matrix["properties"]:
            cell = matrix["cells"][e][p]
            if cell.outcome == SKIPPED:
                skips.setdefault((p, cell.message), []).append(headers.get(e, e))
    for (p, msg), where in skips.items():
        lines.append(f"- skipped `{p}` on {', '.join(where)}: {_md(msg)}")
    lines.append("")
    lines.append(f"Exit code: {result['exit_code']}")
    return "\n".join(lines) + "\n"


def to_json(matrix: dict, result: dict, envs_info: dict | None = None) -> dict:
    return {
        "baseline": result["baseline"],
        "candidates": result["candidates"],
        "exit_code": result["exit_code"],
        "environments": envs_info or {},
        "properties": matrix["properties"],
        "matrix": {e: {p: dataclasses.asdict(c) for p, c in cells.items()} for e, cells in matrix["cells"].items()},
        "comparisons": result["comparisons"],
        "errors": result["errors"],
        "wall_seconds": result.get("wall_seconds"),
    }


def to_junit(matrix: dict, result: dict) -> str:
    """One testcase per property x candidate: a failure for a regression, skipped when the candidate skipped it."""
    cases = []
    failures = skipped = 0
    by_cand = {c["candidate"]: c for c in result["comparisons"]}
    for cand in result["candidates"]:
        comp = by_cand.get(cand)
        regressions = {r["property"]: r["message"] for r in (comp["regressions"] if comp else [])}
        for p in matrix["properties"]:
            cell = matrix["cells"].get(cand, {}).get(p, Cell(MISSING))
            attrs = f'classname="gate.{escape(cand, {chr(34): "&quot;"})}" name="{escape(p, {chr(34): "&quot;"})}"'
            base = matrix["cells"].get(result["baseline"], {}).get(p, Cell(MISSING)).outcome
            if cand in result["errors"] or result["baseline"] in result["errors"]:
                why = result["errors"].get(cand) or result["errors"].get(result["baseline"])
                body = f'<error message="{escape(_first_line(why), {chr(34): "&quot;"})}" />'
                failures += 1
            elif p in regressions:
                msg = f"regression: passes on the baseline, {cell.outcome} on {cand}: {regressions[p]}"
                body = f'<failure message="{escape(msg, {chr(34): "&quot;"})}" />'
                failures += 1
            elif cell.outcome == SKIPPED:
                body = f'<skipped message="{escape(cell.message, {chr(34): "&quot;"})}" />'
                skipped += 1
            else:
                info = f"baseline {base}, candidate {cell.outcome}" + (f": {cell.message}" if cell.message else "")
                body = f"<system-out>{escape(info)}</system-out>"
            cases.append(f"  <testcase {attrs}>{body}</testcase>")
    head = (f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="conformance-gate" tests="{len(cases)}" '
            f'failures="{failures}" errors="0" skipped="{skipped}">')
    return "\n".join([head, *cases, "</testsuite>"]) + "\n"


# --- resolution dates ------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _fetch_json(url: str, timeout: float = 30.0) -> dict:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (a fixed https URL)
        return json.load(resp)


def pypi_upload_time(package: str, version: str, fetch_json=None) -> str:
    """The upload time of ``package==version`` on PyPI (its first file's ``upload_time_iso_8601``)."""
    fetch = fetch_json or _fetch_json
    try:
        urls = fetch(PYPI_JSON.format(package=package, version=version)).get("urls") or []
    except (OSError, ValueError) as exc:  # some mirrors serve only the project document: its "releases" has the same files
        try:
            urls = (fetch(PYPI_PROJECT_JSON.format(package=package)).get("releases") or {}).get(version) or []
        except (OSError, ValueError):
            raise LookupError(f"cannot look up {package}=={version} on PyPI: {exc}") from exc
    if not urls:
        raise LookupError(f"PyPI lists no files for {package}=={version}")
    return urls[0]["upload_time_iso_8601"]


def exclude_newer_after(upload_iso: str) -> str:
    """The day after the upload day, end of day UTC: ``2024-08-27T17:51:..Z`` -> ``2024-08-28T23:59:59Z``."""
    when = dt.datetime.fromisoformat(upload_iso.replace("Z", "+00:00"))
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc)
    day = when.date() + dt.timedelta(days=1)
    return f"{day.isoformat()}T23:59:59Z"


def pinned_version(requirements: list[str], package: str = "flax") -> str | None:
    """The version of an exact ``package==V`` pin among ``requirements`` (lines of a requirements file too)."""
    for line in requirements:
        line = line.split("#", 1)[0].strip()
        m = re.match(rf"^{re.escape(package)}\s*(\[[^\]]*\])?\s*===?\s*([A-Za-z0-9_.+!-]+)\s*(;.*)?$", line, re.I)
        if m:
            return m.group(2)
    return None


def normalize_date(text: str) -> str:
    """``YYYY-MM-DD`` -> that day's end (UTC); a full RFC 3339 timestamp stays as given."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        dt.date.fromisoformat(text)
        return f"{text}T23:59:59Z"
    dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return text


def resolve_exclude_newer(mode: str, requirements: list[str], lookup=None) -> tuple[str | None, str]:
    """(the ``--exclude-newer`` date or None, how it was chosen); ``lookup(package, version)`` -> upload time."""
    lookup = lookup or pypi_upload_time
    if mode in (None, "", "none"):
        return None, "latest (no --exclude-newer)"
    if mode != "auto":
        return normalize_date(mode), "given"
    version = pinned_version(requirements)
    if version is None:
        return None, "latest (no exact flax pin to date the resolution by)"
    upload = lookup("flax", version)
    return exclude_newer_after(upload), f"flax {version} uploaded {upload}"


# --- sides and environments ---------------------------------------------------------------------


@dataclasses.dataclass
class Side:
    label: str
    role: str  # "baseline" or "candidate"
    requirements: list[str]  # requirement strings (a requirements file's lines included)
    requirements_file: str | None = None
    pytest_args: list[str] = dataclasses.field(default_factory=list)
    exclude_newer: str | None = None
    exclude_newer_note: str = ""
    env: str = ""


def read_requirements(path: str | None) -> list[str]:
    if not path:
        return []
    with open(path) as fh:
        return [ln.strip() for ln in fh if ln.split("#", 1)[0].strip()]


def label_for(requirements: list[str], taken: set[str]) -> str:
    version = pinned_version(requirements)
    base = f"flax-{version}" if version else re.sub(r"[^A-Za-z0-9_.=-]+", "_", "+".join(requirements) or "env")[:60]
    label, n = base, 2
    while label in taken:
        label, n = f"{base}#{n}", n + 1
    taken.add(label)
    return label


def env_key(python_version: str, requirements: list[str], project_deps: list[str], exclude_newer: str | None) -> str:
    blob = json.dumps({"python": python_version, "requirements": sorted(requirements), "project": sorted(project_deps),
                       "exclude_newer": exclude_newer, "layout": 1}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def find_uv() -> list[str] | None:
    """The uv command (a dependency of this package), or None: then venv and pip build the environments."""
    try:
        import uv

        return [uv.find_uv_bin()]
    except (ImportError, FileNotFoundError):
        pass
    for cand in (os.path.join(os.path.dirname(sys.executable), "uv"), shutil.which("uv")):
        if cand and os.path.exists(cand):
            return [cand]
    return None


UV_MISSING = "uv not found: environments are built with venv + pip, and resolution is not dated (--exclude-newer needs uv)"
LOG_TAIL = 15  # lines of a side's log shown in the terminal when it gives no results


def log_tail(path: str, lines: int = LOG_TAIL) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def log(msg: str) -> None:
    print(f"[gate {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], logfile, **kw) -> None:
    logfile.write("$ " + " ".join(cmd) + "\n")
    logfile.flush()
    proc = subprocess.run(cmd, stdout=logfile, stderr=subprocess.STDOUT, text=True, **kw)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {proc.returncode} (see {logfile.name})")


_REFRESHED: set[str] = set()  # environments this process has installed the project into


def build_env(side: Side, cache_dir: str, python: str, project: str, logfile, deps: list[str] | None = None) -> tuple[str, dict]:
    """The side's environment (built, or reused from ``cache_dir``) with this suite freshly installed.

    ``project`` is what to install as the suite (the wheel of conformance/dist.py,
    or a checkout); ``deps`` its requirements. The dependencies are cached per
    (python, requirements, suite dependencies, exclude-newer date, installer);
    the suite itself is reinstalled every run, without its dependencies, so the
    environment always tests the suite that runs the gate.
    """
    import fcntl

    from conformance import dist

    uv = find_uv()
    pyver = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    deps = dist.dependencies(project if os.path.isdir(project) else None) if deps is None else deps
    exclude_newer = side.exclude_newer if uv else None
    key = env_key(pyver, side.requirements, deps, exclude_newer) + ("" if uv else "-pip")
    env = os.path.join(cache_dir, f"{re.sub(r'#[0-9]+$', '', side.label)}-{key}")  # sides alike share one
    env_python = os.path.join(env, "bin", "python")
    marker = os.path.join(env, "gate-env.json")
    os.makedirs(cache_dir, exist_ok=True)
    with open(env + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(marker):
            log(f"{side.label}: building {env} (exclude-newer {exclude_newer or 'none'}{'' if uv else '; venv + pip'})")
            shutil.rmtree(env, ignore_errors=True)
            if uv:
                _run([*uv, "venv", "-q", env, "--python", python], logfile)
                newer = ["--exclude-newer", exclude_newer] if exclude_newer else []
                _run([*uv, "pip", "install", "--python", env_python, *newer, *side.requirements, *deps], logfile)
            else:
                _run([python, "-m", "venv", env], logfile)
                _run([env_python, "-m", "pip", "install", "-q", *side.requirements, *deps], logfile)
            with open(marker, "w") as fh:
                json.dump({"requirements": side.requirements, "project_dependencies": deps,
                           "exclude_newer": exclude_newer, "python": pyver, "installer": "uv" if uv else "pip"},
                          fh, indent=1)
        else:
            log(f"{side.label}: reusing {env}")
        # This project, not editable and without its dependencies: the copy under test. Once per
        # environment and gate run: sides sharing an environment must not reinstall under a running suite.
        if env not in _REFRESHED:
            if uv:
                _run([*uv, "pip", "install", "-q", "--python", env_python, "--no-deps", "--reinstall-package",
                      dist.DIST, project], logfile)
            else:
                _run([env_python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", project], logfile)
            _REFRESHED.add(env)
    probe = ("import json; from importlib import metadata as m; r={}\n"
             f"for n in {list(REPORTED)!r}:\n"
             "    try: r[n]=m.version(n)\n"
             "    except m.PackageNotFoundError: pass\n"
             "import sys; r['python']=sys.version.split()[0]; print(json.dumps(r))")
    versions = json.loads(subprocess.run([env_python, "-c", probe], capture_output=True, text=True, check=True).stdout)
    return env_python, versions


def run_suite(side: Side, env_python: str, out_dir: str, profile: str, timeout: float | None, logfile) -> tuple[str, int]:
    """The suite in the side's environment, from a temporary directory; (JUnit path, pytest exit code)."""
    xml = os.path.join(out_dir, f"{side.label.replace('#', '-')}.xml")
    if os.path.exists(xml):
        os.remove(xml)
    cmd = [env_python, "-m", "pytest", "--pyargs", "conformance", "-p", "no:cacheprovider",
           f"--hypothesis-profile={profile}", f"--junitxml={xml}", "-q", *side.pytest_args]
    envvars = dict(os.environ)
    # One compilation cache per environment: its jax writes it, nobody else reads it.
    envvars.setdefault("CONFORMANCE_COMPILATION_CACHE", os.path.join(os.path.dirname(os.path.dirname(env_python)), "jax-cache"))
    envvars.pop("PYTHONPATH", None)  # the side's own suite, not the one running the gate
    with tempfile.TemporaryDirectory(prefix="conformance-gate-") as cwd:
        logfile.write("$ " + " ".join(cmd) + "\n")
        logfile.flush()
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=envvars, stdout=logfile, stderr=subprocess.STDOUT, timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = 124
    return xml, code


def run_side(side: Side, out_dir: str, cache_dir: str, python: str, project: str, profile: str,
             timeout: float | None, deps: list[str] | None = None) -> dict:
    """Build, run, parse: ``{"results": [...] or None, "versions": {...}, "error": str or None, ...}``."""
    start = time.monotonic()
    log_path = os.path.join(out_dir, f"{side.label.replace('#', '-')}.log")
    info = {"label": side.label, "role": side.role, "requirements": side.requirements,
            "exclude_newer": side.exclude_newer, "exclude_newer_note": side.exclude_newer_note,
            "pytest_args": side.pytest_args, "log": log_path, "results": None, "error": None, "versions": {}}
    with open(log_path, "w") as logfile:
        try:
            env_python, info["versions"] = build_env(side, cache_dir, python, project, logfile, deps)
            info["env"] = os.path.dirname(os.path.dirname(env_python))
            info["build_seconds"] = round(time.monotonic() - start, 1)
            info["unverified"] = versions.newer_than_verified(info["versions"])
            note = f"; {versions.verification_note(info['versions'])}" if info["unverified"] else ""
            log(f"{side.label}: running the suite (flax {info['versions'].get('flax')}, jax {info['versions'].get('jax')}){note}")
            t0 = time.monotonic()
            xml, code = run_suite(side, env_python, out_dir, profile, timeout, logfile)
            info["run_seconds"] = round(time.monotonic() - t0, 1)
            info["pytest_exit_code"] = code
            info["junit"] = xml
            if os.path.exists(xml) and code in (0, 1):
                info["results"] = parse_junit(xml)
            else:
                info["error"] = f"pytest exited {code} without usable results (see {log_path})"
        except Exception as exc:  # a side that cannot be built gives no verdict, it never crashes the gate
            info["error"] = f"{type(exc).__name__}: {exc}"
    info["seconds"] = round(time.monotonic() - start, 1)
    if info["results"] is not None:
        counts = collapse_counts(info["results"])
        log(f"{side.label}: done in {info['seconds']} s: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
    else:
        tail = log_tail(log_path)
        log(f"{side.label}: NO RESULTS after {info['seconds']} s: {info['error']}"
            + (f"\n--- last lines of {log_path} ---\n{tail.rstrip()}\n---" if tail else ""))
    return info


def collapse_counts(results: list[Result]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for cell in collapse(results).values():
        counts[cell.outcome] = counts.get(cell.outcome, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: SEVERITY[kv[0]]))


# --- the command ----------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", action="append", default=[], metavar="REQ",
                   help="a requirement of the baseline side, e.g. flax==0.12.8 (repeatable)")
    p.add_argument("--candidate", action="append", default=[], metavar="REQ",
                   help="one candidate side per use, e.g. flax==0.9.0; 'REQ,REQ' for several requirements")
    p.add_argument("--baseline-requirements", metavar="FILE", help="requirements file added to the baseline side")
    p.add_argument("--candidate-requirements", metavar="FILE",
                   help="requirements file added to every candidate (alone: one candidate from the file)")
    p.add_argument("--exclude-newer", default="auto", metavar="auto|none|DATE",
                   help="resolve as of: auto = the day after the side's flax release (PyPI upload date), "
                        "none = latest, or a date (YYYY-MM-DD or RFC 3339)")
    p.add_argument("--out", default="gate-report", help="report directory (default ./gate-report)")
    p.add_argument("--profile", default="gate", help="Hypothesis profile (default gate)")
    p.add_argument("--jobs", type=int, default=None, help="environments built and run at once (default: CPU count)")
    p.add_argument("--cache-dir", default=None,
                   help="where environments are cached (default: envs/ under the cache directory, "
                        "$CONFORMANCE_CACHE_DIR or ~/.cache/flax-bridge-conformance; or $CONFORMANCE_GATE_CACHE)")
    p.add_argument("--python", default=sys.executable, help="interpreter the environments are made from")
    p.add_argument("--project", default=None,
                   help="install the suite from this checkout (default: a wheel of the installed suite)")
    p.add_argument("--pytest-args", default="", help="extra pytest arguments for every side (one string)")
    p.add_argument("--candidate-pytest-args", default="",
                   help="extra pytest arguments for candidates only, e.g. '-p conformance.faults --fault NAME'")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds one side's pytest run may take")


def make_sides(args, lookup=None) -> list[Side]:
    import shlex

    taken: set[str] = set()
    sides = []
    base_reqs = [r for a in args.baseline for r in a.split(",") if r.strip()] + read_requirements(args.baseline_requirements)
    if not base_reqs:
        raise ValueError("--baseline (or --baseline-requirements) is required")
    cand_file = read_requirements(args.candidate_requirements)
    cand_sets = [[r for r in a.split(",") if r.strip()] + cand_file for a in args.candidate]
    if not cand_sets and cand_file:
        cand_sets = [cand_file]
    if not cand_sets:
        raise ValueError("at least one --candidate (or --candidate-requirements) is required")
    common = shlex.split(args.pytest_args)
    for role, reqs in [("baseline", base_reqs)] + [("candidate", c) for c in cand_sets]:
        extra = common + (shlex.split(args.candidate_pytest_args) if role == "candidate" else [])
        side = Side(label_for(reqs, taken), role, reqs, pytest_args=extra)
        side.exclude_newer, side.exclude_newer_note = resolve_exclude_newer(args.exclude_newer, reqs, lookup)
        sides.append(side)
    return sides


def headers_for(infos: dict[str, dict]) -> dict[str, str]:
    out = {}
    for label, info in infos.items():
        v = info.get("versions") or {}
        head = f"flax {v['flax']} (jax {v.get('jax', '?')})" if v.get("flax") else label
        if info.get("pytest_args"):
            head += " [" + " ".join(info["pytest_args"]) + "]"
        if info.get("unverified"):
            head += f" (newer than the last verified release: {versions.last_verified()})"
        out[label] = head
    return out


def write_reports(out_dir: str, matrix: dict, result: dict, infos: dict[str, dict]) -> str:
    headers = headers_for(infos)
    md = to_markdown(matrix, result, headers)
    envs_info = {k: {kk: vv for kk, vv in v.items() if kk != "results"} for k, v in infos.items()}
    with open(os.path.join(out_dir, "gate.md"), "w") as fh:
        fh.write(md)
    with open(os.path.join(out_dir, "gate.json"), "w") as fh:
        json.dump(to_json(matrix, result, envs_info), fh, indent=1)
    with open(os.path.join(out_dir, "gate-junit.xml"), "w") as fh:
        fh.write(to_junit(matrix, result))
    return md


def run(args) -> int:
    start = time.monotonic()
    try:
        sides = make_sides(args)
    except (ValueError, LookupError, OSError) as exc:  # bad arguments, or PyPI could not date a release
        print(f"python -m conformance gate: {exc}", file=sys.stderr)
        return 2
    from conformance import cachedirs, dist

    cache_dir = os.path.abspath(os.path.expanduser(args.cache_dir or cachedirs.gate_envs()))
    try:  # the suite each side installs, before anything is written
        deps = dist.dependencies(args.project)
        project, source_note = dist.install_source(args.project, cachedirs.part("wheels"))
    except (LookupError, OSError) as exc:
        print(f"python -m conformance gate: {exc}", file=sys.stderr)
        return 2
    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    jobs = max(1, args.jobs or min(len(sides), os.cpu_count() or 1))
    log(f"suite: {source_note}")
    if find_uv() is None:
        log(f"note: {UV_MISSING}")
    for s in sides:
        log(f"{s.role} {s.label}: {' '.join(s.requirements)}; exclude-newer {s.exclude_newer or 'none'} ({s.exclude_newer_note})")
    log(f"{len(sides)} environments, {jobs} at a time, profile {args.profile!r}, cache {cache_dir}, report {out_dir}")
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {s.label: pool.submit(run_side, s, out_dir, cache_dir, args.python, project, args.profile, args.timeout,
                                        deps) for s in sides}
        infos = {label: f.result() for label, f in futures.items()}
    baseline = sides[0].label
    candidates = [s.label for s in sides[1:]]
    matrix = build_matrix({label: info["results"] for label, info in infos.items()})
    errors = {label: info["error"] for label, info in infos.items() if info["error"]}
    result = verdict(matrix, baseline, candidates, errors)
    result["wall_seconds"] = round(time.monotonic() - start, 1)
    md = write_reports(out_dir, matrix, result, infos)
    print(md)
    log(f"exit {result['exit_code']} after {result['wall_seconds']} s; reports in {out_dir} (gate.md, gate.json, gate-junit.xml)")
    return result["exit_code"]


def main(argv=None) -> int:
    """``python -m conformance.gate ...`` is ``python -m conformance gate ...`` (the same checks)."""
    from conformance.__main__ import main as conformance_main

    return conformance_main(["gate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
