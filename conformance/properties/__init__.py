"""The properties, one folder per area: ``contract`` (the one-Linear contract), ``zoo``, ``modules`` (every declared module), ``golden``.

Each ``test_*.py`` is one area of the bridge's contract. Properties import
``golden``, ``modules``, ``helpers`` and below; nothing imports them.
"""
