"""Known deviations: parse conformance/known_deviations.txt and match it to tests."""

from __future__ import annotations

import dataclasses
import os
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

PATH = os.path.join(os.path.dirname(__file__), "known_deviations.txt")


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

    here = os.path.dirname(__file__)
    names = set()
    for fname in os.listdir(here):
        if fname.startswith("test_") and fname.endswith(".py"):
            with open(os.path.join(here, fname)) as fh:
                names.update(re.findall(r"^def (test_\w+)", fh.read(), flags=re.M))
    return names
