"""The bridge's public surface as teams touch it: methods at init, attribute reads, ``ToLinen``'s fields, ``to_linen_class``, Linen's metadata boxes."""
