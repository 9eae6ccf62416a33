"""Checkout-level pytest configuration: the same jax set-up for tests/ as for the gate.

The gate's own configuration (profiles, device parametrization, header) lives
in conformance/conftest.py so that it ships with the installed package.
"""

from conformance import _setup

_setup.before_jax()
