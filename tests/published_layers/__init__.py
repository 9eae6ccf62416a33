"""Layers others published, copied as published (only imports adapted), and their declarations (specs.py).

Each file names its source (repository, path, tag) under the source's license
header. ``--module published_layers.specs:specs`` runs every module property on
them, with this directory's parent (tests/) importable.
"""
