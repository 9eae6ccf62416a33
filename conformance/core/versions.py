"""What a run tested: the installed versions, and whether the suite has verified them.

A flax or jax newer than ``config.LAST_VERIFIED`` runs every property (the
package sets no upper bound); the header, the summary and the reports say
that the release is unverified, so a green run is read for what it is.
"""

from __future__ import annotations

import sys

from packaging.version import InvalidVersion, Version

from conformance.core import config

TESTED = ("flax", "jax", "jaxlib")


def installed(names=TESTED) -> dict[str, str]:
    """Versions from package metadata (no import of jax or flax), plus python."""
    from conformance.core.deviations import installed_versions

    found = installed_versions(tuple(names))
    found["python"] = sys.version.split()[0]
    return found


def last_verified() -> str:
    """``flax 0.12.8 / jax 0.10.2``."""
    return " / ".join(f"{p} {v}" for p, v in config.LAST_VERIFIED.items())


def newer_than_verified(versions: dict[str, str]) -> list[str]:
    """``["flax 0.13.0"]``: the packages whose version is beyond ``config.LAST_VERIFIED`` (or unreadable)."""
    out = []
    for name, verified in config.LAST_VERIFIED.items():
        have = versions.get(name)
        if have is None:
            continue
        try:
            newer = Version(have) > Version(verified)
        except InvalidVersion:
            newer = True  # an unreadable version was never verified either
        if newer:
            out.append(f"{name} {have}")
    return out


def verification_note(versions: dict[str, str]) -> str:
    """One sentence: verified, or newer than the last verified release."""
    newer = newer_than_verified(versions)
    if not newer:
        return f"within the verified releases (last verified: {last_verified()})"
    return (f"UNVERIFIED: {', '.join(newer)} newer than the last verified release ({last_verified()}); "
            "every property runs, known deviations stated as open ranges still apply")
