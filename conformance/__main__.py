"""``python -m conformance``: the project's commands.

    python -m conformance selfcheck [--fault NAME ...] [--perturb NAME ...] [--profile P] [--jobs N] [--json PATH] [--first-catch]
    python -m conformance faults          # list the fault corpus
    python -m conformance record [--module pkg.mod:factory]   # golden records (contract, zoo) of the installed flax and jax
    python -m conformance gate --baseline flax==A --candidate flax==B [...]   # upgrade gate (see conformance/gate.py)
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance")
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("selfcheck", help="run the suite against every broken bridge, every benign perturbation, and neither")
    sc.add_argument("--fault", action="append", help="only these faults (repeatable)")
    sc.add_argument("--perturb", action="append", help="only these benign perturbations (repeatable)")
    sc.add_argument("--profile", default="selfcheck", help="Hypothesis profile (default: selfcheck)")
    sc.add_argument("--jobs", type=int, default=None, help="pytest runs at once (default: CPU count)")
    sc.add_argument("--json", default=None, help="also write the results as JSON here")
    sc.add_argument("--markdown-from", default=None, metavar="JSON",
                    help="print the tables of an earlier --json report as Markdown, and run nothing")
    sc.add_argument("--first-catch", action="store_true", help="stop each fault's run at its first catch (faster)")
    sub.add_parser("faults", help="list the fault corpus")
    rec = sub.add_parser("record", help="write the golden record of the installed flax and jax")
    rec.add_argument("--out", default=None, help="file to write (default: conformance/records/flax-V_jax-V.json)")
    rec.add_argument("--zoo-out", default=None, help="zoo record to write (default: conformance/records/zoo/flax-V_jax-V.json)")
    rec.add_argument("--module", action="append", default=[], metavar="PACKAGE.MODULE:FACTORY",
                     help="also record a team's declared modules in the zoo record (repeatable)")
    from conformance import gate

    gate_parser = sub.add_parser("gate", help="the suite in a baseline and candidate environments: may we upgrade?",
                                 epilog=gate.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    gate.add_arguments(gate_parser)
    args = parser.parse_args(argv)
    if args.command == "gate":
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


if __name__ == "__main__":
    sys.exit(main())
