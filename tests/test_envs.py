"""The gate's environments and resolution dates, with PyPI faked: nothing is built or fetched."""

from __future__ import annotations

import os
import sys

import pytest

from conformance.gate import envs

# --- resolution dates --------------------------------------------------------------------------------


def test_exclude_newer_is_the_end_of_the_day_after_the_upload():
    assert envs.exclude_newer_after("2024-08-27T17:51:42.413523Z") == "2024-08-28T23:59:59Z"
    assert envs.exclude_newer_after("2025-09-25T23:58:58Z") == "2025-09-26T23:59:59Z"
    assert envs.exclude_newer_after("2024-12-31T23:00:00+00:00") == "2025-01-01T23:59:59Z"
    assert envs.exclude_newer_after("2024-03-01T01:00:00+02:00") == "2024-03-01T23:59:59Z"  # Feb 29 in UTC


def test_upload_time_comes_from_the_version_document():
    seen = []

    def fetch(url):
        seen.append(url)
        return {"urls": [{"upload_time_iso_8601": "2024-08-27T17:51:42.413523Z"}, {"upload_time_iso_8601": "later"}]}

    assert envs.pypi_upload_time("flax", "0.9.0", fetch) == "2024-08-27T17:51:42.413523Z"
    assert seen == ["https://pypi.org/pypi/flax/0.9.0/json"]


def test_upload_time_falls_back_to_the_project_document():
    def fetch(url):
        if url.endswith("/0.10.0/json"):
            raise OSError("HTTP Error 404: Not Found")
        return {"releases": {"0.10.0": [{"upload_time_iso_8601": "2024-10-16T23:26:23Z"}]}}

    assert envs.pypi_upload_time("flax", "0.10.0", fetch) == "2024-10-16T23:26:23Z"


def test_upload_time_of_an_unknown_version_is_an_error():
    with pytest.raises(LookupError):
        envs.pypi_upload_time("flax", "9.9.9", lambda url: {"urls": [], "releases": {}})


@pytest.mark.parametrize("reqs, version", [
    (["flax==0.9.0"], "0.9.0"), (["jax<0.5", "flax == 0.10.6"], "0.10.6"), (["flax[all]==0.11.2 ; python_version>'3'"], "0.11.2"),
    (["flax>=0.12"], None), (["flaxen==1.0"], None), (["# flax==1.0"], None),
])
def test_pinned_flax_version(reqs, version):
    assert envs.pinned_version(reqs) == version


def test_resolve_exclude_newer_modes():
    lookup = lambda pkg, v: {"0.9.0": "2024-08-27T17:51:42Z"}[v]  # noqa: E731
    assert envs.resolve_exclude_newer("auto", ["flax==0.9.0"], lookup)[0] == "2024-08-28T23:59:59Z"
    assert envs.resolve_exclude_newer("auto", ["flax>=0.10"], lookup)[0] is None
    assert envs.resolve_exclude_newer("none", ["flax==0.9.0"], lookup)[0] is None
    assert envs.resolve_exclude_newer("2025-01-02", ["flax==0.9.0"], lookup)[0] == "2025-01-02T23:59:59Z"
    assert envs.resolve_exclude_newer("2025-01-02T10:00:00Z", [], lookup)[0] == "2025-01-02T10:00:00Z"
    with pytest.raises(ValueError):
        envs.resolve_exclude_newer("yesterday", [], lookup)


def test_env_key_depends_on_what_is_installed():
    k = envs.env_key("3.11.7", ["flax==0.9.0"], ["jax>=0.4.27"], "2024-08-28T23:59:59Z")
    assert k == envs.env_key("3.11.7", ["flax==0.9.0"], ["jax>=0.4.27"], "2024-08-28T23:59:59Z")
    assert k != envs.env_key("3.11.7", ["flax==0.9.0"], ["jax>=0.4.27"], None)
    assert k != envs.env_key("3.12.1", ["flax==0.9.0"], ["jax>=0.4.27"], "2024-08-28T23:59:59Z")
    assert k != envs.env_key("3.11.7", ["flax==0.10.0"], ["jax>=0.4.27"], "2024-08-28T23:59:59Z")


def test_flax_releases_leave_out_pre_releases_yanked_and_empty_ones():
    doc = {"releases": {"0.10.0": [{"yanked": False}], "0.12.11": [{"yanked": True}], "0.12.12": [{}],
                        "0.11.0rc1": [{}], "0.9.0": [], "0.10.10": [{}], "not-a-version": [{}]}}
    assert envs.flax_releases(lambda url: doc) == ["0.10.0", "0.10.10", "0.12.12"]


def test_flax_releases_without_pypi_is_a_lookup_error():
    def fetch(url):
        raise OSError("unreachable")

    with pytest.raises(LookupError, match="cannot list the releases of flax"):
        envs.flax_releases(fetch)


def test_an_environment_appears_only_when_complete(tmp_path):
    final = str(tmp_path / "env")
    (tmp_path / "env.building-1").mkdir()  # a killed build's leftovers
    with envs.building(final) as tmp:
        os.makedirs(os.path.join(tmp, "bin"))
        assert not os.path.exists(final)
    assert os.path.isdir(os.path.join(final, "bin")) and os.listdir(tmp_path) == ["env"]


def test_an_interrupted_build_leaves_nothing_in_the_cache(tmp_path):
    final = str(tmp_path / "env")
    with pytest.raises(KeyboardInterrupt):
        with envs.building(final) as tmp:
            os.makedirs(os.path.join(tmp, "lib"))
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_a_failed_install_says_why_in_uv_words(tmp_path):
    log = tmp_path / "side.log"
    script = ("print('Using Python 3.11.7'); print('error: No solution found when resolving dependencies'); "
              "print('  cause: Because flax>=0.12.8 depends on jax>=0.10.0 ...'); raise SystemExit(1)")
    with open(log, "w") as fh:
        with pytest.raises(RuntimeError, match=r"exited 1: error: No solution found .* cause: Because flax>=0.12.8"):
            envs._run([sys.executable, "-c", script], fh)


def test_uv_is_found_from_many_threads_at_once_on_a_fresh_sysconfig(monkeypatch):
    """Sides build on threads: the first concurrent lookups of uv must all find it. uv's locator reads sysconfig's
    variables, which Python fills on first use without a lock; a merge's two cross environments once gave
    'can only concatenate str (not "NoneType")'. Here the filling is slowed, as a thread switch mid-fill would."""
    import sysconfig
    import threading
    import time

    want = envs.find_uv()
    real = sysconfig.get_config_var
    filled: dict = {}

    def get_config_var(name):  # the lazy, unlocked fill: a reader arriving mid-fill sees no value yet
        if not filled.get("started"):
            filled["started"] = True
            time.sleep(0.05)
            filled["done"] = True
        return real(name) if filled.get("done") else None

    monkeypatch.setattr(sysconfig, "get_config_var", get_config_var)
    found, start = [], threading.Barrier(8)

    def look():
        start.wait()
        try:
            found.append(envs.find_uv())
        except TypeError as exc:
            found.append(exc)

    threads = [threading.Thread(target=look) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert found == [want] * 8, found
