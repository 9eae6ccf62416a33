"""Every change to the suite proves it still catches every fault of the corpus.

Runs ``python -m conformance selfcheck --first-catch --snippets``: each fault's run stops at its first failing
property (a snippet fault's runs its snippet properties, whose snippets tests/test_repro_snippets.py then runs), and
the clean run must pass.
"""

import json
import subprocess
import sys


# The real-layer tier's faults and the property that guards each (issue: "faults the new properties catch").
TIER_FAULT_CATCHERS = {
    "attention_dropout_key_ignored": "test_module_stream_keys_drive_randomness",
    "recurrent_carry_reset": "test_zoo_golden_declared_modules",
    "embedding_row_shifted": "test_zoo_golden_declared_modules",
    "custom_collection_not_written_back": "test_module_mutable_state_round_trip",
    "readonly_state_reinitialised": "test_module_matches_native",
    "created_collection_dropped": "test_module_created_collections_collected",
    "unknown_streams_dropped": "test_module_apply_is_pure",
}


def test_selfcheck_catches_every_fault_and_every_repro_snippet_reproduces_its_failure(tmp_path):
    """One self-check run for both: the snippet faults' runs keep the failures whose snippets are then run."""
    path = tmp_path / "selfcheck.json"
    proc = subprocess.run([sys.executable, "-m", "conformance", "selfcheck", "--first-catch", "--snippets", "--json", str(path)],
                          capture_output=True, text=True, timeout=1500)
    report = json.loads(path.read_text()) if path.exists() else {"results": []}
    assert proc.returncode == 0, f"selfcheck failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert "MISSED" not in proc.stdout
    # Each of the tier's faults runs its guard first (config.FAULT_FIRST_CATCHERS, its own modules first): that guard catches it.
    by_name = {r["fault"]: r for r in report["results"]}
    for fault, prop in TIER_FAULT_CATCHERS.items():
        assert prop in by_name[fault]["failed"], f"{fault}: caught by {by_name[fault]['caught_by']}, but should be by {prop}"
    # A fault's known first catchers catch it in their own files: a widened run means the config went stale (slower, not weaker).
    widened = {n: r["restricted_to"] for n, r in by_name.items() if r.get("widened")}
    assert not widened, f"caught only by the whole suite, not by their known first catchers (config.FAULT_FIRST_CATCHERS): {widened}"
    # Each snippet fault's failures: every repro snippet runs as printed and ends in its property's failure.
    import test_repro_snippets

    problems = test_repro_snippets.snippet_problems(report, tmp_path)
    assert not problems, "\n\n".join(problems)


def test_a_perturbation_that_reuses_anothers_programs_runs_after_it():
    from conformance.core import config
    from conformance.selfcheck import benign, plan

    assert set(config.BENIGN_REUSES) | set(config.BENIGN_REUSES.values()) <= set(benign.PERTURBATIONS)
    order = plan.benign_order(list(benign.PERTURBATIONS))
    assert sorted(order) == sorted(benign.PERTURBATIONS)
    assert order[-len(config.BENIGN_REUSES):] == list(config.BENIGN_REUSES)  # last, so after what they reuse
    assert plan.benign_order(["sampler_ulp_everywhere", "batched_last_bit"]) == ["sampler_ulp_everywhere", "batched_last_bit"]


def test_the_tiers_guards_run_first_in_their_faults_runs():
    from conformance.core import config

    for fault, prop in TIER_FAULT_CATCHERS.items():
        assert config.FAULT_FIRST_CATCHERS[fault][0] == prop, fault


def test_a_perturbation_is_seen_only_where_the_clean_run_drifts_otherwise():
    from conformance.selfcheck.runner import seen_in

    same = {"comparisons": 4, "drifted": 4, "max_ulps": 9.0}
    clean = {"drift": {"m::test_module_grads[zoo_dropout]": same}}
    run = {"drift": {"m::test_module_grads[zoo_dropout]": dict(same),
                     "j::test_jit_whole_matches_eager[cpu:0]": {"comparisons": 2, "drifted": 1, "max_ulps": 1.0}}}
    assert seen_in(run, clean) == ["test_jit_whole_matches_eager"]
    assert seen_in({"drift": {"m::test_module_grads[zoo_dropout]": dict(same)}}, clean) == []  # drifts as without it
    assert seen_in({"drift": {"m::test_module_grads[zoo_dropout]": {**same, "max_ulps": 3.0}}}, clean) == ["test_module_grads"]


def test_forked_runs_take_their_own_cwd_env_and_exit_code(tmp_path):
    """A forked run is a pytest run of its own: its directory, its environment, its exit code and output."""
    import os

    from conformance.selfcheck import forked

    (tmp_path / "test_probe.py").write_text(
        "import os\n\ndef test_env():\n    assert os.environ['PROBE'] == 'yes'\n    assert os.path.exists('test_probe.py')\n")
    ok = forked.run_pytest(["-q", "-p", "no:cacheprovider", "test_probe.py"], cwd=str(tmp_path), env={**os.environ, "PROBE": "yes"})
    assert ok.returncode == 0 and "1 passed" in ok.stdout, ok.stdout[-2000:]
    bad = forked.run_pytest(["-q", "-p", "no:cacheprovider", "test_probe.py"], cwd=str(tmp_path), env={**os.environ, "PROBE": "no"})
    assert bad.returncode == 1 and "1 failed" in bad.stdout, bad.stdout[-2000:]


def test_forked_runs_start_with_the_servers_imports_frozen(tmp_path):
    """The server's preloaded modules are out of the forked runs' garbage collections (gc.freeze)."""
    from conformance.selfcheck import forked

    proc = forked.run_python("import gc\nprint(gc.get_freeze_count())", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout
    frozen = int(proc.stdout.strip().splitlines()[-1])
    assert frozen > 10000, f"gc.get_freeze_count()={frozen} in a forked run, but should hold the server's imports"


def test_a_forked_run_past_its_timeout_is_killed(tmp_path):
    import pytest

    from conformance.selfcheck import forked

    (tmp_path / "test_slow.py").write_text("import time\n\ndef test_slow():\n    time.sleep(60)\n")
    with pytest.raises(subprocess.TimeoutExpired):
        forked.run_pytest(["-q", "-p", "no:cacheprovider", "test_slow.py"], cwd=str(tmp_path), timeout=5)
    again = forked.run_pytest(["-q", "-p", "no:cacheprovider", "--co", "test_slow.py"], cwd=str(tmp_path))
    assert again.returncode == 0, again.stdout[-2000:]  # the server serves the next run


def test_a_forked_run_honours_its_own_pythonpath(tmp_path):
    """PYTHONPATH makes sys.path at start-up: a run that adds a directory is served forked with it where start-up
    puts it; one whose directory holds a module the server imported already gets a fresh interpreter."""
    import os

    from conformance.selfcheck import forked

    lib, shadow, work = tmp_path / "lib", tmp_path / "shadow", tmp_path / "work"
    for folder in (lib, shadow, work):
        folder.mkdir()
    (lib / "probe_mod_for_forked.py").write_text("VALUE = 7\n")
    (shadow / "optax.py").write_text("SHADOW = True\n")  # the server preloads the real optax
    (work / "test_path.py").write_text(
        "import os, sys\n\n"
        "def test_import():\n    import probe_mod_for_forked\n    assert probe_mod_for_forked.VALUE == 7\n\n"
        "def test_where():  # in front of the standard library, as at start-up\n"
        "    assert sys.path.index(os.environ['EXPECT_FIRST']) < sys.path.index(os.path.dirname(os.__file__))\n\n"
        "def test_served():\n    assert ('orbax.checkpoint' in sys.modules) == (os.environ['EXPECT_SERVED'] == '1')\n\n"
        "def test_shadow():\n    import optax\n    assert getattr(optax, 'SHADOW', False) == (os.environ['EXPECT_SERVED'] == '0')\n")
    before = os.environ.get("PYTHONPATH")
    for added, served in (([lib], "1"), ([lib, shadow], "0")):
        path = os.pathsep.join(filter(None, [*map(str, added), before]))
        run = forked.run_pytest(["-q", "-p", "no:cacheprovider", "test_path.py"], cwd=str(work),
                                env={**os.environ, "PYTHONPATH": path, "EXPECT_FIRST": str(lib),
                                     "EXPECT_SERVED": served})
        assert run.returncode == 0 and "4 passed" in run.stdout, (added, run.stdout[-3000:])


def test_a_worker_ending_without_teardown_waits_for_its_fork_servers(tmp_path):
    """An xdist worker skips Python's teardown (jax_setup.end_worker_process); the fork servers it started still end
    with it and are waited for, so the CPU time of every forked run counts in the worker's own (a benchmark's)."""
    import resource

    script = tmp_path / "worker.py"
    script.write_text(
        "import time\n"
        "from conformance.core import jax_setup\n"
        "from conformance.selfcheck import forked\n"
        "run = forked.run_python('import time\\nend = time.process_time() + 2\\nwhile time.process_time() < end: pass',"
        " cwd='.', timeout=120)\n"
        "assert run.returncode == 0, run.stdout\n"
        "print(time.process_time(), flush=True)\n"
        "jax_setup.end_worker_process()\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    own = float(proc.stdout.split()[-1])
    children = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert children - own >= 2.0, f"the forked run's 2 s of CPU were not counted: {children=:.2f}, {own=:.2f}"


def test_forked_python_runs_code_as_python_c_does(tmp_path):
    from conformance.selfcheck import forked

    ok = forked.run_python("import os\nprint('cwd', os.getcwd())", cwd=str(tmp_path), timeout=60)
    assert ok.returncode == 0 and f"cwd {tmp_path}" in ok.stdout, ok.stdout
    failed = forked.run_python("import numpy\nraise ValueError('boom')", cwd=str(tmp_path), timeout=60)
    assert failed.returncode == 1 and failed.stdout.strip().splitlines()[-1] == "ValueError: boom", failed.stdout
    # A fresh __main__: the server's own imports do not leak in as names.
    unbound = forked.run_python("np.zeros(1)", cwd=str(tmp_path), timeout=60)
    assert unbound.returncode == 1 and unbound.stdout.strip().splitlines()[-1].startswith("NameError"), unbound.stdout
    assert forked.run_python("raise SystemExit(3)", cwd=str(tmp_path), timeout=60).returncode == 3


def test_a_fault_that_only_warns_is_caught_where_a_warning_is_new():
    from conformance.selfcheck.faults import FAULTS
    from conformance.selfcheck.runner import new_warnings

    assert FAULTS["deprecation_warning_on_init"].only_warns
    old = ["UserWarning", "Found unknown module paths in incoming state:"]
    clean = {"warnings": {"test_apply_flags_unknown_leaf": [old]}}
    run = {"warnings": {"test_apply_flags_unknown_leaf": [old], "test_deterministic": [["DeprecationWarning", "init"]]}}
    assert new_warnings(run, clean) == ["test_deterministic"]
    assert new_warnings(clean, clean) == []


# --- the first-catch plan (conformance/selfcheck/plan.py): no suite runs ---------------------------------


def _suite_files(tmp_path):
    (tmp_path / "contract").mkdir()
    (tmp_path / "contract" / "test_a.py").write_text("def test_alpha():\n    pass\n\n\ndef test_beta():\n    pass\n")
    (tmp_path / "test_b.py").write_text("def test_gamma():\n    pass\n\ndef helper():\n    pass\n")
    (tmp_path / "test_c.py").write_text("def test_delta():\n    pass\n")
    from conformance.selfcheck import plan

    return plan.property_files(str(tmp_path))


def test_property_files_names_where_each_property_is_defined(tmp_path):
    files = _suite_files(tmp_path)
    assert files == {"test_alpha": (str(tmp_path / "contract" / "test_a.py"),),
                     "test_beta": (str(tmp_path / "contract" / "test_a.py"),),
                     "test_gamma": (str(tmp_path / "test_b.py"),), "test_delta": (str(tmp_path / "test_c.py"),)}


def test_a_restricted_run_ignores_only_files_without_a_catcher(tmp_path):
    from conformance.selfcheck import plan

    files = _suite_files(tmp_path)
    assert plan.ignored_files(("test_beta",), files) == sorted([str(tmp_path / "test_b.py"), str(tmp_path / "test_c.py")])
    assert plan.ignored_files(("test_gamma", "test_delta"), files) == [str(tmp_path / "contract" / "test_a.py")]
    assert plan.ignored_files((), files) is None  # no known catcher: the whole suite
    assert plan.ignored_files(("test_beta", "test_renamed"), files) is None  # a catcher defined nowhere: the whole suite


def test_catchers_must_be_a_sequence_of_names():
    import pytest

    from conformance.selfcheck import plan

    with pytest.raises(TypeError, match="catchers must be a sequence of property names"):
        plan.ignored_files("test_beta", {"test_beta": ("x.py",)})


def test_every_known_first_catcher_is_a_property_of_the_suite():
    """A renamed catcher would silently widen its fault's run to the whole suite: the config must name real properties."""
    from conformance.core import config
    from conformance.selfcheck import plan

    files = plan.property_files()
    named = {c for cs in config.FAULT_FIRST_CATCHERS.values() for c in cs} | set(config.PIPELINE_FIRST_CATCH_ORDER)
    assert not named - set(files), f"config names {sorted(named - set(files))}, but no property file defines them"


def test_a_snippet_faults_run_is_its_snippet_properties_to_their_end_else_its_first_catch_run():
    from conformance.core import config
    from conformance.selfcheck import plan

    calls = []

    def run_suite(fault, profile, out_dir, extra, keep_failures=False):
        calls.append((extra, keep_failures))
        caught = keep_failures and catches
        return {"fault": fault, "returncode": 1 if caught else 0, "tests": 3, "caught_by": ["test_output_length"] if caught else [],
                "seconds": 1.0}

    catches = True
    got = plan.snippet_run(run_suite, "output_truncated", "selfcheck", "/tmp", ["-q"], ["-q", "--maxfail=1"])
    props = config.SNIPPET_FAULTS["output_truncated"]
    assert got["snippet_properties"] == props and len(calls) == 1
    extra, keep = calls[0]
    assert keep and "--maxfail=1" not in extra and extra[extra.index("-k") + 1] == " or ".join(props)
    both = plan.snippet_run(run_suite, "created_collection_dropped", "selfcheck", "/tmp", ["-q"], [])  # its tier guard too
    assert both["snippet_properties"] == [*config.SNIPPET_FAULTS["created_collection_dropped"],
                                          *config.FAULT_FIRST_CATCHERS["created_collection_dropped"]]
    calls.clear()
    catches = False  # the snippet run caught nothing: the fault is judged by its first-catch run instead
    got = plan.snippet_run(run_suite, "output_truncated", "selfcheck", "/tmp", ["-q"], ["-q", "--maxfail=1"])
    assert "snippet_properties" not in got and [k for _, k in calls] == [True, False]  # no known catchers: the whole suite
    assert "--maxfail=1" in calls[1][0]


def test_first_catchers_are_the_faults_own_then_a_pipelines_then_none():
    from conformance.core import config
    from conformance.selfcheck import plan

    assert plan.first_catchers("boxed_leaves", "variables tree") == ("test_variables_tree_structure",)
    assert plan.first_catchers("no_such_fault", "pipelines: nesting") == tuple(config.PIPELINE_FIRST_CATCH_ORDER)
    assert plan.first_catchers("no_such_fault", "numerics") == ()


def _fake_suite(outcomes):
    """A stand-in for the runner's suite run: answers from ``outcomes`` (restricted or whole) and logs each call."""
    calls = []

    def run_suite(fault, profile, out_dir, extra):
        narrow = any(a.startswith("--ignore=") for a in extra)
        calls.append("restricted" if narrow else "whole")
        caught = outcomes["restricted" if narrow else "whole"]
        return {"fault": fault, "caught_by": caught, "failed": caught, "errored": [], "tests": 3,
                "returncode": 1 if caught else 0, "seconds": 2.0}

    return run_suite, calls


def test_a_fault_caught_in_its_catchers_files_runs_once():
    from conformance.selfcheck import plan

    run_suite, calls = _fake_suite({"restricted": ["test_variables_tree_structure"], "whole": []})
    r = plan.first_catch_run(run_suite, "boxed_leaves", "selfcheck", "/tmp", ["--maxfail=1"])
    assert calls == ["restricted"]
    assert r["caught_by"] == ["test_variables_tree_structure"] and r["restricted_to"] == ["test_variables_tree_structure"]
    assert r["widened"] is False


def test_a_fault_its_catchers_files_miss_runs_the_whole_suite_before_missed():
    """The restricted run never decides MISSED: the whole suite runs, and its verdict is the one reported."""
    from conformance.selfcheck import plan

    run_suite, calls = _fake_suite({"restricted": [], "whole": ["test_golden_numerics"]})
    r = plan.first_catch_run(run_suite, "boxed_leaves", "selfcheck", "/tmp", [])
    assert calls == ["restricted", "whole"] and r["caught_by"] == ["test_golden_numerics"] and r["widened"] is True
    assert r["seconds"] == 4.0  # both runs counted
    run_suite, calls = _fake_suite({"restricted": [], "whole": []})
    assert plan.first_catch_run(run_suite, "boxed_leaves", "selfcheck", "/tmp", [])["caught_by"] == []  # MISSED, after both


def test_a_fault_without_known_catchers_runs_the_whole_suite_once():
    from conformance.selfcheck import plan
    from conformance.selfcheck.faults import FAULTS

    unrestricted = next(n for n, f in FAULTS.items() if not plan.first_catchers(n, f.area))
    run_suite, calls = _fake_suite({"restricted": ["x"], "whole": ["test_golden_numerics"]})
    r = plan.first_catch_run(run_suite, unrestricted, "selfcheck", "/tmp", [])
    assert calls == ["whole"] and "restricted_to" not in r


def test_an_unknown_fault_is_named():
    import pytest

    from conformance.selfcheck import plan

    with pytest.raises(ValueError, match="fault must be one of the corpus' faults; got 'nope'"):
        plan.first_catch_run(lambda *a: {}, "nope", "selfcheck", "/tmp", [])


def test_selfcheck_on_a_teams_declared_modules_says_which_faults_each_catches(tmp_path):
    """--module: only the declared module's tests run; the table names, per fault, the properties that caught it."""
    import os

    user_project = os.path.join(os.path.dirname(os.path.abspath(__file__)), "user_project")
    report = tmp_path / "selfcheck.json"
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "selfcheck", "--module", "resmlp_layers.conformance_specs:specs",
         "--fault", "dropout_key_ignored", "--fault", "batch_stats_not_updated",
         "--perturb", "product_reordered_under_jit", "--jobs", "2", "--json", str(report)],
        capture_output=True, text=True, timeout=1500, cwd=user_project,  # the factory imports from where it runs
    )
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}"
    out = proc.stdout
    assert "user_resmlp: 1 of 2 faults caught" in out, out[-4000:]
    caught = [line for line in out.splitlines() if line.strip().startswith("dropout_key_ignored ")]
    assert caught and "test_module_stream_keys_drive_randomness" in caught[-1], out[-4000:]
    assert any(line.strip().startswith("batch_stats_not_updated") and line.endswith("not caught")
               for line in out.splitlines()), out[-4000:]  # a BatchNorm fault: this block has no BatchNorm
    assert "product_reordered_under_jit  accepted" in out, out[-4000:]
    results = json.loads(report.read_text())["results"]
    assert all(i.endswith("[user_resmlp]") for r in results for i in r["ids"]), "a test of another module ran"


def test_selfcheck_rejects_a_factory_that_does_not_exist(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "conformance", "selfcheck", "--module", "no_such_pkg_xyz.specs:specs"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "--module no_such_pkg_xyz.specs:specs: cannot import 'no_such_pkg_xyz.specs'" in proc.stderr, proc.stderr


def test_benign_runs_start_only_after_the_clean_run_and_faults_fill_the_wait():
    """The clean run fills the compilation cache before any benign run starts; fault runs use the other thread."""
    import threading
    import time

    from conformance.selfcheck import plan

    events, lock = [], threading.Lock()

    def job(name, seconds):
        def run():
            with lock:
                events.append(("start", name))
            time.sleep(seconds)
            with lock:
                events.append(("end", name))
            return name
        return run

    got = []
    plan.run_clean_first(job("clean", 0.3), [job("b1", 0.01), job("b2", 0.01)],
                         [job(f"f{i}", 0.05) for i in range(3)], 2, got.append)
    assert sorted(got) == ["b1", "b2", "clean", "f0", "f1", "f2"]
    clean_end = events.index(("end", "clean"))
    assert all(events.index(("start", b)) > clean_end for b in ("b1", "b2")), events
    assert events.index(("start", "f0")) < clean_end, events  # a fault ran beside the clean run


def test_a_failing_run_stops_the_schedule_and_is_raised():
    import pytest

    from conformance.selfcheck import plan

    def boom():
        raise RuntimeError("pytest could not start")

    with pytest.raises(RuntimeError, match="could not start"):
        plan.run_clean_first(boom, [lambda: "b"], [lambda: "f"], 2, lambda r: None)
