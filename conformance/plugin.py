"""pytest entry point (``pytest11``): registers the suite's Hypothesis profiles.

Loaded by every pytest run in an environment where this package is installed,
so it does nothing else: registering profile names is harmless, and it lets
``--hypothesis-profile=gate`` resolve before Hypothesis configures itself, even
when the suite is collected late through ``pytest --pyargs conformance``.
Which profile is loaded by default is decided in conformance/conftest.py.
For runs of the suite it also prints the header (versions, devices, settings).
"""

from conformance import _setup

_setup.register_profiles()


def _runs_the_suite(config) -> bool:
    """True when the run collects the conformance package (by path or --pyargs)."""
    return any(str(a).split("::")[0].rstrip("/").split("/")[-1].split(".")[0] == "conformance" for a in config.args)


def pytest_report_header(config):
    if not _runs_the_suite(config):
        return None
    _setup.before_jax()  # the header lists devices: jax must start with the suite's flags
    from hypothesis import settings

    from conformance import config as defaults, report

    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(defaults.DEFAULT_PROFILE)
    return report.header_lines()


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
    from conformance import report

    for line in report.default_precision_lines():
        tr.write_line(line)
