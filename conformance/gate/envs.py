"""The gate's environments: resolution dates from PyPI, and isolated environments built with uv and cached.

Each side's environment is resolved as of its flax release (``--exclude-newer``
the day after the wheel's PyPI upload), holds the side's requirements plus this
project's own dependencies, then this suite (a wheel of the installed distribution,
conformance/gate/dist.py, or the checkout of ``--project``; without uv, venv and pip) (not editable: the installed copy
is what runs). The suite runs there from a temporary directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from conformance.gate.sources import label_for, pinned_version, read_requirements  # noqa: F401 (what a side is made of)

# Where environments are cached by default: envs/ under the suite's cache directory (conformance/core/cachedirs.py).
DEFAULT_CACHE = "envs/ of the cache directory ($CONFORMANCE_CACHE_DIR, $XDG_CACHE_HOME or ~/.cache/flax-bridge-conformance)"
PYPI_JSON = "https://pypi.org/pypi/{package}/{version}/json"
PYPI_PROJECT_JSON = "https://pypi.org/pypi/{package}/json"  # fallback where the per-version endpoint is not served
# Installed versions reported per environment.
REPORTED = ("flax", "jax", "jaxlib", "numpy", "optax", "ml_dtypes", "hypothesis", "pytest", "pytest-xdist")


# --- resolution dates ------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _fetch_json(url: str, timeout: float = 30.0) -> dict:
    import urllib.request

    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (a fixed https URL)
        return json.load(resp)


def pypi_upload_time(package: str, version: str, fetch_json=None) -> str:
    """The upload time of ``package==version`` on PyPI (its first file's ``upload_time_iso_8601``)."""
    fetch = fetch_json or _fetch_json
    try:
        urls = fetch(PYPI_JSON.format(package=package, version=version)).get("urls") or []
    except (OSError, ValueError) as exc:  # some mirrors serve only the project document: its "releases" has the same files
        try:
            urls = (fetch(PYPI_PROJECT_JSON.format(package=package)).get("releases") or {}).get(version) or []
        except (OSError, ValueError):
            raise LookupError(f"cannot look up {package}=={version} on PyPI: {exc}") from exc
    if not urls:
        raise LookupError(f"PyPI lists no files for {package}=={version}")
    return urls[0]["upload_time_iso_8601"]


def flax_releases(fetch_json=None, package: str = "flax") -> list[str]:
    """Every final release of ``package`` on PyPI with files, none yanked (pre-releases and dev releases left out)."""
    from packaging.version import InvalidVersion, Version

    fetch = fetch_json or _fetch_json
    try:
        releases = fetch(PYPI_PROJECT_JSON.format(package=package)).get("releases") or {}
    except (OSError, ValueError) as exc:
        raise LookupError(f"cannot list the releases of {package} on PyPI: {exc}") from exc
    out = []
    for version, files in releases.items():
        try:
            v = Version(version)
        except InvalidVersion:
            continue
        if files and not v.is_prerelease and not v.is_devrelease and not all(f.get("yanked") for f in files):
            out.append(version)
    return sorted(out, key=Version)


def exclude_newer_after(upload_iso: str) -> str:
    """The day after the upload day, end of day UTC: ``2024-08-27T17:51:..Z`` -> ``2024-08-28T23:59:59Z``."""
    when = dt.datetime.fromisoformat(upload_iso.replace("Z", "+00:00"))
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc)
    day = when.date() + dt.timedelta(days=1)
    return f"{day.isoformat()}T23:59:59Z"


def normalize_date(text: str) -> str:
    """``YYYY-MM-DD`` -> that day's end (UTC); a full RFC 3339 timestamp stays as given."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        dt.date.fromisoformat(text)
        return f"{text}T23:59:59Z"
    dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return text


def resolve_exclude_newer(mode: str, requirements: list[str], lookup=None) -> tuple[str | None, str]:
    """(the ``--exclude-newer`` date or None, how it was chosen); ``lookup(package, version)`` -> upload time."""
    lookup = lookup or pypi_upload_time
    if mode in (None, "", "none"):
        return None, "latest (no --exclude-newer)"
    if mode != "auto":
        return normalize_date(mode), "given"
    version = pinned_version(requirements)
    if version is None:
        return None, "latest (no exact flax pin to date the resolution by)"
    upload = lookup("flax", version)
    return exclude_newer_after(upload), f"flax {version} uploaded {upload}"


# --- sides and environments ---------------------------------------------------------------------


@dataclasses.dataclass
class Side:
    label: str
    role: str  # "baseline" or "candidate"
    requirements: list[str]  # requirement strings (a requirements file's lines included)
    requirements_file: str | None = None
    pytest_args: list[str] = dataclasses.field(default_factory=list)
    exclude_newer: str | None = None
    exclude_newer_note: str = ""
    env: str = ""
    pythonpath: list[str] = dataclasses.field(default_factory=list)  # --module-path: a team's layers, uninstalled
    env_vars: dict = dataclasses.field(default_factory=dict)  # e.g. the golden records every side compares against
    sources: list = dataclasses.field(default_factory=list)  # sources.Source of each checkout, git reference or wheel


def env_key(python_version: str, requirements: list[str], project_deps: list[str], exclude_newer: str | None,
            fingerprints: list[str] | None = None) -> str:
    """The cache key: what the environment was built from (a checkout's digest, a git commit, a wheel's hash included)."""
    fields = {"python": python_version, "requirements": sorted(requirements), "project": sorted(project_deps),
              "exclude_newer": exclude_newer, "layout": 1}
    if fingerprints:  # only then: environments of plain requirements keep their keys
        fields["sources"] = sorted(fingerprints)
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_FIND_UV = threading.Lock()


def find_uv() -> list[str] | None:
    """The uv command (a dependency of this package), or None: then venv and pip build the environments.

    One call at a time: sides build on threads, and uv's locator reads ``sysconfig``'s variables, which Python fills
    on first use without a lock (a second thread could read ``EXE`` as None: "can only concatenate str").
    """
    with _FIND_UV:
        return _find_uv()


def _find_uv() -> list[str] | None:
    try:
        import uv

        return [uv.find_uv_bin()]
    except (ImportError, FileNotFoundError):
        pass
    for cand in (os.path.join(os.path.dirname(sys.executable), "uv"), shutil.which("uv")):
        if cand and os.path.exists(cand):
            return [cand]
    return None


UV_MISSING = "uv not found: environments are built with venv + pip, and resolution is not dated (--exclude-newer needs uv)"
LOG_TAIL = 15  # lines of a side's log shown in the terminal when it gives no results


def log_tail(path: str, lines: int = LOG_TAIL) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


_CLOCK = [time.monotonic()]


def reset_clock() -> None:
    _CLOCK[0] = time.monotonic()


def log(msg: str) -> None:
    """A progress line on stderr: wall-clock time and seconds since the gate started."""
    line = f"[gate {time.strftime('%H:%M:%S')} +{time.monotonic() - _CLOCK[0]:.0f}s] {msg}\n"
    sys.stderr.write(line)  # one write: lines from threads building side by side do not interleave
    sys.stderr.flush()


_CHILDREN: set = set()  # processes the gate is waiting on, ended by stop_children() on Ctrl-C
_STOPPING = threading.Event()


def call(cmd: list[str], timeout: float | None = None, **kw) -> int:
    """``subprocess.run(cmd, **kw).returncode``, but stoppable: :func:`stop_children` ends it from another thread."""
    if _STOPPING.is_set():
        raise KeyboardInterrupt
    proc = subprocess.Popen(cmd, **kw)
    _CHILDREN.add(proc)
    try:
        return proc.wait(timeout=timeout)
    except BaseException:  # a timeout or an interrupt: the child must not outlive the gate's interest in it
        proc.kill()
        proc.wait()
        raise
    finally:
        _CHILDREN.discard(proc)


def stop_children() -> None:
    """End every process the gate waits on and start no more (the Ctrl-C handler)."""
    _STOPPING.set()
    for proc in list(_CHILDREN):
        proc.terminate()


def _run(cmd: list[str], logfile, **kw) -> None:
    logfile.write("$ " + " ".join(cmd) + "\n")
    logfile.flush()
    start = logfile.tell()
    code = call(cmd, stdout=logfile, stderr=subprocess.STDOUT, text=True, **kw)
    if _STOPPING.is_set():
        raise KeyboardInterrupt
    if code:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {code}{_why(logfile.name, start)} (see {logfile.name})")


def _why(path: str, offset: int) -> str:
    """uv's own account of a failure (its ``error:`` line and the causes after it), on one line."""
    try:
        with open(path) as fh:
            fh.seek(offset)
            lines = [ln.strip() for ln in fh.read().splitlines() if ln.strip()]
    except OSError:
        return ""
    start = next((i for i, ln in enumerate(lines) if ln.startswith("error:")), None)
    return ": " + " ".join(lines[start:start + 6]) if start is not None else ""


@contextlib.contextmanager
def building(final: str):
    """A temporary directory beside ``final``, renamed to it when the block completes, removed if it does not.

    Call with ``final``'s lock held: leftovers of a killed build are removed first.
    """
    for stale in glob.glob(glob.escape(final) + ".building-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = f"{final}.building-{os.getpid()}"
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.rename(tmp, final)


_REFRESHED: set[str] = set()  # environments this process has installed the project into


def build_env(side: Side, cache_dir: str, python: str, project: str, logfile, deps: list[str] | None = None) -> tuple[str, dict]:
    """The side's environment (built, or reused from ``cache_dir``) with this suite freshly installed.

    ``project`` is what to install as the suite (the wheel of conformance/gate/dist.py,
    or a checkout); ``deps`` its requirements. The dependencies are cached per
    (python, requirements, suite dependencies, exclude-newer date, installer);
    the suite itself is reinstalled every run, without its dependencies, so the
    environment always tests the suite that runs the gate.
    """
    import fcntl

    from conformance.gate import dist

    uv = find_uv()
    pyver = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    deps = dist.dependencies(project if os.path.isdir(project) else None) if deps is None else deps
    exclude_newer = side.exclude_newer if uv else None
    key = env_key(pyver, side.requirements, deps, exclude_newer, [s.fingerprint for s in side.sources]) + ("" if uv else "-pip")
    built_from = "".join(f"; {s.describe()}" for s in side.sources)
    env = os.path.join(cache_dir, f"{re.sub(r'#[0-9]+$', '', side.label)}-{key}")  # sides alike share one
    env_python = os.path.join(env, "bin", "python")
    marker = os.path.join(env, "gate-env.json")
    os.makedirs(cache_dir, exist_ok=True)
    with open(env + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(marker):
            log(f"{side.label}: building {env} (exclude-newer {exclude_newer or 'none'}{'' if uv else '; venv + pip'}"
                f"{built_from})")
            shutil.rmtree(env, ignore_errors=True)
            t0 = time.monotonic()
            with building(env) as tmp:  # renamed to env only when complete: Ctrl-C leaves nothing half-built
                tmp_python = os.path.join(tmp, "bin", "python")
                if uv:
                    _run([*uv, "venv", "-q", "--relocatable", tmp, "--python", python], logfile)
                    newer = ["--exclude-newer", exclude_newer] if exclude_newer else []
                    # uv keys its own cache of a directory's build by the project file's mtime: a changed module
                    # would come back from it. The environment's key says the source changed; rebuild it.
                    fresh = [a for s in side.sources if s.kind in ("directory", "wheel") for a in ("--refresh-package", s.name)]
                    _run([*uv, "pip", "install", "--python", tmp_python, *newer, *fresh, *side.requirements, *deps], logfile)
                else:
                    _run([python, "-m", "venv", tmp], logfile)
                    _run([tmp_python, "-m", "pip", "install", "-q", *side.requirements, *deps], logfile)
                with open(os.path.join(tmp, "gate-env.json"), "w") as fh:
                    json.dump({"requirements": side.requirements, "project_dependencies": deps,
                               "sources": [dataclasses.asdict(s) for s in side.sources],
                               "exclude_newer": exclude_newer, "python": pyver, "installer": "uv" if uv else "pip"},
                              fh, indent=1)
            log(f"{side.label}: built in {time.monotonic() - t0:.0f} s")
        else:
            log(f"{side.label}: reusing {env}{built_from}")
        # This project, not editable and without its dependencies: the copy under test. Once per
        # environment and gate run: sides sharing an environment must not reinstall under a running suite.
        if env not in _REFRESHED:
            if uv:
                _run([*uv, "pip", "install", "-q", "--python", env_python, "--no-deps", "--reinstall-package",
                      dist.DIST, project], logfile)
            else:
                _run([env_python, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", project], logfile)
            _REFRESHED.add(env)
    probe = ("import json; from importlib import metadata as m; r={}\n"
             f"for n in {list(REPORTED)!r}:\n"
             "    try: r[n]=m.version(n)\n"
             "    except m.PackageNotFoundError: pass\n"
             "import sys; r['python']=sys.version.split()[0]; print(json.dumps(r))")
    versions = json.loads(subprocess.run([env_python, "-c", probe], capture_output=True, text=True, check=True).stdout)
    return env_python, versions


def run_suite(side: Side, env_python: str, out_dir: str, profile: str, timeout: float | None, logfile) -> tuple[str, int]:
    """The suite in the side's environment, from a temporary directory; (JUnit path, pytest exit code)."""
    xml = os.path.join(out_dir, f"{side.label.replace('#', '-')}.xml")
    if os.path.exists(xml):
        os.remove(xml)
    cmd = [env_python, "-m", "pytest", "--pyargs", "conformance", "-p", "no:cacheprovider",
           f"--hypothesis-profile={profile}", f"--junitxml={xml}", "-q", *side.pytest_args]
    code = run_in_env(side, env_python, cmd, timeout, logfile)
    return xml, code


def side_environ(side: Side, env_python: str) -> dict:
    """What a command in the side's environment sees: no inherited PYTHONPATH, the side's own variables."""
    envvars = dict(os.environ)
    envvars.pop("PYTHONPATH", None)  # the side's own suite, not the one running the gate
    if side.pythonpath:  # --module-path: a team's uninstalled layers
        envvars["PYTHONPATH"] = os.pathsep.join(side.pythonpath)
    # One compilation cache per environment: its jax writes it, nobody else reads it.
    envvars.setdefault("CONFORMANCE_COMPILATION_CACHE", os.path.join(os.path.dirname(os.path.dirname(env_python)), "jax-cache"))
    envvars.update(side.env_vars)
    return envvars


def run_in_env(side: Side, env_python: str, cmd: list[str], timeout: float | None, logfile) -> int:
    """``cmd`` from a temporary directory with the side's environment; its output to ``logfile``; 124 on timeout."""
    envvars = side_environ(side, env_python)
    with tempfile.TemporaryDirectory(prefix="conformance-gate-") as cwd:
        logfile.write("$ " + " ".join(cmd) + "\n")
        logfile.flush()
        try:
            return call(cmd, timeout, cwd=cwd, env=envvars, stdout=logfile, stderr=subprocess.STDOUT)
        except subprocess.TimeoutExpired:
            return 124


def record_golden(side: Side, env_python: str, out_dir: str, modules: list[str], timeout: float | None,
                  logfile) -> dict[str, str]:
    """The side's own golden records (contract and zoo, declared modules included) and checkpoints, under ``out_dir``.

    Returns the variables that point every side's golden properties at them;
    raises RuntimeError when the record command fails.
    """
    os.makedirs(out_dir, exist_ok=True)
    contract, zoo = os.path.join(out_dir, "contract.json"), os.path.join(out_dir, "zoo.json")
    ckpt = os.path.join(out_dir, "checkpoints")
    shutil.rmtree(ckpt, ignore_errors=True)  # a previous run's into the same --out: orbax will not overwrite it
    cmd = [env_python, "-m", "conformance", "record", "--out", contract, "--zoo-out", zoo, "--checkpoint-out", ckpt,
           *[a for m in modules for a in ("--module", m)]]
    code = run_in_env(side, env_python, cmd, timeout, logfile)
    if code != 0 or not (os.path.exists(contract) and os.path.exists(zoo)):
        raise RuntimeError(f"python -m conformance record exited {code} in {side.label}")
    from conformance.core import config

    found = {config.GOLDEN_RECORD_ENV: contract, config.ZOO_RECORD_ENV: zoo}
    if os.path.isdir(ckpt):  # every side restores the baseline's checkpoints (test_checkpoint_golden.py)
        found[config.CHECKPOINT_DIR_ENV] = ckpt
    return found
