"""Suite runs forked from a server that imported jax, flax and the test libraries once.

The self-check runs the suite some seventy times (clean, every perturbation,
every fault); a fresh interpreter spends about 2.5 s of CPU importing jax,
flax, optax, orbax, Hypothesis and pytest before its first test. A server
process imports them once; each run is a fork of it that calls
``pytest.main`` in its own process, so a fault or a perturbation never leaks
into the next run. The server imports nothing that reads configuration at
import except jax, whose ``JAX_*`` variables must then match the server's: a
run that changes them, or a platform without ``os.fork``, gets a plain
subprocess. XLA reads ``XLA_FLAGS`` when a backend starts, inside the fork,
so the suite's device count and a perturbation's compiler flags still apply.
One server per calling thread: each serves one run at a time.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading

PRELOAD = ("numpy", "jax", "flax.linen", "flax.nnx", "optax", "orbax.checkpoint", "hypothesis", "pytest")

# The server: one JSON request per line; it forks, prints the child's pid, then its exit code.
_SERVER = f"""
import json, os, sys
for name in {PRELOAD!r}:
    __import__(name)
print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            fd = os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
            sys.argv = ["pytest", *req["args"]]
            import pytest
            code = int(pytest.main(req["args"]))
        except BaseException as exc:
            print("pytest.main raised", repr(exc), file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""

_local = threading.local()
_servers: list[subprocess.Popen] = []


def _jax_env(env) -> dict:
    return {k: v for k, v in env.items() if k.startswith("JAX_")}


def _server() -> subprocess.Popen | None:
    """This thread's server, started on first use; None where there is no fork."""
    if not hasattr(os, "fork"):
        return None
    srv = getattr(_local, "server", None)
    if srv is None or srv.poll() is not None:
        srv = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, bufsize=1)
        if srv.stdout.readline().strip() != "ready":
            srv.kill()
            return None
        srv.jax_env = _jax_env(os.environ)
        _local.server = srv
        _servers.append(srv)
    return srv


def _readline(srv: subprocess.Popen, timeout: float | None) -> str | None:
    ready, _, _ = select.select([srv.stdout], [], [], timeout)
    return srv.stdout.readline().strip() if ready else None


def run_pytest(args, cwd: str, env: dict | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """``python -m pytest *args`` in ``cwd``: returncode, and stdout with stderr folded in."""
    env = dict(os.environ if env is None else env)
    srv = _server()
    if srv is None or _jax_env(env) != srv.jax_env:
        proc = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout + proc.stderr, "")
    with tempfile.NamedTemporaryFile("r", suffix=".out") as out:
        srv.stdin.write(json.dumps({"args": list(args), "cwd": str(cwd), "env": env, "out": out.name}) + "\n")
        pid = int(srv.stdout.readline())
        code = _readline(srv, timeout)
        if code is None:
            os.kill(pid, signal.SIGKILL)
            srv.stdout.readline()
            raise subprocess.TimeoutExpired(["pytest", *args], timeout)
        return subprocess.CompletedProcess(["pytest", *args], int(code), out.read(), "")


@atexit.register
def _stop() -> None:
    for srv in _servers:
        if srv.poll() is None:
            srv.stdin.close()
            srv.wait()
