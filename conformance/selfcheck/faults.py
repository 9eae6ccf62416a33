"""The pytest plugin that swaps a broken bridge from the fault corpus in.

    pytest --pyargs conformance -p conformance.faults --fault NAME

replaces ``flax.nnx.bridge.to_linen`` (in every xdist worker) with one whose
module misbehaves as the fault describes. The corpus: ``conformance/selfcheck/contract_faults.py``
(the contract's faults and the argument checks'), ``zoo_faults.py``, ``pipeline_faults.py`` and
``surface_faults.py`` beside it; the ToNNX direction's in ``to_nnx_faults.py`` (its seed contract) and
``to_nnx_pipeline_faults.py`` (Linen layers inside NNX models) and ``bridge_module_faults.py`` (``bridge.Module``).
"""

from __future__ import annotations

import dataclasses

from conformance.selfcheck import bridge_module_faults
from conformance.selfcheck import contract_faults
from conformance.selfcheck import pipeline_faults
from conformance.selfcheck import surface_faults
from conformance.selfcheck import to_nnx_faults
from conformance.selfcheck import to_nnx_pipeline_faults
from conformance.selfcheck import zoo_faults
from conformance.selfcheck.fault import FAULTS, Fault

CORPUS = (contract_faults, zoo_faults, pipeline_faults, surface_faults, to_nnx_faults, to_nnx_pipeline_faults,
          bridge_module_faults)  # the modules whose faults FAULTS holds, in this order (importing registers them)

# --- the swap -----------------------------------------------------------------------------------------------


def _split(xs: tuple):
    """A call's first positional argument (what the hooks see as ``x``) and the rest (passed on unchanged)."""
    return (xs[0], xs[1:]) if xs else (None, ())


def _faulty_init(f: Fault, base, self, key, xs, kw):
    """``f.init`` around the real init; given a key per stream (the zoo's init), it acts on the params key."""
    x, rest = _split(xs)
    if not isinstance(key, dict):
        return f.init(lambda s, k, x_: base.init(s, k, x_, *rest, **kw), self, key, x)
    return f.init(lambda s, k, x_: base.init(s, {**key, "params": k}, x_, *rest, **kw), self, key["params"], x)


def _faulty_apply(f: Fault, base, self, v, xs, kw):
    """``f.apply`` around the real apply; under ``mutable=`` it acts on the output and the updates pass through."""
    x, rest = _split(xs)
    if not kw.get("mutable"):
        return f.apply(lambda s, v_, x_: base.apply(s, v_, x_, *rest, **kw), self, v, x)
    updates = {}

    def output_only(s, v_, x_):
        y, upd = base.apply(s, v_, x_, *rest, **kw)
        updates["last"] = upd
        return y

    y = f.apply(output_only, self, v, x)
    return y, updates["last"]


def _faulty_apply_kw(f: Fault, inner, self, v, xs, kw):
    """``f.apply_kw`` around ``inner(self, v, xs, kw)``: the real apply, or ``f.apply``'s hook around it."""
    x, rest = _split(xs)
    return f.apply_kw(lambda s, v_, x_, kw_: inner(s, v_, (x_, *rest), kw_), self, v, x, dict(kw))


def _unbound(real_to_linen, cls, args, kwargs):
    """The real module, built outside any Linen parent: only its broken copy joins the parent (under its name)."""
    from flax.linen import module as linen_module

    linen_module._context.module_stack.append(None)
    try:
        return real_to_linen(cls, *args, **kwargs)
    finally:
        linen_module._context.module_stack.pop()


def broken_to_linen(real_to_linen, f: Fault):
    """A ``to_linen`` whose modules run ``f``'s init and apply hooks around the real ones."""
    import flax.linen as nn

    def to_linen(cls, *args, **kwargs):
        if f.construct:
            cls, args, kwargs = f.construct(cls, args, kwargs)
        if f.kwargs:
            kwargs = f.kwargs(cls, kwargs)
        module = _unbound(real_to_linen, cls, args, kwargs)
        base = type(module)
        methods = dict(f.attrs or {})
        if f.init:
            methods["init"] = lambda self, key, *xs, **kw: _faulty_init(f, base, self, key, xs, kw)
        if f.apply:
            methods["apply"] = lambda self, v, *xs, **kw: _faulty_apply(f, base, self, v, xs, kw)
        if f.apply_kw:
            inner = ((lambda s, v_, xs_, kw_: _faulty_apply(f, base, s, v_, xs_, kw_)) if f.apply
                     else (lambda s, v_, xs_, kw_: base.apply(s, v_, *xs_, **kw_)))
            methods["apply"] = lambda self, v, *xs, **kw: _faulty_apply_kw(f, inner, self, v, xs, kw)
        faulty = type(f"Faulty_{base.__name__}", (base,), methods)
        fields = {fl.name: getattr(module, fl.name) for fl in dataclasses.fields(module) if fl.init and fl.name != "parent"}
        assert isinstance(module, nn.Module)
        return faulty(**fields)

    return to_linen


ACTIVE: str | None = None  # the fault installed in this process: repro snippets re-apply it


def unknown_fault_message(name: str) -> str:
    return f"--fault {name!r} is not a fault of the corpus; one of: {', '.join(sorted(FAULTS))}"


def install(name: str) -> None:
    """Swap ``flax.nnx.bridge.to_linen`` for the broken one named ``name``."""
    global ACTIVE
    if name not in FAULTS:
        raise ValueError(unknown_fault_message(name))
    from flax.nnx import bridge

    f = FAULTS[name]
    ACTIVE = name
    if f.modules:  # a broken user module: declared as a team would, through the environment (xdist workers too)
        import os

        from conformance.modules import declare

        os.environ[declare.MODULE_ENV] = f.modules
        if not (f.patch or f.apply_kw or f.apply or f.init):
            return
    if f.reference:
        import reference

        f.reference(reference)
        return
    if f.patch:
        f.patch()
        return
    real = getattr(bridge, "_conformance_real_to_linen", bridge.to_linen)
    bridge._conformance_real_to_linen = real
    bridge.to_linen = broken_to_linen(real, f)


# --- pytest plugin ----------------------------------------------------------------------------------------


def pytest_addoption(parser):
    parser.addoption("--fault", default=None, help=f"swap in a broken bridge: one of {', '.join(sorted(FAULTS))}")
    parser.addoption("--catchers-first", action="store_true",
                     help="run the properties that catch most of the corpus first (selfcheck --first-catch)")


def catchers_first(items, order, own_source: str | None = None, first_module: str | None = None) -> list:
    """``items`` with those whose property is in ``order`` first, in that order; the rest after them.

    Within one property (and among the rest), the test of the declared module
    named ``first_module`` comes first, then tests of modules declared by
    ``own_source`` (a fault's own ``--module`` factory), then the zoo's;
    otherwise items keep their order.
    """
    rank: dict[str, int] = {}
    for i, name in enumerate(order):
        rank.setdefault(name, i)  # a name listed twice keeps its first place

    def key(item):
        params = getattr(getattr(item, "callspec", None), "params", {})
        spec = params.get("spec")
        theirs = own_source is not None and getattr(spec, "source", None) == own_source
        layer = getattr(spec, "name", params.get("declared_module"))  # a module property's spec, or a golden test's name
        named = first_module is not None and layer == first_module
        return rank.get(item.originalname or item.name.split("[")[0], len(rank)), not named, not theirs

    return sorted(items, key=key)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--catchers-first"):
        from conformance.core import config as defaults

        order = defaults.FIRST_CATCH_ORDER
        name = config.getoption("--fault")
        if name in FAULTS and FAULTS[name].area.startswith("pipelines"):
            order = defaults.PIPELINE_FIRST_CATCH_ORDER + order
        order = defaults.FAULT_FIRST_CATCHERS.get(name, ()) + order
        items[:] = catchers_first(items, order, FAULTS[name].modules if name in FAULTS else None,
                                  defaults.FAULT_FIRST_MODULES.get(name))


def pytest_configure(config):
    import pytest

    name = config.getoption("--fault")
    if name and name not in FAULTS:
        raise pytest.UsageError(unknown_fault_message(name))
    from conformance.core import jax_setup as _setup

    if name and _setup.role(config) != "controller":  # the xdist controller runs no tests and never imports jax
        install(name)  # in every process that runs tests


def pytest_report_header(config):
    name = config.getoption("--fault")
    if name:
        return [f"conformance: FAULT INJECTED: {name}: {FAULTS[name].description}"]
