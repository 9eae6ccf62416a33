"""Undo one hunk of flax's own bridge history on top of the installed flax, and run the suite against it.

    python tools/replay_bridge_history.py /path/to/flax/.git COMMIT:N [COMMIT:N ...] [-- PYTEST ARGS]

A unit ``COMMIT:N`` is the N-th hunk (from 1, in diff order) of ``git show
COMMIT -- flax/nnx/bridge``; ``COMMIT:N+M`` undoes several hunks together.
Each unit is reverse-applied (``patch -R``, fuzz 3) to a copy of the
installed ``flax`` package in a directory of its own, which goes first on
``PYTHONPATH``; then the suite runs there (by default: serially, the
selfcheck profile, stopping at the first failure). Where the code a hunk
touched has moved on since, ``tools/replay_patches/COMMIT_N.patch`` holds the
same change written against today's source (applied forward); a unit with
neither is reported as not applying.
Prints one line per unit: ``caught`` with the failing properties, ``missed``,
or ``does not apply``. Hunks are judged by hand for whether a user can
observe them; this tool only says what the suite sees.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

DEFAULT_PYTEST = ["--pyargs", "conformance", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--tb=no",
                  "--hypothesis-profile=selfcheck", "-x"]


def hunks(git_dir: str, commit: str) -> list[tuple[str, str]]:
    """``[(file header, hunk)]`` of the commit's diff under flax/nnx/bridge, in diff order."""
    diff = subprocess.run(["git", "-C", git_dir, "show", "--format=", commit, "--", "flax/nnx/bridge"],
                          capture_output=True, text=True, check=True).stdout
    out, header, current = [], None, None
    for line in diff.splitlines(keepends=True):
        if line.startswith("diff --git"):
            header, current = "", None
        if header is not None and current is None and not line.startswith("@@"):
            if not line.startswith(("diff --git", "index ", "new file", "deleted file", "similarity", "rename")):
                header += line
            continue
        if line.startswith("@@"):
            current = [header, line]
            out.append(current)
        elif current is not None:
            current[1] += line
    return [(h, body) for h, body in out]


ADAPTED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "replay_patches")


def overlay(unit: str, git_dir: str, root: str) -> str | None:
    """A copy of the installed flax with the unit undone, under ``root``; None where it does not apply."""
    import flax

    commit, numbers = unit.split(":")
    chosen = [int(n) for n in numbers.split("+")]
    all_hunks = hunks(git_dir, commit)
    if any(n < 1 or n > len(all_hunks) for n in chosen):
        raise SystemExit(f"{unit}: the commit has {len(all_hunks)} hunks under flax/nnx/bridge")
    shutil.copytree(os.path.dirname(flax.__file__), os.path.join(root, "flax"))
    adapted = os.path.join(ADAPTED, f"{commit}_{numbers}.patch")
    if os.path.exists(adapted):  # the hunk undone, as it reads on today's source
        with open(adapted) as fh:
            patch, reverse = fh.read(), []
    else:
        patch, reverse = "".join(h + body for i, (h, body) in enumerate(all_hunks, 1) if i in chosen), ["-R"]
    proc = subprocess.run(["patch", *reverse, "-p1", "--fuzz=3", "--no-backup-if-mismatch", "-r", "-", "-d", root],
                          input=patch, capture_output=True, text=True)
    return None if proc.returncode else root


def run(root: str, pytest_args: list[str]) -> tuple[str, list[str]]:
    xml = os.path.join(root, "out.xml")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "pytest", *pytest_args, f"--junitxml={xml}"], cwd=root, env=env,
                          capture_output=True, text=True)
    failed, why = [], ""
    if os.path.exists(xml):
        for case in ET.parse(xml).iter("testcase"):
            node = case.find("failure") if case.find("failure") is not None else case.find("error")
            if node is not None:
                failed.append(case.get("name"))
                why = why or (node.get("message") or "").strip().splitlines()[0][:300]
    if proc.returncode == 0:
        return "missed", []
    if failed:
        return "caught", failed + [f"({why})"]
    return f"no verdict (exit {proc.returncode})", [proc.stdout[-600:]]


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    else:
        extra = []
    if len(argv) < 2 or not all(re.fullmatch(r"[0-9a-f]{6,40}:\d+(\+\d+)*", u) for u in argv[1:]):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    git_dir, units = argv[0], argv[1:]
    for unit in units:
        with tempfile.TemporaryDirectory(prefix="replay-") as root:
            if overlay(unit, git_dir, root) is None:
                print(f"{unit}: does not apply to the installed flax", flush=True)
                continue
            verdict, detail = run(root, DEFAULT_PYTEST + extra)
            print(f"{unit}: {verdict} {' '.join(detail)}".rstrip(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
