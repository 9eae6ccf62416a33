"""pytest plugin for benchmarks/cpu_by_test.py: each xdist worker writes the test it runs to ``$CPU_BY_TEST_DIR/<pid>``."""

import os

import pytest


def _write(text: str) -> None:
    folder = os.environ.get("CPU_BY_TEST_DIR")
    if folder and os.environ.get("PYTEST_XDIST_WORKER"):
        with open(os.path.join(folder, str(os.getpid())), "w") as fh:
            fh.write(text)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _write(item.nodeid)
    yield
    _write("")
