"""The declaration the conformance suite reads: ``--module resmlp_layers.conformance_specs:specs``."""

import numpy as np

from conformance.modules.declare import ModuleSpec
from resmlp_layers.blocks import ResidualMLPBlock

WIDTH, HIDDEN = 8, 32


def specs():
    rng = np.random.default_rng(0)
    return ModuleSpec(
        name="user_resmlp",
        nnx_class=ResidualMLPBlock,
        kwargs=dict(width=WIDTH, hidden=HIDDEN, dropout_rate=0.1),
        inputs=(rng.normal(size=(4, WIDTH)).astype(np.float32),),  # a batch of 4 rows
        rng_streams=("dropout",),  # apply(..., rngs={"dropout": key}) in training
        train_kwargs={"deterministic": False},
        eval_kwargs={"deterministic": True},
    )
