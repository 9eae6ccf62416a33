"""pytest entry point (``pytest11``): registers the suite's Hypothesis profiles.

Loaded by every pytest run in an environment where this package is installed,
so it does little unless the run collects the suite: registering profile names
is harmless, and it lets ``--hypothesis-profile=gate`` resolve before
Hypothesis configures itself, even when the suite is collected late through
``pytest --pyargs conformance``. Which profile is loaded by default is decided
in conformance/conftest.py. For runs of the suite it also

* keeps the working directory clean: no ``.pytest_cache`` (unless
  ``-p cacheprovider`` asks for it), Hypothesis' storage under the cache directory;
* prints the header (versions, devices, settings) and a closing summary: what
  was tested (one line, even under ``-q``), known deviations, matmul precision;
* adds what was tested to the JUnit XML as testsuite properties, and writes a
  JSON report with ``--conformance-json PATH``.

Under xdist the controller never imports jax: worker gw0 measures the
jax-side lines and the devices and sends them back with its results.
"""

import json
import warnings

import pytest

from conformance.core import config as defaults
from conformance.core import jax_setup as _setup
from conformance.core import warnrecords
from conformance.numerics import drift

_setup.register_profiles()

_REPORT = "conformance_report"  # key of the jax-side summary lines (workeroutput, config.stash)
_DEVICES = "conformance_devices"  # key of the device list (workeroutput)
_SURFACE = "conformance_surface"  # key of the installed bridge's public surface (workeroutput, JUnit, JSON)
_report_key = pytest.StashKey[list]()
_devices_key = pytest.StashKey[list]()
_run_info_key = pytest.StashKey[dict]()
_surface_key = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("conformance")
    group.addoption("--conformance-json", default=None, metavar="PATH",
                    help="write a JSON report of the conformance run (outcome, drift and versions per test)")
    group.addoption(
        "--module", action="append", dest="conformance_modules", default=[], metavar="PACKAGE.MODULE:FACTORY",
        help="run the module properties (test_modules.py) on a team's own NNX layers too: a factory returning "
             "conformance.declare.ModuleSpec(s) (repeatable; entry point group flax_bridge_conformance.modules)",
    )
    group.addoption(
        "--direction", dest="conformance_direction", default=defaults.DEFAULT_DIRECTION,
        choices=defaults.DIRECTION_CHOICES,
        help="which direction's properties run: to_linen (NNX inside Linen), to_nnx (Linen inside NNX, ToNNX) or "
             f"both (default {defaults.DEFAULT_DIRECTION}); the other direction's are deselected",
    )
    group.addoption(
        "--only-declared-modules", action="store_true", dest="conformance_only_declared",
        help="run only the tests of the declared modules (--module, entry points): their module properties, "
             "golden and checkpoint tests (what `python -m conformance selfcheck --module` runs)",
    )


def _names_the_suite(args) -> bool:
    return any(str(a).split("::")[0].rstrip("/").split("/")[-1].split(".")[0] == "conformance"
               for a in args if not str(a).startswith("-"))


def _runs_the_suite(config) -> bool:
    """True when the run collects the conformance package (by path or --pyargs)."""
    return _names_the_suite(config.args)


def pytest_load_initial_conftests(early_config, parser, args):
    # A run of the suite writes nothing into the working directory: no .pytest_cache
    # (the suite is derandomized, --lf has little to offer). "-p cacheprovider" keeps it.
    named = getattr(early_config.known_args_namespace, "file_or_dir", None) or []
    if _names_the_suite(named) and not any("cacheprovider" in str(a) for a in args):
        early_config.pluginmanager.consider_pluginarg("no:cacheprovider")


def pytest_configure(config):
    from conformance.modules import declare

    for path in config.getoption("conformance_modules", None) or []:
        try:
            declare.check_factory_path(path)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    if not _runs_the_suite(config):
        return
    _load_declared_factories(config)
    from conformance.core import cachedirs

    cachedirs.use_for_hypothesis()  # not ./.hypothesis
    path = config.getoption("conformance_json", None)
    if path and _setup.role(config) != "worker":
        from conformance.reporting.jsonreport import JsonReport

        config.pluginmanager.register(JsonReport(config, path, run_info), "conformance_json_report")


def _load_declared_factories(config) -> None:
    """A factory that cannot be loaded is a usage error of one line, before collection (not a traceback in it).

    The xdist controller never imports jax: it checks what the files tell
    (found, compiles, defines the name); each process that runs tests loads
    the factories, the same ones collection uses.
    """
    from conformance.modules import declare

    given = config.getoption("conformance_modules", None)
    try:
        if _setup.role(config) == "controller":
            for path in declare.declared_factories(given):
                declare.check_factory_findable(path)
        elif _setup.role(config) == "serial":
            declare.user_specs(given)
    except (ValueError, TypeError) as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config):
    if not _runs_the_suite(config):
        return None
    from hypothesis import settings

    from conformance.core import config as defaults
    from conformance.reporting import header as report

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
    """Count this test's comparisons and record its warnings; each kept as a user property when there is one.

    The warning filters in force stay (``-W error::DeprecationWarning`` still
    raises); the warnings shown are recorded, then passed on to pytest's own summary.
    """
    drift.reset()
    with warnings.catch_warnings(record=True) as seen:
        yield
    for w in seen:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    found = drift.summary()
    if found:
        item.user_properties.append((drift.PROPERTY, json.dumps(found)))
    if seen:
        item.user_properties.append((warnrecords.PROPERTY, json.dumps(warnrecords.records(seen))))


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


def _warning_lines(tr) -> list[str]:
    """Each distinct warning the tests saw (category, message, where), with how many tests saw it."""
    seen: dict[tuple, list] = {}
    for key in ("passed", "failed", "xfailed", "skipped"):
        for r in tr.stats.get(key, []):
            for rec in warnrecords.from_properties(getattr(r, "user_properties", None)):
                seen.setdefault((rec["category"], rec["message"], rec["where"]), []).append(r.nodeid)
    lines = [f"warnings: {len(seen)} distinct warnings seen during the properties (recorded per test; the gate "
             "reports those a candidate adds)"]
    lines += [f"  warning: {c}: {m} (at {w}; {len(ids)} tests)" for (c, m, w), ids in sorted(seen.items())]
    return lines


def _jax_side_lines(with_header: bool) -> list[str]:
    from conformance.reporting import header as report

    try:
        return (report.jax_lines() if with_header else []) + report.default_precision_lines()
    except Exception as exc:  # a report, never a verdict: say why it is missing
        return [f"matmul precision: not measured ({type(exc).__name__}: {exc})"]


def _bridge_surface() -> dict:
    """The installed bridge's public surface (conformance/core/surface.py's records); the gate compares two sides'."""
    try:
        from conformance.helpers import surface

        return surface.installed()
    except Exception as exc:  # a report, never a verdict
        return {"error": f"{type(exc).__name__}: {exc}"}


def _device_ids() -> list[str]:
    try:
        from conformance.helpers.devices import all_devices, device_id

        return [device_id(d) for d in all_devices()]
    except Exception as exc:  # a report, never a verdict
        return [f"unknown ({type(exc).__name__})"]


def run_info(config) -> dict:
    """What this run tested: versions, devices, profile, fault and perturbation (cached per run)."""
    if _run_info_key in config.stash:
        return config.stash[_run_info_key]
    from conformance.core import config as defaults
    from conformance.core import versions

    found = versions.installed()
    info = {
        **{p: found.get(p, "not installed") for p in (*versions.TESTED, "python")},
        "devices": config.stash.get(_devices_key, None),
        "profile": config.getoption("hypothesis_profile", None) or defaults.DEFAULT_PROFILE,
        "fault": config.getoption("fault", None),
        "perturbation": config.getoption("perturb", None),
        "newer_than_verified": versions.newer_than_verified(found),
        "last_verified": dict(defaults.LAST_VERIFIED),
        "verification": versions.verification_note(found),
        "surface": config.stash.get(_surface_key, None),
    }
    if info["devices"] is not None:
        config.stash[_run_info_key] = info
    return info


def run_line(info: dict) -> str:
    devices = ", ".join(info["devices"]) if info["devices"] else "not reported"
    return (f"conformance: tested flax {info['flax']}, jax {info['jax']}, jaxlib {info['jaxlib']}, "
            f"python {info['python']} on [{devices}]; profile {info['profile']!r}; "
            f"fault {info['fault'] or 'none'}; perturbation {info['perturbation'] or 'none'}")


@pytest.hookimpl(tryfirst=True)  # before junitxml writes its file
def pytest_sessionfinish(session):
    config = session.config
    if not _runs_the_suite(config):
        return
    role = _setup.role(config)
    if role == "serial":
        config.stash[_report_key] = _jax_side_lines(with_header=False)
        config.stash[_surface_key] = _bridge_surface()
        config.stash[_devices_key] = _device_ids()
    elif role == "worker":
        if config.workerinput.get("workerid") == "gw0":
            config.workeroutput[_REPORT] = _jax_side_lines(with_header=True)
            config.workeroutput[_DEVICES] = _device_ids()
            config.workeroutput[_SURFACE] = _bridge_surface()
        return
    _junit_properties(config, run_info(config))


def _junit_properties(config, info: dict) -> None:
    """What was tested, as testsuite properties of the JUnit XML (controller or serial: it writes the file)."""
    try:
        from _pytest.junitxml import xml_key  # what the record_testsuite_property fixture uses
    except ImportError:  # pragma: no cover - a pytest that moved it: the summary line still says it
        return
    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    for name in (*("flax", "jax", "jaxlib", "python"), "profile", "fault", "perturbation"):
        xml.add_global_property(f"conformance_{name}", info[name] or "none")
    xml.add_global_property("conformance_devices", ", ".join(info["devices"] or []) or "not reported")
    xml.add_global_property("conformance_verification", info["verification"])
    if info.get("surface") is not None:
        xml.add_global_property(_SURFACE, json.dumps(info["surface"], sort_keys=True))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    out = getattr(node, "workeroutput", {})
    if out.get(_REPORT):
        node.config.stash[_report_key] = out[_REPORT]
    if out.get(_DEVICES):
        node.config.stash[_devices_key] = out[_DEVICES]
    if out.get(_SURFACE):
        node.config.stash[_surface_key] = out[_SURFACE]


def pytest_terminal_summary(terminalreporter, config):
    if not _runs_the_suite(config):
        return
    tr = terminalreporter
    xfailed = tr.stats.get("xfailed", [])
    fixed = [r for r in tr.stats.get("failed", []) if "XPASS(strict)" in str(getattr(r, "longrepr", ""))]
    info = run_info(config)
    tr.section("conformance")
    tr.write_line(run_line(info))  # shown under -q too: a CI log says what a green run covered
    if info["newer_than_verified"]:
        tr.write_line(f"conformance: {info['verification']}")
    tr.write_line(
        f"known deviations: {len(xfailed)} tests deviate as recorded (xfailed); "
        f"{len(fixed)} recorded deviations no longer deviate (update known_deviations.txt)"
    )
    for r in xfailed:
        tr.write_line(f"  deviation: {r.nodeid}")
    for line in _drift_lines(tr):
        tr.write_line(line)
    for line in _warning_lines(tr):
        tr.write_line(line)
    for line in config.stash.get(_report_key, []):
        tr.write_line(line)
