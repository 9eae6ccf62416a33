"""The inventory of the bridge's public surface (conformance/core/surface.py) against the installed flax."""

from __future__ import annotations

import pytest

from conformance.core import surface as inventory
from conformance.core.deviations import suite_test_names


def installed_flax() -> str:
    import flax

    return flax.__version__


def test_the_installed_release_has_the_recorded_surface():
    from conformance.helpers import surface

    version = installed_flax()
    if version != inventory.LATEST:
        pytest.skip(f"the inventory's newest record is flax {inventory.LATEST}; installed: {version}")
    got, want = surface.installed(), inventory.at(version)
    want["exports"] = [n for n in want["exports"] if n != "initializers"]  # a module: the probe lists names only
    assert got == want, f"installed flax {version}'s surface {got}, but the inventory records {want}"


def test_every_public_name_is_inventoried():
    """Each public name of flax.nnx.bridge is covered in COVERED or placed in OTHER_DIRECTION: none is missing."""
    from flax.nnx import bridge

    public = {n for n in dir(bridge) if not n.startswith("_")}
    modules = {"interop", "module", "variables", "wrappers"}  # the bridge's own submodules
    missing = public - modules - set(inventory.COVERED) - set(inventory.OTHER_DIRECTION)
    assert not missing, f"public names of flax.nnx.bridge missing from conformance/core/surface.py: {sorted(missing)}"


def test_every_parameter_of_the_latest_release_is_inventoried():
    latest = inventory.at(inventory.LATEST)
    for record in ("to_linen", "ToLinen", "ToLinen.__call__", "to_linen_class"):
        for name in latest[record]:
            if name in ("*args",) or (record == "ToLinen.__call__" and name == "**kwargs"):
                continue  # passed through to the NNX module (the contract's properties)
            if record == "to_linen" and name == "nnx_class":
                continue
            assert f"{record}.{name}" in inventory.COVERED, f"{record}.{name} is not in the inventory"


def test_named_properties_exist():
    names = suite_test_names()
    for entry, (_, props) in inventory.COVERED.items():
        for p in props:
            assert p == "every contract property" or p in names, f"{entry}: {p} is no property of the suite"


def test_at_rejects_releases_outside_the_history():
    with pytest.raises(ValueError, match="between 0.9.0 and"):
        inventory.at("0.8.0")
    with pytest.raises(ValueError, match="must be a release"):
        inventory.at("latest")
    assert inventory.at("0.11.1")["ToLinen"] == ["nnx_class", "args", "kwargs", "skip_rng", "abstract_init", "metadata_fn"]
    assert "to_linen_class" not in inventory.at("0.11.2")


def test_history_matches_the_release_tags():
    """The per-release table agrees with flax's own source at each tag (where a flax checkout is at hand)."""
    import json
    import os
    import subprocess
    import sys

    git_dir = os.environ.get("FLAX_GIT_DIR", "/work/.mirror/google+flax/repo")
    if not os.path.isdir(git_dir):
        pytest.skip("no flax git checkout (FLAX_GIT_DIR) to read the release tags from")
    tool = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "bridge_surface_history.py")
    found = json.loads(subprocess.run([sys.executable, tool, git_dir], capture_output=True, text=True, check=True).stdout)
    for tag, record in found.items():
        want = inventory.at(tag.lstrip("v"))
        for key, value in record.items():
            if key == "exports":
                assert sorted(value) == sorted(want["exports"]), f"{tag}: exports {sorted(value)} != {want['exports']}"
            else:
                assert value == want.get(key), f"{tag}: {key} {value} != inventory {want.get(key)}"
