"""``python -m conformance``: the project's commands.

    python -m conformance selfcheck [--fault NAME ...] [--perturb NAME ...] [--profile P] [--jobs N] [--json PATH] [--first-catch]
    python -m conformance faults          # list the fault corpus
    python -m conformance record [--module pkg.mod:factory]   # golden records (contract, zoo) of the installed flax and jax
    python -m conformance gate --baseline flax==A --candidate flax==B [...]   # upgrade gate (see conformance/gate.py)

Every command checks its arguments before it does any work: wrong usage exits 2
with one line that names the argument and its valid values.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback

COMMANDS = {
    "selfcheck": "run the suite against every broken bridge, every benign perturbation, and neither",
    "faults": "list the fault corpus",
    "record": "write the golden record of the installed flax and jax",
    "gate": "the suite in a baseline and candidate environments: may we upgrade?",
}
USAGE_ERROR = 2


class UsageError(Exception):
    """Wrong usage: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (exit 2) instead of a usage block."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from conformance import gate

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
    sub.add_parser("faults", help=COMMANDS["faults"])
    rec = sub.add_parser("record", help=COMMANDS["record"])
    rec.add_argument("--out", default=None, help="file to write (default: conformance/records/flax-V_jax-V.json)")
    rec.add_argument("--zoo-out", default=None, help="zoo record to write (default: conformance/records/zoo/flax-V_jax-V.json)")
    rec.add_argument("--module", action="append", default=[], metavar="PACKAGE.MODULE:FACTORY",
                     help="also record a team's declared modules in the zoo record (repeatable)")
    gate_parser = sub.add_parser("gate", help=COMMANDS["gate"], epilog=gate.EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    gate.add_arguments(gate_parser)
    return parser


# --- argument checks (before any work) ------------------------------------------------------------


def check_profile(name: str, option: str = "--profile") -> None:
    from hypothesis import settings
    from hypothesis.errors import InvalidArgument

    from conformance import _setup, config

    _setup.register_profiles()
    try:
        settings.get_profile(name)
    except InvalidArgument:
        raise UsageError(f"{option} {name!r} is not a Hypothesis profile; one of: {', '.join(config.PROFILES)}") from None


def check_faults(names) -> None:
    from conformance.faults import FAULTS, unknown_fault_message

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


def check_perturbation(name: str, option: str = "--perturb") -> None:
    from conformance.benign import PERTURBATIONS

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


def check(args) -> None:
    if args.command == "selfcheck":
        check_faults(args.fault)
        for name in args.perturb or ():
            check_perturbation(name)
        check_profile(args.profile)
        check_positive("--jobs", args.jobs)
        check_writable_parent("--json", args.json)
        if args.markdown_from and not os.path.isfile(args.markdown_from):
            raise UsageError(f"--markdown-from {args.markdown_from!r}: no such file")
    elif args.command == "record":
        check_writable_parent("--out", args.out)
        check_writable_parent("--zoo-out", args.zoo_out)
    elif args.command == "gate":
        check_gate(args)


# --- the commands -----------------------------------------------------------------------------------


def _run(args) -> int:
    if args.command == "gate":
        from conformance import gate

        return gate.run(args)
    if args.command == "selfcheck":
        from conformance import selfcheck

        if args.markdown_from:
            import json

            with open(args.markdown_from) as fh:
                print(selfcheck.markdown(json.load(fh)), end="")
            return 0
        named = args.fault or args.perturb  # naming either runs only what is named
        return selfcheck.run(args.fault or ([] if named else None), args.profile, args.jobs, json_path=args.json,
                             first_catch=args.first_catch, perturbations=args.perturb or ([] if named else None))
    if args.command == "record":
        from conformance import _setup

        _setup.before_jax()
        from conformance import declare, golden, zoo_golden

        try:
            specs = declare.user_specs(args.module)
        except (ValueError, TypeError) as exc:
            print(f"python -m conformance record: {exc}", file=sys.stderr)
            return 2
        print(golden.record(args.out))
        print(zoo_golden.record(args.zoo_out, specs))
        return 0
    from conformance.faults import FAULTS

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
