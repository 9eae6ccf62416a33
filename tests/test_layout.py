"""The package's shape: layers that point down (import-linter) and no import cycles at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("conformance", "reference")


def import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports (function-level imports included)."""
    import grimp

    graph = grimp.build_graph(*PACKAGES)
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and self-imports."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, f"import cycles among the project's modules: {found}, but there should be none"


def test_cycle_finder_sees_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def _lint(cwd: str) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports is not installed: pip install -e '.[test]'")
    return subprocess.run([exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_layers_contract_is_kept():
    proc = _lint(ROOT)
    assert proc.returncode == 0, f"lint-imports exited {proc.returncode}, but should be 0:\n{proc.stdout[-3000:]}"


def test_layers_contract_catches_an_upward_import(tmp_path):
    """A copy of the package with one upward import (numerics -> gate) breaks the contract, named."""
    shutil.copy(os.path.join(ROOT, "pyproject.toml"), tmp_path)
    for pkg in PACKAGES:
        shutil.copytree(os.path.join(ROOT, pkg), tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "records"))
    with open(tmp_path / "conformance" / "numerics" / "drift.py", "a") as fh:
        fh.write("\nfrom conformance.gate import verdict  # an upward import\n")
    env_path = f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    exe = shutil.which("lint-imports", path=os.path.dirname(sys.executable)) or "lint-imports"
    proc = subprocess.run([exe, "--no-cache"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": env_path})
    assert proc.returncode == 1, f"lint-imports exited {proc.returncode}, but should be 1:\n{proc.stdout[-3000:]}"
    assert "conformance.numerics.drift -> conformance.gate.verdict" in proc.stdout, proc.stdout[-3000:]
