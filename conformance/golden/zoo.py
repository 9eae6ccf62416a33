"""Golden records of the zoo: dropout masks for fixed keys (bitwise) and batch statistics (error model).

    python -m conformance record [--module pkg.mod:factory]

writes ``records/zoo/flax-V_jax-V.json`` beside the contract's record. A mask
that differs from the committed record means the bridge routes the dropout key
differently (or jax draws differently): a training run is not reproducible
across the upgrade. The records of every release since 0.9.0 are committed, so
a failure names the releases whose routing the installed one reproduces.
Declared user modules (``--module``) add their training-mode outputs.
"""

from __future__ import annotations

import json
import os

import numpy as np

from conformance.core import config
from conformance.golden import records

RECORDS = config.ZOO_RECORDS_DIR
MASK_KEY_SEEDS = (0, 1, 2**31 - 1)
PARAMS_SEED = 0
GOLDEN_PROPERTIES = ("test_zoo_golden_dropout_masks", "test_zoo_golden_batch_stats", "test_zoo_golden_declared_modules")


def _bits(mask) -> str:
    return np.packbits(np.asarray(mask, bool).ravel()).tobytes().hex()


def _leaves(arrays: dict) -> dict:
    """``{path: {"values", "shape", "dtype"}}``: values stored as float64, compared in the dtype computed in."""
    return {p: {"values": np.asarray(a, np.float64).ravel().tolist(), "shape": list(np.shape(a)), "dtype": str(a.dtype)}
            for p, a in arrays.items()}


def compute(specs=None, keep_errors: bool = False) -> dict:
    """Masks per key seed, batch statistics after one step, and each declared module's training output and updates.

    ``keep_errors``: a declared module that raises gets ``{"error": ...}``
    instead of stopping the rest (the golden properties name it; a record
    is never written with one).
    """

    from conformance.modules import module_harness as zh
    from conformance.helpers.pytest_helpers import tree_paths
    from conformance.modules import zoo

    d = zoo.dropout_spec()
    x = d.inputs[0]
    v = zh.init(d, PARAMS_SEED, x)
    masks = {}
    for s in MASK_KEY_SEEDS:
        y, _ = zh.jit_train(d)(v, x, zh.stream_keys(d, s))
        masks[str(s)] = {"shape": list(np.shape(y)), "bits": _bits(np.asarray(y) != 0)}
    b = zoo.batchnorm_spec()
    xb = b.inputs[0]
    vb = zh.init(b, PARAMS_SEED, xb)
    _, upd = zh.jit_train(b)(vb, xb, zh.stream_keys(b, 0))
    stats = {p: np.asarray(a, np.float64).tolist() for p, a in tree_paths(upd).items()}
    out = {"dropout_masks": masks, "batch_stats": stats, "modules": {}}
    for spec in specs or []:
        call = spec.calls[0]
        try:
            vs = zh.init(spec, PARAMS_SEED, call)
            y, u = zh.jit_train(spec)(vs, call, zh.stream_keys(spec, 0))
        except Exception as exc:
            if not keep_errors:
                raise
            out["modules"][spec.name] = {"error": "\n".join([f"{type(exc).__name__}: {exc}", *getattr(exc, "__notes__", [])])}
            continue
        out["modules"][spec.name] = {"outputs": _leaves(zh.array_leaves(y)), "params": zh.param_count(vs),
                                     "updates": _leaves(zh.array_leaves(u))}
    return out


def record(path: str | None = None, specs=None) -> str:
    import flax
    import jax

    data = {"versions": {"flax": flax.__version__, "jax": jax.__version__},
            "settings": {"jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable)},
            **compute(specs)}
    return records.write_record(data, path, os.path.join(records.written_dir(), "zoo"))


def all_records() -> list[str]:
    if not os.path.isdir(RECORDS):
        return []
    return sorted((os.path.join(RECORDS, n) for n in os.listdir(RECORDS) if n.endswith(".json")),
                  key=lambda p: records.version_key(os.path.basename(p)))


def chosen_record() -> str:
    """CONFORMANCE_ZOO_RECORD (a path or a file name under records/zoo), else the newest record."""
    name = os.environ.get(config.ZOO_RECORD_ENV)
    if name:
        return name if os.path.isabs(name) else os.path.join(RECORDS, name)
    return all_records()[-1]


load = records.load


def fingerprint(rec: dict) -> str:
    """A short hash of a record's dropout masks: equal masks, equal fingerprints."""
    import hashlib

    return "masks:" + hashlib.sha256(json.dumps(rec["dropout_masks"], sort_keys=True).encode()).hexdigest()[:10]


def same_masks(a: dict, b: dict) -> bool:
    return a["dropout_masks"] == b["dropout_masks"]


def label(rec: dict) -> str:
    v = rec["versions"]
    return f"flax {v['flax']} (jax {v['jax']})"
