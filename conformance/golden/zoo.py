"""Golden records of the zoo: dropout masks for fixed keys (bitwise) and batch statistics (error model).

    python -m conformance record [--module pkg.mod:factory]

writes ``records/zoo/flax-V_jax-V.json`` beside the contract's record. A mask
that differs from the committed record means the bridge routes the dropout key
differently (or jax draws differently): a training run is not reproducible
across the upgrade. The records of every release since 0.9.0 are committed, so
a failure names the releases whose routing the installed one reproduces.
Declared modules (``--module``) add their entries (conformance/golden/zoo_modules.py):
variables, call, keys, training outputs and updates, under the declaration's fingerprint.
"""

from __future__ import annotations

import json
import os

import numpy as np

from conformance.core import config
from conformance.golden import records, zoo_modules

RECORDS = config.ZOO_RECORDS_DIR
MASK_KEY_SEEDS = (0, 1, 2**31 - 1)
PARAMS_SEED = zoo_modules.PARAMS_SEED
GOLDEN_PROPERTIES = ("test_zoo_golden_dropout_masks", "test_zoo_golden_batch_stats", "test_zoo_golden_declared_modules")


def _bits(mask) -> str:
    return np.packbits(np.asarray(mask, bool).ravel()).tobytes().hex()


def compute(specs=None) -> dict:
    """Masks per key seed, batch statistics after one step, and each declared module's entry (zoo_modules.entry)."""

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
        out["modules"][spec.name] = zoo_modules.entry(spec)
    return out


def record(path: str | None = None, specs=None) -> str:
    """Writes the zoo record; at the default path (the cache directory) earlier entries of other modules are kept.

    So ``record --module a:specs`` then ``record --module b:specs`` leaves both
    teams' modules in the record the next run reads (same flax and jax: the
    file is named after them).
    """
    import flax
    import jax

    data = {"versions": {"flax": flax.__version__, "jax": jax.__version__},
            "settings": {"jax_threefry_partitionable": bool(jax.config.jax_threefry_partitionable)},
            **compute(specs)}
    if path is None and os.path.isfile(zoo_modules.written_record()):
        earlier = load(zoo_modules.written_record()).get("modules", {})
        data["modules"] = {**{n: e for n, e in earlier.items() if n not in data["modules"]}, **data["modules"]}
    return records.write_record(data, path, os.path.join(records.written_dir(), "zoo"))


def all_records() -> list[str]:
    return records.in_release_order(RECORDS)


def chosen_record() -> str:
    """The masks' and batch statistics' record: CONFORMANCE_ZOO_RECORD (a path or a file name under records/zoo), else
    the newest committed record. Declared modules choose theirs per module (zoo_modules.choose)."""
    name = os.environ.get(config.ZOO_RECORD_ENV)
    return records.resolve(name, RECORDS) if name else all_records()[-1]


load = records.load


def fingerprint(rec: dict) -> str:
    """A short hash of a record's dropout masks: equal masks, equal fingerprints."""
    import hashlib

    return "masks:" + hashlib.sha256(json.dumps(rec["dropout_masks"], sort_keys=True).encode()).hexdigest()[:10]


def same_masks(a: dict, b: dict) -> bool:
    return a["dropout_masks"] == b["dropout_masks"]


label = records.label
