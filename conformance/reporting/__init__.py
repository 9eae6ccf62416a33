"""The pytest plugin: options, the header and closing summary, JUnit properties and the JSON report.

Loaded through the ``pytest11`` entry point. May import ``golden`` and
everything below it; never the properties.
"""
