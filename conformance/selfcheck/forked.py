"""Suite runs (and repro snippets) forked from a server that imported jax, flax and the test libraries once.

The self-check runs the suite some seventy times (clean, every perturbation,
every fault); a fresh interpreter spends about 2.5 s of CPU importing jax,
flax, optax, orbax, Hypothesis and pytest before its first test. A server
process imports them once; each run is a fork of it that calls
``pytest.main`` in its own process, so a fault or a perturbation never leaks
into the next run. What is read once at start-up must then match the
server's: jax's ``JAX_*`` variables and Python's own. ``PYTHONPATH`` may add
directories in front of the server's (a team's layers, ``tests/``): the fork
puts them on ``sys.path`` where start-up would, unless one of them holds a
module the server has imported already, which the fork could not shadow. Any
other change, or a platform without ``os.fork``, gets a plain subprocess. XLA
reads ``XLA_FLAGS`` when a backend starts, inside the fork, so the suite's
device count and a perturbation's compiler flags still apply.
One server per calling thread: each serves one run at a time, and kills a run
past its timeout itself.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading

from conformance.core import jax_setup

PRELOAD = ("numpy", "jax", "flax.linen", "flax.nnx", "optax", "orbax.checkpoint", "hypothesis", "pytest")

# The server: one JSON request per line; it forks, then prints the child's exit code, or
# "timeout" once it has killed a child past its time.
_SERVER = f"""
import json, os, sys, time
for name in {PRELOAD!r}:
    __import__(name)
# The imported modules live as long as every run: frozen, no run's garbage collections walk them again (nor copy
# their pages out of the fork to write the collector's marks): about 0.4 s less per run.
import gc
gc.collect()
gc.freeze()
print("ready", json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})), flush=True)
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
            if req["path"]:  # PYTHONPATH's added entries: after the script's directory, absolute, first one kept
                entries = [sys.path[0], *map(os.path.abspath, req["path"]), *sys.path[1:]]
                sys.path[:] = list(dict.fromkeys(entries))
            if "code" in req:  # as `python -c CODE` runs it: a fresh __main__, a traceback and exit code 1 on error
                sys.argv = ["-c"]
                try:
                    exec(compile(req["code"], "<string>", "exec"), {{"__name__": "__main__", "__builtins__": __builtins__}})
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                except BaseException:
                    import traceback
                    traceback.print_exc()
                    code = 1
            else:
                sys.argv = ["pytest", *req["args"]]
                import pytest
                code = int(pytest.main(req["args"]))
        except BaseException as exc:
            print("the forked run raised", repr(exc), file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    start = time.monotonic()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            print(os.waitstatus_to_exitcode(status), flush=True)
            break
        if req["timeout"] is not None and time.monotonic() - start > req["timeout"]:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            print("timeout", flush=True)
            break
        time.sleep(0.02)
"""

_local = threading.local()
_servers: list[subprocess.Popen] = []


def _startup_env(env) -> dict:
    """The variables read once at start-up: jax's at import, Python's (PYTHONPATH and the rest)."""
    return {k: v for k, v in env.items() if k.startswith(("JAX_", "PYTHON"))}


def _server() -> subprocess.Popen | None:
    """This thread's server, started on first use; None where there is no fork."""
    if not hasattr(os, "fork"):
        return None
    srv = getattr(_local, "server", None)
    if srv is None or srv.poll() is not None:
        srv = subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, bufsize=1)
        ready, _, imported = srv.stdout.readline().strip().partition(" ")
        if ready != "ready":
            srv.kill()
            return None
        srv.startup_env = _startup_env(os.environ)
        srv.imported = frozenset(json.loads(imported))
        _local.server = srv
        _servers.append(srv)
        jax_setup.at_worker_end(_stop)
    return srv


def run_pytest(args, cwd: str, env: dict | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """``python -m pytest *args`` in ``cwd``: returncode, and stdout with stderr folded in."""
    return _run({"args": list(args)}, ["-m", "pytest", *args], cwd, env, timeout)


def run_python(code: str, cwd: str, env: dict | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
    """``python -c code`` in ``cwd``, forked (its modules imported already): returncode, stdout with stderr folded in."""
    return _run({"code": code}, ["-c", code], cwd, env, timeout)


def _added_path(env: dict, srv, cwd) -> list[str] | None:
    """The directories ``env``'s PYTHONPATH puts in front of the server's; None where a fork cannot stand in for
    start-up (another start-up variable differs, the server's entries are not its tail, or an added directory holds
    a module the server imported: a fresh interpreter would import that one instead)."""
    want, have = _startup_env(env), srv.startup_env
    if {k: v for k, v in want.items() if k != "PYTHONPATH"} != {k: v for k, v in have.items() if k != "PYTHONPATH"}:
        return None
    new, old = (d.get("PYTHONPATH", "").split(os.pathsep) if d.get("PYTHONPATH") else [] for d in (want, have))
    if new[len(new) - len(old):] != old:
        return None
    added = new[:len(new) - len(old)]
    for entry in added:
        folder = os.path.join(cwd, entry)
        try:
            names = os.listdir(folder) if os.path.isdir(folder) else []
        except OSError:  # unreadable here: let a fresh interpreter decide
            return None
        if {n.split(".")[0] for n in names} & srv.imported:
            return None
    return added


def _run(what: dict, argv: list, cwd, env, timeout) -> subprocess.CompletedProcess:
    env = dict(os.environ if env is None else env)
    srv = _server()
    path = None if srv is None else _added_path(env, srv, str(cwd))
    if path is None:
        proc = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout + proc.stderr, "")
    with tempfile.NamedTemporaryFile("r", suffix=".out") as out:
        request = {**what, "cwd": str(cwd), "env": env, "path": path, "out": out.name, "timeout": timeout}
        srv.stdin.write(json.dumps(request) + "\n")
        code = srv.stdout.readline().strip()
        if code == "timeout":
            raise subprocess.TimeoutExpired(argv, timeout)
        return subprocess.CompletedProcess(argv, int(code), out.read(), "")


@atexit.register
def _stop() -> None:
    """Close each server's requests and wait for it (at exit; an xdist worker that skips teardown calls it too)."""
    for srv in _servers:
        if srv.poll() is None:
            srv.stdin.close()
            srv.wait()
