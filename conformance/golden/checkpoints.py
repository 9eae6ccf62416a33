"""Checkpoints across the upgrade: one environment saves every module's variables with orbax, another restores them.

    python -m conformance record --checkpoint-out DIR [--module pkg.mod:factory]

writes, for the contract's module (a few shapes of the menu), the zoo and the
declared modules: ``DIR/<name>/`` (an orbax checkpoint of the variables
``init`` gave for ``PARAMS_SEED``), and ``DIR/<name>.npz`` (the evaluation-mode
output on the module's own input). The gate's baseline writes it; every side
restores each checkpoint into its own ``init``'s abstract tree and applies it
(``test_checkpoint_golden.py``). Without a baseline's directory the property
writes its own first: the same round trip within one environment.
"""

from __future__ import annotations

import json
import os

import numpy as np

from conformance.core import config

PARAMS_SEED = 0
CONTRACT_SHAPES = config.CHECKPOINT_CONTRACT_SHAPES
MANIFEST = "manifest.json"


def chosen_dir() -> str | None:
    """The baseline's checkpoint directory (``CONFORMANCE_CHECKPOINT``), or None: each property writes its own."""
    return os.environ.get(config.CHECKPOINT_DIR_ENV) or None


def contract_name(width: int, features: int) -> str:
    return f"contract-{width}x{features}"


def contract_x(width: int):
    from conformance.helpers.hypothesis_helpers import make_x

    return make_x((3, width), "float32", "uniform", 0)


# --- one module: what is saved, and what comes back --------------------------------------------------------


def contract_module(width: int, features: int):
    """(init, apply, x) of the reference module at one shape; init takes a seed."""
    import jax

    from reference import linen_module

    m = linen_module(width, features)
    return (lambda seed, x: m.init(jax.random.PRNGKey(seed), x)), m.apply, contract_x(width)


def spec_module(spec):
    """(init, apply, call) of a declared module: evaluation mode, compiled as a pipeline runs it, its first declared call."""
    from conformance.modules import module_harness as zh

    call = spec.calls[0]
    return (lambda seed, c: zh.init(spec, seed, c)), zh.jit_evaluate(spec), call  # init's errors carry their hints


def save(directory: str, name: str, init, apply, inputs, versions: dict) -> None:
    """``init(PARAMS_SEED, inputs)`` as an orbax checkpoint, and ``apply``'s output as arrays beside it."""
    from conformance.helpers import checkpoints
    from conformance.modules import module_harness as zh

    variables = init(PARAMS_SEED, inputs)
    checkpoints.orbax_save(os.path.join(os.path.abspath(directory), name), variables)
    np.savez(os.path.join(directory, f"{name}.npz"), **_encoded(zh.array_leaves(apply(variables, inputs))))
    _add_to_manifest(directory, name, {**versions, "layout": layout(variables)})


def layout(tree) -> dict:
    """``{path: [shape, dtype]}`` of every leaf: what a restore must give back (orbax casts into its target's dtype)."""
    from conformance.helpers.harness import tree_paths

    return {p: [list(np.shape(a)), str(a.dtype)] for p, a in tree_paths(tree).items()}


def restore(directory: str, name: str, init, inputs):
    """The checkpoint ``name`` restored into the abstract tree of this environment's own ``init``, and the saved output."""
    import jax

    from conformance.helpers import checkpoints

    target = jax.eval_shape(lambda: init(PARAMS_SEED, inputs))
    restored = checkpoints.orbax_restore(os.path.join(os.path.abspath(directory), name), target)
    with np.load(os.path.join(directory, f"{name}.npz")) as saved:
        outputs = _decoded({k: saved[k] for k in saved.files})
    return restored, outputs


_DTYPE = "dtype@"  # npz entry naming the dtype of an output NumPy cannot store (bfloat16 would come back as void16)


def _encoded(leaves: dict) -> dict:
    """``{key: array}`` for ``np.savez``: arrays of dtypes NumPy lacks (ml_dtypes') as their bits, their dtype beside."""
    out = {}
    for p, a in leaves.items():
        if a.dtype.kind == "V":  # bfloat16 and the other ml_dtypes
            out[_DTYPE + _key(p)] = np.array(a.dtype.name)
            a = a.view(np.dtype(f"u{a.dtype.itemsize}"))
        out[_key(p)] = a
    return out


def _decoded(saved: dict) -> dict:
    """The outputs as saved by :func:`_encoded`, each in its own dtype again."""
    import jax.numpy as jnp

    return {_path(k): (a.view(jnp.dtype(str(saved[_DTYPE + k]))) if _DTYPE + k in saved else a)
            for k, a in saved.items() if not k.startswith(_DTYPE)}


def saved_by(directory: str, name: str) -> dict:
    """The versions of the environment that wrote ``name`` (the manifest's entry)."""
    return _manifest(directory).get(name, {})


# --- the whole set ----------------------------------------------------------------------------------------


def write(directory: str, specs) -> str:
    """Every module's checkpoint under ``directory``; returns it."""
    import flax
    import jax

    os.makedirs(directory, exist_ok=True)
    versions = {"flax": flax.__version__, "jax": jax.__version__}
    for width, features in CONTRACT_SHAPES:
        save(directory, contract_name(width, features), *contract_module(width, features), versions)
    for spec in specs:
        save(directory, spec.name, *spec_module(spec), versions)
    return directory


def _key(path: str) -> str:
    return path.replace("/", "__") or "_"


def _path(key: str) -> str:
    return "" if key == "_" else key.replace("__", "/")


def _manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return json.load(fh)


def _add_to_manifest(directory: str, name: str, versions: dict) -> None:
    data = _manifest(directory)
    data[name] = versions
    with open(os.path.join(directory, MANIFEST), "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
