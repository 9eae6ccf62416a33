"""The other direction's golden record: ``linen_inside_nnx``'s params and outputs on a fixed grid."""
