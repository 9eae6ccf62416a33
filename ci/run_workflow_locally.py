"""Run a GitHub Actions workflow's jobs and steps on this machine, in order: what CI would run, without CI.

    python ci/run_workflow_locally.py ci/github/flax-upgrade-gate.yml --repo PATH --event schedule \\
        [--base-ref main] [--env NAME=VALUE ...] [--work DIR]

Jobs run in the order their ``needs`` give, each matrix entry as its own job,
each in its own clone of ``--repo`` (the team's repository: its requirements
file and, for a pull request, the base branch as ``origin/BASE``). ``run:``
steps run in bash with the workflow's, job's and step's ``env`` (``--env``
overrides the workflow's); ``$GITHUB_STEP_SUMMARY`` is a file under ``--work``.
The actions the workflow uses are stood in for: checkout clones ``--repo``,
setup-python uses the Python on PATH, upload/download-artifact copy directories
under ``--work/artifacts``. Expressions are plain look-ups only
(``${{ env.X }}``, ``${{ matrix.X }}``, ``${{ github.event_name }}``,
``${{ github.base_ref }}``, ``${{ strategy.job-index }}``); ``if: always()`` is
honoured. Exit status: the last job's first failing step's, else 0.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import os
import re
import shutil
import subprocess
import sys

EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


def load(path: str) -> dict:
    import yaml

    with open(path) as fh:
        doc = yaml.safe_load(fh)
    if not isinstance(doc, dict) or "jobs" not in doc:
        raise ValueError(f"{path}: not a workflow (no jobs)")
    return doc


def evaluate(text, ctx: dict):
    """``${{ a.b }}`` look-ups in ``text`` replaced from ``ctx``; anything else is refused, never guessed."""
    if not isinstance(text, str):
        return text

    def one(m):
        expr = m.group(1)
        if not re.fullmatch(r"[A-Za-z_][\w-]*(\.[\w-]+)+", expr):
            raise ValueError(f"expression {expr!r}: only look-ups (context.name) run locally")
        value = ctx
        for part in expr.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ValueError(f"expression {expr!r}: {part!r} is not defined here")
            value = value[part]
        return str(value)

    return EXPR.sub(one, text)


def job_order(jobs: dict) -> list[str]:
    order, seen = [], set()

    def visit(name, stack=()):
        if name in seen:
            return
        if name in stack:
            raise ValueError(f"jobs depend on each other in a cycle: {' -> '.join(stack + (name,))}")
        needs = jobs[name].get("needs") or []
        for dep in [needs] if isinstance(needs, str) else needs:
            visit(dep, stack + (name,))
        seen.add(name)
        order.append(name)

    for name in jobs:
        visit(name)
    return order


def matrix_entries(job: dict) -> list[dict]:
    axes = ((job.get("strategy") or {}).get("matrix")) or {}
    keys = [k for k in axes if k not in ("include", "exclude")]
    if not keys:
        return [{}]
    return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


def copy_into(src: str, dest: str) -> None:
    os.makedirs(dest, exist_ok=True)
    if os.path.isdir(src):
        shutil.copytree(src, dest, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dest)


class Runner:
    def __init__(self, workflow: str, repo: str, event: str, base_ref: str, env: dict[str, str], work: str):
        self.doc, self.repo, self.work = load(workflow), os.path.abspath(repo), os.path.abspath(work)
        self.github = {"event_name": event, "base_ref": base_ref if event == "pull_request" else "",
                       "workspace": ""}
        self.env = {k: str(v) for k, v in (self.doc.get("env") or {}).items()}
        self.env.update(env)
        self.artifacts = os.path.join(self.work, "artifacts")
        self.summary = os.path.join(self.work, "step-summary.md")
        os.makedirs(self.artifacts, exist_ok=True)

    def log(self, msg: str) -> None:
        print(f"[local workflow] {msg}", file=sys.stderr, flush=True)

    def run(self) -> int:
        jobs = self.doc["jobs"]
        status: dict[str, bool] = {}
        code = 0
        for name in job_order(jobs):
            job = jobs[name]
            needs = job.get("needs") or []
            needs = [needs] if isinstance(needs, str) else needs
            if not all(status.get(n, False) for n in needs) and "always()" not in str(job.get("if", "")):
                self.log(f"job {name}: skipped (a job it needs failed)")
                status[name] = False
                continue
            ok = True
            for index, entry in enumerate(matrix_entries(job)):
                code = self.run_job(name, job, index, entry)
                ok = ok and code == 0
            status[name] = ok
        return code

    def run_job(self, name: str, job: dict, index: int, matrix: dict) -> int:
        where = os.path.join(self.work, "jobs", f"{name}-{index}")
        shutil.rmtree(where, ignore_errors=True)
        os.makedirs(where)
        ctx = {"env": dict(self.env), "matrix": matrix, "github": dict(self.github, workspace=where),
               "strategy": {"job-index": index}}
        for k, v in (job.get("env") or {}).items():
            ctx["env"][k] = evaluate(str(v), ctx)
        self.log(f"job {name} {matrix or ''}: {where}")
        failed = 0
        for step in job.get("steps") or []:
            label = step.get("name") or step.get("uses") or step.get("run", "").splitlines()[0]
            if failed and "always()" not in str(step.get("if", "")):
                self.log(f"  step {label}: skipped (an earlier step failed)")
                continue
            rc = self.run_step(step, ctx, where)
            self.log(f"  step {label}: exit {rc}")
            if rc and not failed:
                failed = rc
        return failed

    def run_step(self, step: dict, ctx: dict, where: str) -> int:
        env = dict(ctx["env"])
        for k, v in (step.get("env") or {}).items():
            env[k] = evaluate(str(v), {**ctx, "env": env})
        with_ = {k: evaluate(str(v), ctx) for k, v in (step.get("with") or {}).items()}
        uses = step.get("uses")
        if uses:
            return self.stand_in(uses.split("@")[0], with_, where)
        script = evaluate(step["run"], ctx)
        full = dict(os.environ, **env, GITHUB_STEP_SUMMARY=self.summary, GITHUB_WORKSPACE=where, CI="true")
        return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=where, env=full).returncode

    def stand_in(self, action: str, with_: dict, where: str) -> int:
        if action == "actions/checkout":
            return subprocess.run(["git", "clone", "-q", self.repo, where]).returncode
        if action == "actions/setup-python":
            return 0  # the Python on PATH
        if action == "actions/upload-artifact":
            matches = sorted(glob.glob(os.path.join(where, with_["path"])))
            if not matches:
                self.log(f"  upload-artifact {with_['name']}: nothing matches {with_['path']}")
                return 0
            dest = os.path.join(self.artifacts, with_["name"])
            shutil.rmtree(dest, ignore_errors=True)
            for m in matches:  # one directory: its contents are the artifact; several: each under its name
                copy_into(m, dest if len(matches) == 1 else os.path.join(dest, os.path.basename(m)))
            return 0
        if action == "actions/download-artifact":
            target = os.path.join(where, with_.get("path") or ".")
            if "name" in with_:
                src = os.path.join(self.artifacts, with_["name"])
                if not os.path.isdir(src):
                    self.log(f"  download-artifact: no artifact {with_['name']}")
                    return 1
                copy_into(src, target)
                return 0
            for src in sorted(glob.glob(os.path.join(self.artifacts, with_.get("pattern", "*")))):
                copy_into(src, os.path.join(target, os.path.basename(src)))
            return 0
        if action == "actions/cache":
            return 0
        self.log(f"  {action}: no local stand-in")
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow")
    parser.add_argument("--repo", required=True, help="the team's repository (a git work tree) the jobs check out")
    parser.add_argument("--event", choices=("pull_request", "schedule", "workflow_dispatch"), default="schedule")
    parser.add_argument("--base-ref", default="main", help="a pull request's base branch (default main)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="override a workflow variable")
    parser.add_argument("--work", default="workflow-run", help="where jobs, artifacts and the summary go")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.env:
        name, eq, value = item.partition("=")
        if not eq:
            parser.error(f"--env {item!r}: NAME=VALUE")
        overrides[name] = value
    return Runner(args.workflow, args.repo, args.event, args.base_ref, overrides, args.work).run()


if __name__ == "__main__":
    sys.exit(main())
