"""End to end: a candidate built from a local checkout, edited between two runs of the same gate command.

The checkout is made from the installed flax (its package and its runtime
requirements, under git). First run: the candidate's code is the baseline's,
exit 0. Then one line makes ``nnx.Linear`` return its output times 1.001: the
same command must build a new environment and exit 1, naming the change and the
checkout's commit and uncommitted changes. Builds three uv environments (about a
minute or two with a warm uv cache), so it runs only when asked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from importlib import metadata

import pytest

pytestmark = pytest.mark.skipif(
    not os.environ.get("CONFORMANCE_E2E_SOURCES"),
    reason="builds three environments (minutes): set CONFORMANCE_E2E_SOURCES=1 to gate an edited local checkout end to end")


def make_checkout(root) -> str:
    """A git work tree holding the installed flax as a project (pyproject with its runtime requirements)."""
    import flax

    src = root / "flax-src"
    shutil.copytree(os.path.dirname(flax.__file__), src / "flax", ignore=shutil.ignore_patterns("__pycache__"))
    deps = [r for r in metadata.requires("flax") or [] if "extra ==" not in r]
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "flax"\nversion = "{metadata.version("flax")}"\ndependencies = {json.dumps(deps)}\n\n'
        '[tool.setuptools.packages.find]\ninclude = ["flax*"]\n')
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "flax as installed"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=src, check=True,
                       capture_output=True)
    return str(src)


def scale_linear_output(checkout: str) -> None:
    """The issue's one-line edit: ``nnx.Linear.__call__`` returns ``y * 1.001``."""
    path = os.path.join(checkout, "flax", "nnx", "nn", "linear.py")
    text = open(path).read()
    start = text.index("class Linear(")
    end = text.index("\nclass ", start + 1)
    body, n = re.subn(r"\n    return y\n", "\n    return y * 1.001\n", text[start:end], count=1)
    assert n == 1, "nnx.Linear.__call__ no longer ends in 'return y'"
    with open(path, "w") as fh:
        fh.write(text[:start] + body + text[end:])


def test_an_edited_checkout_gets_a_new_environment_and_fails_the_gate(tmp_path, capsys):
    from conformance.cli import main

    checkout = make_checkout(tmp_path)
    cache = str(tmp_path / "envs")
    command = ["gate", "--baseline", f"flax=={metadata.version('flax')}", "--candidate", f"flax @ file://{checkout}",
               "--profile", "dev", "--no-attribution", "--golden", "committed", "--jobs", "2", "--cache-dir", cache,
               "--pytest-args", "-k test_golden_numerics"]
    assert main([*command, "--out", str(tmp_path / "first")]) == 0
    first = capsys.readouterr().err
    assert re.search(r"flax@dir-[0-9a-f]{12}: building ", first), first

    scale_linear_output(checkout)
    assert main([*command, "--out", str(tmp_path / "second")]) == 1
    second = capsys.readouterr()
    assert re.search(r"flax@dir-[0-9a-f]{12}\+[0-9a-f]{12}: building .*uncommitted changes", second.err), second.err
    report = json.loads((tmp_path / "second" / "gate.json").read_text())
    (comp,) = report["comparisons"]
    assert [c["property"] for c in comp["changes"]] == ["test_golden_numerics"]
    assert "uncommitted changes" in second.out and "CHANGE `test_golden_numerics`" in second.out
    built = sorted(d for d in os.listdir(cache) if not d.endswith(".lock"))
    assert len(built) == 3, built  # the baseline's, and the checkout's before and after the edit
