"""Golden record files: where they live, their names in release order, writing and reading them."""

from __future__ import annotations

import json
import os
import re

from conformance.core import cachedirs, config


def written_dir() -> str:
    """Where ``record`` writes without ``--out``: the user's cache directory, never the installed package.

    The committed records (``config.RECORDS_DIR``) change only by a deliberate
    ``--out`` into a checkout, so a run never overwrites them silently.
    """
    return cachedirs.part("records")


def write_record(data: dict, path: str | None, records: str) -> str:
    """``data`` as JSON at ``path``, by default ``records/flax-V_jax-V.json`` of its versions."""
    v = data["versions"]
    if path is None:
        os.makedirs(records, exist_ok=True)
        path = os.path.join(records, f"flax-{v['flax']}_jax-{v['jax']}.json")
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1)
    return path


def version_key(name: str):
    """``flax-0.10.3_jax-0.5.0.json`` -> (0, 10, 3, 0, 5, 0): records in release order."""
    return tuple(int(p) for p in re.findall(r"\d+", name))


def is_committed(path: str, records: str = config.RECORDS_DIR) -> bool:
    """Whether ``path`` is one of the suite's committed records (not, say, a gate baseline's own)."""
    return os.path.dirname(os.path.realpath(path)) == os.path.realpath(records)


def load(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)


def in_release_order(directory: str) -> list[str]:
    """The ``.json`` records of ``directory``, oldest release first."""
    if not os.path.isdir(directory):
        return []
    return sorted((os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json")),
                  key=lambda p: version_key(os.path.basename(p)))


def resolve(name: str, directory: str) -> str:
    """A record named by a variable: a path, or a file name among ``directory``'s records."""
    return name if os.path.isabs(name) else os.path.join(directory, name)


def label(rec: dict) -> str:
    v = rec["versions"]
    return f"flax {v['flax']} (jax {v['jax']})"
