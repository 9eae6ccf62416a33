"""The gate's pytest plumbing: process roles, and the xdist controller that never imports jax."""

import os
import subprocess
import sys
import textwrap
import types

import pytest

from conformance.core import jax_setup as _setup


def _config(dist="no", numprocesses=None, worker=False):
    cfg = types.SimpleNamespace(option=types.SimpleNamespace(dist=dist, numprocesses=numprocesses))
    if worker:
        cfg.workerinput = {"workerid": "gw0"}
    return cfg


@pytest.mark.parametrize(
    "cfg, role",
    [
        (_config(), "serial"),
        (_config(dist="worksteal", numprocesses=2), "controller"),
        (_config(dist="load", numprocesses=1), "controller"),
        (_config(dist="no", numprocesses=0), "serial"),
        (_config(dist="worksteal", numprocesses=2, worker=True), "worker"),
    ],
)
def test_role(cfg, role):
    assert _setup.role(cfg) == role


# A plugin that records, in the xdist controller, whether jax was ever imported there; and in each worker, whether
# Python tore the process down at exit (an exit handler registered before the suite's own).
PROBE = textwrap.dedent(
    """
    import atexit, os, sys
    def _torn_down():
        with open(os.environ["ROLE_PROBE_OUT"] + "." + os.environ["PYTEST_XDIST_WORKER"], "w") as f:
            f.write("torn down")
    def pytest_configure(config):
        if hasattr(config, "workerinput"):
            atexit.register(_torn_down)
    def pytest_unconfigure(config):
        if not hasattr(config, "workerinput"):
            with open(os.environ["ROLE_PROBE_OUT"], "w") as f:
                f.write("jax imported" if "jax" in sys.modules else "no jax")
    """
)


def test_controller_never_imports_jax_and_gw0_reports(tmp_path):
    """Under xdist and -q: the controller stays jax-free, the summary names what was tested (gw0's devices),
    the JUnit XML and the JSON report carry the same, the working directory stays empty, and the workers end
    without tearing jax down."""
    import json
    import xml.etree.ElementTree as ET

    (tmp_path / "role_probe.py").write_text(PROBE)
    out = tmp_path / "controller.txt"
    cwd, reports = tmp_path / "cwd", tmp_path / "reports"
    cwd.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "ROLE_PROBE_OUT": str(out),
           "CONFORMANCE_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("HYPOTHESIS_STORAGE_DIRECTORY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "conformance", "-n", "2", "-p", "role_probe",
         "--hypothesis-profile=dev", "-k", "test_output_length or test_apply_is_pure", "-q",
         f"--junitxml={reports / 'j.xml'}", f"--conformance-json={reports / 'r.json'}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    assert out.read_text() == "no jax", "the xdist controller imported jax"
    # Each worker ended once it had reported, without Python's teardown of jax (the reports below are whole).
    assert sorted(p.name for p in tmp_path.glob("controller.txt.*")) == [], "a worker was torn down at exit"
    # gw0's jax-side lines reach the controller's summary.
    assert "conformance: devices [cpu:0" in text, text[-4000:]
    assert "matmul precision on cpu:0" in text, text[-4000:]
    line = next(ln for ln in text.splitlines() if ln.startswith("conformance: tested flax "))
    assert "jaxlib " in line and "python " in line and "on [cpu:0, cpu:1]" in line, line
    assert "profile 'dev'; fault none; perturbation none" in line, line
    # No .pytest_cache, no .hypothesis: caches live under CONFORMANCE_CACHE_DIR.
    assert os.listdir(cwd) == [], os.listdir(cwd)
    props = {p.get("name"): p.get("value") for p in ET.parse(reports / "j.xml").getroot().iter("property")
             if p.get("name", "").startswith("conformance_")}
    assert props["conformance_devices"] == "cpu:0, cpu:1" and props["conformance_profile"] == "dev"
    assert {"conformance_flax", "conformance_jax", "conformance_jaxlib", "conformance_python", "conformance_fault",
            "conformance_perturbation", "conformance_verification"} <= set(props)
    report = json.loads((reports / "r.json").read_text())
    assert report["tested"]["devices"] == ["cpu:0", "cpu:1"] and report["tested"]["flax"] == props["conformance_flax"]
    # The bridge's public surface, measured by gw0, in both reports (the gate compares two sides').
    assert json.loads(props["conformance_surface"]) == report["tested"]["surface"]
    assert report["tested"]["surface"]["ToLinen"][:2] == ["nnx_class", "args"]
    outcomes = {t["nodeid"].split("::")[-1]: t["outcome"] for t in report["tests"]}
    assert outcomes["test_output_length[cpu:0]"] == "pass"
    assert outcomes["test_apply_is_pure[cpu:0]"] in ("known deviation", "pass")


@pytest.mark.parametrize("user_value, expected", [(None, "false"), ("true", "true"), (".5", ".5")])
def test_no_accelerator_preallocation_unless_the_user_asks(monkeypatch, user_value, expected):
    """xdist workers sharing one GPU would each take 75 % of its memory: off before jax starts, the user's value wins."""
    from conformance.core import config

    if user_value is None:
        monkeypatch.delenv(config.PREALLOCATE_ENV, raising=False)
    else:
        monkeypatch.setenv(config.PREALLOCATE_ENV, user_value)
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
    _setup.set_xla_flags()
    assert os.environ[config.PREALLOCATE_ENV] == expected


def test_warning_records_name_category_message_and_where_relative_to_the_installation():
    import warnings

    from conformance.core import warnrecords

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):
            warnings.warn_explicit("deprecated: use X\nmore detail", DeprecationWarning,
                                   "/venv/lib/python3.11/site-packages/flax/nnx/bridge/wrappers.py", 330)
        warnings.warn_explicit("other at 0x7f00aa", UserWarning, "/elsewhere/mod.py", 7)
    recs = warnrecords.records(seen)
    assert recs[0] == {"category": "DeprecationWarning", "message": "deprecated: use X",
                       "where": "flax/nnx/bridge/wrappers.py:330", "count": 3}
    assert recs[1]["where"] == "/elsewhere/mod.py:7"
    assert warnrecords.key(recs[1]) == ("UserWarning", "other at 0x…")  # addresses differ between runs
    assert warnrecords.from_properties([("conformance_warnings", __import__("json").dumps(recs))]) == recs
    assert warnrecords.from_properties([("conformance_drift", "{}")]) == []


def test_direction_selects_the_properties_at_collection(tmp_path):
    """--direction to_linen|to_nnx deselects the other direction's properties; both (the default) keeps every one."""
    from conformance.conftest import direction_of
    from conformance.core import config

    assert config.DEFAULT_DIRECTION == "both"
    props = os.path.join(config.PROPERTIES_DIR)
    assert direction_of(os.path.join(props, "to_nnx", "contract", "test_jit.py")) == "to_nnx"
    assert direction_of(os.path.join(props, "contract", "test_jit.py")) == "to_linen"
    assert direction_of(os.path.join(props, "zoo", "test_zoo_dropout.py")) == "to_linen"
    assert direction_of(os.path.join(os.path.dirname(props), "conftest.py")) is None

    def collected(*extra) -> set[str]:
        env = {**os.environ, "CONFORMANCE_CACHE_DIR": str(tmp_path / "cache")}
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "--pyargs", "conformance", "--collect-only", "-q", "-p", "no:xdist",
             "-k", "test_output_length or test_tonnx_output_length", *extra],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        return {ln.split("::")[-1].split("[")[0] for ln in proc.stdout.splitlines() if "::" in ln}

    assert collected() == {"test_output_length", "test_tonnx_output_length"}
    assert collected("--direction", "both") == {"test_output_length", "test_tonnx_output_length"}
    assert collected("--direction", "to_linen") == {"test_output_length"}
    assert collected("--direction", "to_nnx") == {"test_tonnx_output_length"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "conformance", "--collect-only", "-q",
                           "--direction", "sideways"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 4 and "--direction" in proc.stderr and "to_nnx" in proc.stderr, proc.stderr[-2000:]


_SHARED = textwrap.dedent("""
    import json, sys
    from conformance.core import jax_setup
    jax_setup.before_jax()
    import jax, jax.numpy as jnp
    from jax import monitoring
    events = []
    monitoring.register_event_listener(lambda e, **k: events.append(e))
    f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum(0))
    outs = []
    for d in jax.devices()[:2]:
        y = f(jax.device_put(jnp.arange(12.0).reshape(3, 4) / 10, d))
        outs.append((next(iter(y.devices())).id, [float(v) for v in y]))
    print(json.dumps({"shared": jax_setup.SHARED_CPU_EXECUTABLES, "outs": outs,
                      "hits": events.count("/jax/compilation_cache/cache_hits")}))
""")


@pytest.mark.parametrize("share", ["1", "0"])
def test_one_executable_serves_every_cpu_device_and_each_output_stays_on_its_own(tmp_path, share):
    """With the cache on, cpu:1 loads cpu:0's program (one hit) and its output stays on cpu:1, with the same numbers."""
    env = {**os.environ, "CONFORMANCE_CACHE_DIR": str(tmp_path), "CONFORMANCE_SHARE_CPU_EXECUTABLES": share}
    env.pop("CONFORMANCE_COMPILATION_CACHE", None)
    proc = subprocess.run([sys.executable, "-c", _SHARED], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["shared"] is (share == "1")
    (dev0, y0), (dev1, y1) = got["outs"]
    assert (dev0, dev1) == (0, 1) and y0 == y1, got
    assert (got["hits"] > 0) is (share == "1"), got  # cpu:1 loads what cpu:0 compiled; unshared, each compiles its own
