"""Self-check: run the suite against every fault of the corpus, every benign perturbation, and neither.

Prints fault -> the properties that caught it (or MISSED), and perturbation ->
accepted (with the drift it caused) or REJECTED by the properties that failed.
Exits non-zero if any fault survives, any perturbation is rejected, or the
clean run fails.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from conformance.core import config
from conformance.core import deviations
from conformance.core import warnrecords
from conformance.numerics import drift
from conformance.selfcheck import forked
from conformance.selfcheck import plan
from conformance.selfcheck.benign import PERTURBATIONS
from conformance.selfcheck.faults import FAULTS

CLEAN = "(no fault)"


def _pytest(fault: str | None, profile: str, out_dir: str, extra: list[str], perturb: str | None = None,
            env: dict | None = None, keep_failures: bool = False) -> dict:
    xml = os.path.join(out_dir, f"{fault or perturb or 'clean'}.xml")
    cmd = ["--pyargs", "conformance", "-q", "-p", "no:cacheprovider",
           f"--hypothesis-profile={profile}", f"--junitxml={xml}", "-p", "conformance.faults", "-p", "conformance.benign"]
    if not keep_failures:  # no one reads these failures' text: formatting a traceback through jax parses its sources
        cmd += ["--tb=no"]
    if fault:
        cmd += ["--fault", fault]
    if perturb:
        cmd += ["--perturb", perturb]
    start = time.monotonic()
    proc = forked.run_pytest(cmd + extra, cwd=out_dir, env=env)
    elapsed = time.monotonic() - start
    failed, errored, drift_records, total, warned, failed_ids, ids = set(), set(), {}, 0, {}, [], []
    failures = {}
    if os.path.exists(xml):
        for case in ET.parse(xml).iter("testcase"):
            total += 1
            ids.append(case.get("name"))
            name = case.get("name").split("[")[0]
            if case.find("failure") is not None:
                failed.add(name)
                failed_ids.append(case.get("name"))
                if keep_failures and name not in failures:  # the first failing case of each property, as pytest printed it
                    fail = case.find("failure")
                    failures[name] = (fail.get("message") or "") + "\n" + (fail.text or "")
            elif case.find("error") is not None:  # a fixture's error: the run is red, the property proved nothing
                errored.add(name)
            props = [(p.get("name"), p.get("value")) for p in case.iter("property")]
            for rec in warnrecords.from_properties(props):
                warned.setdefault(name, set()).add(warnrecords.key(rec))
            record = drift.from_properties(props)
            if record:
                drift_records[f"{case.get('classname')}::{case.get('name')}"] = record
    return {"fault": fault or (f"~{perturb}" if perturb else CLEAN), "perturbation": perturb,
            "caught_by": sorted(failed | errored), "failed": sorted(failed), "errored": sorted(errored - failed),
            "drifted": sorted({t.split("::")[-1].split("[")[0] for t in drift_records}), "drift": drift_records,
            "warnings": {p: sorted(map(list, keys)) for p, keys in warned.items()},
            "failed_ids": sorted(failed_ids), "ids": ids, "tests": total, "returncode": proc.returncode,
            "seconds": round(elapsed, 1), **({"failures": failures} if keep_failures else {}),
            "tail": proc.stdout[-2000:] if proc.returncode not in (0, 1) or not total else ""}


_REACH = ["-p", "conformance.selfcheck.reach"]


def _benign_run(perturb: str, profile: str, out_dir: str, extra: list[str], reach_file: str, env) -> dict:
    """The suite under ``perturb``, over the tests where the clean run saw it act (all of them without that record)."""
    where = None
    if os.path.exists(reach_file):
        with open(reach_file) as fh:
            seen = json.load(fh)
        where = (len(seen["perturbations"].get(perturb, seen["tests"])), len(seen["tests"]))
    if where is not None and where[0] == 0:  # acts nowhere: nothing to run, and nothing seen
        return {"fault": f"~{perturb}", "perturbation": perturb, "caught_by": [], "failed": [], "errored": [],
                "drifted": [], "drift": {}, "warnings": {}, "failed_ids": [], "ids": [], "tests": 0, "returncode": 0,
                "seconds": 0.0, "tail": "", "ran_where_it_acts": [0, where[1]]}
    result = _pytest(None, profile, out_dir, [*extra, *(_REACH + ["--reach", reach_file] if where else [])], perturb, env)
    return {**result, "ran_where_it_acts": list(where) if where else None}


def _warning_only_k(fault: str, first_catch: bool) -> list[str]:
    """A fault that only warns never fails, so --maxfail never stops its run: with --first-catch it runs only the
    properties config.FAULT_FIRST_CATCHERS names for it."""
    from conformance.core import config

    props = config.FAULT_FIRST_CATCHERS.get(fault, ())
    return ["-k", " or ".join(props)] if first_catch and FAULTS[fault].only_warns and props else []


def new_warnings(run: dict, clean: dict) -> list[str]:
    """Properties that saw a warning (category and message) the clean run's same property did not."""
    base = clean.get("warnings", {})
    return sorted(p for p, keys in run.get("warnings", {}).items()
                  if {tuple(k) for k in keys} - {tuple(k) for k in base.get(p, [])})


def seen_in(run: dict, clean: dict) -> list[str]:
    """Properties whose drift under a perturbation differs from the clean run's: where it was seen.

    A test that drifts the same way without the perturbation (a module's jit
    against eager gradients, say) says nothing about it.
    """
    base = clean.get("drift", {})
    return sorted({t.split("::")[-1].split("[")[0] for t, rec in run.get("drift", {}).items() if base.get(t) != rec})


def run(faults=None, profile: str = "selfcheck", jobs: int | None = None, extra=(), json_path: str | None = None,
        first_catch: bool = False, perturbations=None, modules=(), snippets: bool = False) -> int:
    """Run the suite per fault and per benign perturbation; ``first_catch`` stops each fault's run at its first catch.

    ``snippets``: a fault of ``config.SNIPPET_FAULTS`` runs the properties
    whose repro snippets it proves, each to its end, instead of its first
    catch, and the report keeps their failures (``failures``) for the
    project's snippet test to run.

    ``modules`` (factories, as ``--module`` takes them): every run holds only
    the declared modules' tests, and a table says which faults each module's
    properties catch. A fault no declared module catches is reported, not an
    error (most faults break what these layers may not use); the clean run and
    every benign perturbation must still pass.
    """
    names = list(FAULTS if faults is None else faults)
    benign = list(PERTURBATIONS if perturbations is None else perturbations)
    env = None
    if modules:
        extra = [*extra, *[a for m in modules for a in ("--module", m)], "--only-declared-modules"]
        # Each run starts in a directory of its own: the factories import from here, as under `python -m pytest`.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))}
    fault_extra = list(extra) + (["--maxfail=1", "--catchers-first"] if first_catch else [])
    jobs = jobs or os.cpu_count() or 1
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as out_dir:
        run_suite = functools.partial(_pytest, env=env)
        # The clean run observes where each perturbation acts (reach.py); each benign run then runs only there.
        reach_file = os.path.join(out_dir, "reach.json")
        clean_run = functools.partial(_pytest, None, profile, out_dir, [*extra, *_REACH, "--observe-reach", reach_file],
                                      None, env)
        benign_runs = [functools.partial(_benign_run, p, profile, out_dir, list(extra), reach_file, env)
                       for p in plan.benign_order(benign)]
        # A first-catch run looks first in the files of the fault's known catchers (conformance/selfcheck/plan.py);
        # a fault that only warns fails nothing, so it runs just its named catchers and is judged by their warnings.
        fault_runs = [functools.partial(plan.snippet_run, run_suite, f, profile, out_dir, list(extra), list(fault_extra))
                      if snippets and f in config.SNIPPET_FAULTS
                      else functools.partial(plan.first_catch_run, run_suite, f, profile, out_dir, list(fault_extra))
                      if first_catch and not FAULTS[f].only_warns
                      else functools.partial(_pytest, f, profile, out_dir, list(fault_extra) + _warning_only_k(f, first_catch),
                                             None, env)
                      for f in names]
        results = []
        total = 1 + len(benign_runs) + len(fault_runs)

        def report(r):
            results.append(r)
            warns = r["fault"] in FAULTS and FAULTS[r["fault"]].only_warns  # judged against the clean run, below
            good = not r["caught_by"] if r["fault"] == CLEAN or r["perturbation"] else bool(r["caught_by"]) or warns
            print(f"  [{len(results)}/{total}] {'ok' if good else '!!'} {r['fault']} ({r['seconds']} s)",
                  file=sys.stderr, flush=True)

        plan.run_clean_first(clean_run, benign_runs, fault_runs, jobs, report)
    wall = time.monotonic() - start
    by_name = {r["fault"]: r for r in results}
    clean = by_name[CLEAN]
    for n in names:  # a fault that only warns is caught by the properties that saw a warning the clean run did not
        if FAULTS[n].only_warns and not by_name[n]["caught_by"]:
            by_name[n]["caught_by"] = by_name[n]["failed"] = new_warnings(by_name[n], clean)
    missed = [n for n in names if not by_name[n]["caught_by"]]
    if names:
        width = max(len(n) for n in names)
        print(f"\n{'fault'.ljust(width)}  caught by")
        print(f"{'-' * width}  ---------")
        for n in names:
            print(f"{n.ljust(width)}  {_caught(by_name[n], '{}')}")
    if modules and names:
        print(declared_module_table(names, by_name))
    rejected = [p for p in benign if not _accepted(by_name[f"~{p}"]) and not _acts_nowhere(by_name[f"~{p}"])]
    # A perturbation no property saw proves nothing: it must show up as drift the clean run does not have.
    for p in benign:
        by_name[f"~{p}"]["seen_in"] = seen_in(by_name[f"~{p}"], clean)
    unseen = [p for p in benign if p not in rejected and not by_name[f"~{p}"]["seen_in"]]
    if benign:
        width = max(len(p) for p in benign)
        print(f"\n{'benign perturbation'.ljust(width)}  verdict")
        print(f"{'-' * width}  -------")
        for p in benign:
            r = by_name[f"~{p}"]
            if p in rejected:
                verdict = "REJECTED by " + (", ".join(r["caught_by"]) or f"pytest exit {r['returncode']}")
            elif p in unseen:
                verdict = "NOT SEEN: no property drifted, so its acceptance proves nothing"
            else:
                verdict = f"accepted; drift seen in {', '.join(r['seen_in'])}"
            if r.get("ran_where_it_acts"):
                verdict += " (run in the {} of {} tests where it acts)".format(*r["ran_where_it_acts"])
            print(f"{p.ljust(width)}  {verdict}")
    clean_ok = _accepted(clean)
    print(f"\nclean run: {'passed' if clean_ok else 'FAILED: ' + ', '.join(clean['caught_by'])} ({clean['tests']} tests)")
    # What each property proved: the faults under which its own body failed (fixture errors excluded).
    coverage: dict[str, list[str]] = {}
    for n in names:
        for prop in by_name[n]["failed"]:
            coverage.setdefault(prop, []).append(n)
    print(f"faults caught: {len(names) - len(missed)} of {len(names)}; benign perturbations accepted: "
          f"{len(benign) - len(rejected) - len(unseen)} of {len(benign)}; wall {wall:.0f} s with {jobs} jobs, profile {profile!r}")
    for r in results:
        if r["tail"]:
            print(f"\n--- {r['fault']}: pytest exited {r['returncode']}\n{r['tail']}")
    if json_path:
        with open(json_path, "w") as fh:
            json.dump({"profile": profile, "wall_seconds": round(wall, 1), "jobs": jobs, "results": results,
                       "properties": coverage, "missed": missed, "rejected": rejected, "unseen": unseen, "clean_passed": clean_ok}, fh, indent=2)
    if modules:  # a team's layers: the faults they do not catch, and perturbations they do not see, are information
        return 0 if clean_ok and not rejected else 1
    return 0 if clean_ok and not missed and not rejected and not unseen else 1


def _module_of(test_id: str) -> str:
    return test_id.partition("[")[2].rstrip("]")


def declared_module_table(faults: list[str], by_name: dict) -> str:
    """Fault x declared module: the properties of that module which failed under the fault, or "not caught"."""
    modules = sorted({_module_of(i) for r in by_name.values() for i in r.get("ids", []) if "[" in i})
    cells = {(f, m): sorted(i.split("[")[0] for i in by_name[f].get("failed_ids", []) if _module_of(i) == m)
             for f in faults for m in modules}
    width = max(len(f) for f in faults)
    lines = ["", "which faults each declared module's properties catch"]
    for m in modules:
        caught = [f for f in faults if cells[(f, m)]]
        lines.append(f"\n{m}: {len(caught)} of {len(faults)} faults caught")
        for f in faults:
            lines.append(f"  {f.ljust(width)}  {', '.join(cells[(f, m)]) or 'not caught'}")
    return "\n".join(lines)


def _caught(r: dict, fmt: str) -> str:
    """The properties that failed, then those whose fixture errored (the run is red either way)."""
    failed, errored = r.get("failed", r["caught_by"]), r.get("errored", [])
    text = ", ".join(fmt.format(p) for p in failed)
    if errored:
        text += ("; " if text else "") + "fixture errors in " + ", ".join(fmt.format(p) for p in errored)
    return text or "MISSED"


def _acts_nowhere(r: dict) -> bool:
    """A perturbation the clean run saw act in no test: not run, so unseen rather than rejected."""
    return (r.get("ran_where_it_acts") or [None])[0] == 0


def _accepted(r: dict) -> bool:
    """A run that must pass: exit 0 with tests run and none failed."""
    return r["returncode"] == 0 and r["tests"] > 0 and not r["caught_by"]


def markdown(report: dict) -> str:
    """The fault and benign tables of a ``--json`` report, as docs/selfcheck.md shows them."""
    from conformance.selfcheck.benign import PERTURBATIONS
    from conformance.selfcheck.faults import FAULTS

    by_name = {r["fault"]: r for r in report["results"]}
    lines = ["| fault | area | imitates | caught by |", "|---|---|---|---|"]
    for name, f in FAULTS.items():
        if name in by_name:
            lines.append(f"| `{name}` | {f.area} | {f.description} | {_caught(by_name[name], '`{}`')} |")
    lines += ["", "| benign perturbation | imitates | verdict | seen as drift in |", "|---|---|---|---|"]
    for name, p in PERTURBATIONS.items():
        r = by_name.get(f"~{name}")
        if r:
            verdict = "accepted" if name not in report.get("rejected", []) + report.get("unseen", []) else "**REJECTED**"
            seen = r.get("seen_in", r["drifted"])
            lines.append(f"| `{name}` | {p.description} | {verdict} | " + ", ".join(f"`{t}`" for t in seen) + " |")
    lines += ["", "| property | faults caught |", "|---|---|"]
    coverage = report.get("properties", {})
    for prop in sorted(deviations.suite_test_names()):
        caught = coverage.get(prop, [])
        lines.append(f"| `{prop}` | {len(caught)}: {', '.join(caught) or '—'} |")
    return "\n".join(lines) + "\n"
