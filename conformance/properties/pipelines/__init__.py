"""Pipelines as teams build them: the bridged module nested, lifted, sharded, initialised abstractly, checkpointed."""
