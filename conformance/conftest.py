"""pytest configuration of the conformance gate.

Ships inside the package, so ``pytest --pyargs conformance`` from any
directory runs with the same profiles, devices and header as a run from the
checkout. Device set-up happens here, before jax is imported; the xdist
controller, which runs no tests, never imports jax.
"""

from __future__ import annotations

from conformance.core import jax_setup as _setup

_setup.set_xla_flags()

import atexit  # noqa: E402
import pathlib  # noqa: E402
import warnings  # noqa: E402

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from conformance.core import config as defaults  # noqa: E402

_setup.register_profiles()  # also here: a run with plugin autoload off still has them


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    _setup.configure_process(config)
    from conformance.core import cachedirs

    cachedirs.use_for_hypothesis()  # also with plugin autoload off: no ./.hypothesis
    # The gate profile is the default, in a checkout or under --pyargs, with
    # or without CI set; --hypothesis-profile picks another.
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(defaults.DEFAULT_PROFILE)
    # xdist workers share the compilation cache; a worker that reads an entry
    # another is still writing recompiles and warns. Harmless, so not shown.
    config.addinivalue_line("filterwarnings", "ignore:Error reading persistent compilation cache entry")
    # Under xdist, give each worker a contiguous half of the suite and let
    # idle workers steal: workers then compile different functions at any one
    # time, and the persistent cache serves each one's executables to the
    # other. Round-robin handout sends the same compile to both workers at
    # once, and both miss the cache.
    if getattr(config.option, "dist", "no") == "load" and getattr(config.option, "numprocesses", None):
        config.option.dist = "worksteal"


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    # An xdist worker has sent the controller every report by now, and the controller waits for its process to end.
    # Python's own exit would first tear down jax's client and every program compiled in the run: 1-2 s after a full
    # run, on the wall clock of every run and gate side (benchmarks/README.md). Registered last, this handler runs
    # first at exit and ends the process there.
    if _setup.role(config) == "worker":
        atexit.register(_setup.end_worker_process)


_DECLARATION_FAILED = pytest.StashKey[bool]()


def _declared(metafunc, load):
    """``load(--module values)``; a bad declaration is a usage error naming the option and what is wrong."""
    try:
        return load(metafunc.config.getoption("conformance_modules", None))
    except (ValueError, TypeError) as exc:
        if hasattr(metafunc.config, "workerinput"):
            # A worker reports a collection error to the controller: its message alone, no traceback. (The
            # controller checked what the files tell before the workers started, as a usage error.) The worker then
            # runs nothing, as a serial run stops at the usage error (pytest_collection_modifyitems).
            metafunc.config.stash[_DECLARATION_FAILED] = True
            raise pytest.Collector.CollectError(f"usage error: {exc}") from None
        raise pytest.UsageError(str(exc)) from None


@pytest.fixture(autouse=True)
def _plain_array_leaves_deviation(request):
    """A declared layer whose plain-array leaves the bridge leaves out of its variables: every test of it is an
    expected failure naming that deviation, observed here, not assumed (premises.plain_leaves_deviation)."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    spec = params.get("spec")
    if spec is None and params.get("declared_module") is not None:  # the golden comparison names its module
        from conformance.modules import declare

        found = [s for s in declare.user_specs(request.config.getoption("conformance_modules", None))
                 if s.name == params["declared_module"]]
        spec = found[0] if found else None
    if spec is not None:
        from conformance.modules import premises

        reason = premises.plain_leaves_deviation(spec)
        if reason:
            request.node.user_properties.append(("known_deviation", reason))
            pytest.xfail(reason)


def pytest_generate_tests(metafunc):
    if "spec" in metafunc.fixturenames:
        from conformance.modules import zoo

        specs = _declared(metafunc, zoo.zoo_and_user_specs)
        metafunc.parametrize("spec", specs, ids=[s.name for s in specs])
    if "declared_module" in metafunc.fixturenames:  # one golden comparison per declared module, so a deviation can name one
        from conformance.modules import declare

        names = [s.name for s in _declared(metafunc, declare.user_specs)]
        metafunc.parametrize("declared_module", names or [None], ids=names or ["none"])
    if "mesh_platform" in metafunc.fixturenames:  # a mesh spans every device of a platform: one run per platform
        from conformance.helpers.devices import all_devices

        platforms = sorted({d.platform for d in all_devices()})
        metafunc.parametrize("mesh_platform", platforms, ids=platforms)
    if "device" in metafunc.fixturenames:
        from conformance.helpers.devices import all_devices, device_id

        ids = [device_id(d) for d in all_devices()]
        metafunc.parametrize("device", ids, ids=ids)


def _group_by_declared_module(items) -> None:
    """Within each file, a module property's tests grouped by declared module (otherwise in order).

    Under xdist each worker takes a contiguous share: a layer's tests then run
    in one process, which compiles its eager ops and its programs once,
    instead of both workers compiling each.
    """
    by_file: dict = {}
    for i, item in enumerate(items):
        spec = getattr(getattr(item, "callspec", None), "params", {}).get("spec")
        if spec is not None:
            by_file.setdefault(item.path, []).append(i)
    for positions in by_file.values():
        group = [items[i] for i in positions]
        first: dict = {}
        for it in group:
            first.setdefault(it.callspec.params["spec"].name, len(first))
        group.sort(key=lambda it: first[it.callspec.params["spec"].name])  # stable: properties keep their order
        for i, it in zip(positions, group):
            items[i] = it


def _keep_declared_modules_only(config, items) -> None:
    """--only-declared-modules: the tests parametrized by a declared module (its spec or its name); the rest deselected."""
    from conformance.modules import declare

    try:
        names = {s.name for s in declare.user_specs(config.getoption("conformance_modules", None))}
    except (ValueError, TypeError) as exc:  # on a worker whose files hold no declared-module test (_declared never ran)
        config.hook.pytest_collectreport(report=pytest.CollectReport(
            "", "failed", f"usage error: {exc}", []))  # the one line _declared reports, then no test runs
        config.hook.pytest_deselected(items=list(items))
        items[:] = []
        return
    if not names:
        raise pytest.UsageError("--only-declared-modules needs declared modules: --module PACKAGE.MODULE:FACTORY "
                                "or an entry point")

    def declared(item) -> bool:
        params = getattr(getattr(item, "callspec", None), "params", {})
        return getattr(params.get("spec"), "name", None) in names or params.get("declared_module") in names

    kept = [it for it in items if declared(it)]
    config.hook.pytest_deselected(items=[it for it in items if not declared(it)])
    items[:] = kept


def direction_of(path) -> str | None:
    """The direction a test file checks: to_nnx under properties/to_nnx/, to_linen under the rest of properties/."""
    try:
        rel = pathlib.Path(path).relative_to(_PROPERTIES)
    except ValueError:
        return None
    return "to_nnx" if rel.parts[0] == defaults.TO_NNX_PROPERTIES_DIR else "to_linen"


_PROPERTIES = pathlib.Path(defaults.PROPERTIES_DIR)


def _keep_direction_only(config, items) -> None:
    """--direction to_linen|to_nnx: the other direction's properties deselected (both: all kept)."""
    chosen = config.getoption("conformance_direction", defaults.DEFAULT_DIRECTION)
    if chosen not in defaults.DIRECTIONS:
        return
    kept, dropped = [], []
    for it in items:
        (kept if direction_of(it.path) in (None, chosen) else dropped).append(it)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept


@pytest.hookimpl(tryfirst=True)  # before a fault run's catchers-first order (conformance/selfcheck/faults.py)
def pytest_collection_modifyitems(config, items):
    from conformance.core import deviations
    from conformance.golden import references

    if config is not None and config.stash.get(_DECLARATION_FAILED, False):  # a usage error: no test runs
        config.hook.pytest_deselected(items=list(items))
        items[:] = []
        return
    if config is not None:
        _keep_direction_only(config, items)
    _group_by_declared_module(items)
    if config is not None and config.getoption("conformance_only_declared", False):
        _keep_declared_modules_only(config, items)

    versions = deviations.installed_versions()
    entries = deviations.load()
    committed: dict[tuple, bool] = {}
    factories = config.getoption("conformance_modules", None) if config is not None else None
    for item in items:
        name = getattr(item, "originalname", item.name)
        module = getattr(getattr(item, "callspec", None), "params", {}).get("declared_module")  # each chooses its record
        if (name, module) not in committed:
            committed[name, module] = references.reference_is_committed(name, module, factories)
        if not committed[name, module]:  # golden properties against another record (a gate baseline's): no deviation excuses them
            continue
        for dev in entries:
            if dev.test in (name, deviations.property_of(item.name)):  # a property, or one parametrization of it
                if dev.applies(versions):
                    item.add_marker(pytest.mark.xfail(strict=True, reason=f"known deviation ({' '.join(dev.requirements)}): {dev.reason}"))
                    item.user_properties.append(("known_deviation", dev.reason))
    defined = deviations.suite_test_names()
    for dev in entries:
        if dev.test.split("[")[0] not in defined:  # a stale or misspelt entry must not hide silently
            warnings.warn(pytest.PytestWarning(f"known_deviations.txt:{dev.line}: {dev.test!r} names no property of the suite"))
