"""The public surface of ``flax.nnx.bridge`` a ``to_linen`` user touches, per release tag, read from flax's own source.

    python tools/bridge_surface_history.py /path/to/flax/.git [TAG ...]

Parses each tag's ``bridge/__init__.py``, ``wrappers.py`` and ``variables.py``
(no import, so no environment per release) and prints, per tag, the same
records ``conformance.helpers.surface.installed()`` reads from an installed
flax: exported names, ``to_linen``'s parameters, ``ToLinen``'s fields in order,
``ToLinen.__call__``'s parameters, ``to_linen_class``'s parameters, ``NNXMeta``'s
fields. docs/bridge-surface.md's per-release table is its output.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

TAGS = ("v0.9.0 v0.10.0 v0.10.1 v0.10.2 v0.10.3 v0.10.4 v0.10.5 v0.10.6 v0.10.7 v0.11.0 v0.11.1 v0.11.2 "
        "v0.12.0 v0.12.1 v0.12.2 v0.12.3 v0.12.4 v0.12.5 v0.12.6 v0.12.7").split()


def show(git_dir: str, tag: str, path: str) -> str | None:
    proc = subprocess.run(["git", "-C", git_dir, "show", f"{tag}:{path}"], capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def params(fn: ast.FunctionDef, skip_self: bool = False) -> list[str]:
    a = fn.args
    names = [p.arg for p in a.posonlyargs + a.args]
    if skip_self and names and names[0] == "self":
        names = names[1:]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    names += [p.arg for p in a.kwonlyargs]
    if a.kwarg:
        names.append("**" + a.kwarg.arg)
    return names


def fields(cls: ast.ClassDef) -> list[str]:
    return [s.target.id for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]


def surface_at(git_dir: str, tag: str) -> dict:
    base = next(b for b in ("flax/nnx/bridge", "flax/nnx/nnx/bridge") if show(git_dir, tag, f"{b}/wrappers.py"))
    init = ast.parse(show(git_dir, tag, f"{base}/__init__.py") or "")
    exported = sorted(a.asname or a.name for node in ast.walk(init) if isinstance(node, ast.ImportFrom) for a in node.names)
    out: dict = {"exports": exported}
    for mod in ("wrappers", "variables"):
        tree = ast.parse(show(git_dir, tag, f"{base}/{mod}.py") or "")
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name in ("to_linen", "to_linen_class"):
                out[node.name] = params(node)
            if isinstance(node, ast.ClassDef) and node.name in ("ToLinen", "NNXMeta"):
                out[node.name] = fields(node)
                for item in node.body:
                    if node.name == "ToLinen" and isinstance(item, ast.FunctionDef) and item.name == "__call__":
                        out["ToLinen.__call__"] = params(item, skip_self=True)
    return out


if __name__ == "__main__":
    git_dir, tags = sys.argv[1], sys.argv[2:] or TAGS
    print(json.dumps({t: surface_at(git_dir, t) for t in tags}, indent=1))
