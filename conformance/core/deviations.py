"""Known deviations: parse conformance/known_deviations.txt and match it to tests."""

from __future__ import annotations

import dataclasses
import os
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

from conformance.core import config

PATH = config.KNOWN_DEVIATIONS_PATH


@dataclasses.dataclass(frozen=True)
class Deviation:
    test: str
    requirements: tuple[str, ...]
    reason: str
    line: int

    def applies(self, versions: dict[str, str]) -> bool:
        for text in self.requirements:
            req = Requirement(text)
            have = versions.get(req.name)
            if have is None or not req.specifier.contains(Version(have), prereleases=True):
                return False
        return True


def load(path: str = PATH) -> list[Deviation]:
    out = []
    with open(path) as fh:
        for n, raw in enumerate(fh, 1):
            line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split("|", 2)]
            if len(parts) != 3 or not all(parts):
                raise ValueError(f"{path}:{n}: expected 'property | requirements | why', got {raw.strip()!r}")
            for text in parts[1].split():
                try:
                    Requirement(text)
                except InvalidRequirement as exc:
                    raise ValueError(f"{path}:{n}: requirements: {text!r} is not a pip requirement such as "
                                     f"flax>=0.12,<0.13 (no spaces inside one): {exc}") from None
            out.append(Deviation(parts[0], tuple(parts[1].split()), parts[2], n))
    return out


def property_of(test_name: str) -> str:
    """``test_x[zoo_dropout-cpu:0]`` -> ``test_x[zoo_dropout]``: device parameters dropped (as the gate does)."""
    import re

    m = re.match(r"^(?P<base>[^\[]+)\[(?P<param>.*)\]$", test_name)
    if not m:
        return test_name
    kept = [p for p in m.group("param").split("-") if not re.match(r"^(cpu|gpu|tpu|cuda|rocm)(:\d+)?$", p, re.I)]
    return m.group("base") + (f"[{'-'.join(kept)}]" if kept else "")


def installed_versions(names=("flax", "jax", "jaxlib", "numpy", "optax")) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def suite_test_names() -> set[str]:
    """Every property name the suite defines (read from its modules' source)."""
    import re

    names = set()
    for dirpath, _, fnames in os.walk(config.PROPERTIES_DIR):
        for fname in fnames:
            if fname.startswith("test_") and fname.endswith(".py"):
                with open(os.path.join(dirpath, fname)) as fh:
                    names.update(re.findall(r"^def (test_\w+)", fh.read(), flags=re.M))
    return names
