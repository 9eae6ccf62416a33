"""The ToNNX direction's properties: a Linen module inside an NNX model (``bridge.ToNNX``, ``bridge.lazy_init``).

``contract``: the seed contract over ``reference.linen_inside_nnx``; ``pipelines``: the direction's own pipeline contract.
"""
