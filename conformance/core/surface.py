"""The public surface of ``flax.nnx.bridge`` a ``to_linen`` user touches: the inventory, and how two releases differ.

Jax-free data (the gate reads it). A *surface record* maps each entry of
``RECORDS`` to what a release has: ``exports`` the public names of
``flax.nnx.bridge``; ``to_linen``, ``ToLinen.__call__`` and ``to_linen_class``
their parameters (``*args``/``**kwargs`` marked); ``ToLinen`` its dataclass
fields in order (``parent`` and ``name`` left out: Linen's own); ``NNXMeta`` its
fields. ``conformance/helpers/surface.py`` reads one off the installed flax,
``tools/bridge_surface_history.py`` off each release tag; docs/bridge-surface.md
is the table for people. ``tests/test_surface_inventory.py`` checks
``HISTORY[LATEST]`` against the installed release.
"""

from __future__ import annotations

RECORDS = ("exports", "to_linen", "ToLinen", "ToLinen.__call__", "to_linen_class", "NNXMeta")

# --- the inventory: every public name a to_linen user touches, and what covers it ------------------------------
# name -> (what it is, the properties that exercise it). A parameter covered on its own is named "entry.param".
COVERED = {
    "to_linen": ("the shortcut: to_linen(Cls, *args, **kwargs)", ("every contract property",)),
    "to_linen.nnx_class": ("the NNX class (not an instance)", ("every contract property", "test_instance_is_rejected")),
    "to_linen.*args": ("the NNX constructor's positional arguments", ("test_positional_constructor_arguments",)),
    "to_linen.name": ("the child's name in its parent", ("test_nested_params_live_under_the_parents_names",)),
    "to_linen.metadata_fn": ("what a leaf holds (the default boxes annotated variables)",
                             ("test_partition_spec_top_level", "test_orbax_round_trip")),
    "to_linen.skip_rng": ("a constructor without rngs", ("test_zoo_kwarg_reaches_module_or_is_rejected",)),
    "to_linen.abstract_init": ("accepted and ignored since 0.12.0", ("test_zoo_kwarg_reaches_module_or_is_rejected",)),
    "to_linen.**kwargs": ("the NNX constructor's keywords", ("test_kwargs_form_matches_closure",
                                                            "test_constructor_arguments_read_off_the_module")),
    "ToLinen": ("the Linen module class", ("test_tolinen_class_matches_to_linen", "test_tolinen_fields_by_position_and_keyword")),
    "ToLinen.nnx_class": ("field 1", ("test_tolinen_fields_by_position_and_keyword",)),
    "ToLinen.args": ("field 2; read as module.args", ("test_tolinen_fields_by_position_and_keyword",
                                                      "test_constructor_arguments_read_off_the_module")),
    "ToLinen.kwargs": ("field 3; each key reads as an attribute", ("test_tolinen_fields_by_position_and_keyword",
                                                                   "test_constructor_arguments_read_off_the_module")),
    "ToLinen.skip_rng": ("field 4", ("test_tolinen_fields_by_position_and_keyword",)),
    "ToLinen.metadata_fn": ("field 5 (0.10.6-0.10.7, 0.12.0-); field 6 in 0.11.x", ("test_tolinen_fields_by_position_and_keyword",)),
    "ToLinen.abstract_init": ("field 5 in 0.11.x only", ()),
    "ToLinen.metadata_type": ("field 5 in 0.10.0-0.10.5 only", ()),
    "ToLinen.__call__": ("init/apply/init_with_output pass their arguments through it", ("every contract property",)),
    "ToLinen.__call__.*args": ("the NNX method's positional arguments", ("every contract property",)),
    "ToLinen.__call__.**kwargs": ("the NNX method's keywords", ("test_zoo_use_running_average_uses_stored_stats",)),
    "ToLinen.__call__.nnx_method": ("the NNX method to run, at init and apply",
                                    ("test_nnx_method_at_top_level", "test_init_with_nnx_method_at_top_level")),
    "ToLinen.__getattr__": ("constructor keywords and NNX methods read off the module",
                            ("test_constructor_arguments_read_off_the_module", "test_method_through_parent",
                             "test_init_with_method_through_parent")),
    "to_linen_class": ("a ToLinen subclass declared once (flax.nnx.bridge.wrappers; not exported)",
                       ("test_to_linen_class_subclass_init_apply",)),
    "to_linen_class.base_nnx_class": ("the NNX class", ("test_to_linen_class_subclass_init_apply",)),
    "to_linen_class.**partial_kwargs": ("constructor keywords fixed once", ("test_to_linen_class_subclass_init_apply",)),
    "to_linen_class.base_metadata_fn": ("the subclasses' metadata_fn",
                                        ("test_to_linen_class_base_defaults_reach_subclasses",)),
    "to_linen_class.base_skip_rng": ("the subclasses' skip_rng", ("test_to_linen_class_base_defaults_reach_subclasses",)),
    "NNXMeta": ("the box the default metadata_fn stores annotated variables in",
                ("test_partition_spec_top_level", "test_partition_names_survive_lifted_transforms", "test_orbax_round_trip")),
    "with_partitioning": ("partition names for an initializer of bridge.Module code, as nn.with_partitioning's",
                          ("test_bridge_module_init_lays_out_variables_as_linen",
                           "test_bridge_module_apply_matches_linen_on_its_variables")),
    # the other direction: a Linen module inside an NNX model (conformance/properties/to_nnx/)
    "ToNNX": ("wraps a Linen module as an NNX module: ToNNX(module, rngs=nnx.Rngs(...)), called as model(x)",
              ("test_tonnx_matches_float64_oracle", "test_tonnx_same_seed_same_params", "test_tonnx_nnx_jit_matches_eager",
               "test_tonnx_jax_jit_over_split_state_matches_eager", "test_tonnx_optimizer_sgd_step")),
    "lazy_init": ("creates the wrapped Linen module's variables from a sample input, from the model's params stream",
                  ("test_tonnx_distinct_seeds_distinct_params", "test_tonnx_deterministic", "test_tonnx_param_dtypes",
                   "test_tonnx_golden_numerics", "test_tonnx_lazy_init_under_nnx_jit_matches_eager")),
    # bridge.Module: Linen code run as an NNX module (conformance/properties/to_nnx/pipelines/test_bridge_module.py)
    "Module": ("Linen-style modules as NNX modules: init(seed, x) and apply(variables, x) as Linen's",
               ("test_bridge_module_init_lays_out_variables_as_linen",
                "test_bridge_module_apply_matches_linen_on_its_variables")),
    "compact": ("bridge.Module's nn.compact: submodules named and counted as Linen names them",
                ("test_bridge_module_init_lays_out_variables_as_linen",)),
    "linen_in_bridge_mdl": ("a Linen layer as a bridge.Module's submodule (a ToNNX on the module's streams)",
                            ("test_bridge_module_init_lays_out_variables_as_linen",
                             "test_bridge_module_apply_matches_linen_on_its_variables")),
    "nnx_in_bridge_mdl": ("an NNX layer as a bridge.Module's submodule, built from the module's streams",
                          ("test_bridge_module_init_lays_out_variables_as_linen",
                           "test_bridge_module_apply_matches_linen_on_its_variables")),
}
# Public names of flax.nnx.bridge no property exercises yet: the rest of the bridge.Module framework (and of the
# other direction). Listed so that a new public name is either covered above or placed here.
OTHER_DIRECTION = ("Functional", "functional", "ModuleMeta", "Scope", "AttrPriority", "current_context",
                   "current_module",
                   "initializers", "register_variable_name_type_pair")

# --- the surface per release (tools/bridge_surface_history.py over the tags; 0.12.8 from the installed wheel) -------
_EXPORTS_0_9 = ("Functional", "Module", "ModuleMeta", "Scope", "ToLinen", "ToNNX", "compact", "functional", "lazy_init",
                "to_linen")
_EXPORTS_0_10_5 = ("AttrPriority", "Functional", "Module", "NNXMeta", "Scope", "ToLinen", "ToNNX", "compact",
                   "current_context", "current_module", "functional", "initializers", "lazy_init", "linen_in_bridge_mdl",
                   "nnx_in_bridge_mdl", "to_linen", "with_partitioning")
# (first release, last release) -> the record's value in that span.
HISTORY = {
    "exports": {
        ("0.9.0", "0.9.0"): _EXPORTS_0_9,
        ("0.10.0", "0.10.0"): tuple(sorted(_EXPORTS_0_9 + ("NNXMeta", "register_variable_name_type_pair"))),
        ("0.10.1", "0.10.2"): ("Functional", "NNXMeta", "ToLinen", "ToNNX", "functional", "lazy_init",
                               "register_variable_name_type_pair", "to_linen"),
        ("0.10.3", "0.10.3"): ("Functional", "NNXMeta", "ToLinen", "ToNNX", "functional", "lazy_init", "to_linen"),
        ("0.10.4", "0.10.4"): ("Functional", "Module", "NNXMeta", "Scope", "ToLinen", "ToNNX", "compact", "functional",
                               "lazy_init", "to_linen", "with_partitioning"),
        ("0.10.5", "0.12.8"): _EXPORTS_0_10_5,
    },
    "to_linen": {
        ("0.9.0", "0.10.5"): ("nnx_class", "*args", "name", "**kwargs"),
        ("0.10.6", "0.10.7"): ("nnx_class", "*args", "metadata_fn", "name", "**kwargs"),
        ("0.11.0", "0.12.8"): ("nnx_class", "*args", "metadata_fn", "name", "skip_rng", "abstract_init", "**kwargs"),
    },
    "ToLinen": {
        ("0.9.0", "0.9.0"): ("nnx_class", "args", "kwargs", "skip_rng"),
        ("0.10.0", "0.10.5"): ("nnx_class", "args", "kwargs", "skip_rng", "metadata_type"),
        ("0.10.6", "0.10.7"): ("nnx_class", "args", "kwargs", "skip_rng", "metadata_fn"),
        ("0.11.0", "0.11.2"): ("nnx_class", "args", "kwargs", "skip_rng", "abstract_init", "metadata_fn"),
        ("0.12.0", "0.12.8"): ("nnx_class", "args", "kwargs", "skip_rng", "metadata_fn"),
    },
    "ToLinen.__call__": {
        ("0.9.0", "0.10.7"): ("*args", "**kwargs"),
        ("0.11.0", "0.12.8"): ("*args", "nnx_method", "**kwargs"),
    },
    "to_linen_class": {
        ("0.12.0", "0.12.8"): ("base_nnx_class", "base_metadata_fn", "base_skip_rng", "**partial_kwargs"),
    },
    "NNXMeta": {
        ("0.10.0", "0.12.8"): ("var_type", "value", "metadata"),
    },
}
LATEST = "0.12.8"  # the newest release HISTORY records (config.LAST_VERIFIED's flax)


def _key(version: str) -> tuple:
    return tuple(int(p) for p in version.split(".")[:3])


def at(version: str) -> dict:
    """The surface record HISTORY holds for a release (records it lacks are absent); ValueError outside 0.9.0-LATEST."""
    if not isinstance(version, str) or not version[:1].isdigit():
        raise ValueError(f"version must be a release like '0.12.8'; got {version!r}")
    v = _key(version)
    if not _key("0.9.0") <= v <= _key(LATEST):
        raise ValueError(f"version must be between 0.9.0 and {LATEST} (the releases HISTORY records); got {version!r}")
    out = {}
    for record, spans in HISTORY.items():
        for (first, last), value in spans.items():
            if _key(first) <= v <= _key(last):
                out[record] = list(value)
    return out


def covering(record: str, name: str | None = None) -> tuple:
    """The properties the inventory names for an entry (``to_linen``) or one of its parameters (``to_linen.skip_rng``)."""
    key = name if record == "exports" else (record if name is None else f"{record}.{name}")
    return COVERED.get(key, ("", ()))[1]


def diff(baseline: dict | None, candidate: dict | None) -> list[dict]:
    """What a candidate's surface adds, removes or reorders against the baseline's, each with the properties covering it.

    ``[{"record", "change": added|removed|reordered, "name", "covered_by"}]``; empty when either side did not
    report its surface (an older suite) or nothing differs.
    """
    if not isinstance(baseline, dict) or not isinstance(candidate, dict):
        return []
    out = []
    for record in RECORDS:
        b, c = baseline.get(record), candidate.get(record)
        if b is None and c is None:
            continue
        if b is None or c is None:
            change = "added" if b is None else "removed"
            out.append({"record": record, "change": change, "name": record, "covered_by": list(covering(record))})
            continue
        for name in [n for n in c if n not in b]:
            out.append({"record": record, "change": "added", "name": name, "covered_by": list(covering(record, name))})
        for name in [n for n in b if n not in c]:
            out.append({"record": record, "change": "removed", "name": name, "covered_by": list(covering(record, name))})
        common_b, common_c = [n for n in b if n in c], [n for n in c if n in b]
        if record == "ToLinen" and common_b != common_c:  # fields by position: an order change moves values
            out.append({"record": record, "change": "reordered", "name": " ".join(common_c),
                        "covered_by": list(covering("ToLinen", "metadata_fn"))})
    return out


def describe(entry: dict) -> str:
    """``added to_linen: lazy (surface no property covers yet)``; a removal names what covered it."""
    where = "" if entry["name"] == entry["record"] else f"{entry['record']}: "
    if entry["covered_by"]:
        covered = ("covered by " if entry["change"] == "added" else "was covered by ") + ", ".join(entry["covered_by"])
    else:
        covered = "surface no property covers yet" if entry["change"] == "added" else "no property covered it"
    return f"{entry['change']} {where}{entry['name']} ({covered})"
