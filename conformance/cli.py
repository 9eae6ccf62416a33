"""``python -m conformance``: the project's commands.

    python -m conformance selfcheck [--fault NAME ...] [--perturb NAME ...] [--module PKG.MOD:FACTORY ...] [--profile P] [--jobs N] [--json PATH] [--first-catch] [--snippets]
    python -m conformance faults          # list the fault corpus
    python -m conformance record [--module pkg.mod:factory]   # golden records (contract, zoo) of the installed flax and jax
    python -m conformance gate --baseline flax==A --candidate flax==B [...]   # upgrade gate (see conformance/gate/command.py)

Every command checks its arguments before it does any work: wrong usage exits 2
with one line that names the argument and its valid values.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback

from conformance.core import config
from conformance.gate import envs
from conformance.gate.plan import GatePlan

COMMANDS = {
    "selfcheck": "run the suite against every broken bridge, every benign perturbation, and neither",
    "faults": "list the fault corpus",
    "record": "write the golden record of the installed flax and jax",
    "gate": "the suite in a baseline and candidate environments: may we upgrade?",
    "merge": "the gate's verdict and reports from side reports written by 'gate --side' (one CI job per side)",
}
USAGE_ERROR = 2


class UsageError(Exception):
    """Wrong usage: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (exit 2) instead of a usage block."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m conformance", description="Conformance gate for flax's NNX->Linen bridge.")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    sc = sub.add_parser("selfcheck", help=COMMANDS["selfcheck"])
    sc.add_argument("--fault", action="append", help="only these faults (repeatable)")
    sc.add_argument("--perturb", action="append", help="only these benign perturbations (repeatable)")
    sc.add_argument("--profile", default="selfcheck", help="Hypothesis profile (default: selfcheck)")
    sc.add_argument("--jobs", type=int, default=None, help="pytest runs at once (default: CPU count)")
    sc.add_argument("--json", default=None, help="also write the results as JSON here")
    sc.add_argument("--markdown-from", default=None, metavar="JSON",
                    help="print the tables of an earlier --json report as Markdown, and run nothing")
    sc.add_argument("--first-catch", action="store_true", help="stop each fault's run at its first catch (faster)")
    sc.add_argument("--snippets", action="store_true",
                    help="a fault with repro snippets to prove runs those properties to the end, and the --json report "
                         "keeps their failures (the project's snippet test runs them)")
    sc.add_argument("--module", action="append", default=[], metavar="PACKAGE.MODULE:FACTORY",
                    help="run only these declared modules' tests (repeatable), and say which faults each one's "
                         "properties catch; the benign perturbations must still pass on them")
    sub.add_parser("faults", help=COMMANDS["faults"])
    rec = sub.add_parser("record", help=COMMANDS["record"], epilog=RECORD_EPILOG,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    rec.add_argument("--out", default=None,
                     help="file to write (default: records/flax-V_jax-V.json under the cache directory, "
                          "$CONFORMANCE_CACHE_DIR or ~/.cache/flax-bridge-conformance; never the installed package)")
    rec.add_argument("--zoo-out", default=None, help="zoo record to write (default: records/zoo/flax-V_jax-V.json beside it)")
    rec.add_argument("--checkpoint-out", default=None, metavar="DIR",
                     help="also save every module's variables as orbax checkpoints here, with their outputs "
                          "(what the gate's baseline gives its candidates to restore)")
    rec.add_argument("--module", action="append", default=[], metavar="PACKAGE.MODULE:FACTORY",
                     help="also record a team's declared modules in the zoo record (repeatable); without --zoo-out, "
                          "entries of other modules already in that record are kept")
    gate_parser = sub.add_parser("gate", help=COMMANDS["gate"], epilog=GATE_EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_gate_arguments(gate_parser)
    mp = sub.add_parser("merge", help=COMMANDS["merge"])
    mp.add_argument("dirs", nargs="+", metavar="DIR", help="directories holding side reports (side-*.json) of 'gate --side'")
    mp.add_argument("--out", default="gate-report", help="report directory (default ./gate-report)")
    mp.add_argument("--accept", action="append", default=[], metavar="FILE",
                    help="accepted changes besides those the sides were given (repeatable)")
    mp.add_argument("--no-attribution", dest="attribute", action="store_false",
                    help="skip the cross environments that tell whether a change comes from flax or from jax "
                         "(run by default when the sides' command did not skip them)")
    mp.add_argument("--cache-dir", default=None, help="where the cross environments are cached (as gate's)")
    return parser


# --- the command ----------------------------------------------------------------------------------


RECORD_EPILOG = """\
which record a run compares against (nothing to set after `record --module ...`):
  declared modules (test_zoo_golden_declared_modules), each the first record whose entry has the
    declaration's fingerprint (class, constructor arguments, calls' shapes and dtypes, mode fields):
    $CONFORMANCE_ZOO_RECORD alone when set; else records/zoo/flax-V_jax-V.json of the installed
    flax and jax under the cache directory (what this command writes), then the newest committed one
  the zoo's dropout masks and batch statistics: $CONFORMANCE_ZOO_RECORD, else the newest committed
  the contract (test_golden_*): $CONFORMANCE_RECORD, else the newest committed
  (a path, or a file name among the committed records)
the cache directory: $CONFORMANCE_CACHE_DIR, else $XDG_CACHE_HOME/flax-bridge-conformance,
  else ~/.cache/flax-bridge-conformance
"""


def add_gate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--baseline", action="append", default=[], metavar="REQ",
                   help="a requirement of the baseline side, e.g. flax==0.12.8 (repeatable)")
    p.add_argument("--candidate", action="append", default=[], metavar="REQ",
                   help="one candidate side per use, e.g. flax==0.9.0; 'REQ,REQ' for several requirements. Not only "
                        "releases: 'flax @ file:///path/to/checkout', 'flax @ git+URL@REF' (branch, tag or commit), "
                        "or a wheel file's path; their environments are rebuilt whenever what they hold changes")
    p.add_argument("--baseline-requirements", metavar="FILE", help="requirements file added to the baseline side")
    p.add_argument("--candidate-requirements", metavar="FILE",
                   help="requirements file added to every candidate (alone: one candidate from the file)")
    p.add_argument("--exclude-newer", default="auto", metavar="auto|none|DATE",
                   help="resolve as of: auto = the day after the side's flax release (PyPI upload date), "
                        "none = latest, or a date (YYYY-MM-DD or RFC 3339)")
    p.add_argument("--out", default="gate-report", help="report directory (default ./gate-report)")
    p.add_argument("--profile", default="gate", help="Hypothesis profile (default gate)")
    p.add_argument("--jobs", type=int, default=None, help="environments built and run at once (default: CPU count)")
    p.add_argument("--cache-dir", default=None,
                   help=f"where environments are cached (default {envs.DEFAULT_CACHE}, or $CONFORMANCE_GATE_CACHE)")
    p.add_argument("--python", default=sys.executable, help="interpreter the environments are made from")
    p.add_argument("--project", default=None,
                   help="install the suite from this checkout (default: a wheel of the installed suite)")
    p.add_argument("--pytest-args", default="", help="extra pytest arguments for every side (one string)")
    p.add_argument("--direction", default=None, choices=config.DIRECTION_CHOICES,
                   help="which direction's properties every side runs: to_linen, to_nnx or both "
                        f"(default {config.DEFAULT_DIRECTION}); passed to each side's pytest as --direction")
    p.add_argument("--candidate-pytest-args", default="",
                   help="extra pytest arguments for candidates only, e.g. '-p conformance.faults --fault NAME'")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds one side's pytest run may take")
    p.add_argument("--module", action="append", default=[], metavar="PACKAGE.MODULE:FACTORY",
                   help="a team's module declaration, forwarded to every side's suite (repeatable); the package must "
                        "import in every side: install it through --*-requirements, or name its directory with --module-path")
    p.add_argument("--module-path", action="append", default=[], metavar="DIR",
                   help="a directory put on every side's PYTHONPATH (a team's layers, not installed; repeatable)")
    p.add_argument("--accept", action="append", default=[], metavar="FILE",
                   help="accepted changes, one 'property | release range | reason' a line, e.g. "
                        "'test_apply_rejects_missing_leaf | flax>=0.12,<0.13 | we never restore partial params' "
                        "(repeatable; the range is pip specifiers on the candidate's versions)")
    p.add_argument("--golden", choices=config.GATE_GOLDEN_CHOICES, default=config.GATE_GOLDEN,
                   help="what the golden properties compare against: baseline = the baseline's own records, "
                        "recorded in its environment (default), committed = the suite's committed records")
    p.add_argument("--no-attribution", dest="attribute", action="store_false",
                   help="skip the cross environments that tell whether a change comes from flax or from jax")
    p.add_argument("--bisect", action="store_true",
                   help="find the first flax release (with the jax of its time) showing each change, by binary "
                        "search over the releases between baseline and candidate")
    p.add_argument("--side", default=None, metavar="baseline|candidate|candidate:N|LABEL",
                   help="run only these sides and write their side reports to --out, for 'python -m conformance "
                        "merge' (one CI job per side; give every job the same sides)")
    p.add_argument("--golden-from", default=None, metavar="DIR",
                   help="with --side candidate...: the baseline side's report directory, whose golden records and "
                        "checkpoints the candidates compare against")
    p.add_argument("--fail-on-new-warnings", action="store_true",
                   help="a warning a candidate's properties see and the baseline's never do is a change (exit 1); "
                        "without it new warnings, like new public surface, are reported and never fail")



GATE_EPILOG = """exit codes:
  0  safe: no candidate behaves worse than the baseline (accepted changes, improvements, drift within
     the error model and skips are reported, never failed)
  1  a candidate changes or regresses: a property that passes on the baseline is a known deviation
     or fails on it (changed numerics beyond the error model included), or a known deviation now
     fails, and no --accept entry covers it; with --fail-on-new-warnings, also a warning the
     baseline's properties never saw
  2  no verdict: bad arguments, a side that would not build or produced no results, or Ctrl-C

Attribution (unless --no-attribution) re-runs each change in two cross environments: the
candidate's flax with the baseline's jax, and the baseline's flax with the candidate's jax,
resolved as of the later side's date. --bisect searches the flax releases in between; it
assumes one flip per change and reports any release that contradicts it.
"""


# --- argument checks (before any work) ------------------------------------------------------------


def check_profile(name: str, option: str = "--profile") -> None:
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    from conformance.core import jax_setup as _setup

    _setup.register_profiles()
    try:
        settings.get_profile(name)
    except InvalidArgument:
        raise UsageError(f"{option} {name!r} is not a Hypothesis profile; one of: {', '.join(config.PROFILES)}") from None


def check_faults(names) -> None:
    from conformance.selfcheck.faults import FAULTS, unknown_fault_message

    for name in names or ():
        if name not in FAULTS:
            raise UsageError(unknown_fault_message(name))


def check_positive(option: str, value, kind=int) -> None:
    if value is not None and not value > 0:
        raise UsageError(f"{option} must be a positive {kind.__name__}; got {value!r}")


def check_writable_parent(option: str, path: str | None) -> None:
    if path:
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise UsageError(f"{option} {path!r}: directory {parent!r} does not exist")


def check_pytest_args(option: str, text: str) -> list[str]:
    """Split ``text`` like a shell and check the suite's own options in it (--fault, --perturb, profiles)."""
    try:
        args = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    for i, a in enumerate(args):
        key, eq, value = a.partition("=")
        if not eq:
            value = args[i + 1] if i + 1 < len(args) else None
        if key == "--fault":
            check_faults([value])
        elif key == "--hypothesis-profile" and value:
            check_profile(value, f"{option}: --hypothesis-profile")
        elif key == "--perturb" and value:
            check_perturbation(value, option)
    return args


def check_factories(paths) -> None:
    """Each ``--module`` names a factory its files show exists (the run's pytest processes import it)."""
    from conformance.modules import declare

    for path in paths or ():
        try:
            declare.check_factory_findable(path)
        except ValueError as exc:
            raise UsageError(str(exc)) from None


def check_perturbation(name: str, option: str = "--perturb") -> None:
    from conformance.selfcheck.benign import PERTURBATIONS

    if name not in PERTURBATIONS:
        where = "" if option == "--perturb" else f"{option}: "
        raise UsageError(f"{where}--perturb {name!r} is not a benign perturbation; one of: {', '.join(sorted(PERTURBATIONS))}")


def check_gate(args) -> None:
    from packaging.requirements import InvalidRequirement, Requirement

    check_profile(args.profile)
    check_positive("--jobs", args.jobs)
    check_positive("--timeout", args.timeout, float)
    for option, values in (("--baseline", args.baseline), ("--candidate", args.candidate)):
        for value in values:
            for req in value.split(","):
                if req.strip():
                    try:
                        if _path_requirement(option, req):  # a wheel file or a project directory
                            continue
                        Requirement(req.strip())
                    except InvalidRequirement as exc:
                        raise UsageError(f"{option} {req.strip()!r} is not a pip requirement: {str(exc).splitlines()[0]}") from None
    for option in ("--baseline-requirements", "--candidate-requirements"):
        path = getattr(args, option[2:].replace("-", "_"))
        if path and not os.path.isfile(path):
            raise UsageError(f"{option} {path!r}: no such file")
    if not os.path.isfile(args.python) or not os.access(args.python, os.X_OK):
        raise UsageError(f"--python {args.python!r} is not an executable interpreter")
    if args.project and not os.path.isfile(os.path.join(args.project, "pyproject.toml")):
        raise UsageError(f"--project {args.project!r} is not a checkout of this project (no pyproject.toml)")
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UsageError(f"--out {args.out!r} exists and is not a directory")
    check_pytest_args("--pytest-args", args.pytest_args)
    check_pytest_args("--candidate-pytest-args", args.candidate_pytest_args)
    check_side(args)


def check_side(args) -> None:
    import re

    if args.side is not None and not re.fullmatch(r"baseline|candidate(:[1-9][0-9]*)?|[^\s]+", args.side):
        raise UsageError(f"--side {args.side!r}: baseline, candidate, candidate:N or a side's label")
    if args.golden_from and not os.path.isdir(args.golden_from):
        raise UsageError(f"--golden-from {args.golden_from!r}: no such directory")
    if args.side and args.side != "baseline" and args.golden == "baseline" and not args.golden_from:
        raise UsageError(f"--side {args.side} compares against the baseline's golden records: give --golden-from DIR "
                         "(the baseline side's report directory), or --golden committed")
    if args.golden_from and not args.side:
        raise UsageError("--golden-from is for --side runs (the single-process gate records the baseline's own)")
    if args.bisect and args.side:
        raise UsageError("--bisect builds environments beyond the sides: it runs in the single-process gate only")


def _path_requirement(option: str, text: str) -> str | None:
    """A wheel file or project directory given as a path, as ``name @ file:///abs``; None for anything else."""
    from conformance.gate.sources import path_requirement

    try:
        return path_requirement(text)
    except ValueError as exc:
        raise UsageError(f"{option} {exc}") from None


def _requirements(values: list[str], option: str = "--candidate") -> list[str]:
    """``--baseline``/``--candidate`` values: one requirement each, or several joined by commas; paths as file URLs."""
    return [_path_requirement(option, r) or r.strip() for v in values for r in v.split(",") if r.strip()]


def gate_plan(args) -> GatePlan:
    """The gate's run as plain values: requirement files read, declarations checked, paths absolute."""
    from conformance.gate.envs import read_requirements
    from conformance.modules import declare

    try:
        baseline = _requirements(args.baseline, "--baseline") + read_requirements(args.baseline_requirements)
        cand_file = read_requirements(args.candidate_requirements)
        candidates = [_requirements([c]) + cand_file for c in args.candidate] or ([cand_file] if cand_file else [])
        modules = [declare.check_factory_path(m) for m in args.module]
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    for d in args.module_path:
        if not os.path.isdir(d):
            raise UsageError(f"--module-path must be an existing directory; got {d!r}")
    return GatePlan(
        baseline=tuple(baseline), candidates=tuple(tuple(c) for c in candidates), exclude_newer=args.exclude_newer,
        out=args.out, profile=args.profile, jobs=args.jobs, cache_dir=args.cache_dir, python=args.python,
        project=args.project,
        pytest_args=(("--direction", args.direction) if args.direction else ()) + tuple(shlex.split(args.pytest_args)),
        candidate_pytest_args=tuple(shlex.split(args.candidate_pytest_args)), timeout=args.timeout,
        modules=tuple(modules), module_paths=tuple(os.path.abspath(d) for d in args.module_path),
        accept_files=tuple(args.accept), golden=args.golden, attribute=args.attribute, bisect=args.bisect,
        side=args.side, golden_from=os.path.abspath(args.golden_from) if args.golden_from else None,
        fail_on_new_warnings=args.fail_on_new_warnings,
    )


def parse_gate(argv: list[str]) -> GatePlan:
    """``python -m conformance gate ARGV``'s plan, checked as the command checks it (UsageError otherwise)."""
    args = build_parser().parse_args(["gate", *argv])
    check(args)
    return gate_plan(args)


def check(args) -> None:
    if args.command == "selfcheck":
        check_faults(args.fault)
        for name in args.perturb or ():
            check_perturbation(name)
        check_profile(args.profile)
        check_positive("--jobs", args.jobs)
        check_writable_parent("--json", args.json)
        check_factories(args.module)
        if args.markdown_from and not os.path.isfile(args.markdown_from):
            raise UsageError(f"--markdown-from {args.markdown_from!r}: no such file")
    elif args.command == "record":
        check_writable_parent("--out", args.out)
        check_writable_parent("--zoo-out", args.zoo_out)
    elif args.command == "gate":
        check_gate(args)
    elif args.command == "merge":
        for d in args.dirs:
            if not os.path.isdir(d):
                raise UsageError(f"{d!r}: no such directory (give the directories 'gate --side' wrote)")
        for path in args.accept:
            if not os.path.isfile(path):
                raise UsageError(f"--accept {path!r}: no such file")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise UsageError(f"--out {args.out!r} exists and is not a directory")


# --- the commands -----------------------------------------------------------------------------------


def _run(args) -> int:
    if args.command == "merge":
        from conformance.gate import command as gate

        return gate.run_merge(args.dirs, args.out, args.accept, args.attribute, args.cache_dir)
    if args.command == "gate":
        from conformance.gate import command as gate

        return gate.run(gate_plan(args))
    if args.command == "selfcheck":
        from conformance.selfcheck import runner as selfcheck

        if args.markdown_from:
            import json

            with open(args.markdown_from) as fh:
                print(selfcheck.markdown(json.load(fh)), end="")
            return 0
        named = args.fault or args.perturb  # naming either runs only what is named
        return selfcheck.run(args.fault or ([] if named else None), args.profile, args.jobs, json_path=args.json,
                             first_catch=args.first_catch, perturbations=args.perturb or ([] if named else None),
                             modules=args.module, snippets=args.snippets)
    if args.command == "record":
        from conformance.core import jax_setup as _setup

        _setup.before_jax()
        from conformance.modules import declare
        from conformance.golden import contract as golden
        from conformance.golden import zoo as zoo_golden

        try:
            specs = declare.user_specs(args.module)
        except (ValueError, TypeError) as exc:
            print(f"python -m conformance record: {exc}", file=sys.stderr)
            return 2
        print(f"contract's golden record written to {golden.record(args.out)}")
        print(f"zoo's golden record written to {zoo_golden.record(args.zoo_out, specs)}")
        if specs and not args.zoo_out:
            print(f"declared modules recorded ({', '.join(s.name for s in specs)}): a plain run on this flax and jax "
                  f"compares against them (unless ${config.ZOO_RECORD_ENV} names another record)")
        if args.checkpoint_out:
            from conformance.golden import checkpoints
            from conformance.modules import zoo

            written = checkpoints.write(args.checkpoint_out, zoo.zoo_specs() + list(specs))
            print(f"orbax checkpoints of every module's variables written to {written}")
        return 0
    from conformance.selfcheck.faults import FAULTS

    for f in FAULTS.values():
        print(f"{f.name:28} {f.area:16} {f.description}")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = "python -m conformance"
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        what = f"unknown command {argv[0]!r}" if argv else "no command given"
        print(f"{prog}: {what}; commands: {', '.join(COMMANDS)} (see {prog} --help)", file=sys.stderr)
        return USAGE_ERROR
    args = build_parser().parse_args(argv)
    try:
        check(args)
    except UsageError as exc:
        print(f"{prog} {args.command}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    try:
        return _run(args)
    except Exception:  # exit 1 means "a regression" (gate) or "a fault missed" (selfcheck), never a crash
        traceback.print_exc()
        print(f"{prog} {args.command}: internal error (above); no verdict", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
