"""The gate's HTML report and heat-map: self-contained, verdict first, every cell linked to its evidence; in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from xml.sax.saxutils import quoteattr

import pytest
from junit_helpers import drifted, failed, junit, ok, skipped, xfailed, xpassed

from conformance.gate import heatmap, reports, verdict

REPRO = "AssertionError: y[0]=1.001, but should be 1.0\n\nrepro:\nfrom conformance import faults\nfaults.install('x')"


def failed_with_repro(name):
    return (f'<testcase classname="conformance.test_x" name="{name}"><failure message={quoteattr(REPRO.splitlines()[0])}>'
            f"{REPRO}</failure></testcase>")


BASELINE = junit(ok("test_pass"), ok("test_drift"), ok("test_skip"), ok("test_now_deviation"), ok("test_change"),
                 failed("test_fail_both", "AssertionError: broken before"), xfailed("test_fixed"), xfailed("test_dev"))
CANDIDATE = junit(ok("test_pass"), drifted("test_drift"), skipped("test_skip"), xfailed("test_now_deviation"),
                  failed_with_repro("test_change"), failed("test_fail_both", "AssertionError: broken before"),
                  xpassed("test_fixed"), xfailed("test_dev"))
EXPECTED = {"test_pass": "pass", "test_drift": "drift", "test_skip": "skipped", "test_now_deviation": heatmap.CHANGE,
            "test_change": heatmap.CHANGE, "test_fail_both": "fail", "test_fixed": "fixed", "test_dev": "deviation"}


@pytest.fixture
def report(tmp_path):
    """A gate report of two synthetic sides (every state present), written as the gate writes it."""
    infos = {}
    for label, xml, role in (("flax-0.12.8", BASELINE, "baseline"), ("flax@dir-1a2b3c4d5e6f", CANDIDATE, "candidate")):
        path = tmp_path / f"{label}.xml"
        path.write_text(xml)
        infos[label] = {"label": label, "role": role, "junit": str(path), "requirements": ["flax==0.12.8"],
                        "versions": {"flax": "0.12.8", "jax": "0.10.2"}, "results": verdict.parse_junit(xml)}
    infos["flax@dir-1a2b3c4d5e6f"]["sources"] = [{"kind": "directory", "location": "/src/flax",
                                                 "detail": "commit 1a2b3c4d5e6f + uncommitted changes 9f8e7d6c5b4a"}]
    matrix = verdict.build_matrix({k: v["results"] for k, v in infos.items()})
    result = verdict.verdict(matrix, "flax-0.12.8", ["flax@dir-1a2b3c4d5e6f"])
    out = tmp_path / "report"
    out.mkdir()
    reports.write_reports(str(out), matrix, result, infos)
    return out / "gate.html", matrix, result


def test_every_state_has_its_colour_and_glyph(report):
    _, matrix, result = report
    states = heatmap.states_of(matrix, result)
    assert states["flax@dir-1a2b3c4d5e6f"] == EXPECTED
    assert len({s.fill for s in heatmap.STYLES.values()}) == len(heatmap.STYLES)
    assert len({s.glyph for s in heatmap.STYLES.values()}) == len(heatmap.STYLES)  # told apart without colour


def test_the_page_is_self_contained_verdict_first_and_every_link_lands(report):
    path, matrix, _ = report
    page = path.read_text()
    assert not re.search(r"<script|<link|@import|url\((?!#)", page)  # nothing fetched, nothing run
    assert not re.search(r'(src|href)="https?:', page)
    assert page.index('id="verdict"') < page.index("<svg") < page.index('id="p-0"')
    assert "Verdict: exit 1, a candidate changes or regresses" in page
    cells = re.findall(r'<g class="cell cell-(\w+)">', page)
    assert len(cells) == len(matrix["properties"]) * 2 + len(heatmap.ORDER)  # the map's cells, then the legend's
    ids = set(re.findall(r'id="([^"]+)"', page))
    links = re.findall(r'href="#([^"]+)"', page)
    assert links and all(link in ids for link in links), sorted(set(links) - ids)
    assert "repro:\nfrom conformance import faults" in page  # the failure's full text, not only its first line
    assert "docs/known-deviations.md" in page  # a deviation's evidence
    assert "commit 1a2b3c4d5e6f + uncommitted changes 9f8e7d6c5b4a" in page  # the candidate named by its source


def test_a_gate_without_results_still_writes_its_page(tmp_path):
    """Every side failed to build: no property to draw, yet the page gives the verdict and the reasons."""
    matrix = verdict.build_matrix({"flax-0.12.7": None, "flax-0.12.8": None})
    result = verdict.verdict(matrix, "flax-0.12.7", ["flax-0.12.8"], {"flax-0.12.7": "RuntimeError: uv exited 1"})
    reports.write_reports(str(tmp_path), matrix, result, {"flax-0.12.7": {"results": None}, "flax-0.12.8": {"results": None}})
    page = (tmp_path / "gate.html").read_text()
    assert "Verdict: exit 2, no verdict" in page and "RuntimeError: uv exited 1" in page and "<svg" not in page


def test_a_heat_map_refuses_what_it_cannot_draw():
    with pytest.raises(ValueError, match="needs rows and columns"):
        heatmap.svg([], ["a"], {})
    with pytest.raises(ValueError, match="state 'bogus' of 'p' on 'a' is not one of pass"):
        heatmap.svg(["p"], ["a"], {"a": {"p": "bogus"}})


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome", "chrome") if shutil.which(b)), None)


def _png_pixels(path) -> bytes:
    """The decompressed scanlines of a PNG (filter bytes included): enough to tell a blank page from a drawn one."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return zlib.decompress(idat)


def test_the_report_opens_in_a_headless_browser(report, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium): the page is not opened in a browser")
    path, _, _ = report
    url = "file://" + str(path)
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert 'id="verdict"' in dom and "Verdict: exit 1" in dom
    assert dom.count('class="cell cell-change"') == 2 + 1 and 'class="heatmap"' in dom  # two changes, one in the legend
    shot = tmp_path / "shot.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1200,900", url], capture_output=True, timeout=120)
    assert shot.exists(), "the browser wrote no screenshot"
    pixels = _png_pixels(shot)
    assert len(set(pixels)) > 50, "the screenshot is blank"
    # The verdict's vermillion banner is drawn: its colour appears among the pixels (RGB or RGBA rows).
    assert bytes.fromhex("d55e00") in pixels
    keep = os.environ.get("CONFORMANCE_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_the_committed_version_matrix_pictures_are_current(tmp_path):
    """docs/version-matrix-*.svg are what tools/version_matrix_svg.py draws from docs/version-matrix.json today."""
    import importlib.util

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location("version_matrix_svg", os.path.join(root, "tools", "version_matrix_svg.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([os.path.join(root, "docs", "version-matrix.json"), "--out-dir", str(tmp_path)]) == 0
    drawn = sorted(os.listdir(tmp_path))
    assert drawn == ["version-matrix-contract.svg", "version-matrix-pipelines.svg",
                     "version-matrix-real-layer-tier.svg", "version-matrix-to-nnx.svg", "version-matrix-zoo.svg"]
    for name in drawn:
        with open(os.path.join(root, "docs", name)) as fh:
            assert fh.read() == (tmp_path / name).read_text(), f"docs/{name} is stale: run python tools/version_matrix_svg.py"
    zoo = (tmp_path / "version-matrix-zoo.svg").read_text()
    assert zoo.count('class="cell cell-change"') > 0 and "0.12.8 (baseline)" in zoo
