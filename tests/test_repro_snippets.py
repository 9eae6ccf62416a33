"""Every repro snippet runs and reproduces its failure.

The suite runs in its own processes (forked, conformance/selfcheck/forked.py), once per fault of ``SNIPPET_FAULTS`` (the
selfcheck profile, only the properties that fault is known to fail), with
the fault injected. Each failing property's repro note is read from the JUnit
XML and executed as printed, as ``python -c`` runs it: the first of each kind (pipeline or not, x64 or not) in a
fresh interpreter, the others forked from a server that imported jax and flax once (``forked.run_python``). It must re-apply the
fault itself and end in the property's failure (an exception). Properties that carry a
snippet are found in the suite's source, so a new one without a fault here
fails the coverage test.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET


from conformance.core import deviations
from conformance.selfcheck import forked
from conformance.selfcheck import plan
from conformance.selfcheck.faults import FAULTS

SUITE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conformance")

# fault -> the properties whose snippets it proves (each property caught by that fault in the selfcheck).
SNIPPET_FAULTS = {
    "output_truncated": ["test_output_length", "test_output_shape_batched", "test_matches_float64_oracle",
                         "test_apply_uses_given_params", "test_grad_wrt_x"],
    "init_key_nondeterministic": ["test_deterministic", "test_kwargs_form_matches_closure", "test_init_ignores_x",
                                  "test_jit_whole_matches_eager", "test_devices_agree"],
    "jit_only_scaled": ["test_jit_init_apply_matches_eager"],
    "init_key_ignored": ["test_distinct_seeds_distinct_params", "test_distinct_seeds_batch", "test_kernel_distribution"],
    "bias_init_nonzero": ["test_bias_is_zero", "test_zero_maps_to_zero", "test_linear_in_x"],
    "apply_ignores_bias": ["test_grad_wrt_params", "test_optax_sgd_step"],
    "output_in_input_dtype": ["test_output_dtype"],
    "params_float16": ["test_param_dtypes"],
    "output_on_first_device": ["test_output_stays_on_device"],
    "vmap_only_negated": ["test_vmap_matches_rows_and_batched"],
    "unknown_leaves_dropped": ["test_apply_flags_unknown_leaf"],
    "boxed_leaves": ["test_variables_tree_structure"],
    # pipelines: one fault reaches many (a wrong shape or fresh params break every later check)
    "traced_nested_params_ignored": ["test_nested_apply_matches_top_level", "test_scan_matches_python_loop",
                                     "test_nn_jit_matches_plain_parent", "test_init_with_output_matches_apply",
                                     "test_method_through_parent", "test_vmap_ensemble_matches_members",
                                     "test_remat_outputs_and_grads_unchanged", "test_scan_dropout_keys_follow_split_rngs",
                                     "test_scan_batch_stats_stacked_and_fed_back"],
    "positional_args_reversed": ["test_positional_constructor_arguments", "test_tolinen_class_matches_to_linen",
                                 "test_nested_params_live_under_the_parents_names", "test_abstract_init_matches_init",
                                 "test_serialization_round_trip", "test_orbax_round_trip",
                                 "test_restore_into_target_missing_a_leaf_names_it",
                                 "test_custom_collection_updates_under_mutable", "test_intermediates_only_when_asked",
                                 "test_partition_spec_top_level", "test_jit_init_places_leaves_as_annotated",
                                 "test_sharded_apply_matches_unsharded", "test_nnx_method_at_top_level"],
    "nested_name_dropped": ["test_scan_stacks_params_per_layer"],
    "partition_names_lost_under_transform": ["test_partition_names_survive_lifted_transforms"],
    "instance_accepted": ["test_instance_is_rejected"],
    "created_collection_dropped": ["test_created_collection_returned_under_mutable"],
    # the bridge's public surface
    "init_method_ignored": ["test_init_with_nnx_method_at_top_level", "test_init_with_method_through_parent"],
    "constructor_kwargs_unreadable": ["test_constructor_arguments_read_off_the_module"],
    "tolinen_field_inserted": ["test_tolinen_fields_by_position_and_keyword"],
    "to_linen_class_drops_partial_kwargs": ["test_to_linen_class_subclass_init_apply"],
    "state_restored_through_nnx_conversion": ["test_apply_on_linen_boxed_params",
                                              "test_apply_with_the_same_paths_in_two_collections"],
    # the ToNNX direction (conformance/selfcheck/to_nnx_faults.py)
    "tonnx_output_truncated": ["test_tonnx_output_length", "test_tonnx_output_shape_batched",
                               "test_tonnx_matches_float64_oracle"],
    "tonnx_init_key_nondeterministic": ["test_tonnx_deterministic", "test_tonnx_same_seed_same_params",
                                        "test_tonnx_jax_jit_over_split_state_matches_eager"],
    "tonnx_init_key_ignored": ["test_tonnx_distinct_seeds_distinct_params", "test_tonnx_distinct_seeds_batch"],
    "tonnx_streams_frozen_under_jit": ["test_tonnx_nnx_jit_matches_eager"],
    "tonnx_vmap_only_negated": ["test_tonnx_nnx_vmap_matches_rows_and_batched"],
    "tonnx_output_in_input_dtype": ["test_tonnx_output_dtype"],
    "tonnx_params_in_input_dtype": ["test_tonnx_param_dtypes"],
    "tonnx_input_clipped": ["test_tonnx_linear_in_x"],
    "tonnx_call_drops_bias": ["test_tonnx_nnx_grad_wrt_params", "test_tonnx_optimizer_sgd_step"],
    "tonnx_output_on_first_device": ["test_tonnx_output_stays_on_device"],
    # Linen layers inside NNX models
    "tonnx_state_updates_ignored": ["test_tonnx_split_merge_round_trip", "test_tonnx_state_update_round_trip",
                                    "test_tonnx_orbax_round_trip"],
    "tonnx_batch_stats_not_written_back": ["test_tonnx_batch_stats_update_matches_linen",
                                           "test_tonnx_inference_reads_batch_stats"],
    "tonnx_intermediates_dropped": ["test_tonnx_sown_intermediates_in_state"],
    "tonnx_partition_metadata_dropped": ["test_tonnx_partition_metadata_becomes_sharding"],
    "tonnx_dropout_key_fixed": ["test_tonnx_dropout_mask_follows_the_stream_key", "test_tonnx_dropout_stream_advances_per_call"],
    "tonnx_call_kwargs_dropped": ["test_tonnx_dropout_deterministic_draws_nothing"],
    "tonnx_method_routed_to_call": ["test_tonnx_methods_through_the_wrapper"],
    "tonnx_call_before_init_initialises": ["test_tonnx_call_before_lazy_init_is_a_clear_error"],
    "tonnx_lazy_init_check_inverted": ["test_tonnx_lazy_init_through_a_method"],
    "tonnx_own_collection_unregistered": ["test_tonnx_own_collection_round_trip"],
}
REPRO = re.compile(r"^E\s+repro:\s*$")


def properties_with_snippets() -> set[str]:
    """Properties whose body reports through ``reporting(...)``: each failure carries a snippet."""
    found = set()
    for root, _, names in os.walk(SUITE):  # properties/<area>/test_*.py
        for name in names:
            if name.startswith("test_") and name.endswith(".py"):
                with open(os.path.join(root, name)) as fh:
                    for func, body in re.findall(r"^def (test_\w+)\(.*?\):\n(.*?)(?=^\S)", fh.read() + "\nEND", re.M | re.S):
                        if "reporting(" in body:
                            found.add(func)
    return found


def deviating_here() -> set[str]:
    """Properties that are known deviations of the installed flax: under a fault they xfail, no snippet to run."""
    versions = deviations.installed_versions()
    return {d.test for d in deviations.load() if d.applies(versions)}


def snippet_of(failure_text: str) -> str | None:
    """The repro note of a pytest failure text: the lines indented under ``E   repro:`` (pytest's ``E`` removed)."""
    lines = failure_text.splitlines()
    for i, line in enumerate(lines):
        if REPRO.match(line):
            depth = len(line[1:]) - len(line[1:].lstrip())
            body = []
            for nxt in lines[i + 1:]:
                text = nxt[1:] if nxt.startswith("E") else None
                if text is None or len(text) - len(text.lstrip()) <= depth:
                    break
                body.append(text)
            return textwrap.dedent("\n".join(body))
    return None


def run_suite(fault: str, props: list[str], tmp) -> dict[str, str]:
    """property -> snippet, from a run of ``props`` under ``fault``."""
    xml = os.path.join(tmp, f"{fault}.xml")
    cmd = ["--pyargs", "conformance", "-q", "-p", "no:cacheprovider",
           "--hypothesis-profile=selfcheck", "-p", "conformance.faults", "--fault", fault,
           "-k", " or ".join(props), f"--junitxml={xml}"]
    cmd += [f"--ignore={path}" for path in plan.ignored_files(props, plan.property_files()) or ()]  # collect their files only
    proc = forked.run_pytest(cmd, cwd=tmp, timeout=900)
    assert os.path.exists(xml), f"{fault}: pytest exited {proc.returncode}\n{proc.stdout[-3000:]}"
    out = {}
    for case in ET.parse(xml).iter("testcase"):
        prop = case.get("name", "").split("[")[0]
        fail = case.find("failure")
        if prop in props and fail is not None and prop not in out:
            out[prop] = snippet_of((fail.get("message") or "") + "\n" + (fail.text or ""))
    return out


def run_snippet(code: str, cwd, fresh: bool) -> str:
    """The snippet's output (stderr last), run as ``python -c`` runs it: in a fresh interpreter, or forked
    from a server that imported numpy, jax, flax, optax, orbax, Hypothesis and pytest (not the project).
    Raises nothing: the caller reads the exit code from the returned process."""
    if fresh:
        proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
        return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout + proc.stderr, "")
    return forked.run_python(code, cwd=cwd, timeout=600)


def test_every_snippet_property_has_a_fault():
    covered = {p for props in SNIPPET_FAULTS.values() for p in props}
    every_case_deviates = {d for d in deviating_here() if "[" not in d}  # a property deviating in one case only still needs a fault
    missing = properties_with_snippets() - covered - every_case_deviates
    assert not missing, f"properties with a repro snippet but no fault in SNIPPET_FAULTS: {sorted(missing)}"


def test_snippet_of_reads_pytest_failure_text():
    text = ("E   AssertionError: y differs\nE   property: p\nE   repro:\nE       import jax\nE       x = 1\n"
            "E   Failing test case: test_p(\nE       device='cpu:0',\nE   )\n\nfile.py:3: AssertionError")
    assert snippet_of(text) == "import jax\nx = 1"
    assert snippet_of("E   AssertionError: no note") is None


def test_every_snippet_reproduces_its_failure(tmp_path):
    skip = deviating_here()
    jobs = {f: [p for p in props if p not in skip] for f, props in SNIPPET_FAULTS.items()}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        found = dict(zip(jobs, pool.map(lambda f: run_suite(f, jobs[f], str(tmp_path)), jobs)))
    problems, snippets = [], []
    for fault, props in jobs.items():
        for prop in props:
            code = found[fault].get(prop)
            if code is None:
                problems.append(f"{prop}: no failure with a repro note under --fault {fault}")
                continue
            assert f'faults.install("{fault}")' in code, f"{prop}: the snippet does not re-apply --fault {fault}:\n{code}"
            snippets.append((fault, prop, code))
    # The first snippet of each kind in a fresh interpreter, exactly as a reader runs it; the rest forked (one
    # generator, repro_snippet, writes every preamble: about 2.5 s of imports saved each). A kind is whether the
    # fault acts in a pipeline and whether the snippet switches x64 on: what a fresh start can differ by.
    fresh, kinds = [], set()
    for fault, _, code in snippets:
        kind = (FAULTS[fault].area.startswith("pipelines"), "jax_enable_x64" in code)
        fresh.append(kind not in kinds)
        kinds.add(kind)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda s: run_snippet(s[0][2], str(tmp_path), s[1]), zip(snippets, fresh)))
    for (fault, prop, code), proc in zip(snippets, results):
        last = (proc.stdout.strip().splitlines() or [""])[-1]
        if proc.returncode == 0:
            problems.append(f"{prop} (--fault {fault}): the snippet ran without failing:\n{code}")
        elif re.match(r"^(NameError|SyntaxError|ImportError|ModuleNotFoundError|IndentationError)\b", last):
            problems.append(f"{prop} (--fault {fault}): the snippet is broken: {last}\n{code}")
    assert not problems, "\n\n".join(problems)
