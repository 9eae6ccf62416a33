"""Probe one environment's bridge with the zoo: prints one JSON line of facts.

    PYTHONPATH=<checkout> <env>/bin/python tools/zoo_probe.py

Used to build docs/version-matrix.md's zoo findings, release by release
(tools/zoo_matrix.py runs it in every gate environment).
"""

import hashlib
import json
import sys
import traceback

from conformance.core import jax_setup as _setup

_setup.before_jax()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from reference import _compat  # noqa: E402
from conformance.modules import zoo  # noqa: E402


def digest(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(a)).tobytes()).hexdigest()[:12]


def err(exc) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def main():
    import flax

    out = {"flax": flax.__version__, "jax": jax.__version__,
           "threefry_partitionable": bool(jax.config.jax_threefry_partitionable)}
    d = zoo.dropout_spec()
    m = _compat.to_linen(d.nnx_class, *d.args, **d.kwargs)
    x = d.inputs[0]
    try:
        m.init(jax.random.PRNGKey(0), x)
        out["dropout_init_params_key_only"] = "ok"
    except Exception as exc:  # noqa: BLE001
        out["dropout_init_params_key_only"] = err(exc)
    v = m.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, x)
    h = m.apply(v, x, deterministic=True)
    masks = {}
    for s in (0, 1):
        try:
            y = m.apply(v, x, rngs={"dropout": jax.random.PRNGKey(s)}, deterministic=False)
            masks[s] = np.asarray(y) != 0
            out[f"dropout_mask_key{s}"] = digest(masks[s])
        except Exception as exc:  # noqa: BLE001
            out[f"dropout_mask_key{s}"] = err(exc)
    if len(masks) == 2:
        out["dropout_keep_fraction_key0"] = float(masks[0].mean())
        out["dropout_keys_distinct"] = bool((masks[0] != masks[1]).any())
    # the mask with the other partitionable setting: is a change jax's?
    flag = bool(jax.config.jax_threefry_partitionable)
    jax.config.update("jax_threefry_partitionable", not flag)
    try:
        y = m.apply(v, x, rngs={"dropout": jax.random.PRNGKey(0)}, deterministic=False)
        out["dropout_mask_key0_flipped_partitionable"] = digest(np.asarray(y) != 0)
    except Exception as exc:  # noqa: BLE001
        out["dropout_mask_key0_flipped_partitionable"] = err(exc)
    jax.config.update("jax_threefry_partitionable", flag)
    # a missing rng
    try:
        y = m.apply(v, x, deterministic=False)
        out["dropout_missing_rng"] = "no error; mask " + digest(np.asarray(y) != 0) + (
            " (all kept)" if bool((np.asarray(y) != 0).all()) else "")
    except Exception as exc:  # noqa: BLE001
        out["dropout_missing_rng"] = err(exc)
    # deterministic ignores rngs
    try:
        a = m.apply(v, x, rngs={"dropout": jax.random.PRNGKey(0)}, deterministic=True)
        out["deterministic_ignores_rng"] = bool(np.array_equal(np.asarray(a), np.asarray(h)))
    except Exception as exc:  # noqa: BLE001
        out["deterministic_ignores_rng"] = err(exc)
    # batchnorm: mutable apply, with and without a dropout rng
    b = zoo.batchnorm_spec()
    mb = _compat.to_linen(b.nnx_class, *b.args, **b.kwargs)
    xb = b.inputs[0]
    try:
        vb = mb.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, xb)
        out["bn_collections"] = sorted(vb)
        try:
            y, upd = mb.apply(vb, xb, use_running_average=False, deterministic=True, mutable=["batch_stats"])
            out["bn_mutable_apply"] = "ok: " + ",".join(sorted(upd))
            from conformance.helpers.pytest_helpers import tree_paths

            out["bn_stats"] = {p: digest(a) for p, a in tree_paths(upd).items()}
        except Exception as exc:  # noqa: BLE001
            out["bn_mutable_apply"] = err(exc)
        try:
            y, upd = mb.apply(vb, xb, use_running_average=False, deterministic=False, mutable=["batch_stats"],
                              rngs={"dropout": jax.random.PRNGKey(0)})
            out["bn_mutable_apply_with_dropout_rng"] = "ok: mask " + digest(np.asarray(y) != 0)
        except Exception as exc:  # noqa: BLE001
            out["bn_mutable_apply_with_dropout_rng"] = err(exc)
    except Exception as exc:  # noqa: BLE001
        out["bn_init"] = err(exc) + traceback.format_exc()[-300:]
    # kwargs
    kw = {}
    for name in zoo.PROBE_KWARGS:
        r = zoo.probe_kwarg(name)
        if isinstance(r, Exception):
            kw[name] = "error" + (" naming it" if name in str(r) else " NOT naming it") + ": " + err(r)
        elif r and all(s is not zoo._UNSET for s in r):
            kw[name] = "reaches the module"
        else:
            kw[name] = "CONSUMED silently"
    out["kwargs"] = kw
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
