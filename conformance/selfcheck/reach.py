"""Where each benign perturbation acts: observed in the self-check's clean run, so each benign run runs only there.

    pytest ... -p conformance.selfcheck.reach --observe-reach FILE            # the clean run writes FILE
    pytest ... -p conformance.selfcheck.reach --reach FILE --perturb NAME     # runs only the tests where NAME acts

A perturbation changes a run only where one of its hooks acts, and each hook
has its predicate (``benign.Perturbation``). The observing run installs
pass-through observers of every predicate (the real sampler, apply, call and
method lookup run unchanged) and clears jax's caches before each test, so a
program that one test traced and another reuses is traced, and observed, in
both (without that, 5 of 23 tests where ``product_reordered_under_jit`` acts in
one sample went unseen: they reused another test's trace). The project's own
``lru_cache``s are kept: they hold classes, Linen modules, graph definitions
and jitted functions (whose traces the clearing forgets), never a value a hook
computed; ``native.skeleton``'s values are replaced before use. A predicate that holds while a fixture of wider scope is set up counts
for every test that uses a fixture of that name, and one that holds outside
any test counts for every test. A test in which no predicate
of a perturbation held runs, under that perturbation, exactly as in the
observing run up to the point where a predicate would first hold, which never
comes: leaving it out of that perturbation's run changes no verdict. A
perturbation of the compiler's flags acts on every program: it runs everywhere.
"""

from __future__ import annotations

import json
import os

import pytest

_now: dict = {"test": None, "fixtures": []}
_marks: dict[str, set[str]] = {}
_ACTIVE = {"observing": False}


def _mark(name: str) -> None:
    keys = ([_now["test"]] if _now["test"] else []) + [f"fixture:{f}" for f in _now["fixtures"]]
    for key in keys or ["session"]:  # outside any test (at collection, say): it counts for every test
        _marks.setdefault(key, set()).add(name)


def observe(perturbations) -> None:
    """Pass-through observers of every predicate of ``perturbations`` (name -> ``benign.Perturbation``)."""
    import jax
    import jax._src.random as jrandom
    from flax.nnx import bridge
    from flax.nnx.bridge import wrappers

    from conformance.selfcheck import benign
    from conformance.selfcheck import tonnx_hooks

    samplers = {n: p.sampler for n, p in perturbations.items() if p.sampler}
    numbers = {n: p.numbers_when for n, p in perturbations.items() if p.numbers}
    modules = {n: p.modules_when for n, p in perturbations.items() if p.modules_when}
    nested = [n for n, p in perturbations.items() if p.nested]
    _ACTIVE["observing"] = True

    real_sampler = getattr(jrandom, "_conformance_real_truncated_normal", jrandom.truncated_normal)

    def truncated_normal(key, *args, **kwargs):
        for n, when in samplers.items():
            if when(key):
                _mark(n)
        return real_sampler(key, *args, **kwargs)

    jrandom.truncated_normal = jax.random.truncated_normal = truncated_normal

    real_apply = bridge.ToLinen.apply  # the benign hooks act on a bridged module's own apply, as this does

    def apply(self, variables, *args, **kwargs):
        x = args[0] if args else None
        if benign.reference_linear(self, variables) is not None:
            for n, when in numbers.items():
                if x is None or when(x):  # where the hook would fail, the run must run too
                    _mark(n)
        elif not benign.is_reference(self):
            for n, when in modules.items():
                if when(x):
                    _mark(n)
        return real_apply(self, variables, *args, **kwargs)

    bridge.ToLinen.apply = apply

    def call(base, self, args, kwargs):
        y = base(self, *args, **kwargs)
        if args and numbers and tonnx_hooks.dense_params(self) is not None:
            for n, when in numbers.items():
                if when(args[0]):
                    _mark(n)
        return y

    tonnx_hooks.wrap_call(call)

    if nested:
        real_method = getattr(wrappers, "_conformance_real_method_benign", wrappers._get_module_method)

        def method(module, name):
            fn = real_method(module, name)

            def run(m, *args, **kwargs):
                if benign.nested_acts(m, args):
                    for n in nested:
                        _mark(n)
                return fn(m, *args, **kwargs)

            return run

        wrappers._get_module_method = method


def reach(items, perturbations) -> dict[str, list[str]]:
    """Perturbation -> the node ids of ``items`` where it acted (its own marks, or a wider fixture's it uses)."""
    out = {}
    for n, p in perturbations.items():
        out[n] = [item.nodeid for item in items
                  if p.xla_flags or n in _marks.get(item.nodeid, ()) or n in _marks.get("session", ())
                  or any(n in _marks.get(f"fixture:{f}", ()) for f in getattr(item, "fixturenames", ()))]
    return out


# --- pytest plugin ---------------------------------------------------------------------------------------


def pytest_addoption(parser):
    parser.addoption("--observe-reach", default=None, metavar="FILE",
                     help="observe where each benign perturbation acts and write it to FILE (the self-check's clean run)")
    parser.addoption("--reach", default=None, metavar="FILE",
                     help="with --perturb: run only the tests where FILE says the perturbation acts")


def _observing(config) -> bool:
    from conformance.core import jax_setup

    return bool(config.getoption("--observe-reach")) and jax_setup.role(config) != "controller"


def pytest_configure(config):
    if config.getoption("--observe-reach") and config.getoption("--perturb", None):
        raise pytest.UsageError("--observe-reach observes the clean run: it takes no --perturb")
    if _observing(config):
        from conformance.selfcheck.benign import PERTURBATIONS

        observe(PERTURBATIONS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if not _ACTIVE["observing"]:
        yield
        return
    import jax

    jax.clear_caches()  # a program traced by an earlier test is traced again here, so its hooks are seen here
    _now["test"] = item.nodeid
    try:
        yield
    finally:
        _now["test"] = None


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    wide = _ACTIVE["observing"] and fixturedef.scope != "function"
    if wide:
        _now["fixtures"].append(fixturedef.argname)
    try:
        yield
    finally:
        if wide:
            _now["fixtures"].pop()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    path, name = config.getoption("--reach"), config.getoption("--perturb", None)
    if not path or not name or not os.path.exists(path):
        return
    with open(path) as fh:
        where = json.load(fh)["perturbations"].get(name)
    if where is None:
        return
    keep = set(where)
    deselected = [i for i in items if i.nodeid not in keep]
    if deselected:
        items[:] = [i for i in items if i.nodeid in keep]
        config.hook.pytest_deselected(items=deselected)


def pytest_sessionfinish(session):
    if not _observing(session.config):
        return
    from conformance.selfcheck.benign import PERTURBATIONS

    items = getattr(session, "items", [])
    with open(session.config.getoption("--observe-reach"), "w") as fh:
        json.dump({"tests": [i.nodeid for i in items], "perturbations": reach(items, PERTURBATIONS)}, fh, indent=1)
