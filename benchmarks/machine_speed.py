"""How fast this machine is right now, for the suite's kind of work: XLA compiles, and plain Python.

    python benchmarks/machine_speed.py          # prints both, in CPU-s; run it beside a timing

The suite's time is mostly compiling small XLA programs (benchmarks/README.md).
A plain Python loop missed the machine's slow phases: on 2026-12-07 it took
0.50-0.58 CPU-s all evening, while compiling these 40 gradient programs took
11.6 CPU-s at 22:37 and 13.2-14.0 from 22:47 on, and the test command 1562 and
then 1718-1755 CPU-s (benchmarks/README.md).
The persistent compilation cache is off here, so every run compiles all 40.
"""

from __future__ import annotations

import os
import time


def compile_cpu_s(programs: int = 40) -> float:
    """CPU-s to compile (and run once) the gradient of a small MLP at ``programs`` shapes, no cache."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_compilation_cache", False)

    def loss(x, w1, w2):
        return jnp.sum(jax.nn.softmax(jnp.tanh(x @ w1) @ w2, axis=-1) ** 2)

    grad = jax.jit(jax.grad(loss, argnums=(1, 2)))
    start = time.process_time()
    for n in range(4, 4 + programs):
        jax.block_until_ready(grad(jnp.ones((3, n)), jnp.ones((n, n + 1)), jnp.ones((n + 1, 5))))
    return time.process_time() - start


def python_cpu_s() -> float:
    start = time.process_time()
    sum(i * i for i in range(10**7))
    return time.process_time() - start


if __name__ == "__main__":
    print(f"xla compiles: {compile_cpu_s():.2f} CPU-s   python loop: {python_cpu_s():.2f} CPU-s")
