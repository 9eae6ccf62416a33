"""pytest plugin: the tests in which a benign perturbation acts, written as JSON (a measurement, not a check).

    pytest --pyargs conformance -p conformance.faults -p conformance.benign -p benchmarks._benign_reach_probe \
        --hypothesis-profile=selfcheck --perturb NAME        # with $BENIGN_REACH_OUT naming the JSON file

A test counts when, during it, the perturbation's sampler predicate held, its
``numbers`` hook returned a replacement, or a product was re-summed
(``benign._eval_reordered``). jax's caches and the project's ``lru_cache``s are
cleared before each test, so a program one test traced and another reuses counts
for both. That clearing makes six tests of ``pipelines/test_collections.py`` fail
(they re-register a Variable type), so their reach is unknown; XLA-flag
perturbations act on every program and are not probed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import pytest

ENV = "BENIGN_REACH_OUT"
_current: dict = {"id": None}
_touched: set = set()


def _record() -> None:
    if _current["id"]:
        _touched.add(_current["id"])


def _recording(fn, acted):
    def wrapped(*args):
        out = fn(*args)
        if acted(out):
            _record()
        return out

    return wrapped


@pytest.hookimpl(tryfirst=True)  # before conformance.benign installs the perturbation
def pytest_configure(config):
    name = config.getoption("--perturb", None)
    if not name or not os.environ.get(ENV):
        return
    from conformance.selfcheck import benign

    p = benign.PERTURBATIONS[name]
    hooks = {}
    if p.sampler:
        hooks["sampler"] = _recording(p.sampler, bool)
    if p.numbers:
        hooks["numbers"] = _recording(p.numbers, lambda out: out is not None)
    benign.PERTURBATIONS[name] = dataclasses.replace(p, **hooks)
    real = benign._eval_reordered

    def eval_reordered(*args):
        _record()
        return real(*args)

    benign._eval_reordered = eval_reordered


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if os.environ.get(ENV):
        import jax

        jax.clear_caches()
        for name, mod in list(sys.modules.items()):
            if mod is not None and name.split(".")[0] in ("conformance", "reference"):
                for obj in list(vars(mod).values()):
                    if callable(getattr(obj, "cache_clear", None)):
                        try:
                            obj.cache_clear()
                        except TypeError:  # a class whose cache_clear is a method, not an lru_cache
                            pass
    _current["id"] = item.nodeid
    yield
    _current["id"] = None


def pytest_sessionfinish(session):
    out = os.environ.get(ENV)
    if out:
        with open(out, "w") as fh:
            json.dump(sorted(_touched), fh, indent=0)
