"""Synthetic JUnit XML for the gate's tests: one function per testcase outcome."""

from __future__ import annotations

import json
from xml.sax.saxutils import escape, quoteattr

from conformance.gate import verdict


def junit(*cases: str) -> str:
    body = "".join(cases)
    return f'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">{body}</testsuite></testsuites>'


def ok(name, cls="conformance.test_x"):
    return f'<testcase classname="{cls}" name="{name}" time="0.1" />'


def failed(name, message="AssertionError: y differs", cls="conformance.test_x"):
    return f'<testcase classname="{cls}" name="{name}"><failure message={quoteattr(message)}>traceback</failure></testcase>'


def errored(name, message='failed on setup with "RuntimeError: boom"'):
    return f'<testcase classname="conformance.test_x" name="{name}"><error message={quoteattr(message)}>tb</error></testcase>'


def xfailed(name, reason="known deviation (flax>=0.12): apply re-initialises"):
    return f'<testcase classname="conformance.test_x" name="{name}"><skipped type="pytest.xfail" message={quoteattr(reason)} /></testcase>'


def xpassed(name, reason="known deviation (flax>=0.12): apply re-initialises"):
    msg = f"[XPASS(strict)] {reason}"
    return f'<testcase classname="conformance.test_x" name="{name}"><failure message={quoteattr(msg)}>{escape(msg)}</failure></testcase>'


def skipped(name, reason="flax.nnx.bridge.to_linen has no abstract_init in this release"):
    return f'<testcase classname="conformance.test_x" name="{name}"><skipped type="pytest.skip" message={quoteattr(reason)}>where</skipped></testcase>'


def outcomes(xml):
    return {r.test: r.outcome for r in verdict.parse_junit(xml)}


def drifted(name, drifted=3, comparisons=10, max_ulps=2.0, worst="y[0] 2 ulp"):
    value = json.dumps({"comparisons": comparisons, "drifted": drifted, "max_ulps": max_ulps, "max_rel": 1e-7,
                        "max_fraction_of_bound": 0.25, "worst": worst})
    return (f'<testcase classname="conformance.test_x" name="{name}"><properties>'
            f'<property name="conformance_drift" value={quoteattr(value)} /></properties></testcase>')
