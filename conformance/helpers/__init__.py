"""What properties are written with: strategies, asserts with their repro notes, and the harness.

``hypothesis_helpers`` draws cases; ``pytest_helpers`` asserts (messages that
name the leaf and the bound) and attaches repro snippets; ``harness`` places
inputs on devices and caches the compiled calls of the contract; ``devices``
names the devices every property runs on. May import
``reference`` (the contract under test), ``numerics`` and ``core``.
"""
