"""pytest plugin: counts JAX compilations per process and writes them as JSON.

Loaded by bench_gate.py with ``-p benchmarks._compile_probe``. Each pytest
process (the serial run, or the xdist controller and every worker) writes one
file into the directory named by ``$BENCH_PROBE_DIR``; without it, it does nothing.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict

ENV = "BENCH_PROBE_DIR"

# jax 0.10: the backend-compile event wraps compile_or_get_cached, so it fires
# on persistent-cache hits too; the cache's own events tell the two apart.
BACKEND_COMPILE = "backend_compile"
CACHE_HITS = "/jax/compilation_cache/cache_hits"
CACHE_WRITES = "/jax/compilation_cache/cache_misses"  # recorded when a miss is written back
CACHE_RETRIEVAL = "/jax/compilation_cache/cache_retrieval_time_sec"

_counts: dict[str, int] = defaultdict(int)
_secs: dict[str, float] = defaultdict(float)
_session: dict[str, float] = {}


def _on_duration(event: str, duration: float, **_kw) -> None:
    _counts[event] += 1
    _secs[event] += duration


def _on_event(event: str, **_kw) -> None:
    _counts[event] += 1


def _role(config) -> str:
    if hasattr(config, "workerinput"):
        return "worker"
    # xdist turns -n N into a dist mode on the controller, which runs no tests.
    return "controller" if getattr(config.option, "dist", "no") != "no" else "serial"


def pytest_configure(config):
    if not os.environ.get(ENV):
        return
    # After the conftests, so jax is imported only once the suite set its flags.
    from jax import monitoring

    monitoring.register_event_duration_secs_listener(_on_duration)
    monitoring.register_event_listener(_on_event)


def pytest_sessionstart(session):
    _session["start"] = time.perf_counter()
    _session["cpu_start"] = time.process_time()


def pytest_sessionfinish(session):
    _session["end"] = time.perf_counter()
    _session["cpu_end"] = time.process_time()


def pytest_unconfigure(config):
    out_dir = os.environ.get(ENV)
    if not out_dir or "start" not in _session:
        return
    compile_keys = [k for k in _secs if BACKEND_COMPILE in k]
    compile_side = [k for k in _secs if k.startswith("/jax/core/compile/") and k not in compile_keys]
    role = _role(config)
    worker = getattr(config, "workerinput", {}).get("workerid", role)
    record = {
        "role": role,
        "worker": worker,
        "pid": os.getpid(),
        "session_s": _session.get("end", time.perf_counter()) - _session["start"],
        # CPU time of every thread of the process (XLA compiles on a thread pool):
        # over the session, and from interpreter start to here.
        "session_cpu_s": _session.get("cpu_end", time.process_time()) - _session["cpu_start"],
        "cpu_s": time.process_time(),
        "compile_requests": sum(_counts[k] for k in compile_keys),  # persistent-cache hits included
        "compile_s": sum(_secs[k] for k in compile_keys),
        "cache_hits": _counts.get(CACHE_HITS, 0),
        "cache_writes": _counts.get(CACHE_WRITES, 0),
        "cache_retrieval_s": _secs.get(CACHE_RETRIEVAL, 0.0),
        # Tracing and lowering are compile-side costs too; kept apart from XLA's.
        "trace_lower_s": sum(_secs[k] for k in compile_side),
        "events": {k: [n, _secs.get(k, 0.0)] for k, n in sorted(_counts.items())},
    }
    path = os.path.join(out_dir, f"{role}-{worker}-{os.getpid()}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
