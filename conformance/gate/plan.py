"""One gate run as the command line describes it: the only input the gate's modules receive.

``conformance/cli.py`` parses the command line once into a :class:`GatePlan`
(requirement files read, module paths made absolute); everything below takes
its values, never the argparse namespace.
"""

from __future__ import annotations

import dataclasses
import sys

from conformance.core import config


@dataclasses.dataclass(frozen=True)
class GatePlan:
    baseline: tuple[str, ...]  # the baseline side's requirements
    candidates: tuple[tuple[str, ...], ...]  # one requirement set per candidate side
    exclude_newer: str = "auto"  # auto | none | a date
    out: str = "gate-report"
    profile: str = config.DEFAULT_PROFILE
    jobs: int | None = None  # environments at once; None: one per side, at most the CPU count
    cache_dir: str | None = None
    python: str = sys.executable
    project: str | None = None  # a checkout to install the suite from; None: the installed suite's wheel
    pytest_args: tuple[str, ...] = ()
    candidate_pytest_args: tuple[str, ...] = ()
    timeout: float | None = 3600.0
    modules: tuple[str, ...] = ()  # a team's declaration factories, package.module:function
    module_paths: tuple[str, ...] = ()  # absolute directories put on every side's PYTHONPATH
    accept_files: tuple[str, ...] = ()
    golden: str = config.GATE_GOLDEN
    attribute: bool = True
    bisect: bool = False
    side: str | None = None  # run only these sides and write their side reports (conformance/gate/merge.py)
    golden_from: str | None = None  # a baseline side report's directory: candidates compare against its records

    def side_pytest_args(self, role: str) -> list[str]:
        """What a side's pytest gets beyond the suite's own: the extra arguments and the declarations."""
        common = list(self.pytest_args) + [a for m in self.modules for a in ("--module", m)]
        return common + (list(self.candidate_pytest_args) if role == "candidate" else [])
