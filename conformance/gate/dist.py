"""The suite as the gate installs it into each side's environment.

The gate tests the suite that is running it, wherever that came from: a
regular ``pip install`` (site-packages) or an editable checkout. ``suite_wheel``
packs the imported packages' files and the installed distribution's metadata
(its entry points register the pytest plugin) into a pure-Python wheel; no
checkout, no build backend, no network. ``--project PATH`` installs a checkout
instead.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import os
import zipfile
from importlib import metadata

DIST = "flax-bridge-conformance"
PACKAGES = ("conformance", "reference")
METADATA_FILES = ("METADATA", "entry_points.txt", "top_level.txt")
# Dependencies the side environments do not need (the gate's own tools).
GATE_ONLY = ("uv",)
_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed zip timestamps: the same files give the same wheel


def distribution() -> metadata.Distribution:
    try:
        return metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        raise LookupError(f"{DIST} is not installed in {os.path.dirname(os.__file__)}'s environment "
                          "(pip install it, or pass --project PATH: a checkout of this project)") from None


def dependencies(project: str | None = None) -> list[str]:
    """The suite's runtime requirements (extras and gate-only tools left out): a checkout's pyproject, or the installed metadata."""
    if project:
        try:
            import tomllib
        except ImportError:  # Python 3.10: the installed metadata says the same
            tomllib = None
        if tomllib is not None:
            with open(os.path.join(project, "pyproject.toml"), "rb") as fh:
                reqs = list(tomllib.load(fh)["project"]["dependencies"])
            return [r for r in reqs if _name(r) not in GATE_ONLY]
    reqs = distribution().requires or []
    return [r for r in reqs if "extra ==" not in r and _name(r) not in GATE_ONLY]


def _name(req: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(req).name.lower()


def package_files() -> dict[str, bytes]:
    """``{"conformance/core/config.py": b"...", ...}``: the files of the imported packages (bytecode left out).

    The directories the running suite was imported from: site-packages after a
    regular install, the checkout after an editable one.
    """
    out: dict[str, bytes] = {}
    for pkg in PACKAGES:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise LookupError(f"cannot find the package {pkg!r} of {DIST}")
        top = list(spec.submodule_search_locations)[0]
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
            for name in sorted(filenames):
                if name.endswith((".pyc", ".pyo")) or name.startswith("."):
                    continue
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, os.path.dirname(top)).replace(os.sep, "/")
                with open(full, "rb") as fh:
                    out[rel] = fh.read()
    return out


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def wheel_bytes() -> tuple[str, bytes]:
    """(file name, contents) of a wheel of the installed suite."""
    dist = distribution()
    version = dist.version
    stem = f"{DIST.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    files = dict(sorted(package_files().items()))
    for name in METADATA_FILES:
        text = dist.read_text(name) or (dist.read_text("PKG-INFO") if name == "METADATA" else None)  # egg-info: PKG-INFO
        if text is not None:
            files[f"{info}/{name}"] = text.encode()
    if f"{info}/METADATA" not in files:
        raise LookupError(f"{DIST} {version} has no METADATA")
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: conformance.dist\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [_record_line(p, d) for p, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zi = zipfile.ZipInfo(path, _EPOCH)
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return f"{stem}-py3-none-any.whl", buf.getvalue()


def suite_wheel(out_dir: str) -> str:
    """Write the wheel under ``out_dir/<content hash>/`` (once per content) and return its path."""
    name, data = wheel_bytes()
    where = os.path.join(out_dir, hashlib.sha256(data).hexdigest()[:16])
    path = os.path.join(where, name)
    if not os.path.exists(path):
        os.makedirs(where, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    return path


def install_source(project: str | None, wheels_dir: str) -> tuple[str, str]:
    """(what to pip-install as the suite, a note saying where it comes from)."""
    if project:
        return os.path.abspath(project), f"checkout {os.path.abspath(project)} (--project)"
    path = suite_wheel(wheels_dir)
    return path, f"wheel of the installed {DIST} {distribution().version} ({path})"
