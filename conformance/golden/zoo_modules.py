"""Golden records of declared modules: what ``record --module`` stores, which record a run reads, and the comparison.

Each declared module's entry holds its declaration's fingerprint
(:mod:`conformance.golden.declarations`), its variables after ``init`` at
``PARAMS_SEED`` (every collection), the example call and stream keys it was
applied to, and the training-mode outputs and updates. The golden test then
keeps two questions apart:

* **outputs**: the installed bridge applied to the *recorded* variables, call
  and keys must give the recorded outputs and updates: identical, drift within
  the running-error bound of that computation at those values, or changed;
* **init**: the installed ``init`` must draw the recorded variables: identical,
  drift within the running-error bound of ``init`` itself, or changed (a new
  release's sampler draws other params).

Which record: ``$CONFORMANCE_ZOO_RECORD`` alone when set (the gate points it at
the baseline's), else the record ``record`` wrote into the cache directory for
the installed flax and jax, then the newest committed one; the first whose
entry has this declaration's fingerprint. Older records (no fingerprint) are
read and never compared.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from conformance.core import config
from conformance.golden import declarations, records
from conformance.numerics.dtypes import np_dtype

PARAMS_SEED = config.ZOO_GOLDEN_PARAMS_SEED
STREAM_KEY_SEED = config.ZOO_GOLDEN_STREAM_KEY_SEED
FORMAT = 2  # of a module's entry; entries without "format" are the first one (outputs only)


def leaves(arrays: dict) -> dict:
    """``{path: {"values", "shape", "dtype"}}``: values stored as float64 (exact for every dtype up to 32 bits)."""
    return {p: {"values": np.asarray(a, np.float64).ravel().tolist(), "shape": list(np.shape(a)), "dtype": str(a.dtype)}
            for p, a in arrays.items()}


def arrays(stored: dict) -> dict:
    """The inverse of :func:`leaves`: ``{path: array}`` in the dtype recorded."""
    return {p: np.asarray(v["values"], np.float64).astype(np_dtype(v["dtype"])).reshape(v["shape"])
            for p, v in stored.items()}


# --- writing -------------------------------------------------------------------------------------------------


def entry(spec) -> dict:
    """One declared module's record: fingerprint, variables, call, keys, training outputs and updates."""
    import jax

    from conformance.modules import module_harness as zh

    call = spec.calls[0]
    keys = zh.stream_keys(spec, STREAM_KEY_SEED)
    variables = zh.init(spec, PARAMS_SEED, call)
    y, updates = zh.jit_train(spec)(variables, call, keys)
    return {"format": FORMAT, "fingerprint": declarations.fingerprint(spec), "declaration": declarations.describe(spec),
            "variables": leaves(zh.array_leaves(variables)),
            "call": leaves({str(i): np.asarray(a) for i, a in enumerate(jax.tree_util.tree_leaves(call))}),
            "keys": leaves({s: np.asarray(jax.random.key_data(k) if _is_typed_key(k) else k) for s, k in keys.items()}),
            "outputs": leaves(zh.array_leaves(y)), "updates": leaves(zh.array_leaves(updates))}


def _is_typed_key(k) -> bool:
    import jax

    return hasattr(k, "dtype") and jax.dtypes.issubdtype(k.dtype, jax.dtypes.prng_key)


# --- which record --------------------------------------------------------------------------------------------


def written_record() -> str:
    """Where ``python -m conformance record`` writes the zoo record of the installed flax and jax by default."""
    import flax
    import jax

    return os.path.join(records.written_dir(), "zoo", f"flax-{flax.__version__}_jax-{jax.__version__}.json")


def candidate_records() -> list[str]:
    """The records a declared module is looked up in, in order (see the module's docstring)."""
    named = os.environ.get(config.ZOO_RECORD_ENV)
    if named:
        return [records.resolve(named, config.ZOO_RECORDS_DIR)]
    committed = records.in_release_order(config.ZOO_RECORDS_DIR)
    return [p for p in (written_record(),) if os.path.isfile(p)] + committed[-1:]


@functools.lru_cache(maxsize=None)
def _load(path: str, mtime: float) -> dict:
    return records.load(path)


def load(path: str) -> dict:
    return _load(path, os.path.getmtime(path))


@dataclasses.dataclass(frozen=True)
class Choice:
    """The record a declared module is compared with (``entry`` None: none fits; ``reason`` says why)."""

    path: str | None
    entry: dict | None
    reason: str = ""

    @property
    def label(self) -> str:
        return f"{os.path.basename(self.path)} ({records.label(load(self.path))})" if self.path else ""


def record_command(spec) -> str:
    return f"python -m conformance record --module {spec.source or 'PACKAGE.MODULE:FACTORY'}"


def choose(spec) -> Choice:
    """The first candidate record whose entry for ``spec.name`` has this declaration's fingerprint."""
    mine, described = declarations.fingerprint(spec), declarations.describe(spec)
    looked, others = candidate_records(), []
    for path in looked:
        if not os.path.isfile(path):
            others.append(f"{path} does not exist")
            continue
        rec = load(path).get("modules", {}).get(spec.name)
        if rec is None:
            continue
        if rec.get("format", 1) < FORMAT:
            others.append(f"{os.path.basename(path)} holds {spec.name!r} in the first record format (outputs only, "
                          "no fingerprint or variables), which cannot be compared")
        elif rec["fingerprint"] != mine:
            fields = declarations.differences(rec.get("declaration", {}), described)
            others.append(f"{os.path.basename(path)} holds {spec.name!r} from another declaration (fingerprint "
                          f"{rec['fingerprint']}, this declaration's {mine}; they differ in {', '.join(fields) or '?'})")
        else:
            return Choice(path, rec)
    where = ", ".join(looked) or "no record"
    why = "; ".join(others) if others else f"{spec.name} is in none of the zoo records looked in ({where})"
    if os.environ.get(config.ZOO_RECORD_ENV):  # the variable wins over the cache directory's record
        return Choice(None, None, f"{why}; never compared. ${config.ZOO_RECORD_ENV} names the record: run "
                                  f"`{record_command(spec)} --zoo-out {looked[0]}`, or unset it and run "
                                  f"`{record_command(spec)}`")
    return Choice(None, None, f"{why}; never compared. Run `{record_command(spec)}` with this flax and jax: the next "
                              f"run compares against it ({written_record()})")


def reference_is_committed(spec) -> bool:
    """Whether ``spec``'s chosen record is a committed one (only then do known deviations describe it)."""
    path = choose(spec).path
    return path is None or records.is_committed(path, config.ZOO_RECORDS_DIR)


# --- comparing -----------------------------------------------------------------------------------------------


def _rebuilt(installed, recorded: dict):
    """``installed`` (a pytree) with each array leaf replaced by the recorded one at its path.

    Raises AssertionError naming the paths when the trees differ (the
    installed init builds another variables tree than the record's).
    """
    import jax

    from conformance.helpers.pytest_helpers import tree_paths
    from conformance.modules import module_harness as zh
    from reference import _compat

    plain = _compat.unbox(installed)
    paths = tree_paths(plain)
    want = arrays(recorded)
    have = set(zh.array_leaves(plain))  # the leaves a record holds (not, say, an old flax's graphdef)
    assert have == set(want), (f"variables tree has leaves {sorted(have)}, but the record has {sorted(want)}: "
                               f"missing {sorted(set(want) - have)}, new {sorted(have - set(want))}")
    new = []
    for p, leaf in paths.items():
        if p not in want:
            new.append(leaf)
        elif _is_typed_key(leaf):
            new.append(jax.random.wrap_key_data(want[p].astype(np.uint32)))
        else:
            new.append(want[p].reshape(np.shape(leaf)))  # a scalar leaf is recorded with one axis
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(plain), new)


def recorded_inputs(spec, rec: dict):
    """The recorded call (in the structure of ``spec.calls[0]``) and stream keys."""
    import jax

    call_leaves, treedef = jax.tree_util.tree_flatten(spec.calls[0])
    stored = arrays(rec["call"])
    call = jax.tree_util.tree_unflatten(treedef, [stored[str(i)] for i in range(len(call_leaves))])
    keys = {s: a.astype(np.uint32) for s, a in arrays(rec["keys"]).items()}
    return call, keys


def _is_float(dtype) -> bool:
    """Float leaves (bfloat16 included, which NumPy does not count as inexact) are compared within a bound."""
    import jax.numpy as jnp

    return bool(jnp.issubdtype(dtype, jnp.inexact))


def _check_bound(name: str, bound) -> None:
    from conformance.modules import module_harness as zh

    for path, b in zh.array_leaves(bound).items():
        b = np.asarray(b, np.float64)
        assert not np.isnan(b).any() and (b >= 0).all(), (
            f"{name}/{path}: the running-error bound holds {'NaN' if np.isnan(b).any() else 'a negative value'}; "
            "a bound must be a non-negative number (conformance/numerics/running_error.py)")


def _same_structure(name: str, got: dict, want: dict, what: str) -> None:
    assert sorted(got) == sorted(want), f"{name} leaves {sorted(got)}, but the record has {sorted(want)} ({what})"
    for p, w in want.items():
        g = got[p]
        label = f"{name}/{p}" if p else name
        assert g.shape == w.shape, f"{label}.shape={g.shape}, but the record has {w.shape} ({what})"
        assert g.dtype == w.dtype, f"{label}.dtype={g.dtype}, but the record has {w.dtype} ({what})"


def _identical(got: dict, want: dict) -> bool:
    return all(np.array_equal(got[p].view(np.uint8), want[p].view(np.uint8)) for p in want)


def compare_outputs(spec, rec: dict, what: str) -> str:
    """Part (a): the installed bridge on the recorded variables, call and keys against the recorded outputs."""
    from conformance.helpers.pytest_helpers import assert_equal
    from conformance.modules import module_harness as zh

    call, keys = recorded_inputs(spec, rec)
    variables = _rebuilt(zh.init(spec, PARAMS_SEED, call), rec["variables"])
    y, updates = zh.jit_train(spec)(variables, call, keys)
    got = {"y": zh.array_leaves(y), "updates": zh.array_leaves(updates)}
    want = {"y": arrays(rec["outputs"]), "updates": arrays(rec["updates"])}
    for part in got:
        _same_structure(f"{spec.name}/{part}", got[part], want[part], what)
    if all(_identical(got[p], want[p]) for p in got):
        return "identical"
    _, (b_y, b_u) = zh.value_and_difference_bound(zh.train_fn(spec), variables, call, keys)
    bounds = {}
    for part, bound in (("y", b_y), ("updates", b_u)):
        _check_bound(f"{spec.name}/{part}", bound)
        bounds[part] = zh.array_leaves(bound)
    worst = bounds
    if _within(got, want, bounds):  # only the sharper bounds can still tell
        sharper = zh.sharper_difference_bounds(zh.train_fn(spec), variables, call, keys)
        if sharper is not None:
            (s_y, s_u), (p_y, p_u) = sharper
            worst, bounds = {}, {}
            for part, running, signed, probable in (("y", b_y, s_y, p_y), ("updates", b_u, s_u, p_u)):
                for name, bound in (("signed", signed), ("probabilistic", probable)):
                    _check_bound(f"{spec.name}/{part} ({name})", bound)
                r, sg, pr = (zh.array_leaves(b) for b in (running, signed, probable))
                worst[part] = {p: np.minimum(b, sg[p]) if p in sg else b for p, b in r.items()}
                bounds[part] = {p: np.minimum(b, pr[p]) if p in pr else b for p, b in worst[part].items()}
            what += (f"; bound: the first-order error with roundings as independent errors, lambda = "
                     f"{config.PROBABILISTIC_LAMBDA:g}: a correct evaluation lands outside with probability below "
                     f"1e-15 per element (docs/error-model.md, section 11)")
    verdicts = set()
    for part in ("y", "updates"):
        b = bounds[part]
        for p, w in want[part].items():
            label = f"{spec.name}/{part}" + (f"/{p}" if p else "")
            if _is_float(w.dtype):
                verdicts.add(zh.within_model(label, got[part][p], w, b[p], what + _inside_the_worst_case(
                    got[part][p], w, b[p], worst[part][p])))
            else:
                assert_equal(label, got[part][p], w, what)
    return "drift" if "drift" in verdicts else "identical"


def _inside_the_worst_case(got, want, bound, worst) -> str:
    """Where a leaf is beyond the probabilistic bound but within the worst case over rounding signs, say so."""
    diff = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
    if np.all(diff <= bound) or not np.all(diff <= worst):
        return ""
    return ("; every element is within the worst case over rounding signs, which the same computation reaches only "
            "with every rounding at its extreme and signed to hurt")


def _within(got: dict, want: dict, bounds: dict) -> bool:
    """Every float leaf within its bound (non-float leaves are compared bitwise later)."""
    for part, leaves in want.items():
        for p, w in leaves.items():
            if _is_float(w.dtype):
                diff = np.abs(np.asarray(got[part][p], np.float64) - np.asarray(w, np.float64))
                if not np.all(diff <= np.asarray(bounds[part][p], np.float64)):
                    return False
    return True


def compare_init(spec, rec: dict, what: str) -> str:
    """Part (b): the installed ``init`` at PARAMS_SEED against the recorded variables."""
    from conformance.helpers.pytest_helpers import assert_equal
    from conformance.modules import module_harness as zh

    call, _ = recorded_inputs(spec, rec)
    installed = zh.init(spec, PARAMS_SEED, call)
    got, want = zh.array_leaves(installed), arrays(rec["variables"])
    _same_structure(f"{spec.name}/variables", got, want, what)
    if _identical(got, want):
        return "identical"
    _, bound = zh.value_and_difference_bound(zh.jit_init(spec), np.int32(PARAMS_SEED), call)
    _check_bound(f"{spec.name}/variables", bound)
    b = zh.array_leaves(bound)
    verdicts = set()
    for p, w in want.items():
        label = f"{spec.name}/variables/{p}"
        if _is_float(w.dtype):
            verdicts.add(zh.within_model(label, got[p], w, b[p], what))
        else:
            assert_equal(label, got[p], w, what)
    return "drift" if "drift" in verdicts else "identical"


def compare(spec, choice: Choice) -> dict:
    """Both parts against ``choice``; fails naming which part changed, and says what the other part found."""
    __tracebackhide__ = True
    what = "recorded"
    parts = {"outputs from the recorded variables, call and keys": compare_outputs,
             "the installed init's variables against the recorded ones": compare_init}
    verdicts, failed = {}, []
    for part, fn in parts.items():
        try:
            verdicts[part] = fn(spec, choice.entry, what)
        except AssertionError as exc:
            verdicts[part] = "CHANGED"
            failed.append(f"{part}: {exc}")
        except Exception as exc:  # the layer raises: the other part is still judged
            verdicts[part] = "RAISES"
            notes = " ".join(getattr(exc, "__notes__", []))
            failed.append(f"{part}: raises {type(exc).__name__}: {exc}" + (f" ({notes})" if notes else ""))
    if failed:
        other = "; ".join(f"{p}: {v}" for p, v in verdicts.items() if v not in ("CHANGED", "RAISES"))
        raise AssertionError(f"{spec.name} against {choice.label}: " + "; ".join(failed)
                             + (f" (the other part: {other})" if other else ""))
    return verdicts
