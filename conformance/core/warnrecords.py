"""Warnings as behaviour: the record of the warnings a test saw, and the key two runs compare them by.

Jax-free (the gate reads the records off each side's JUnit XML). A record is
``{"category", "message", "where", "count"}``: the warning's class name, its
message's first line (cut to config.WARNING_MESSAGE_CHARS), ``file:line`` with the
file relative to its installation (``flax/nnx/bridge/wrappers.py:375``, the same
on every side), and how often the test saw it.
"""

from __future__ import annotations

import json
import os
import re

from conformance.core import config

PROPERTY = "conformance_warnings"  # the test's user property (JUnit <property>, the JSON report's "warnings")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
_ROOTS = ("site-packages", "dist-packages")


def where(filename: str, lineno: int) -> str:
    """``file:line`` with the file relative to site-packages (or to the suite's checkout), so two sides agree."""
    path = str(filename).replace(os.sep, "/")
    for root in _ROOTS:
        if f"/{root}/" in path:
            path = path.split(f"/{root}/", 1)[1]
            break
    else:
        parent = os.path.dirname(config.PACKAGE_DIR).replace(os.sep, "/") + "/"
        if path.startswith(parent):
            path = path[len(parent):]
    return f"{path}:{lineno}"


def message_line(message) -> str:
    text = str(message).strip()
    line = text.splitlines()[0] if text else ""
    limit = config.WARNING_MESSAGE_CHARS
    return line if len(line) <= limit else line[: limit - 3] + "..."


def records(seen) -> list[dict]:
    """``warnings.catch_warnings(record=True)``'s list as records, one per distinct warning, the first few kept."""
    out: dict[tuple, dict] = {}
    for w in seen:
        rec = {"category": w.category.__name__, "message": message_line(w.message), "where": where(w.filename, w.lineno)}
        k = (rec["category"], rec["message"], rec["where"])
        if k in out:
            out[k]["count"] += 1
        elif len(out) < config.WARNINGS_PER_TEST:
            out[k] = {**rec, "count": 1}
    return list(out.values())


def key(rec: dict) -> tuple:
    """What makes two warnings the same across releases: category and message (addresses masked), not the line."""
    return rec.get("category", ""), _ADDRESS.sub("0x…", rec.get("message", ""))


def from_properties(props) -> list[dict]:
    """The records among a test's ``(name, value)`` properties ([] when it saw none)."""
    for name, value in props or ():
        if name == PROPERTY:
            try:
                data = json.loads(value) if isinstance(value, str) else value
            except ValueError:
                return [{"category": "?", "message": str(value), "where": "?", "count": 1}]
            return list(data or [])
    return []


def describe(rec: dict) -> str:
    return f"{rec.get('category')}: {rec.get('message')} (at {rec.get('where')})"
