"""pytest entry point (``pytest11``): registers the suite's Hypothesis profiles.

Loaded by every pytest run in an environment where this package is installed,
so it does nothing else: registering profile names is harmless, and it lets
``--hypothesis-profile=gate`` resolve before Hypothesis configures itself, even
when the suite is collected late through ``pytest --pyargs conformance``.
Which profile is loaded by default is decided in conformance/conftest.py.
For runs of the suite it also prints the header (versions, devices, settings)
and a closing summary (known deviations, matmul precision per device).

Under xdist the controller never imports jax: worker gw0 measures the
jax-side lines and sends them back with its results.
"""

import json

import pytest

from conformance import _setup, drift

_setup.register_profiles()

_REPORT = "conformance_report"  # key of the jax-side summary lines (workeroutput, config.stash)
_report_key = pytest.StashKey[list]()


def _runs_the_suite(config) -> bool:
    """True when the run collects the conformance package (by path or --pyargs)."""
    return any(str(a).split("::")[0].rstrip("/").split("/")[-1].split(".")[0] == "conformance" for a in config.args)


def pytest_report_header(config):
    if not _runs_the_suite(config):
        return None
    from hypothesis import settings

    from conformance import config as defaults, report

    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(defaults.DEFAULT_PROFILE)
    if _setup.role(config) == "controller":
        return report.header_lines(with_jax=False) + [
            "conformance: devices, jax settings and matmul precision: reported by worker gw0 in the summary"
        ]
    _setup.before_jax()  # the header lists devices: jax must start with the suite's flags
    return report.header_lines()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Count this test's comparisons; a test that drifted carries its drift as a user property."""
    drift.reset()
    yield
    found = drift.summary()
    if found:
        item.user_properties.append((drift.PROPERTY, json.dumps(found)))


def _drift_lines(tr) -> list[str]:
    drifted = []
    for r in tr.stats.get("passed", []):
        d = drift.from_properties(getattr(r, "user_properties", None))
        if d:
            drifted.append((r.nodeid, d))
    lines = [f"numerics: {len(drifted)} passing tests drift within the error model (different bits, inside the bound; "
             f"not failures); the others are identical or compared with an exact oracle"]
    lines += [f"  drift: {nodeid}: {drift.describe(d)}" for nodeid, d in sorted(drifted)]
    return lines


def _jax_side_lines(with_header: bool) -> list[str]:
    from conformance import report

    try:
        return (report.jax_lines() if with_header else []) + report.default_precision_lines()
    except Exception as exc:  # a report, never a verdict: say why it is missing
        return [f"matmul precision: not measured ({type(exc).__name__}: {exc})"]


def pytest_sessionfinish(session):
    config = session.config
    if not _runs_the_suite(config):
        return
    role = _setup.role(config)
    if role == "serial":
        config.stash[_report_key] = _jax_side_lines(with_header=False)
    elif role == "worker" and config.workerinput.get("workerid") == "gw0":
        config.workeroutput[_REPORT] = _jax_side_lines(with_header=True)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    lines = getattr(node, "workeroutput", {}).get(_REPORT)
    if lines:
        node.config.stash[_report_key] = lines


def pytest_terminal_summary(terminalreporter, config):
    if not _runs_the_suite(config):
        return
    tr = terminalreporter
    xfailed = tr.stats.get("xfailed", [])
    fixed = [r for r in tr.stats.get("failed", []) if "XPASS(strict)" in str(getattr(r, "longrepr", ""))]
    tr.section("conformance")
    tr.write_line(
        f"known deviations: {len(xfailed)} tests deviate as recorded (xfailed); "
        f"{len(fixed)} recorded deviations no longer deviate (update known_deviations.txt)"
    )
    for r in xfailed:
        tr.write_line(f"  deviation: {r.nodeid}")
    for line in _drift_lines(tr):
        tr.write_line(line)
    for line in config.stash.get(_report_key, []):
        tr.write_line(line)
