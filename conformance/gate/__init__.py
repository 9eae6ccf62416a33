"""The upgrade gate: environments, runs, verdict, attribution and reports.

``plan`` (the run as plain values), ``command`` (orchestration), ``sides``
(one side's build and run; golden references), ``envs`` (environments and
PyPI dates), ``dist`` (the suite's wheel), ``verdict`` (JUnit to matrix to
verdict; accept files), ``attribution`` (cross environments, bisection),
``reports`` (Markdown, JSON, JUnit). Runs the properties in other
environments; imports only ``core`` and ``numerics`` of the project.
"""
