"""Sides built from a checkout, a git reference or a wheel: keyed by what they hold, labelled apart. No environment is built."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile

import pytest

from conformance.gate import envs, sources
from conformance.gate.plan import GatePlan
from conformance.gate.reports import headers_for

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo, *args) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main", *args],
                          cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def checkout(tmp_path):
    """A git work tree holding a tiny project named flax: one commit, a tag, an ignored directory."""
    repo = tmp_path / "flax-src"
    (repo / "flax").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[project]\nname = "flax"\nversion = "0.0.1"\n')
    (repo / "flax" / "linear.py").write_text("def linear(x):\n    return x\n")
    (repo / ".gitignore").write_text("build/\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    git(repo, "tag", "v1")
    return repo


def key_of(src) -> str:
    return envs.env_key("3.11.0", [src.requirement], ["numpy"], None, [src.fingerprint])


def test_a_checkout_is_keyed_by_its_commit_and_its_uncommitted_changes(checkout):
    req = f"flax @ file://{checkout}"
    clean = sources.resolve(req)
    assert clean.kind == "directory" and clean.fingerprint == git(checkout, "rev-parse", "HEAD")
    assert "clean" in clean.detail
    (checkout / "build").mkdir()
    (checkout / "build" / "junk.py").write_text("ignored")  # ignored by the checkout: not its code
    assert sources.resolve(req).fingerprint == clean.fingerprint

    (checkout / "flax" / "linear.py").write_text("def linear(x):\n    return x * 1.001\n")  # the one-line edit
    edited = sources.resolve(req)
    assert edited.fingerprint.startswith(clean.fingerprint + "+"), edited
    assert "uncommitted changes" in edited.detail and key_of(edited) != key_of(clean)
    (checkout / "flax" / "extra.py").write_text("x = 1\n")  # a new, untracked module counts too
    untracked = sources.resolve(req)
    assert untracked.fingerprint != edited.fingerprint

    git(checkout, "add", "-A")
    git(checkout, "commit", "-qm", "two")
    committed = sources.resolve(req)
    assert committed.fingerprint == git(checkout, "rev-parse", "HEAD") != clean.fingerprint
    (checkout / "flax" / "extra.py").unlink()
    git(checkout, "checkout", "-q", "v1")
    assert sources.resolve(req).fingerprint == clean.fingerprint  # back to the first build's code: its key again


def test_a_directory_outside_git_is_keyed_by_a_digest_of_its_files(tmp_path):
    src = tmp_path / "plain"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text("a = 1\n")
    (src / "pkg" / "__pycache__").mkdir()
    (src / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"x")
    first = sources.resolve(f"pkg @ file://{src}")
    assert first.kind == "directory" and first.detail.startswith("files digest ")
    (src / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"y")  # bytecode is not the code
    assert sources.resolve(f"pkg @ file://{src}").fingerprint == first.fingerprint
    (src / "pkg" / "m.py").write_text("a = 2\n")
    assert sources.resolve(f"pkg @ file://{src}").fingerprint != first.fingerprint


def test_a_git_reference_is_resolved_to_its_commit_on_every_call(checkout):
    url = f"git+file://{checkout}"
    first = sources.resolve(f"flax @ {url}@main")
    head = git(checkout, "rev-parse", "HEAD")
    assert first.kind == "git" and first.fingerprint == head
    assert first.requirement == f"flax @ {url}@{head}"  # installed pinned: the environment holds what was keyed
    assert first.detail == f"main = commit {head[:12]}"
    (checkout / "flax" / "linear.py").write_text("def linear(x):\n    return x * 1.001\n")
    git(checkout, "commit", "-qam", "moved")
    moved = sources.resolve(f"flax @ {url}@main")
    assert moved.fingerprint == git(checkout, "rev-parse", "HEAD") != head
    assert key_of(moved) != key_of(first)
    assert sources.resolve(f"flax @ {url}@v1").fingerprint == head  # a tag: the commit it names
    assert sources.resolve(f"flax @ {url}@{head}").fingerprint == head  # a full commit id stays
    assert sources.resolve(f"flax @ {url}").fingerprint == moved.fingerprint  # no reference: HEAD
    with pytest.raises(ValueError, match="'nope' not found in file://"):
        sources.resolve(f"flax @ {url}@nope")


def test_a_wheel_is_keyed_by_its_hash(tmp_path):
    wheel = tmp_path / "flax-0.12.7-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("flax/__init__.py", "")
    first = sources.resolve(f"flax @ file://{wheel}")
    assert first.kind == "wheel" and first.detail.startswith("sha256 ")
    with zipfile.ZipFile(wheel, "w") as zf:  # rebuilt under the same name
        zf.writestr("flax/__init__.py", "changed = True\n")
    assert sources.resolve(f"flax @ file://{wheel}").fingerprint != first.fingerprint
    assert sources.path_requirement(str(wheel)) == f"flax @ file://{wheel}"
    with pytest.raises(ValueError, match="does not exist"):
        sources.resolve(f"flax @ file://{tmp_path}/gone.whl")


def test_plain_requirements_have_no_source_and_keep_their_keys():
    assert sources.resolve("flax==0.12.8") is None and sources.resolve("jax>=0.7") is None
    # Environments of releases built before sources existed are still found: no "sources" field in their key.
    assert envs.env_key("3.11.0", ["flax==0.12.8"], ["numpy"], None) == envs.env_key("3.11.0", ["flax==0.12.8"],
                                                                                      ["numpy"], None, [])


def test_requirement_files_hold_paths_relative_to_themselves(checkout, tmp_path):
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    (wheel_dir / "flax-0.12.7-py3-none-any.whl").write_bytes(b"")
    reqs = tmp_path / "reqs" / "candidate.txt"
    reqs.parent.mkdir()
    reqs.write_text(f"# the candidate\n../wheels/flax-0.12.7-py3-none-any.whl\njax==0.10.2  # pinned\n../flax-src\n"
                    f"flax @ git+file://{checkout}@main#egg=flax  # a fragment is no comment\n")
    assert envs.read_requirements(str(reqs)) == [
        f"flax @ file://{wheel_dir}/flax-0.12.7-py3-none-any.whl", "jax==0.10.2",
        f"flax @ file://{checkout}", f"flax @ git+file://{checkout}@main#egg=flax"]


def test_sides_are_labelled_by_source_and_pinned_to_the_resolved_commit(checkout):
    from conformance.gate import command as gate

    head = git(checkout, "rev-parse", "HEAD")
    plan = GatePlan(baseline=("flax==0.12.8",), candidates=((f"flax @ file://{checkout}",),
                                                              (f"flax @ git+file://{checkout}@main",),
                                                              (f"flax @ git+file://{checkout}@v1",)),
                    exclude_newer="none")
    base, local, branch, tag = gate.make_sides(plan)
    assert base.label == "flax-0.12.8" and not base.sources
    assert local.label == f"flax@dir-{head[:12]}"
    assert branch.label == f"flax@git-main-{head[:12]}"
    assert branch.requirements == [f"flax @ git+file://{checkout}@{head}"]
    assert tag.label == f"flax@git-v1-{head[:12]}"
    assert len({s.label for s in (base, local, branch, tag)}) == 4


def test_report_headers_name_the_source_and_never_repeat():
    src = {"kind": "directory", "location": "/src/flax", "detail": "commit 1a2b3c4d5e6f + uncommitted changes 9f8e7d6c5b4a"}
    infos = {"flax-0.12.8": {"versions": {"flax": "0.12.8", "jax": "0.10.2"}},
             "flax@dir-1a2b": {"versions": {"flax": "0.12.8", "jax": "0.10.2"}, "sources": [src]},
             "flax-0.12.8#2": {"versions": {"flax": "0.12.8", "jax": "0.10.2"}}}
    heads = headers_for(infos)
    assert heads["flax@dir-1a2b"] == ("flax 0.12.8 (jax 0.10.2) [file:///src/flax, commit 1a2b3c4d5e6f + "
                                      "uncommitted changes 9f8e7d6c5b4a]")
    assert heads["flax-0.12.8"] == "flax 0.12.8 (jax 0.10.2) (flax-0.12.8)"
    assert len(set(heads.values())) == 3


def test_the_command_line_takes_wheel_paths_and_checkouts(checkout, tmp_path, monkeypatch):
    from conformance.cli import UsageError, parse_gate

    wheel = tmp_path / "flax-0.12.7-py3-none-any.whl"
    wheel.write_bytes(b"")
    plan = parse_gate(["--baseline", "flax==0.12.8", "--candidate", str(wheel), "--candidate", str(checkout)])
    assert plan.candidates == ((f"flax @ file://{wheel}",), (f"flax @ file://{checkout}",))
    odd = tmp_path / "not-a-wheel.whl"
    odd.write_bytes(b"")
    with pytest.raises(UsageError, match="--candidate .*not a wheel file name"):
        parse_gate(["--baseline", "flax==0.12.8", "--candidate", str(odd)])
    (tmp_path / "jax").mkdir()  # a requirement's name is not a path, even beside a directory of that name
    monkeypatch.chdir(tmp_path)
    assert parse_gate(["--baseline", "flax==0.12.8", "--candidate", "jax"]).candidates == (("jax",),)
    assert parse_gate(["--baseline", "flax==0.12.8", "--candidate", "./flax-src"]).candidates == (
        (f"flax @ file://{checkout}",),)
