"""The pipeline contract of Linen layers inside NNX models (``bridge.ToNNX``, ``bridge.lazy_init``)."""
