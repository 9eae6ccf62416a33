"""The project's one end-to-end gate test: two real environments, one property.

flax 0.11.2 refuses apply() with a params leaf missing; flax 0.12.0 silently
re-initialises it (a recorded known deviation). The gate must call that a
change and exit 1. The baseline records its own golden records first (the
references every side's golden properties compare against). Builds two uv environments (cached under the gate's cache;
a cold build downloads jax and jaxlib) and runs one property in each.
"""

from __future__ import annotations

import json
import urllib.request

import pytest


def pypi_reachable() -> bool:
    try:
        with urllib.request.urlopen("https://pypi.org/pypi/flax/json", timeout=10):
            return True
    except OSError:
        return False


@pytest.mark.skipif(not pypi_reachable(), reason="PyPI is unreachable: the gate cannot build its environments")
def test_a_known_deviation_on_the_candidate_is_a_change(tmp_path):
    from conformance.cli import main

    code = main(["gate", "--baseline", "flax==0.11.2", "--candidate", "flax==0.12.0", "--no-attribution",
                 "--profile", "dev", "--pytest-args", "-k test_apply_rejects_missing_leaf", "--jobs", "2",
                 "--out", str(tmp_path)])
    report = json.loads((tmp_path / "gate.json").read_text())
    assert code == 1, report["errors"] or report["comparisons"]
    (change,) = report["comparisons"][0]["changes"]
    assert (change["property"], change["baseline"], change["candidate"]) == ("test_apply_rejects_missing_leaf",
                                                                             "pass", "deviation")
    assert "PR #4937" in change["reason"]
    # The golden references were recorded in the baseline's own environment.
    assert report["golden_reference"].startswith("the baseline's own records (flax-0.11.2: flax 0.11.2"), report["golden_reference"]
    recorded = json.loads((tmp_path / "golden" / "zoo.json").read_text())
    assert recorded["versions"]["flax"] == "0.11.2"
