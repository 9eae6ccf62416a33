"""The properties, one folder per area: ``contract`` (the one-Linear contract), ``zoo``, ``modules`` (every declared module), ``golden``;
``to_nnx`` holds the other direction's (a Linen module inside an NNX model).

Each ``test_*.py`` is one area of the bridge's contract. Properties import
``golden``, ``modules``, ``helpers`` and below; nothing imports them.
"""
