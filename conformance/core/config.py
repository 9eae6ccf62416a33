"""Every default of the suite, in one place.

Example counts, profiles, tolerances, shape menus, device count and numeric
settings live here; everything else imports them.
"""

from __future__ import annotations

import os

# --- devices -------------------------------------------------------------
# CPU devices forced on the host platform, so device handling is exercised
# without an accelerator. Set before jax initialises its backend.
CPU_DEVICE_COUNT = int(os.environ.get("CONFORMANCE_CPU_DEVICES", "2"))
# Accelerator memory taken up front by each process: off, so that any number of
# xdist workers share a GPU (the suite's arrays are tiny). Set before jax starts.
PREALLOCATE_ENV = "XLA_PYTHON_CLIENT_PREALLOCATE"
PREALLOCATE = "false"
# Single-threaded CPU kernels: the suite's products are tiny, so threads only
# contend; parallelism comes from pytest-xdist workers instead. (Not
# --xla_cpu_parallel_codegen_split_count=1: it bought nothing measurable, and
# jaxlib 0.6.0 then refuses to compile the gradient of an embedding lookup.)
XLA_CPU_FLAGS = ("--xla_cpu_multi_thread_eigen=false",)
# One executable serves every forced CPU device, as jax already does on GPUs: the persistent cache's key leaves out
# the device assignment (jax keeps it on CPU only), so a program compiled for cpu:0 is loaded, not compiled again,
# for cpu:1. Every property runs on every device, so this halves a cold run's compiles. Forced host devices share
# one compiler and one set of options, so the second compile could only repeat the first; a device computing
# differently is what the benign perturbation second_device_rounds_differently stands for. Needs the cache on.
SHARE_EXECUTABLES_ACROSS_CPU_DEVICES = os.environ.get("CONFORMANCE_SHARE_CPU_EXECUTABLES", "1") != "0"
# The running-error analysis's programs (a bound, and a second evaluation to
# compare the module's own compiled program against) compile without
# optimisation on CPU: half the compile time of a real layer's analysis, and
# an unoptimised compilation is within the error model (the benign perturbation
# compiled_without_optimisation). The programs under test compile as usual.
ANALYSIS_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

# --- numerics --------------------------------------------------------------
# Matrix products are checked at this precision; GPUs default to reduced
# precision (TF32 on an H100), which the header reports but never gates on.
MATMUL_PRECISION = os.environ.get("CONFORMANCE_MATMUL_PRECISION", "highest")

# The error model (conformance/numerics/errormodel.py, docs/error-model.md) derives
# every numerical bound from the computation; these are its only inputs.
# Accuracy of erf and erfinv in the samplers, as a relative error in units of
# the dtype's roundoff u. XLA's single-precision approximations measure 4.1 u
# (erfinv) and 3.9 u (erf) against SciPy's float64 over the sampler's range;
# tests/test_errormodel.py fails if an installed release exceeds this budget.
SPECIAL_FUNCTION_ULPS = 8
# Two evaluations within a first-order running-error bound E each differ by at most
# 2 E times this (errormodel.running_difference: second-order terms and E's own rounding).
RUNNING_ERROR_SLACK = 1.5
# The probabilistic first-order bound (numerics/adjoint_error.py, docs/error-model.md section 11): with every
# rounding error an independent, mean-zero variable, |sum_k a_k d_k| <= lambda * sqrt(sum_k a_k^2 r_k^2) fails with
# probability at most 2 exp(-lambda^2 / 2) (Hoeffding; Higham and Mary, SIAM J. Sci. Comput. 41(5), 2019). Two
# evaluations, each outside with that probability: at most 4 exp(-36.1) = 8.6e-16 per output element.
PROBABILISTIC_LAMBDA = 8.5
# The adjoint analysis walks a scan this short step by step (layers stacked under nnx.vmap and scanned), so every
# step's roundings keep their signs and independence; a longer one is one site with its running bound.
ADJOINT_UNROLLED_SCAN_LENGTH = 16
# lecun_normal: a standard normal truncated to [-2, 2], divided by that
# distribution's standard deviation, then scaled by sqrt(1 / fan_in).
INIT_TRUNCATION = 2.0
TRUNCATED_NORMAL_STD = 0.87962566103423978

# --- the contract's domains --------------------------------------------------
# Seeds: int32. Inside it distinct seeds give distinct PRNGKeys with x64 on or
# off; outside it they collide without x64 (PRNGKey(2**32 - 1) == PRNGKey(-1)).
SEED_MIN = -(2**31)
SEED_MAX = 2**31 - 1
FEATURES_MIN = 1
FEATURES_MAX = 2**31 - 1

# --- strategies: compile-aware shape menus -----------------------------------
# JAX compiles once per shape and dtype, so draws come from small menus that
# still hold the edges (1, a prime, powers of two, just above 64, 256).
# (width, features) pairs rather than their product: 8 shapes, not 36. The first
# is every property's first draw (Hypothesis tries its simplest example first):
# 64 x 64 outputs, where another summation order or a fused multiply-add shows
# in the bits, so a benign perturbation confined to one transform is seen even
# in the self-check's two examples of a property.
SHAPES = ((64, 64), (1, 1), (1, 65), (2, 5), (3, 256), (17, 2), (256, 1), (256, 256))
# Profiles that also draw shapes off the menu (any width and feature count up
# to OFF_MENU_MAX): the error model is exercised beyond the shapes it was tuned
# on, at one compile per new shape. The gate keeps its menu.
OFF_MENU_PROFILES = ("random", "nightly")
OFF_MENU_MAX = 512
# Leading axes for batched inputs.
BATCH_SHAPES = ((3,), (2, 3))
# Input dtypes; float64 runs under a scoped x64 switch.
FLOAT_DTYPES = ("float32", "bfloat16", "float16", "float64")
DTYPES = FLOAT_DTYPES + ("int32", "int8")
# Paired draws (helpers/hypothesis_helpers.compile_keys): each property and
# device takes one of this many rotations of the dtype and batch menus. Fewer
# rotations, more programs shared between properties (one compile serves all
# that draw it); len(DTYPES) is the fewest whose rows still pair every shape
# with every dtype across the suite.
COMPILE_KEY_ROTATIONS = len(DTYPES)
# Input element magnitude: small enough that no dtype overflows through a
# 256-wide product, large enough to exercise rounding.
ELEMENT_MAX = 8.0
SEED_BATCH = 64  # seeds initialised in one vmapped call (seed batch, init statistics)
# Two distinct seeds may legitimately give equal draws on tiny kernels; the
# seed properties use kernels of at least this many cells (collision ~1e-50).
SEED_MIN_CELLS = 8

# Initialisation statistics: kernel ~ lecun_normal (truncated normal, var 1/fan_in).
INIT_STAT_MIN_CELLS = 256  # width * features of shapes used (x SEED_BATCH seeds pooled)
INIT_STAT_SIGMAS = 6.0  # z-score bound: a correct flax fails ~1e-9 of runs

# Training step: optax SGD steps over the params pytree (the step size is
# derived per case so that every step must lower the loss).
TRAIN_STEPS = 3

# --- premises ---------------------------------------------------------------------
# The mark of a skip whose reason is a fact about the layer, taken from its NNX class run natively (it samples in
# evaluation, no param depends on the key...): the gate compares these facts across sides, and a fact that changes
# is a change of the layer's behaviour, not a skip.
PREMISE_SKIP = "premise: "

# --- directions -------------------------------------------------------------------------
# The bridge's two directions: to_linen (an NNX module inside a Linen pipeline) and to_nnx
# (a Linen module inside an NNX model, bridge.ToNNX). `--direction` runs one or both; the
# to_nnx direction's properties live under properties/to_nnx/, every other property is to_linen's.
DIRECTIONS = ("to_linen", "to_nnx")
DIRECTION_CHOICES = DIRECTIONS + ("both",)
DEFAULT_DIRECTION = "both"
TO_NNX_PROPERTIES_DIR = "to_nnx"

# --- Hypothesis profiles ---------------------------------------------------------
DEFAULT_PROFILE = "gate"
PROFILES = {
    # The gate: deterministic, no deadline, no example database, repro blobs.
    "gate": dict(max_examples=64, derandomize=True, database=None, deadline=None, print_blob=True),
    # Quick local iteration.
    "dev": dict(max_examples=8, derandomize=False, deadline=None, print_blob=True),
    # Random seeds each run: used to show the suite never cries wolf.
    "random": dict(max_examples=40, derandomize=False, database=None, deadline=None, print_blob=True),
    # Nightly: many more examples.
    "nightly": dict(max_examples=400, derandomize=False, database=None, deadline=None, print_blob=True),
    # Self-check of the fault corpus: few examples, deterministic, no shrinking
    # (it only needs to know which properties fail, not the minimal example).
    "selfcheck": dict(
        max_examples=10, derandomize=True, database=None, deadline=None, print_blob=False,
        phases=("explicit", "generate"), report_multiple_bugs=False,
    ),
}

# --- self-check ----------------------------------------------------------------------
# `selfcheck --first-catch` runs these properties first in each fault's run (the
# rest keep their order): a greedy cover of the corpus by what each property
# caught in a full self-check (contract properties, then the zoo's). Order
# changes only how soon a run stops, never whether a fault is caught.
FIRST_CATCH_ORDER = (
    "test_golden_numerics", "test_grad_wrt_params", "test_apply_uses_given_params",
    "test_jit_init_apply_matches_eager", "test_apply_flags_unknown_leaf", "test_vmap_matches_rows_and_batched",
    "test_output_stays_on_device", "test_variables_tree_structure", "test_rejects_bad_features",
    "test_zoo_kwarg_reaches_module_or_is_rejected", "test_zoo_dropout_init_without_stream_names_it",
    "test_module_apply_uses_given_params", "test_module_works_as_a_jit_static_argument",
    "test_module_mutable_state_round_trip", "test_module_stream_keys_drive_randomness", "test_zoo_golden_declared_modules",
)
# A pipeline fault acts only inside a pipeline: its run puts these first instead (one catcher per fault).
PIPELINE_FIRST_CATCH_ORDER = (
    "test_nested_params_live_under_the_parents_names", "test_nested_apply_matches_top_level",
    "test_init_with_output_matches_apply", "test_method_through_parent", "test_scan_stacks_params_per_layer",
    "test_remat_outputs_and_grads_unchanged", "test_partition_spec_top_level", "test_sharded_apply_matches_unsharded",
    "test_positional_constructor_arguments", "test_instance_is_rejected", "test_orbax_round_trip",
    "test_partition_names_survive_lifted_transforms",
    "test_custom_collection_updates_under_mutable", "test_scan_dropout_keys_follow_split_rngs",
    "test_scan_batch_stats_stacked_and_fed_back",
)

# A fault whose catcher is late in those orders names it here: its run puts these first,
# and, for a fault that declares its own modules (--module), their tests before the zoo's.
# Measured by `selfcheck --json` (docs/selfcheck.md); like the orders, speed only.
FAULT_FIRST_CATCHERS = {
    "recurrent_carry_reset": ("test_zoo_golden_declared_modules",),
    "embedding_row_shifted": ("test_zoo_golden_declared_modules",),
    "attention_dropout_key_ignored": ("test_module_stream_keys_drive_randomness",),
    "custom_collection_not_written_back": ("test_module_mutable_state_round_trip",),
    "update_collection_dropped": ("test_custom_collection_updates_under_mutable",),
    "dropout_key_ignored": ("test_module_stream_keys_drive_randomness",),
    "batch_stats_not_updated": ("test_module_mutable_state_round_trip",),
    "user_module_ignores_params": ("test_module_grads",),  # 2026-12-06: the params-flow property no longer catches it
    "boxed_leaves": ("test_variables_tree_structure",),
    "module_unhashable": ("test_module_works_as_a_jit_static_argument",),
    "init_error_hides_missing_stream": ("test_zoo_dropout_init_without_stream_names_it",),
    "partition_names_lost_under_transform": ("test_partition_names_survive_lifted_transforms",),
    "kwargs_swallowed": ("test_zoo_kwarg_reaches_module_or_is_rejected",),
    "kwarg_dtype_swallowed": ("test_zoo_kwarg_reaches_module_or_is_rejected",),
    "output_on_first_device": ("test_output_stays_on_device",),
    "checks_removed": ("test_rejects_bad_features",),
    "instance_accepted": ("test_instance_is_rejected",),
    "shards_misordered": ("test_sharded_apply_matches_unsharded",),
    "wide_input_truncated": ("test_vmap_matches_rows_and_batched",),
    "vmap_only_negated": ("test_vmap_matches_rows_and_batched",),
    "partition_names_dropped": ("test_partition_spec_top_level",),
    "unknown_leaves_dropped": ("test_apply_flags_unknown_leaf",),
    "output_gradient_stopped": ("test_remat_outputs_and_grads_unchanged",),
    "init_in_input_dtype": ("test_init_ignores_x",),  # 2026-12-06: the jit property no longer catches it
    "method_ignored": ("test_method_through_parent",),
    "readonly_state_reinitialised": ("test_module_matches_native",),
    "created_collection_dropped": ("test_module_created_collections_collected",),
    "unknown_streams_dropped": ("test_module_apply_is_pure",),
    "constant_params_redrawn": ("test_module_distinct_seeds_distinct_params",),
    # the bridge's public surface (conformance/selfcheck/surface_faults.py)
    "init_method_ignored": ("test_init_with_nnx_method_at_top_level",),
    "constructor_kwargs_unreadable": ("test_constructor_arguments_read_off_the_module",),
    "tolinen_field_inserted": ("test_tolinen_fields_by_position_and_keyword",),
    "to_linen_class_drops_partial_kwargs": ("test_to_linen_class_subclass_init_apply",),
    "to_linen_class_drops_base_metadata_fn": ("test_to_linen_class_base_defaults_reach_subclasses",),
    "to_linen_class_drops_base_skip_rng": ("test_to_linen_class_base_defaults_reach_subclasses",),
    "state_restored_through_nnx_conversion": ("test_apply_on_linen_boxed_params",),
    # the ToNNX direction (conformance/selfcheck/to_nnx_faults.py): the property only that fault trips first
    "tonnx_init_key_ignored": ("test_tonnx_distinct_seeds_distinct_params",),
    "tonnx_init_key_nondeterministic": ("test_tonnx_deterministic",),
    "tonnx_default_stream_not_params": ("test_tonnx_same_seed_same_params",),
    "tonnx_lazy_init_raw_stream_key": ("test_tonnx_golden_numerics",),
    "tonnx_variables_under_collection_attributes": ("test_tonnx_golden_structure",),
    "tonnx_streams_frozen_under_jit": ("test_tonnx_nnx_jit_matches_eager",),
    "tonnx_call_drops_bias": ("test_tonnx_nnx_grad_wrt_params",),
    "tonnx_kernel_gradient_stopped": ("test_tonnx_nnx_grad_wrt_params",),
    "tonnx_bias_not_a_param": ("test_tonnx_param_dtypes",),
    "tonnx_params_in_input_dtype": ("test_tonnx_param_dtypes",),
    "tonnx_output_in_input_dtype": ("test_tonnx_output_dtype",),
    "tonnx_output_truncated": ("test_tonnx_output_length",),
    "tonnx_batch_axes_flattened": ("test_tonnx_output_shape_batched",),
    "tonnx_input_clipped": ("test_tonnx_linear_in_x",),
    "tonnx_jit_only_scaled": ("test_tonnx_jax_jit_over_split_state_matches_eager",),
    "tonnx_vmap_only_negated": ("test_tonnx_nnx_vmap_matches_rows_and_batched",),
    "tonnx_output_on_first_device": ("test_tonnx_output_stays_on_device",),
    "tonnx_checks_removed": ("test_tonnx_rejects_bad_seed",),
    # Linen layers inside NNX models (conformance/selfcheck/to_nnx_pipeline_faults.py)
    "tonnx_state_updates_ignored": ("test_tonnx_state_update_round_trip",),
    "tonnx_batch_stats_not_written_back": ("test_tonnx_batch_stats_update_matches_linen",),
    "tonnx_intermediates_dropped": ("test_tonnx_sown_intermediates_in_state",),
    "tonnx_partition_metadata_dropped": ("test_tonnx_partition_metadata_becomes_sharding",),
    "tonnx_dropout_key_fixed": ("test_tonnx_dropout_stream_advances_per_call",),
    "tonnx_call_kwargs_dropped": ("test_tonnx_dropout_deterministic_draws_nothing",),
    "tonnx_own_collection_unregistered": ("test_tonnx_own_collection_round_trip",),
    "tonnx_method_routed_to_call": ("test_tonnx_methods_through_the_wrapper",),
    "tonnx_call_before_init_initialises": ("test_tonnx_call_before_lazy_init_is_a_clear_error",),
    "tonnx_lazy_init_check_inverted": ("test_tonnx_lazy_init_through_a_method",),
    "tonnx_not_a_pytree": ("test_tonnx_model_is_a_pytree_as_native_modules_are",),
    "tonnx_linen_boxes_unboxed": ("test_tonnx_layer_reads_its_boxes_as_under_linen",),
    "tonnx_value_access_warns": ("test_tonnx_deterministic",),
    "tonnx_registered_type_ignored": ("test_tonnx_registered_collection_takes_the_registered_type",),
    "tonnx_uninitialised_graphdef_unhashable": ("test_tonnx_lazy_init_under_nnx_jit_matches_eager",),
    "tonnx_plain_attribute_passed_to_the_layer": ("test_tonnx_plain_attribute_is_refused_or_kept_from_the_layer",),
    "bridge_module_init_returns_boxes": ("test_bridge_module_init_lays_out_variables_as_linen",),
    "bridge_module_named_submodule_counted": ("test_bridge_module_init_lays_out_variables_as_linen",),
    "bridge_module_apply_unboxes_linen_variables": ("test_bridge_module_apply_matches_linen_on_its_variables",),
    "bridge_module_setup_name_dropped": ("test_bridge_module_init_lays_out_variables_as_linen",),
    "bridge_module_wrapped_linen_ignores_mutable": ("test_bridge_module_apply_matches_linen_on_its_variables",),
    "bridge_module_returns_rng_state": ("test_bridge_module_init_lays_out_variables_as_linen",),
    "bridge_module_walked_in_the_ambient_mode": ("test_bridge_module_runs_alike_in_tree_mode",),
    "tonnx_assigned_variables_refused": ("test_tonnx_variables_set_on_the_model_are_its_state",),
    "tonnx_updates_merged_shallowly": ("test_tonnx_batch_stats_update_matches_linen",),
    # only warns: with --first-catch its run is these properties alone (any that calls init sees the warning)
    "deprecation_warning_on_init": ("test_deterministic",),
}

# Repro snippets: fault -> the properties whose snippets it proves (each caught by that fault). With `selfcheck
# --snippets`, such a fault's run is these properties, to the end, and the report keeps their failures:
# tests/test_repro_snippets.py runs each failure's snippet.
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
    "to_linen_class_drops_base_metadata_fn": ["test_to_linen_class_base_defaults_reach_subclasses"],
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
    "tonnx_not_a_pytree": ["test_tonnx_model_is_a_pytree_as_native_modules_are"],
    "tonnx_linen_boxes_unboxed": ["test_tonnx_layer_reads_its_boxes_as_under_linen"],
    "tonnx_registered_type_ignored": ["test_tonnx_registered_collection_takes_the_registered_type"],
    "tonnx_uninitialised_graphdef_unhashable": ["test_tonnx_lazy_init_under_nnx_jit_matches_eager"],
    "tonnx_plain_attribute_passed_to_the_layer": ["test_tonnx_plain_attribute_is_refused_or_kept_from_the_layer"],
    "bridge_module_init_returns_boxes": ["test_bridge_module_init_lays_out_variables_as_linen"],
    "bridge_module_apply_unboxes_linen_variables": ["test_bridge_module_apply_matches_linen_on_its_variables"],
    "bridge_module_wrapped_linen_ignores_mutable": ["test_bridge_module_apply_matches_linen_on_its_variables"],
    "bridge_module_returns_rng_state": ["test_bridge_module_init_lays_out_variables_as_linen"],
    "bridge_module_walked_in_the_ambient_mode": ["test_bridge_module_runs_alike_in_tree_mode"],
    "tonnx_assigned_variables_refused": ["test_tonnx_variables_set_on_the_model_are_its_state"],
}

# A benign perturbation whose traced programs another one compiles too runs after it, and reads them from the
# compilation cache (under jit both sampler perturbations nudge the same draw). Speed only.
BENIGN_REUSES = {"sampler_ulp_everywhere": "sampler_ulp_under_jit"}

# A fault of the real-layer tier breaks one layer's premise: its run tries that layer's tests first, within
# its first catcher (else the catcher runs on every tier layer before it, and each compiles cold).
FAULT_FIRST_MODULES = {
    "readonly_state_reinitialised": "real_frozen_batchnorm",
    "unknown_streams_dropped": "real_reparam_encoder",
    "embedding_row_shifted": "real_token_classifier",
    "recurrent_carry_reset": "real_lstm",
    "custom_collection_not_written_back": "real_counter",
    "created_collection_dropped": "real_reparam_encoder",
}

# --- caches ------------------------------------------------------------------------
# Every cache of the suite lives under one directory (see conformance/core/cachedirs.py):
# $CONFORMANCE_CACHE_DIR, else $XDG_CACHE_HOME/flax-bridge-conformance, else
# ~/.cache/flax-bridge-conformance. Nothing is written into the working directory.
# The package's data files: committed golden records and the known deviations.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS_DIR = os.path.join(PACKAGE_DIR, "records")
ZOO_RECORDS_DIR = os.path.join(RECORDS_DIR, "zoo")
KNOWN_DEVIATIONS_PATH = os.path.join(PACKAGE_DIR, "known_deviations.txt")
PROPERTIES_DIR = os.path.join(PACKAGE_DIR, "properties")

CACHE_DIR_ENV = "CONFORMANCE_CACHE_DIR"
CACHE_DIR_NAME = "flax-bridge-conformance"
# Its parts: JAX's persistent compilation cache (shared by xdist workers), the
# gate's environments, the suite's wheel built for them, Hypothesis' storage
# directory (its constants cache; the profiles keep no example database).
CACHE_PARTS = {"jax": "jax", "envs": "envs", "wheels": "wheels", "hypothesis": "hypothesis", "records": "records"}
# Per-part overrides: the compilation cache ("off" disables it), the gate's environments.
COMPILATION_CACHE_ENV = "CONFORMANCE_COMPILATION_CACHE"
GATE_CACHE_ENV = "CONFORMANCE_GATE_CACHE"

# --- versions ------------------------------------------------------------------------
# The newest releases the suite has been verified against (its golden record,
# known deviations and self-check). Newer ones run every property; the header
# and reports say that the release is newer than the last verified one.
LAST_VERIFIED = {"flax": "0.12.8", "jax": "0.10.2"}

# --- golden records -------------------------------------------------------------------
# Which record the golden properties compare against: a path, or a file name
# among the committed records (default: the newest committed one).
GOLDEN_RECORD_ENV = "CONFORMANCE_RECORD"
ZOO_RECORD_ENV = "CONFORMANCE_ZOO_RECORD"
# A declared module's golden entry (conformance/golden/zoo_modules.py): its variables from init
# at this params seed, its training outputs with the stream keys derived from this seed.
ZOO_GOLDEN_PARAMS_SEED = 0
ZOO_GOLDEN_STREAM_KEY_SEED = 0
# The baseline's orbax checkpoints of every module's variables (conformance/golden/checkpoints.py):
# every side restores them into its own init's tree. Unset: each side round-trips its own.
CHECKPOINT_DIR_ENV = "CONFORMANCE_CHECKPOINT"
CHECKPOINT_CONTRACT_SHAPES = ((64, 64), (2, 5))  # the contract module's (width, features) checkpointed
# The gate's golden reference: "baseline" records the baseline side's own
# golden records and compares every side against them, so a candidate whose
# numbers differ from the baseline's is a change even where both differ from
# the committed record; "committed" compares every side with the committed one.
GATE_GOLDEN_CHOICES = ("baseline", "committed")
GATE_GOLDEN = "baseline"
# Sides built from something that moves (conformance/gate/sources.py): a checkout,
# a git reference, a wheel. Their environments are keyed by what they hold now.
SOURCE_DIGEST_CHARS = 12  # hex digits of a commit or digest shown in labels and reports (48 bits: no collisions in practice)
# Directories a checkout's digest leaves out: VCS metadata, caches and build outputs, not the code installed.
SOURCE_DIGEST_SKIP_DIRS = (".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox",
                           ".nox", ".venv", "build", "dist", ".eggs")
GIT_TIMEOUT_S = 120  # one git ls-remote / rev-parse / diff; beyond that the side gets no verdict
# The gate's HTML report (conformance/gate/html.py): characters of one failure's text shown (its repro snippet included).
HTML_FAILURE_CHARS = 20000

# --- the module zoo (conformance/modules/zoo.py) ---------------------------------------------------
# Compile-aware: one width, one feature count, two input shapes (a batch, a row),
# plus one larger input for the keep-rate statistic.
ZOO_WIDTH = 16
ZOO_FEATURES = 64
ZOO_BATCH = 8  # rows of the example batch: 8 x 64 = 512 dropout cells per apply
# Keep probability 0.75, not 0.5: a bridge that swapped rate and keep
# probability would then change the statistics.
ZOO_DROPOUT_RATE = 0.25
ZOO_BN_MOMENTUM = 0.9
ZOO_BN_EPSILON = 1e-5
# Keep-rate statistic: rows x ZOO_FEATURES mask cells per example, and the
# probability that a correct bridge fails one check (Hoeffding, two-sided:
# P(|K/n - p| >= t) <= 2 exp(-2 n t^2), so t = sqrt(ln(2/delta) / (2 n))).
ZOO_KEEP_RATE_ROWS = 64  # 64 x 64 = 4096 cells: t = 0.051 at delta = 1e-9
ZOO_KEEP_RATE_DELTA = 1e-9
# Keys compared pairwise for distinct masks (two masks of 512 cells agree with probability 0.625**512).
ZOO_DISTINCT_KEYS = 4
# Training steps through apply(mutable=["batch_stats"]) and optax SGD.
ZOO_TRAIN_STEPS = 2
ZOO_LEARNING_RATE = 0.1
# Fraction of the profile's examples for each module property (test_modules.py): a
# module's inputs are declared, the draws pick only seeds and keys, so its verdict
# rarely depends on them; an eager apply of a real layer through the bridge costs
# up to a second (flax >= 0.11 re-runs its initializers). Gate: 64 x 0.05 = 3 examples.
ZOO_MODULE_EXAMPLE_FRACTION = 0.05
# Other keys a module's output is compared against before "the key is ignored" (test_module_stream_keys_drive_randomness).
ZOO_STREAM_KEY_TRIES = 24

# --- pipelines (conformance/properties/pipelines) ----------------------------------------------
# A pipeline's verdict depends on how flax wires the bridged module into Linen, not on the
# numbers drawn, so each pipeline property runs this fraction of the profile's examples
# (gate: 64 x 0.05 = 3) over the small shapes below: each new shape costs a compile of the
# whole pipeline, init and apply.
PIPELINE_EXAMPLE_FRACTION = 0.05
PIPELINE_SHAPES = ((2, 5), (17, 2), (3, 3))  # (width, features) from the contract's menu, and a square one
PIPELINE_LAYERS = (2, 3)  # nn.scan lengths
PIPELINE_DROPOUT_RATE = 0.5  # a scanned layer's masks: two layers' masks of n cells agree with probability 0.5**n
PIPELINE_ENSEMBLE = 2  # nn.vmap's mapped size: a mesh axis of the forced CPU devices divides it
PIPELINE_PARTITION = (None, "model")  # the kernel's annotated names (rows unsharded, columns on 'model')
PIPELINE_STACK_AXIS = "layers"  # the partition name nn.scan/nn.vmap give the stacked axis
PIPELINE_MESH_AXES = ("data", "model")  # the mesh over the suite's devices: (1, device count)

# --- Linen layers inside NNX models: the pipeline contract (conformance/properties/to_nnx/pipelines) ---------
# Like a to_linen pipeline's, a ToNNX pipeline's verdict is in how the wrapper moves Linen variables into NNX
# state and back (split, update, checkpoints, collections, streams, methods), not in the numbers drawn: eager
# calls of a wrapped Linen module cost op by op, so the fewest examples a property takes (gate: 64 x 0.03 -> 2,
# the floor of harness.property_settings) over the pipelines' shapes.
TONNX_EXAMPLE_FRACTION = 0.03
# The dropout probe: a Linen nn.Dropout over this many ones beside the layer's output, so two masks of
# different keys agree with probability (1 - rate)**n + rate**n at most (2**-256 at rate 0.5), whatever the shape.
TONNX_DROPOUT_CELLS = 256
TONNX_DROPOUT_RATE = 0.5
# Logical partition names of the kernel and the rules that map them onto the mesh axes
# (PIPELINE_MESH_AXES): rows unsharded, columns on 'model', as PIPELINE_PARTITION names them directly.
TONNX_LOGICAL_NAMES = ("embed", "mlp")
TONNX_LOGICAL_RULES = (("embed", None), ("mlp", "model"))
# The Linen metadata boxes an annotated kernel is created in (nn.with_partitioning, nn.with_logical_partitioning).
TONNX_PARTITION_BOXES = ("Partitioned", "LogicallyPartitioned")
# A Linen collection of the layer's own, one flax does not name (not params, batch_stats, cache, intermediates):
# the counting module keeps its call count there.
TONNX_OWN_COLLECTION = "call_counts"
# A Linen collection whose NNX Variable type the team registers (nnx.register_variable_name): the registered
# module keeps its call count there, and the model must hold it as that type.
TONNX_REGISTERED_COLLECTION = "registered_counts"
# Plain attributes a team hangs on a ToNNX model (test_tonnx_attributes.py): a label, a count, a flag.
TONNX_PLAIN_ATTRIBUTE_VALUES = ("run-7", 3, True)

# --- the bridge's public surface (conformance/properties/surface, conformance/core/surface.py) ---------------
# Like a pipeline's, a surface property's verdict is in how the bridge wires a call (a method at init, a
# field's slot, an attribute read, a box unwrapped), not in the numbers drawn: the pipelines' fraction and shapes.
SURFACE_EXAMPLE_FRACTION = PIPELINE_EXAMPLE_FRACTION
# The Linen metadata boxes a restored checkpoint may hold, applied as they are (test_metadata_boxes.py).
SURFACE_LINEN_BOXES = ("LogicallyPartitioned", "Partitioned")
# The second collection that holds the same paths as params (test_metadata_boxes.py): a Linen pipeline's copy.
SURFACE_SHADOW_COLLECTION = "shadow"
# Warnings recorded per test (user property and JSON report): distinct (category, message, where) records kept
# per test, the rest counted; a message longer than this is cut (a warning listing a whole tree says it once).
WARNINGS_PER_TEST = 20
WARNING_MESSAGE_CHARS = 300
