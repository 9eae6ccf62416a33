"""The zoo's own properties: dropout streams, batch statistics, constructor keywords."""
