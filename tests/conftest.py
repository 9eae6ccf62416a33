"""The self-check, run once for the two tests that read it (tests/test_selfcheck.py, tests/test_repro_snippets.py).

Both carry ``xdist_group("selfcheck")`` and pytest runs with ``--dist loadgroup``
(pyproject.toml), so one worker runs both and the self-check runs once. With
only the snippet test selected, it runs the snippet faults alone.
"""

import json
import subprocess
import sys

import pytest

@pytest.fixture(scope="session")
def selfcheck_report(request, tmp_path_factory):
    """(the finished process, its --json report): every fault at its first catch, the snippet faults' properties to
    their end with their failures kept, every benign perturbation, the clean run."""
    from conformance.core import config

    path = tmp_path_factory.mktemp("selfcheck") / "selfcheck.json"
    cmd = [sys.executable, "-m", "conformance", "selfcheck", "--first-catch", "--snippets", "--json", str(path)]
    if not any(item.name == "test_selfcheck_catches_every_fault" for item in request.session.items):
        cmd += [a for f in config.SNIPPET_FAULTS for a in ("--fault", f)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1500)
    report = json.loads(path.read_text()) if path.exists() else {"results": []}
    return proc, report
