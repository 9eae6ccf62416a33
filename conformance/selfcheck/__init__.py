"""The self-check: the fault corpus, benign perturbations, and the runner that proves the suite against both.

``fault`` (the Fault type and registry), ``contract_faults`` and
``zoo_faults`` (deliberately broken bridges), ``faults`` (the pytest plugin
that installs one), ``benign`` (numerically legitimate changes that must pass),
``runner`` (``python -m conformance selfcheck``). Runs the properties in
subprocesses; imports ``modules``, ``helpers`` and below.
"""
