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

import contextlib
import dataclasses
import importlib
import importlib.util
import os
import re
import sys
from typing import Any, Callable, Mapping

ENTRY_POINT_GROUP = "flax_bridge_conformance.modules"
MODULE_OPTION = "--module"
MODULE_ENV = "CONFORMANCE_MODULES"  # space-separated factories: how xdist workers and subprocesses see --module
# How a layer changes between training and evaluation (ModuleSpec.mode_switch).
MODE_SWITCHES = ("keywords", "train_eval")
_SPEC_RE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


@dataclasses.dataclass(frozen=True)
class Call:
    """One example call: positional and keyword arguments, each any pytree (tuple, list, dict, None) of NumPy arrays.

    Any dtype: integer and boolean leaves (token ids, masks) take part in every
    property except those that differentiate or perturb inputs. Flags that pick
    a code path (``train``, ``deterministic``) are not inputs: declare them in
    ``ModuleSpec.init_kwargs`` / ``train_kwargs`` / ``eval_kwargs``.
    """

    args: tuple = ()
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def leaves(self) -> list[tuple[str, Any]]:
        """``[("args[0]", array), ("kwargs['mask']", array), ...]``: every leaf, named as the declaration names it."""
        out: list = []
        _walk(tuple(self.args), "args", out)
        _walk(dict(self.kwargs), "kwargs", out)
        return out


def as_call(x) -> Call:
    """An example call: a :class:`Call` as it is, a bare array as the call's one positional argument."""
    return x if isinstance(x, Call) else Call(args=(x,))


def rngs_outside_training(method, call_rngs: str) -> dict:
    """What a ``call_rngs`` layer is given for its ``nnx.Rngs`` when not training (init, evaluation).

    ``{call_rngs: None}`` when ``method`` requires that argument, as flax's
    MNIST example does (``model(x, rngs)`` in training, ``model(x, None)`` in
    evaluation); ``{}`` when it has a default, which then stands. Read from the
    method's own signature.
    """
    import inspect

    try:
        param = inspect.signature(method).parameters.get(call_rngs)
    except (TypeError, ValueError):  # no signature to read (a builtin): leave the call as declared
        return {}
    required = param is not None and param.default is inspect.Parameter.empty and param.kind not in (
        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {call_rngs: None} if required else {}


def _walk(node, where: str, out: list) -> None:
    if isinstance(node, (tuple, list)):
        for i, v in enumerate(node):
            _walk(v, f"{where}[{i}]", out)
    elif isinstance(node, dict):
        for k, v in node.items():
            _walk(v, f"{where}[{k!r}]", out)
    elif node is not None:
        out.append((where, node))


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: a cache key for compiled calls
class ModuleSpec:
    """One NNX class as a Linen pipeline uses it through ``to_linen``.

    name: the id in test names (letters, digits, ``_``, ``.``, ``-``).
    nnx_class: the NNX class; ``to_linen(nnx_class, *args, **kwargs)`` wraps it.
    args, kwargs: its constructor arguments (``rngs`` is the bridge's to give).
    inputs: example calls; each a NumPy array (the call's one positional
      argument) or a :class:`Call` (any positional and keyword arguments, any
      pytrees of arrays of any dtype). The properties apply the module to each.
    method: the NNX method to call (``"encode"``); None: ``__call__``.
    batch_axis: the axis of every input array that holds independent rows the
      layer also accepts one at a time (the vmap property maps over it); None
      when the layer needs its batch axis (convolutions, RNNs over (batch,
      time, ...)) or has none: the property then maps over a new leading axis
      of whole example calls.
    rng_streams: the RNG streams ``apply`` needs in training mode (``("dropout",)``).
    mutable: the collections ``apply`` updates in training mode
      (``("batch_stats",)``). A team's own ``nnx.Variable`` subclass lives in
      a collection named after the class (``class Count(nnx.Variable)`` ->
      ``"Count"``), or the name given to ``nnx.register_variable_name``.
    init_kwargs / train_kwargs / eval_kwargs: call keywords of ``init`` and of
      the training and evaluation modes (``{"deterministic": True}`` /
      ``{"deterministic": False}`` / ``{"deterministic": True}``).
    mode_switch: how the layer changes mode. ``"keywords"`` (default): by the
      call keywords above. ``"train_eval"``: by NNX's own ``module.train()`` /
      ``module.eval()`` (what ``nnx.view(model, deterministic=...,
      use_running_average=...)`` sets), which the suite calls on the bridged
      module before each call; ``init`` runs in training mode, as a freshly
      built NNX module does.
    call_rngs: the call's keyword that takes an ``nnx.Rngs`` (the NNX MNIST
      tutorial's ``__call__(self, x, rngs=None)``). In training mode the suite
      passes ``nnx.Rngs`` holding one key per declared ``rng_streams``;
      evaluation mode passes none, as the tutorial's eval step does.
    readonly: collections ``init`` creates that ``apply`` only reads (an
      inference-mode BatchNorm's ``("batch_stats",)``): given to every apply,
      never made mutable.
    created: collections the call creates that ``init`` does not (a Variable
      assigned inside ``__call__``, like the NNX VAE example's ``Loss``):
      training-mode ``apply`` collects them with ``mutable=``.
    accumulation: accepted from older declarations and checked, no longer
      used: every bound now comes from the running-error analysis of the
      computation itself (docs/error-model.md, section 11).
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
    method: str | None = None
    batch_axis: int | None = 0
    init_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    mode_switch: str = "keywords"
    call_rngs: str | None = None
    readonly: tuple = ()
    created: tuple = ()

    def __post_init__(self):
        where = f"ModuleSpec {self.name!r}" + (f" (from {self.source})" if self.source else "")
        if not isinstance(self.name, str) or not re.fullmatch(r"[\w.\-]+", self.name):
            raise ValueError(f"{where}: name must be a non-empty string of letters, digits, '_', '.', '-'")
        if not callable(self.nnx_class):
            raise TypeError(f"{where}: nnx_class must be an NNX Module class; got {self.nnx_class!r}")
        if isinstance(self.inputs, (str, bytes)) or not isinstance(self.inputs, (tuple, list)) or not self.inputs:
            raise ValueError(f"{where}: inputs must be a non-empty tuple of example calls (NumPy arrays or Call(...)); "
                             f"got {type(self.inputs).__name__}")
        for i, call in enumerate(self.calls):
            _check_call(where, i, call, self.batch_axis)
        for field in ("rng_streams", "mutable", "readonly", "created"):
            value = getattr(self, field)
            if isinstance(value, str) or not isinstance(value, (tuple, list)) or not all(
                    isinstance(s, str) and s for s in value):
                raise TypeError(f"{where}: {field} must be a tuple of names, e.g. ('dropout',); got {value!r}")
        for field in ("mutable", "readonly", "created"):
            if "params" in getattr(self, field):
                raise ValueError(f"{where}: {field} must not name 'params' (init creates them; the optimizer owns them)")
        named = [c for field in ("mutable", "readonly", "created") for c in getattr(self, field)]
        twice = sorted({c for c in named if named.count(c) > 1})
        if twice:
            raise ValueError(f"{where}: a collection belongs to one of mutable, readonly and created; {twice} "
                             "is named more than once")
        if self.mode_switch not in MODE_SWITCHES:
            raise ValueError(f"{where}: mode_switch must be one of {MODE_SWITCHES}; got {self.mode_switch!r}")
        if self.call_rngs is not None and (not isinstance(self.call_rngs, str) or not self.call_rngs.isidentifier()):
            raise ValueError(f"{where}: call_rngs must name the call's keyword that takes an nnx.Rngs (e.g. 'rngs') "
                             f"or be None; got {self.call_rngs!r}")
        if self.call_rngs is not None and not self.rng_streams:
            raise ValueError(f"{where}: call_rngs={self.call_rngs!r} needs rng_streams, the streams its nnx.Rngs "
                             "holds in training mode, e.g. ('dropout',)")
        for field in ("kwargs", "init_kwargs", "train_kwargs", "eval_kwargs"):
            value = getattr(self, field)
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise TypeError(f"{where}: {field} must be a dict of keyword arguments; got {value!r}")
        if self.method is not None and (not isinstance(self.method, str) or not callable(
                getattr(self.nnx_class, self.method, None))):
            raise ValueError(f"{where}: method must name a method of {getattr(self.nnx_class, '__name__', '?')}; "
                             f"got {self.method!r}")
        if self.batch_axis is not None and (isinstance(self.batch_axis, bool) or not isinstance(self.batch_axis, int)
                                            or self.batch_axis < 0):
            raise ValueError(f"{where}: batch_axis must be a non-negative int or None; got {self.batch_axis!r}")
        if self.accumulation is not None and (not isinstance(self.accumulation, int) or self.accumulation < 1):
            raise ValueError(f"{where}: accumulation must be a positive int or None; got {self.accumulation!r}")

    @property
    def calls(self) -> tuple:
        """The example calls, each a :class:`Call` (a bare array is the call's one positional argument)."""
        return tuple(c if isinstance(c, Call) else Call(args=(c,)) for c in self.inputs)

    def declared(self) -> str:
        """How failures name the declaration: ``ModuleSpec 'name' (from pkg.mod:factory)``."""
        return f"ModuleSpec {self.name!r}" + (f" (from {self.source})" if self.source else "")

    @property
    def collections(self) -> tuple:
        """The variable collections ``init`` must create."""
        return ("params", *self.mutable, *self.readonly)

    @property
    def collected(self) -> tuple:
        """The collections training-mode ``apply`` is given as ``mutable=``: updated ones, then created ones."""
        return (*self.mutable, *self.created)


def check_factory_path(text: str) -> str:
    if not isinstance(text, str) or not _SPEC_RE.match(text.strip()):
        raise ValueError(f"{MODULE_OPTION} must name a factory as 'package.module:function'; got {text!r}")
    return text.strip()


def _as_specs(result, source: str) -> list[ModuleSpec]:
    items = [result] if isinstance(result, ModuleSpec) else list(result) if isinstance(result, (list, tuple)) else None
    if items is None or not all(isinstance(s, ModuleSpec) for s in items) or not items:
        raise TypeError(f"{source} must return a ModuleSpec or a non-empty list of them; got {type(result).__name__}")
    return [dataclasses.replace(s, source=source) for s in items]


@contextlib.contextmanager
def _invocation_dir_importable():
    """The working directory on ``sys.path`` while a factory is looked up, as ``python -m pytest`` has it.

    Plain ``pytest`` (and an xdist worker) does not put the directory it runs
    in on ``sys.path``; a team's factory beside its tests must import either
    way. Only for the lookup: the suite's own imports stay as pytest made them.
    """
    cwd = os.getcwd()
    present = any(os.path.abspath(p or os.curdir) == cwd for p in sys.path)
    if not present:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if not present and cwd in sys.path:
            sys.path.remove(cwd)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no message"
    return f"{type(exc).__name__}: {text}"


def check_factory_findable(path: str) -> None:
    """Without running any of its code: the factory's module exists, compiles, and defines the name.

    For a process that must not import the team's layers (the xdist controller
    never imports jax): what can be told from the files alone. Silent where a
    finder it cannot read (an editable install's) or a dynamic module leaves
    the answer open; :func:`load_factory` then tells in each worker.
    """
    import ast
    from importlib.machinery import PathFinder

    path = check_factory_path(path)
    mod_name, attr = path.split(":")
    parts = mod_name.split(".")
    if parts[0] in sys.modules:
        return  # already imported: the import will tell
    with _invocation_dir_importable():
        spec = importlib.util.find_spec(parts[0])  # a top-level name: found without running its code
        for i in range(len(parts)):
            if spec is None:
                raise ValueError(f"{MODULE_OPTION} {path}: cannot import {mod_name!r} (ModuleNotFoundError: No module "
                                 f"named {'.'.join(parts[: i + 1])!r}); install the package, run from the directory that "
                                 "holds it, or add that directory to PYTHONPATH (gate: --module-path)")
            if i + 1 < len(parts):
                if spec.submodule_search_locations is None:
                    return  # not a package on a path: the import will tell
                spec = PathFinder.find_spec(".".join(parts[: i + 2]), list(spec.submodule_search_locations))
    if spec is None or not spec.has_location or not str(spec.origin).endswith(".py"):
        return
    try:
        with open(spec.origin, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), filename=spec.origin)
    except SyntaxError as exc:
        raise ValueError(f"{MODULE_OPTION} {path}: importing {mod_name!r} raised {_one_line(exc)}") from None
    except OSError:
        return
    defined, dynamic = set(), False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                dynamic |= a.name == "*"
                defined.add((a.asname or a.name).split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                defined |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        else:
            dynamic = True  # if/try/with/loops may define names: no verdict from the file alone
    if not dynamic and "__getattr__" not in defined and attr.split(".")[0] not in defined:
        raise ValueError(f"{MODULE_OPTION} {path}: {mod_name} has no attribute {attr!r}")


def load_factory(path: str) -> list[ModuleSpec]:
    """The specs of the factory ``package.module:function``; errors name the option and what is wrong.

    A factory that cannot be imported (not found, a syntax error, an exception
    while importing, no such attribute) or that raises is a ValueError of one
    line: the suite turns it into a usage error, not a collection traceback.
    """
    path = check_factory_path(path)
    mod_name, attr = path.split(":")
    with _invocation_dir_importable():
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as exc:
            raise ValueError(f"{MODULE_OPTION} {path}: cannot import {mod_name!r} ({_one_line(exc)}); install the "
                             f"package, run from the directory that holds it, or add that directory to PYTHONPATH "
                             f"(gate: --module-path)") from exc
        except Exception as exc:  # SyntaxError, or anything the module raises at import
            raise ValueError(f"{MODULE_OPTION} {path}: importing {mod_name!r} raised {_one_line(exc)}") from exc
        fn = mod
        for part in attr.split("."):
            fn = getattr(fn, part, None)
            if fn is None:
                raise ValueError(f"{MODULE_OPTION} {path}: {mod_name} has no attribute {attr!r}")
        if not callable(fn):
            raise TypeError(f"{MODULE_OPTION} {path}: {attr} is not callable")
        try:
            result = fn()
        except (ValueError, TypeError):  # a declaration's own check names its field: keep its message
            raise
        except Exception as exc:
            raise ValueError(f"{MODULE_OPTION} {path}: calling {attr}() raised {_one_line(exc)}") from exc
    return _as_specs(result, path)


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


def _check_call(where: str, i: int, call, batch_axis) -> None:
    import numpy as np

    if not isinstance(call, Call):
        raise TypeError(f"{where}: inputs[{i}] must be a NumPy array or a Call(args=..., kwargs=...); "
                        f"got {type(call).__name__}")
    if not isinstance(call.args, (tuple, list)) or not isinstance(call.kwargs, Mapping):
        raise TypeError(f"{where}: inputs[{i}] must have a tuple of args and a dict of kwargs")
    leaves = call.leaves()
    if not leaves:
        raise ValueError(f"{where}: inputs[{i}] holds no array")
    for name, leaf in leaves:
        if not isinstance(leaf, (np.ndarray, np.generic)):
            flag = isinstance(leaf, (bool, int, float, str))
            raise TypeError(f"{where}: inputs[{i}].{name} must be a NumPy array (or a tuple, list or dict of them); "
                            f"got {type(leaf).__name__}" + ("; a flag that picks a code path goes in init_kwargs, "
                                                           "train_kwargs and eval_kwargs" if flag else ""))
        if batch_axis is not None and np.ndim(leaf) <= batch_axis:
            raise ValueError(f"{where}: inputs[{i}].{name} has shape {np.shape(leaf)}, no axis {batch_axis} for "
                             f"batch_axis={batch_axis}; declare batch_axis=None if the layer has no batch axis of rows")
