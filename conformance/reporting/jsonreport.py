"""``--conformance-json PATH``: a JSON report of a run of the suite.

One entry per test: its outcome (pass, fail, error, skipped, known deviation,
fixed, drift), the first line of its message, its drift record (the
``conformance_drift`` user property) and the warnings it saw (``conformance_warnings``),
beside what the run tested (versions, devices, profile, fault, perturbation, and
the bridge's public surface). Runs in the process that writes
reports (the xdist controller, or the only process), from the test reports
alone: it never imports jax.
"""

from __future__ import annotations

import json
import os

from conformance.core import warnrecords

DRIFT_PROPERTY = "conformance_drift"
DEVIATION_PREFIX = "known deviation"
OUTCOMES = ("pass", "drift", "known deviation", "skipped", "fixed", "fail", "error")


def _message(report) -> str:
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    text = crash.message if crash is not None else str(getattr(report, "longrepr", "") or "")
    if isinstance(getattr(report, "longrepr", None), tuple):  # skips: (path, line, reason)
        text = report.longrepr[2]
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _drift(report):
    for name, value in getattr(report, "user_properties", ()) or ():
        if name == DRIFT_PROPERTY:
            if isinstance(value, str):
                try:
                    return json.loads(value)
                except ValueError:
                    return {"raw": value}
            return value
    return None


def classify(report) -> str:
    """The outcome of one phase's report, in the suite's terms."""
    wasxfail = getattr(report, "wasxfail", None)
    if report.skipped:
        if wasxfail is not None:
            return "known deviation" if str(wasxfail).startswith(DEVIATION_PREFIX) else "skipped"
        return "skipped"
    if report.failed:
        if "XPASS(strict)" in str(report.longrepr):
            return "fixed"
        return "fail" if report.when == "call" else "error"
    drift = _drift(report)
    return "drift" if drift and drift.get("drifted") else "pass"


def _entry(nodeid: str) -> dict:
    name = nodeid.split("::")[-1]
    prop, _, param = name.partition("[")
    return {"nodeid": nodeid, "property": prop, "params": param.rstrip("]") or None, "outcome": "pass",
            "message": "", "drift": None, "warnings": [], "duration": 0.0}


class JsonReport:
    def __init__(self, config, path: str, run_info):
        self.config = config
        self.run_info = run_info  # config -> what this run tested (the plugin's header data)
        self.path = os.path.abspath(path)
        self.tests: dict[str, dict] = {}

    def pytest_runtest_logreport(self, report):
        entry = self.tests.setdefault(report.nodeid, _entry(report.nodeid))
        entry["duration"] = round(entry["duration"] + getattr(report, "duration", 0.0), 4)
        outcome = classify(report)
        if report.when == "call" or outcome != "pass":
            if OUTCOMES.index(outcome) >= OUTCOMES.index(entry["outcome"]) or report.when == "call":
                entry["outcome"] = outcome
                entry["message"] = _message(report) if outcome != "pass" else ""
        drift = _drift(report)
        if drift is not None:
            entry["drift"] = drift
        found = warnrecords.from_properties(getattr(report, "user_properties", None))
        if found:
            entry["warnings"] = found

    def pytest_sessionfinish(self, session, exitstatus):
        counts: dict[str, int] = {}
        for t in self.tests.values():
            counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
        data = {"tested": self.run_info(self.config), "exit_status": int(exitstatus), "counts": counts,
                "tests": list(self.tests.values())}
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "w") as fh:
            json.dump(data, fh, indent=1)
