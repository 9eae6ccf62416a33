"""The seed contract's properties over ``reference.linen_inside_nnx``: one Linen ``nn.Dense`` inside an NNX model."""
