"""The upgrade gate: environments, runs, verdict, attribution and reports.

``plan`` (the run as plain values), ``command`` (orchestration), ``sides``
(one side's build and run; golden references), ``envs`` (environments and
PyPI dates), ``dist`` (the suite's wheel), ``verdict`` (JUnit to matrix to
verdict; accept files), ``attribution`` (cross environments, bisection),
``reports`` (Markdown, JSON, JUnit), ``html`` and ``heatmap`` (the HTML report and
its SVG heat-map), ``sources`` (checkouts, git references and wheels: what a side
holds now), ``merge`` (side reports of ``--side`` jobs, and their merge). Runs the properties in other
environments; imports only ``core`` and ``numerics`` of the project.
"""
