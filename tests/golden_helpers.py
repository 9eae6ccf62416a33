"""The 1% check of a declared module's golden record, shared by the tier's and the published layers' tests."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

from conformance.golden import zoo_modules

CHANGED = "outputs from the recorded variables.*changed beyond the error model"


def float_leaves(entry: dict, part: str) -> list[str]:
    return [p for p, v in entry[part].items() if "float" in v["dtype"]]


def scaled(entry: dict, part: str, leaf: str, factor: float) -> dict:
    out = copy.deepcopy(entry)
    out[part][leaf]["values"] = [v * factor for v in out[part][leaf]["values"]]
    return out


def changeable_leaves(entry: dict) -> list[tuple[str, str]]:
    """Every recorded float output, and every float update that is not all zeros (1.01 x 0 is no change)."""
    leaves = [("outputs", p) for p in float_leaves(entry, "outputs")]
    leaves += [("updates", p) for p in float_leaves(entry, "updates")
               if np.any(np.asarray(entry["updates"][p]["values"]) != 0)]
    return leaves


def one_percent_changes_missed(spec, entry: dict, path: str) -> list[tuple[str, str]]:
    """The unchanged record passes; returns the (part, leaf) whose 1.01 scaling the golden comparison accepts."""
    assert set(zoo_modules.compare(spec, zoo_modules.Choice(path, entry)).values()) <= {"identical", "drift"}
    leaves = changeable_leaves(entry)
    assert leaves, f"{spec.name} has no float output to change"
    missed = []
    for part, leaf in leaves:
        try:
            zoo_modules.compare(spec, zoo_modules.Choice(path, scaled(entry, part, leaf, 1.01)))
            missed.append((part, leaf))
        except AssertionError as exc:
            assert re.search(CHANGED, str(exc)), f"{spec.name} {part}/{leaf}: failed otherwise: {exc}"
    return missed


def assert_every_one_percent_change_fails(spec, entry: dict, path: str) -> int:
    """The unchanged record passes; each float output scaled by 1.01 fails. Returns how many leaves were changed."""
    assert set(zoo_modules.compare(spec, zoo_modules.Choice(path, entry)).values()) <= {"identical", "drift"}
    leaves = changeable_leaves(entry)
    assert leaves, f"{spec.name} has no float output to change"
    for part, leaf in leaves:
        with pytest.raises(AssertionError, match=CHANGED):
            zoo_modules.compare(spec, zoo_modules.Choice(path, scaled(entry, part, leaf, 1.01)))
    return len(leaves)
