"""What a side is built from, when it is not a release: a local checkout, a git reference, a wheel.

A release pin (``flax==0.12.8``) names the same files forever; these do not. A
directory changes under the same ``file://`` URL, a branch moves under the same
``git+URL@main``, a wheel is rebuilt under the same name. Each is therefore
resolved, every run, to what it holds now, and the environment is keyed by that:

* a local directory: its commit plus a digest of its uncommitted changes (tracked
  diff and untracked, unignored files) when it is a git checkout, else a digest of
  every file under it;
* a git reference: the commit it names now (``git ls-remote``); the requirement is
  rewritten to that commit, so the environment holds what was keyed;
* a wheel: the sha256 of its bytes.

Plain requirements (``flax==0.12.8``, ``jax>=0.7``) have no source: their text is their key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import urllib.parse
import urllib.request

from conformance.core import config

HEX40 = re.compile(r"^[0-9a-f]{40}$")


@dataclasses.dataclass(frozen=True)
class Source:
    """One requirement with a URL, resolved: what the environment installs and what keys it."""

    name: str  # the distribution, e.g. "flax"
    kind: str  # "directory", "git" or "wheel" ("url" for any other URL: keyed by its text)
    given: str  # the requirement as the user wrote it
    requirement: str  # what is installed (a git reference pinned to its commit)
    location: str  # the directory, the wheel's path, or the repository URL
    fingerprint: str  # commit[+digest], digest or sha256: changes exactly when the code may have
    detail: str  # how the fingerprint was taken, for the log and the report

    def short(self) -> str:
        """The fingerprint in a label: ``1a2b3c4d5e6f`` or ``1a2b3c4d5e6f+9f8e7d6c``."""
        return "+".join(part[: config.SOURCE_DIGEST_CHARS] for part in self.fingerprint.split("+"))

    def describe(self) -> str:
        """``flax from file:///src/flax, commit 1a2b3c4d5e6f + uncommitted changes 9f8e7d6c5b4a``."""
        where = {"directory": "file://" + self.location, "wheel": "wheel " + os.path.basename(self.location)}.get(
            self.kind, self.location)
        return f"{self.name} from {where}, {self.detail}"


def _run_git(args: list[str], cwd: str | None = None) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=config.GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise ValueError("git is not installed: a git reference or a checkout's commit cannot be resolved") from None
    except subprocess.TimeoutExpired:
        raise ValueError(f"git {' '.join(args[:2])} took over {config.GIT_TIMEOUT_S} s") from None
    if proc.returncode:
        raise ValueError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout.decode(errors="replace")


def _hash_file(h, path: str) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    _hash_file(h, path)
    return h.hexdigest()


def tree_digest(root: str) -> str:
    """sha256 over every file's relative path and bytes (VCS metadata and bytecode left out), in sorted order."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in config.SOURCE_DIGEST_SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(dirpath, name)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            h.update(os.path.relpath(full, root).encode() + b"\0")
            _hash_file(h, full)
            h.update(b"\0")
    return h.hexdigest()


def checkout_fingerprint(root: str) -> tuple[str, str]:
    """(fingerprint, detail) of a directory: commit + uncommitted changes for a git work tree, else a digest."""
    try:
        top = _run_git(["rev-parse", "--show-toplevel"], cwd=root).strip()
    except ValueError:
        top = ""
    if not top or os.path.realpath(top) != os.path.realpath(root):  # not the root of a work tree: every file counts
        digest = tree_digest(root)
        return digest, f"files digest {digest[:config.SOURCE_DIGEST_CHARS]}"
    commit = _run_git(["rev-parse", "HEAD"], cwd=root).strip()
    h = hashlib.sha256(_run_git(["diff", "--binary", "HEAD"], cwd=root).encode())
    untracked = _run_git(["ls-files", "--others", "--exclude-standard", "-z"], cwd=root).split("\0")
    for rel in sorted(p for p in untracked if p):
        full = os.path.join(root, rel)
        if os.path.isfile(full) and not os.path.islink(full):
            h.update(rel.encode() + b"\0")
            _hash_file(h, full)
    if h.digest() == hashlib.sha256(b"").digest():
        return commit, f"commit {commit[:config.SOURCE_DIGEST_CHARS]}, clean"
    digest = h.hexdigest()
    return (f"{commit}+{digest}",
            f"commit {commit[:config.SOURCE_DIGEST_CHARS]} + uncommitted changes {digest[:config.SOURCE_DIGEST_CHARS]}")


def resolve_git_ref(url: str, ref: str | None) -> str:
    """The commit ``ref`` names in the repository at ``url`` now (``HEAD`` without one); a full commit id stays."""
    if ref and HEX40.match(ref.lower()):
        return ref.lower()
    want = ref or "HEAD"
    lines = [ln.split("\t") for ln in _run_git(["ls-remote", url, want]).splitlines() if "\t" in ln]
    found = {name: sha for sha, name in lines}
    for name in (f"refs/tags/{want}^{{}}", want, f"refs/heads/{want}", f"refs/tags/{want}"):  # a tag's commit first
        if name in found:
            return found[name]
    raise ValueError(f"git reference {want!r} not found in {url} (a branch, a tag or a full 40-character commit id)")


def _file_path(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ValueError(f"{url!r}: a file URL names a local path (file:///abs/path)")
    return urllib.request.url2pathname(parsed.path)


def resolve(requirement: str) -> Source | None:
    """The requirement's source, resolved now; None for a plain requirement. ValueError when it cannot be resolved."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        req = Requirement(requirement)
    except InvalidRequirement:
        return None  # pip options and the like: passed through, keyed by their text
    if not req.url:
        return None
    url, name = req.url, req.name
    if url.startswith("git+"):
        bare = url[4:]
        parsed = urllib.parse.urlparse(bare)
        path, at, ref = parsed.path.rpartition("@") if "@" in parsed.path else (parsed.path, "", "")
        repo = urllib.parse.urlunparse(parsed._replace(path=path, fragment=""))
        commit = resolve_git_ref(repo, ref or None)
        fragment = f"#{parsed.fragment}" if parsed.fragment else ""
        pinned = f"{name} @ git+{repo}@{commit}{fragment}"
        what = f"{ref} = commit {commit[:config.SOURCE_DIGEST_CHARS]}" if ref and ref != commit else f"commit {commit[:config.SOURCE_DIGEST_CHARS]}"
        return Source(name, "git", requirement, pinned, f"git+{repo}@{ref or 'HEAD'}", commit, what)
    if url.startswith("file:"):
        path = _file_path(url)
        if os.path.isdir(path):
            fingerprint, detail = checkout_fingerprint(path)
            return Source(name, "directory", requirement, requirement, path, fingerprint, detail)
        if os.path.isfile(path):
            digest = sha256_of(path)
            return Source(name, "wheel", requirement, requirement, path, digest, f"sha256 {digest[:config.SOURCE_DIGEST_CHARS]}")
        raise ValueError(f"{requirement!r}: {path} does not exist")
    return Source(name, "url", requirement, requirement, url, hashlib.sha256(url.encode()).hexdigest(), url)


WHEEL_NAME = re.compile(r"^(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def path_requirement(text: str, base: str = ".") -> str | None:
    """A wheel file or a project directory given as a path, as ``name @ file:///abs``; None if ``text`` is no such path.

    Relative paths are taken from ``base`` (a requirements file's directory).
    """
    text = text.strip()
    if not text or text.startswith(("-", "#")) or "://" in text or " @ " in text:
        return None
    path = os.path.abspath(os.path.join(base, os.path.expanduser(text)))
    if os.path.isfile(path) and path.endswith(".whl"):
        m = WHEEL_NAME.match(os.path.basename(path))
        if not m:
            raise ValueError(f"{text!r}: not a wheel file name (name-version-python-abi-platform.whl)")
        return f"{m.group('name').replace('_', '-')} @ {_file_url(path)}"
    # A directory only when written as a path: "jax" is a requirement even beside a directory called jax.
    if os.path.isdir(path) and (os.sep in text or text.startswith((".", "~"))):
        name = project_name(path)
        if name is None:
            raise ValueError(f"{text!r}: a directory without a [project] name in pyproject.toml or a setup.py name")
        return f"{name} @ {_file_url(path)}"
    return None


def _file_url(path: str) -> str:
    return "file://" + urllib.request.pathname2url(path)


def project_name(path: str) -> str | None:
    """The distribution name a project directory declares (pyproject.toml's [project] name, or setup.py's name=)."""
    pyproject = os.path.join(path, "pyproject.toml")
    if os.path.isfile(pyproject):
        try:
            import tomllib

            with open(pyproject, "rb") as fh:
                name = tomllib.load(fh).get("project", {}).get("name")
        except (ImportError, ValueError):
            m = re.search(r'^\s*name\s*=\s*["\']([^"\']+)', open(pyproject).read(), re.M)
            name = m.group(1) if m else None
        if name:
            return name
    setup = os.path.join(path, "setup.py")
    if os.path.isfile(setup):
        m = re.search(r'name\s*=\s*["\']([^"\']+)', open(setup).read())
        return m.group(1) if m else None
    return None


def label_part(sources: list[Source]) -> str:
    """What a side's label says about its sources: ``flax@dir-1a2b3c4d5e6f``, ``flax@git-main-1a2b3c4d5e6f``."""
    parts = []
    for s in sources:
        tag = {"directory": "dir", "wheel": "whl", "git": "git"}.get(s.kind, "url")
        if s.kind == "git":
            ref = s.location.rpartition("@")[2]
            tag += "" if ref in ("HEAD", s.fingerprint) else "-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", ref)[:24]
        parts.append(f"{s.name}@{tag}-{s.short()}")
    return "_".join(parts)


def pinned_version(requirements: list[str], package: str = "flax") -> str | None:
    """The version of an exact ``package==V`` pin among ``requirements`` (lines of a requirements file too)."""
    for line in requirements:
        line = line.split("#", 1)[0].strip()
        m = re.match(rf"^{re.escape(package)}\s*(\[[^\]]*\])?\s*===?\s*([A-Za-z0-9_.+!-]+)\s*(;.*)?$", line, re.I)
        if m:
            return m.group(2)
    return None


def read_requirements(path: str | None) -> list[str]:
    """A requirements file's requirements; a line naming a wheel or a project directory (relative to the file) as ``name @ file://``."""
    if not path:
        return []
    base = os.path.dirname(os.path.abspath(path))
    with open(path) as fh:  # a comment starts at a '#' after whitespace (pip's rule): a URL's #fragment stays
        lines = [text for text in (re.split(r"(?:^|\s)#", ln, maxsplit=1)[0].strip() for ln in fh) if text]
    return [path_requirement(ln, base) or ln for ln in lines]


def label_for(requirements: list[str], taken: set[str], sources: list | None = None) -> str:
    """A side's label, unique among ``taken``: ``flax-0.12.8``, ``flax@dir-1a2b3c4d5e6f``, ``flax@git-main-1a2b3c4d5e6f``."""
    version = pinned_version(requirements)
    if sources:
        base = label_part(sources)
    elif version:
        base = f"flax-{version}"
    else:
        base = re.sub(r"[^A-Za-z0-9_.=-]+", "_", "+".join(requirements) or "env")[:60]
    label, n = base, 2
    while label in taken:
        label, n = f"{base}#{n}", n + 1
    taken.add(label)
    return label
