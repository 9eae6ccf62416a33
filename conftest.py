"""Checkout-level pytest configuration: the same jax set-up for tests/ as for the gate.

The gate's own configuration (profiles, device parametrization, header) lives
in conformance/conftest.py so that it ships with the installed package.
"""

import pytest

from conformance.core import jax_setup as _setup

_setup.set_xla_flags()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    _setup.configure_process(config)
