"""A team's own layers: declarations, the --module option, and the gate forwarding them to each side.

tests/user_project is a small package (a residual MLP block with dropout and
layer norm) with its declaration, as a team would write it.
"""

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from conformance import cli
from conformance.modules import declare, zoo
from conformance.gate import envs
from conformance.gate import command as gate
from conformance.selfcheck import forked

HERE = os.path.dirname(os.path.abspath(__file__))
USER_PROJECT = os.path.join(HERE, "user_project")
FACTORY = "resmlp_layers.conformance_specs:specs"


@pytest.fixture
def on_path(monkeypatch):
    monkeypatch.syspath_prepend(USER_PROJECT)
    declare._LOADED.clear()
    yield
    declare._LOADED.clear()


def test_factory_loads_the_team_declaration(on_path):
    (spec,) = declare.load_factory(FACTORY)
    assert spec.name == "user_resmlp" and spec.rng_streams == ("dropout",) and spec.source == FACTORY


@pytest.mark.parametrize("bad", ["resmlp_layers", "resmlp_layers:", ":specs", "a b:c", "pkg.mod:fn()"])
def test_factory_path_must_be_module_colon_function(bad):
    with pytest.raises(ValueError, match="--module must name a factory as 'package.module:function'"):
        declare.check_factory_path(bad)


def test_unimportable_factory_names_the_option(on_path):
    with pytest.raises(ValueError, match=r"--module no_such_pkg\.x:specs: cannot import 'no_such_pkg\.x'"):
        declare.load_factory("no_such_pkg.x:specs")
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        declare.load_factory("resmlp_layers.conformance_specs:nope")


def test_spec_checks_name_its_field():
    from conformance.modules.zoo import DropoutBlock

    x = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="inputs must be a non-empty tuple of example calls"):
        declare.ModuleSpec(name="m", nnx_class=DropoutBlock)
    with pytest.raises(TypeError, match=r"inputs\[0\]\.args\[0\]\[0\] must be a NumPy array"):
        declare.ModuleSpec(name="m", nnx_class=DropoutBlock, inputs=([1.0, 2.0],))
    with pytest.raises(TypeError, match="rng_streams must be a tuple of names"):
        declare.ModuleSpec(name="m", nnx_class=DropoutBlock, inputs=(x,), rng_streams="dropout")
    with pytest.raises(ValueError, match="mutable must not name 'params'"):
        declare.ModuleSpec(name="m", nnx_class=DropoutBlock, inputs=(x,), mutable=("params",))


def test_names_may_not_shadow_the_zoo(on_path, monkeypatch):
    monkeypatch.setattr(declare, "load_factory", lambda f: [declare.ModuleSpec(
        name="zoo_dropout", nnx_class=object, inputs=(np.ones((2, 2), np.float32),))])
    with pytest.raises(ValueError, match=r"\['zoo_dropout'\] are the zoo's"):
        zoo.zoo_and_user_specs(["x.y:z"])


def test_entry_points_declare_modules_too(monkeypatch):
    monkeypatch.setattr(declare, "entry_point_factories", lambda: [FACTORY])
    monkeypatch.delenv(declare.MODULE_ENV, raising=False)
    assert declare.declared_factories(["a.b:c"]) == ["a.b:c", FACTORY]


def _gate_args(**kw):
    argv = ["--baseline", "flax==0.12.8", "--candidate", "flax==0.12.7", "--exclude-newer", "none"]
    for m in kw.get("module", []):
        argv += ["--module", m]
    for d in kw.get("module_path", []):
        argv += ["--module-path", d]
    return cli.parse_gate(argv + kw.get("extra", []))


def test_gate_forwards_the_declaration_to_every_side():
    sides = gate.make_sides(_gate_args(module=[FACTORY], module_path=[USER_PROJECT], extra=["--pytest-args", "-k zoo"]))
    assert [s.role for s in sides] == ["baseline", "candidate"]
    for s in sides:
        assert s.pytest_args == ["-k", "zoo", "--module", FACTORY], s.pytest_args
        assert s.pythonpath == [USER_PROJECT]


def test_gate_runs_each_side_with_the_module_path(tmp_path, monkeypatch):
    """run_suite puts --module-path on the side's PYTHONPATH and passes --module to its pytest."""
    (side,) = gate.make_sides(_gate_args(module=[FACTORY], module_path=[USER_PROJECT]))[:1]
    seen = {}

    def fake_call(cmd, timeout, cwd, env, stdout, stderr):
        seen.update(cmd=cmd, pythonpath=env.get("PYTHONPATH", ""))
        return 0

    monkeypatch.setattr(envs, "call", fake_call)
    with open(tmp_path / "log", "w") as log:
        envs.run_suite(side, sys.executable, str(tmp_path), "gate", None, log)
    assert seen["cmd"][-2:] == ["--module", FACTORY]
    assert seen["pythonpath"].split(os.pathsep)[0] == USER_PROJECT


def test_the_baselines_golden_records_hold_the_declared_modules(tmp_path):
    """What the gate's baseline records (python -m conformance record in its environment) names the team's module."""
    from conformance.core import config

    (side,) = gate.make_sides(_gate_args(module=[FACTORY], module_path=[USER_PROJECT]))[:1]
    with open(tmp_path / "log", "w") as log:
        got = envs.record_golden(side, sys.executable, str(tmp_path / "golden"), [FACTORY], 600, log)
    assert got == {config.GOLDEN_RECORD_ENV: str(tmp_path / "golden" / "contract.json"),
                   config.ZOO_RECORD_ENV: str(tmp_path / "golden" / "zoo.json"),
                   config.CHECKPOINT_DIR_ENV: str(tmp_path / "golden" / "checkpoints")}
    zoo = json.loads((tmp_path / "golden" / "zoo.json").read_text())
    assert sorted(zoo["modules"]) == ["user_resmlp"] and zoo["modules"]["user_resmlp"]["outputs"][""]["values"]
    saved = json.loads((tmp_path / "golden" / "checkpoints" / "manifest.json").read_text())
    assert "user_resmlp" in saved  # the team's module is checkpointed for the candidates too
    assert json.loads((tmp_path / "golden" / "contract.json").read_text())["cases"]


def test_gate_rejects_bad_declarations():
    with pytest.raises(cli.UsageError, match="--module must name a factory"):
        _gate_args(module=["not a factory"])
    with pytest.raises(cli.UsageError, match="--module-path must be an existing directory"):
        _gate_args(module=[FACTORY], module_path=["/no/such/dir"])


def _suite(tmp_path, *args, env=None):
    xml = tmp_path / "out.xml"
    cmd = ["--pyargs", "conformance", "-q", "-p", "no:cacheprovider", "--hypothesis-profile=selfcheck",
           f"--junitxml={xml}", *args]
    # Forked from the self-check's preloaded server, which puts USER_PROJECT on sys.path as start-up would.
    proc = forked.run_pytest(cmd, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": USER_PROJECT, **(env or {})})
    return proc, xml


def test_bad_module_option_is_a_usage_error(tmp_path):
    proc, _ = _suite(tmp_path, "--module", "nonsense", "-k", "test_module_deterministic")
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "--module must name a factory" in proc.stderr + proc.stdout


def test_the_team_module_runs_through_every_module_property(tmp_path):
    proc, xml = _suite(tmp_path, "--module", FACTORY, "-k", "user_resmlp")
    assert proc.returncode == 0, proc.stdout[-3000:]
    names = {c.get("name") for c in ET.parse(xml).getroot().iter("testcase")}
    props = {n.split("[")[0] for n in names}
    wanted = {"test_module_deterministic", "test_module_jit_matches_eager", "test_module_vmap_matches_batch",
              "test_module_grads", "test_module_apply_uses_given_params", "test_module_apply_is_pure",
              "test_module_works_as_a_jit_static_argument", "test_module_variables_tree_structure",
              "test_module_stream_keys_drive_randomness", "test_module_distinct_seeds_distinct_params",
              "test_module_matches_native", "test_module_created_collections_collected"}
    assert wanted <= props, f"missing {sorted(wanted - props)}"
    assert all(n.endswith("[user_resmlp]") for n in names), sorted(names)


def test_the_team_modules_golden_record_passes_then_catches_a_change(tmp_path):
    """record --module writes the team module's outputs; the golden property passes on them, fails on a change.

    The committed zoo records hold no team module, so in the self-check this
    property skips: here it is shown to pass and to fail (``--fault
    jit_only_scaled`` scales compiled outputs by 1 + 2**-10, beyond the
    running-error bound of the module at the recorded variables).
    """
    zoo_rec, contract_rec = tmp_path / "zoo.json", tmp_path / "contract.json"
    env = {**os.environ, "PYTHONPATH": USER_PROJECT}
    proc = subprocess.run([sys.executable, "-m", "conformance", "record", "--module", FACTORY, "--zoo-out", str(zoo_rec),
                           "--out", str(contract_rec)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = {"CONFORMANCE_ZOO_RECORD": str(zoo_rec)}
    proc, xml = _suite(tmp_path, "--module", FACTORY, "-k", "test_zoo_golden_declared_modules", env=rec)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [c.find("skipped") for c in ET.parse(xml).getroot().iter("testcase")] == [None]
    proc, _ = _suite(tmp_path, "--module", FACTORY, "-k", "test_zoo_golden_declared_modules", "-p", "conformance.faults",
                     "--fault", "jit_only_scaled", env=rec)
    assert proc.returncode == 1 and "user_resmlp/y" in proc.stdout and "changed beyond the error model" in proc.stdout, \
        proc.stdout[-3000:]


# --- a factory in the directory pytest runs in, and factories that cannot be imported ---------------------------

LOCAL_FACTORY = (
    "import numpy as np\n"
    "from conformance.declare import ModuleSpec\n"
    "from conformance.modules.zoo import DropoutBlock\n"
    "def specs():\n"
    "    return ModuleSpec(name='local_dropout', nnx_class=DropoutBlock, kwargs=dict(width=3, features=2, rate=0.5),\n"
    "                      inputs=(np.ones((2, 3), np.float32),), rng_streams=('dropout',),\n"
    "                      train_kwargs={'deterministic': False}, eval_kwargs={'deterministic': True})\n")


def _plain_pytest(tmp_path, *args):
    """``pytest ...`` as a console script runs it: the working directory is not on sys.path, PYTHONPATH unset."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import sys, pytest; sys.exit(pytest.main(sys.argv[1:]))"  # what the `pytest` script does
    return subprocess.run([sys.executable, "-c", code, "--pyargs", "conformance", "-q", "-p", "no:cacheprovider",
                           "--hypothesis-profile=selfcheck", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=env)


def test_a_factory_in_the_working_directory_imports_without_pythonpath(tmp_path):
    (tmp_path / "local_specs.py").write_text(LOCAL_FACTORY)
    declare._LOADED.clear()
    for workers in ([], ["-n", "2"]):  # the controller and xdist workers alike
        proc = _plain_pytest(tmp_path, "--module", "local_specs:specs", "-k", "deterministic and local_dropout",
                             *workers)
        assert proc.returncode == 0 and "passed" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_the_lookup_leaves_sys_path_as_it_found_it(tmp_path, monkeypatch):
    (tmp_path / "local_specs_path.py").write_text(LOCAL_FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = list(sys.path)
    (spec,) = declare.load_factory("local_specs_path:specs")
    assert spec.name == "local_dropout" and sys.path == before


BROKEN = {
    "import_error": ("import no_such_dependency_xyz\ndef specs(): pass\n", "broken_specs:specs",
                     "cannot import 'broken_specs' (ModuleNotFoundError: No module named 'no_such_dependency_xyz')"),
    "not_found": ("", "no_such_specs_module:specs", "cannot import 'no_such_specs_module' (ModuleNotFoundError: No module named 'no_such_specs_module')"),
    "syntax_error": ("def specs(:\n", "broken_specs:specs", "importing 'broken_specs' raised SyntaxError: "),
    "raises_at_import": ("raise RuntimeError('config file missing')\n", "broken_specs:specs",
                         "importing 'broken_specs' raised RuntimeError: config file missing"),
    "missing_attribute": ("def specs(): pass\n", "broken_specs:spec", "broken_specs has no attribute 'spec'"),
    "factory_raises": ("def specs():\n    raise KeyError('width')\n", "broken_specs:specs",
                       "calling specs() raised KeyError: 'width'"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_factory_that_cannot_be_loaded_is_a_one_line_usage_error(tmp_path, case):
    source, factory, expected = BROKEN[case]
    (tmp_path / "broken_specs.py").write_text(source)
    proc = _plain_pytest(tmp_path, "--module", factory, "-k", "test_module_deterministic")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and f"--module {factory}: " in errors[0] and expected in errors[0], out[-3000:]
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]


@pytest.mark.parametrize("case", ["not_found", "syntax_error", "missing_attribute"])
def test_under_xdist_what_the_files_tell_is_a_usage_error_before_the_workers_start(tmp_path, case):
    """The controller never imports jax, so it reads the factory's files: found, compiles, defines the name."""
    source, factory, expected = BROKEN[case]
    (tmp_path / "broken_specs.py").write_text(source)
    proc = _plain_pytest(tmp_path, "--module", factory, "-k", "test_module_deterministic", "-n", "2")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4 and "bringing up nodes" not in out, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and expected in errors[0], out[-3000:]


def test_under_xdist_an_import_that_raises_is_one_line_per_collection_error(tmp_path):
    """Only running the module tells: each worker reports the one-line message as a collection error, no traceback."""
    source, factory, expected = BROKEN["raises_at_import"]
    (tmp_path / "broken_specs.py").write_text(source)
    proc = _plain_pytest(tmp_path, "--module", factory, "-k", "test_module_deterministic", "-n", "2")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"usage error: --module {factory}: {expected}" in out, out[-3000:]
    assert "Traceback" not in out and "raise RuntimeError" not in out, out[-3000:]
    assert not re.search(r"\d+ (passed|failed|xfailed|skipped)", out), out[-3000:]


def test_under_xdist_a_failing_factory_runs_nothing_also_where_no_collected_file_declares_modules(tmp_path):
    """Only the contract's files collected: no test takes a declared module, so the error is reported when the
    declared modules are kept, and none of the contract's tests runs (they did, and the run passed)."""
    source, factory, expected = BROKEN["import_error"]
    (tmp_path / "broken_specs.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = "import sys, pytest; sys.exit(pytest.main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "--pyargs", "conformance.properties.contract.test_shape", "-q",
                           "-p", "no:cacheprovider", "--hypothesis-profile=selfcheck", "--module", factory,
                           "--only-declared-modules", "-n", "2"], cwd=tmp_path, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"usage error: --module {factory}: {expected}" in out, out[-3000:]
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    assert not re.search(r"\d+ (passed|failed|xfailed|skipped)", out), out[-3000:]


GROUPNORM_FACTORY = '''
import numpy as np
from flax import nnx
from conformance.declare import ModuleSpec


def specs():
    x = np.random.default_rng(0).normal(size=(2, 4, 8)).astype(np.float32)
    # batch_axis left at 0: nnx.GroupNorm takes a row alone (4, 8) as a batch of 4, so its rows are not independent
    return (ModuleSpec(name="team_groupnorm", nnx_class=nnx.GroupNorm, kwargs=dict(num_features=8, num_groups=2),
                       inputs=(x,)),)
'''


def _vmap_outcome(tmp_path, module, name, *extra):
    proc, xml = _suite(tmp_path, "--module", module, "-k", f"test_module_vmap_matches_batch and {name}", *extra)
    cases = [c for c in ET.parse(xml).getroot().iter("testcase") if c.get("name").endswith(f"[{name}]")]
    assert len(cases) == 1, (proc.stdout[-2000:], proc.stderr[-2000:])
    for tag in ("failure", "error", "skipped"):
        node = cases[0].find(tag)
        if node is not None:
            return tag, node.get("message") or ""
    return "passed", ""


def test_rows_the_layer_itself_does_not_treat_alone_skip_the_row_vmap_naming_why(tmp_path):
    """The vmap property's premise, read from the class natively: GroupNorm maps its rows otherwise than it batches."""
    (tmp_path / "gn_layers.py").write_text(GROUPNORM_FACTORY)
    outcome, message = _vmap_outcome(tmp_path, "gn_layers:specs", "team_groupnorm")
    assert outcome == "skipped", (outcome, message)
    assert "premise" in message and "not independent to it" in message and "batch_axis=None" in message, message


def test_a_bridge_that_breaks_vmap_still_fails_where_the_layer_maps_its_rows_alone(tmp_path):
    """Asking the class only on failure must not excuse the bridge: rows independent natively, vmap negated, failed."""
    outcome, message = _vmap_outcome(tmp_path, FACTORY, "user_resmlp", "-p", "conformance.faults",
                                     "--fault", "vmap_only_negated")
    assert outcome == "failure", (outcome, message)


def test_a_required_rngs_argument_gets_none_outside_training_and_a_default_stands():
    from flax import nnx

    from conformance.modules.declare import rngs_outside_training

    class Required(nnx.Module):
        def __call__(self, x, rngs: nnx.Rngs):
            return x

    class Optional(nnx.Module):
        def __call__(self, x, rngs: nnx.Rngs | None = None):
            return x

    class Anything(nnx.Module):
        def __call__(self, x, **kwargs):
            return x

    assert rngs_outside_training(Required().__call__, "rngs") == {"rngs": None}
    assert rngs_outside_training(Optional().__call__, "rngs") == {}
    assert rngs_outside_training(Anything().__call__, "rngs") == {}
    assert rngs_outside_training(Required().__call__, "key") == {}


BF16_FACTORY = '''
import jax.numpy as jnp
import numpy as np
from flax import nnx
from conformance.declare import ModuleSpec


class MixedPrecision(nnx.Module):
    """float32 params, bfloat16 compute: jit fuses what eager rounds op by op."""
    def __init__(self, din, dout, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(din, 32, dtype=jnp.bfloat16, param_dtype=jnp.float32, rngs=rngs)
        self.norm = nnx.RMSNorm(32, dtype=jnp.bfloat16, rngs=rngs)
        self.l2 = nnx.Linear(32, dout, dtype=jnp.bfloat16, rngs=rngs)

    def __call__(self, x):
        return self.l2(self.norm(nnx.silu(self.l1(x))))


def specs():
    x = np.random.default_rng(2).normal(size=(3, 8)).astype(np.float32)
    return (ModuleSpec(name="team_mixed_precision", nnx_class=MixedPrecision, args=(8, 4), inputs=(x,)),)
'''


def test_bfloat16_outputs_are_judged_by_the_error_model_and_survive_a_checkpoint(tmp_path):
    """bfloat16 is a float (np.inexact does not hold it): jit against eager drifts within the model, never bitwise;
    its outputs saved beside a checkpoint come back as bfloat16, not void16."""
    (tmp_path / "bf16_layers.py").write_text(BF16_FACTORY)
    proc, xml = _suite(tmp_path, "--module", "bf16_layers:specs", "-k",
                       "(test_module_jit_matches_eager or test_checkpoint_restores_module) and team_mixed_precision")
    names = {c.get("name") for c in ET.parse(xml).getroot().iter("testcase")}
    assert len(names) == 2 and proc.returncode == 0, (sorted(names), proc.stdout[-3000:])


def test_checkpoint_outputs_keep_dtypes_numpy_lacks():
    import jax.numpy as jnp

    from conformance.golden import checkpoints

    y = {"": np.array([1.5, -2.25], dtype=jnp.bfloat16), "aux": np.arange(3, dtype=np.float32)}
    encoded = checkpoints._encoded(y)
    back = checkpoints._decoded(encoded)
    assert back[""].dtype == jnp.bfloat16 and np.array_equal(back[""].astype(np.float32), [1.5, -2.25])
    assert back["aux"].dtype == np.float32 and sorted(back) == ["", "aux"]


SOWING_FACTORY = '''
import numpy as np
from flax import nnx
from conformance.declare import ModuleSpec


class SowingMLP(nnx.Module):
    def __init__(self, din, dh, dout, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(din, dh, rngs=rngs)
        self.l2 = nnx.Linear(dh, dout, rngs=rngs)

    def __call__(self, x):
        h = nnx.gelu(self.l1(x))
        self.sow(nnx.Intermediate, "hidden", h)
        return self.l2(h)


def specs():
    x = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)
    return (ModuleSpec(name="team_sowing", nnx_class=SowingMLP, args=(6, 12, 4), inputs=(x,),
                       created=("intermediates",)),)
'''


def test_the_nested_reordering_leaves_what_a_call_sows_on_the_module(tmp_path):
    """A benign perturbation that re-runs the bridged call as a pure function must not lose what the call creates:
    a module that sows is params-only before its call, and its intermediates must still reach training-mode apply."""
    (tmp_path / "sowing_layers.py").write_text(SOWING_FACTORY)
    proc, xml = _suite(tmp_path, "--module", "sowing_layers:specs", "-p", "conformance.benign", "--perturb",
                       "nested_products_reordered", "-k",
                       "(test_module_jit_matches_eager or test_module_created_collections_collected) and team_sowing")
    names = {c.get("name") for c in ET.parse(xml).getroot().iter("testcase")}
    assert len(names) == 2 and proc.returncode == 0, (sorted(names), proc.stdout[-3000:])


def _factory_module(tmp_path, name: str, source: str):
    """A factory's source written to ``tmp_path`` and imported in this process (its specs, its classes)."""
    import importlib.util

    path = tmp_path / f"{name}.py"
    path.write_text(source)
    loader = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    return module


def test_a_bfloat16_layers_golden_record_fails_its_outputs_scaled_by_one_and_a_half(tmp_path):
    """No sound bound sees 1% of a bfloat16 output (docs/error-model.md, "Narrower than float32"); the float32 shadow
    and the float32 accumulation bring the mixed-precision layer's resolution from doubled outputs accepted to 1.5x."""
    import golden_helpers

    from conformance.golden import records, zoo, zoo_modules

    (spec,) = _factory_module(tmp_path, "bf16_golden_layers", BF16_FACTORY).specs()
    path = zoo.record(str(tmp_path / "bf16.json"), (spec,))
    entry = records.load(path)["modules"][spec.name]
    assert set(zoo_modules.compare(spec, zoo_modules.Choice(path, entry)).values()) <= {"identical", "drift"}
    with pytest.raises(AssertionError, match=golden_helpers.CHANGED):
        zoo_modules.compare(spec, zoo_modules.Choice(path, golden_helpers.scaled(entry, "outputs", "", 1.5)))


KEY_ARGUMENT_FACTORY = '''
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from conformance.declare import Call, ModuleSpec


@dataclass
class Config:  # not frozen: unhashable, as bonsai's ModelConfig
    dim: int
    drop_path_rate: float


class DropPathBlock(nnx.Module):
    """bonsai's ConvNeXt style: the drop-path key is a raw key array passed as `rngs`, a name Linen keeps."""
    def __init__(self, cfg: Config, *, rngs: nnx.Rngs):
        self.dense = nnx.Linear(cfg.dim, cfg.dim, rngs=rngs)
        self.rate = cfg.drop_path_rate

    def __call__(self, x: jax.Array, *, rngs: jax.Array, train: bool):
        y = self.dense(x)
        if train:
            keep = jax.random.bernoulli(rngs, 1.0 - self.rate, (x.shape[0], 1))
            y = y * keep / (1.0 - self.rate)
        return x + y


def specs():
    x = np.random.default_rng(4).normal(size=(4, 6)).astype(np.float32)
    key = np.asarray(jax.random.key_data(jax.random.PRNGKey(7)))
    return (ModuleSpec(name="team_key_argument", nnx_class=DropPathBlock, args=(Config(6, 0.25),),
                       inputs=(Call(args=(x,), kwargs={"rngs": key}),), batch_axis=None,
                       init_kwargs={"train": False}, train_kwargs={"train": True}, eval_kwargs={"train": False}),)
'''


def test_a_call_keyword_linen_keeps_for_itself_reaches_the_layer_and_an_unhashable_config_skips_the_hash(tmp_path):
    """A layer taking its key as `rngs` (Linen's own keyword at init and apply) runs every module property; the
    static-argument property skips naming the unhashable constructor argument; no hint asks for call_rngs."""
    from conformance.modules import hints

    (tmp_path / "key_layers.py").write_text(KEY_ARGUMENT_FACTORY)
    proc, xml = _suite(tmp_path, "--module", "key_layers:specs", "--only-declared-modules")
    cases = list(ET.parse(xml).getroot().iter("testcase"))
    failed = [c.get("name") for c in cases if c.find("failure") is not None or c.find("error") is not None]
    assert cases and not failed and proc.returncode == 0, (failed, proc.stdout[-3000:])
    static = [c for c in cases if c.get("name").startswith("test_module_works_as_a_jit_static_argument")]
    assert static and "args[0] (Config) cannot be hashed" in static[0].find("skipped").get("message")
    module = _factory_module(tmp_path, "key_layers_hints", KEY_ARGUMENT_FACTORY)
    assert not any("call_rngs" in h.text for h in hints.hints(module.specs()[0], "init"))


ALWAYS_DRAWING_FACTORY = '''
import numpy as np
from flax import nnx
from conformance.declare import ModuleSpec


class Encoder(nnx.Module):
    """bonsai's ViT style: Dropout built with deterministic=False, so it draws in every mode, and an nnx.Rngs
    required at every call (keyword-only, no default)."""
    def __init__(self, dim, rate, *, rngs: nnx.Rngs):
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.dense = nnx.Linear(dim, dim, rngs=rngs)
        self.dropout = nnx.Dropout(rate, deterministic=False)

    def __call__(self, x, *, rngs: nnx.Rngs | None):
        return x + self.dropout(self.dense(self.norm(x)), rngs=rngs)


def specs():
    x = np.random.default_rng(5).normal(size=(2, 5, 8)).astype(np.float32)
    common = dict(nnx_class=Encoder, inputs=(x,), batch_axis=None, call_rngs="rngs", rng_streams=("dropout",))
    return (ModuleSpec(name="team_always_drawing", args=(8, 0.25), **common),
            ModuleSpec(name="team_rate_zero", args=(8, 0.0), **common))  # bonsai's published rate: nothing drawn
'''


def test_a_layer_drawing_in_every_mode_gets_its_rngs_everywhere_and_a_rate_of_zero_skips_the_key_property(tmp_path):
    """Both declarations run every module property without a failure. The one drawing in every mode gets its
    nnx.Rngs at init and in evaluation too, and the properties resting on a deterministic evaluation skip saying so;
    at a dropout rate of 0 the stream-key property skips: the class itself draws nothing."""
    (tmp_path / "drawing_layers.py").write_text(ALWAYS_DRAWING_FACTORY)
    proc, xml = _suite(tmp_path, "--module", "drawing_layers:specs", "--only-declared-modules")
    cases = {c.get("name"): c for c in ET.parse(xml).getroot().iter("testcase")}
    failed = [n for n, c in cases.items() if c.find("failure") is not None or c.find("error") is not None]
    assert cases and not failed and proc.returncode == 0, (failed, proc.stdout[-3000:])

    def skipped(name):
        node = cases[name].find("skipped")
        return "" if node is None else node.get("message")

    assert "samples in evaluation mode natively" in skipped("test_module_vmap_matches_batch[team_always_drawing]")
    assert skipped("test_module_stream_keys_drive_randomness[team_always_drawing]") == ""
    assert "draws nothing from the declared streams" in skipped("test_module_stream_keys_drive_randomness[team_rate_zero]")


def test_under_xdist_a_factory_missing_a_dependency_is_a_usage_error_with_only_declared_modules_too(tmp_path):
    """The factory's file is there, its import fails on the workers (a dependency missing, as bonsai's whisper needs
    jaxtyping): one line per collection error, no INTERNALERROR, also when only the declared modules are kept; and,
    as in a serial run, no test runs."""
    source, factory, expected = BROKEN["import_error"]
    (tmp_path / "broken_specs.py").write_text(source)
    proc = _plain_pytest(tmp_path, "--module", factory, "--only-declared-modules", "-n", "2")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"usage error: --module {factory}: {expected}" in out, out[-3000:]
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    assert not re.search(r"\d+ (passed|failed|xfailed|skipped)", out), out[-3000:]
