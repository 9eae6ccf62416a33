"""Every change to the suite proves it still catches every fault of the corpus.

Runs ``python -m conformance selfcheck --first-catch``: each fault's run stops
at its first failing property, and the clean run must pass.
"""

import subprocess
import sys


def test_selfcheck_catches_every_fault():
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "selfcheck", "--first-catch"], capture_output=True, text=True, timeout=1500
    )
    assert proc.returncode == 0, f"selfcheck failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert "MISSED" not in proc.stdout
