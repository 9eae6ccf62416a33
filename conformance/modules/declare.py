"""Declaring modules for the suite: the zoo's, and a team's own NNX layers.

A team points the suite at its layers with a *factory*: a function of no
arguments returning one :class:`ModuleSpec` or a list of them. Name it on the
command line (repeatable), or register it as an entry point::

    pytest --pyargs conformance --module my_layers.conformance:specs
    python -m conformance gate ... --module my_layers.conformance:specs --module-path src

    # pyproject.toml of the team's package
    [project.entry-points."flax_bridge_conformance.modules"]
    my_layers = "my_layers.conformance:specs"

Every generic property (``test_modules.py``) then runs on each declared module;
the dropout and mutable-state properties run where the declaration names an
RNG stream or a mutable collection.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
from typing import Any, Callable, Mapping

ENTRY_POINT_GROUP = "flax_bridge_conformance.modules"
MODULE_OPTION = "--module"
MODULE_ENV = "CONFORMANCE_MODULES"  # space-separated factories: how xdist workers and subprocesses see --module
_SPEC_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: a cache key for compiled calls
class ModuleSpec:
    """One NNX class as a Linen pipeline uses it through ``to_linen``.

    name: the id in test names (letters, digits, ``_``, ``.``, ``-``).
    nnx_class: the NNX class; ``to_linen(nnx_class, *args, **kwargs)`` wraps it.
    args, kwargs: its constructor arguments (``rngs`` is the bridge's to give).
    inputs: example inputs, NumPy arrays; the properties apply the module to each.
    rng_streams: the RNG streams ``apply`` needs in training mode (``("dropout",)``).
    mutable: the collections ``apply`` updates in training mode (``("batch_stats",)``).
    train_kwargs / eval_kwargs: call keywords of the training and evaluation
      modes (``{"deterministic": False}`` / ``{"deterministic": True}``).
    accumulation: the longest sum any output element passes through (for
      numerical bounds); None = the module's parameter count, an upper bound.
    """

    name: str
    nnx_class: Callable
    args: tuple = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    inputs: tuple = ()
    rng_streams: tuple = ()
    mutable: tuple = ()
    train_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    eval_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    accumulation: int | None = None
    source: str = ""  # where the declaration came from (factory path or entry point)

    def __post_init__(self):
        import numpy as np

        where = f"ModuleSpec {self.name!r}" + (f" (from {self.source})" if self.source else "")
        if not isinstance(self.name, str) or not re.fullmatch(r"[\w.\-]+", self.name):
            raise ValueError(f"{where}: name must be a non-empty string of letters, digits, '_', '.', '-'")
        if not callable(self.nnx_class):
            raise TypeError(f"{where}: nnx_class must be an NNX Module class; got {self.nnx_class!r}")
        if not self.inputs:
            raise ValueError(f"{where}: inputs must hold at least one example input (a NumPy array)")
        for i, x in enumerate(self.inputs):
            if not isinstance(x, np.ndarray) or x.ndim == 0 or not np.issubdtype(x.dtype, np.floating):
                raise TypeError(f"{where}: inputs[{i}] must be a floating NumPy array with at least one axis; "
                                f"got {type(x).__name__} {getattr(x, 'dtype', '')}")
        for field in ("rng_streams", "mutable"):
            value = getattr(self, field)
            if isinstance(value, str) or not all(isinstance(s, str) and s for s in value):
                raise TypeError(f"{where}: {field} must be a tuple of names, e.g. ('dropout',); got {value!r}")
        if "params" in self.mutable:
            raise ValueError(f"{where}: mutable must not name 'params' (the optimizer owns them)")
        if self.accumulation is not None and (not isinstance(self.accumulation, int) or self.accumulation < 1):
            raise ValueError(f"{where}: accumulation must be a positive int or None; got {self.accumulation!r}")

    @property
    def collections(self) -> tuple:
        """The variable collections ``init`` must create."""
        return ("params", *self.mutable)


def check_factory_path(text: str) -> str:
    if not isinstance(text, str) or not _SPEC_RE.match(text.strip()):
        raise ValueError(f"{MODULE_OPTION} must name a factory as 'package.module:function'; got {text!r}")
    return text.strip()


def _as_specs(result, source: str) -> list[ModuleSpec]:
    items = [result] if isinstance(result, ModuleSpec) else list(result) if isinstance(result, (list, tuple)) else None
    if items is None or not all(isinstance(s, ModuleSpec) for s in items) or not items:
        raise TypeError(f"{source} must return a ModuleSpec or a non-empty list of them; got {type(result).__name__}")
    return [dataclasses.replace(s, source=source) for s in items]


def load_factory(path: str) -> list[ModuleSpec]:
    """The specs of the factory ``package.module:function``; errors name the option and what is wrong."""
    path = check_factory_path(path)
    mod_name, attr = path.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ValueError(f"{MODULE_OPTION} {path}: cannot import {mod_name!r} ({exc}); install the package "
                         f"or add its directory to PYTHONPATH (gate: --module-path)") from exc
    fn = mod
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ValueError(f"{MODULE_OPTION} {path}: {mod_name} has no attribute {attr!r}")
    if not callable(fn):
        raise TypeError(f"{MODULE_OPTION} {path}: {attr} is not callable")
    return _as_specs(fn(), path)


def entry_point_factories() -> list[str]:
    from importlib import metadata

    eps = metadata.entry_points()
    group = eps.select(group=ENTRY_POINT_GROUP) if hasattr(eps, "select") else eps.get(ENTRY_POINT_GROUP, [])
    return [ep.value for ep in group]


def declared_factories(cli: list[str] | None = None) -> list[str]:
    """Factories from the option (or, in a worker, the environment) and from entry points, in that order."""
    given = list(cli or []) or os.environ.get(MODULE_ENV, "").split()
    out = []
    for f in given + entry_point_factories():
        if f not in out:
            out.append(f)
    return out


_LOADED: dict[tuple, list[ModuleSpec]] = {}


def user_specs(cli: list[str] | None = None) -> list[ModuleSpec]:
    """The team's declared modules (loaded once per process); names must be unique."""
    key = tuple(declared_factories(cli))
    if key not in _LOADED:
        specs = [s for f in key for s in load_factory(f)]
        names = [s.name for s in specs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"{MODULE_OPTION}: module names must be unique; {dup} declared twice")
        _LOADED[key] = specs
    return _LOADED[key]
