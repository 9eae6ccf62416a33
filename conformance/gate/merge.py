"""Sides run apart, one verdict merged: the side reports jobs write, and the merge of them.

    python -m conformance gate --side baseline  --baseline A --candidate B --out side-baseline
    python -m conformance gate --side candidate --baseline A --candidate B --golden-from side-baseline --out side-1
    python -m conformance merge side-baseline side-1 --out gate-report

Every job is given the whole gate command (so every job labels the sides as the
single-process gate does); ``--side`` picks what it runs: ``baseline``,
``candidate`` (every candidate), ``candidate:N`` (the N-th, from 1) or a side's
label. Each side writes ``side-<label>.json`` (its results, environment and the
plan's accepted changes) beside its JUnit XML and log; the baseline's also names
its golden records and orbax checkpoints (``golden/``), which candidates read
through ``--golden-from``. ``merge`` reads the side reports of any number of
directories and writes the reports the single-process gate writes on the same
sides: the same verdict and exit code, and the same Markdown, JSON, JUnit and
HTML apart from timings and the paths of the directories involved.
Attribution (whether flax or jax brings a change) builds further environments:
the merge runs it as the single-process gate does when the sides' command asked
for it (the default; ``--no-attribution`` on either command skips it), so the
merge job needs the gate's cache and uv. ``--bisect`` runs in the single-process
gate only.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shutil

from conformance.gate.verdict import Accept, Result, build_matrix, verdict

FORMAT = 1
PREFIX = "side-"
# What the merge needs of the sides' command to trace changes as the single-process gate does.
PLAN_FIELDS = ("attribute", "profile", "timeout", "module_paths")


def side_file(out_dir: str, label: str) -> str:
    return os.path.join(out_dir, PREFIX + re.sub(r"[^A-Za-z0-9_.@+=-]+", "-", label) + ".json")


def select(sides: list, choice: str) -> list:
    """The sides ``--side`` names: ``baseline``, ``candidate``, ``candidate:N`` (from 1) or a label."""
    candidates = [s for s in sides if s.role == "candidate"]
    if choice == "baseline":
        return [s for s in sides if s.role == "baseline"]
    if choice == "candidate":
        return candidates
    m = re.fullmatch(r"candidate:(\d+)", choice)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= len(candidates):
            raise ValueError(f"--side {choice}: there are {len(candidates)} candidates (candidate:1 to candidate:{len(candidates)})")
        return [candidates[n - 1]]
    named = [s for s in sides if s.label == choice]
    if not named:
        raise ValueError(f"--side {choice!r}: one of baseline, candidate, candidate:N or a side's label "
                         f"({', '.join(s.label for s in sides)})")
    return named


def write_side(out_dir: str, side, index: int, labels: list[str], info: dict, accepts: list[Accept],
               golden: dict | None, golden_note: str, plan=None) -> str:
    """One side's report: its results and environment, every side's label, the accepts, the golden references."""
    doc = {"format": FORMAT, "label": side.label, "role": side.role, "index": index, "sides": labels,
           "info": {k: v for k, v in info.items() if k != "results"},
           "results": None if info["results"] is None else [dataclasses.asdict(r) for r in info["results"]],
           "accepts": [dataclasses.asdict(a) for a in accepts], "golden": golden, "golden_note": golden_note,
           "plan": None if plan is None else {k: getattr(plan, k) for k in PLAN_FIELDS}}
    path = side_file(out_dir, side.label)
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=1)
    return path


def golden_files(golden_dir: str, env_vars: dict[str, str], note: str) -> dict:
    """The baseline's golden references as paths relative to its report directory: they travel with it."""
    base = os.path.dirname(golden_dir)
    return {"note": note, "files": {k: os.path.relpath(v, base) for k, v in env_vars.items()}}


def adopt_golden(directory: str) -> tuple[dict[str, str], str]:
    """(variables pointing a candidate at the baseline's records and checkpoints, the note) from its side report."""
    docs = [d for d in read_dir(directory) if d["role"] == "baseline"]
    if not docs:
        raise ValueError(f"--golden-from {directory!r}: no baseline side report ({PREFIX}*.json of --side baseline) there")
    golden = docs[0].get("golden")
    if not golden or not golden.get("files"):
        raise ValueError(f"--golden-from {directory!r}: the baseline side recorded no golden references "
                         f"({(golden or {}).get('note', 'none')})")
    files = {k: os.path.join(os.path.abspath(directory), v) for k, v in golden["files"].items()}
    missing = [v for v in files.values() if not os.path.exists(v)]
    if missing:
        raise ValueError(f"--golden-from {directory!r}: {missing[0]} is missing (copy the whole side directory)")
    return files, golden["note"]


def read_dir(directory: str) -> list[dict]:
    paths = sorted(glob.glob(os.path.join(glob.escape(directory), PREFIX + "*.json")))
    docs = []
    for path in paths:
        with open(path) as fh:
            doc = json.load(fh)
        if doc.get("format") != FORMAT:
            raise ValueError(f"{path}: side report format {doc.get('format')!r}, this merge reads {FORMAT}")
        doc["_dir"] = os.path.abspath(directory)
        docs.append(doc)
    return docs


def merge(directories: list[str], out_dir: str, extra_accepts: list[Accept] | None = None) -> tuple[dict, dict, dict]:
    """(matrix, result, infos) of the sides reported in ``directories``, as the single-process gate computes them.

    The sides' JUnit XMLs and logs, and the baseline's golden directory, are copied into ``out_dir``.
    """
    docs = [d for directory in directories for d in read_dir(directory)]
    if not docs:
        raise ValueError(f"no side reports ({PREFIX}*.json) in {', '.join(directories)}")
    by_label: dict[str, dict] = {}
    for d in docs:
        if d["label"] in by_label:
            raise ValueError(f"side {d['label']!r} is reported twice: in {by_label[d['label']]['_dir']} and {d['_dir']}")
        by_label[d["label"]] = d
    plans = {tuple(d["sides"]) for d in docs}
    if len(plans) > 1:
        raise ValueError("the side reports come from different gate commands (their sides differ: "
                         + " vs ".join(", ".join(p) for p in sorted(plans)) + ")")
    labels = list(next(iter(plans)))
    baseline = labels[0]
    os.makedirs(out_dir, exist_ok=True)
    infos: dict[str, dict] = {}
    for label in labels:
        d = by_label.get(label)
        if d is None:  # its job did not finish: no verdict for it, as for a side that would not build
            infos[label] = {"label": label, "role": "baseline" if label == baseline else "candidate", "results": None,
                            "versions": {}, "error": f"no side report for {label} in {', '.join(directories)}"}
            continue
        info = dict(d["info"])
        for key in ("junit", "log"):
            if info.get(key):
                src = os.path.join(d["_dir"], os.path.basename(info[key]))
                dest = os.path.join(out_dir, os.path.basename(info[key]))
                if os.path.exists(src) and os.path.abspath(src) != os.path.abspath(dest):
                    shutil.copyfile(src, dest)
                info[key] = dest
        info["results"] = None if d["results"] is None else [Result(**r) for r in d["results"]]
        infos[label] = info
    accepts, seen = [], set()
    for d in docs:
        for a in d.get("accepts") or []:
            acc = Accept(a["property"], tuple(a["requirements"]), a["reason"], a["source"])
            if acc not in seen:
                seen.add(acc)
                accepts.append(acc)
    accepts += [a for a in extra_accepts or [] if a not in seen]
    base_doc = by_label.get(baseline)
    golden = (base_doc or {}).get("golden")
    if golden and os.path.isdir(os.path.join(base_doc["_dir"], "golden")):
        dest = os.path.join(out_dir, "golden")
        if os.path.abspath(dest) != os.path.join(base_doc["_dir"], "golden"):
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(os.path.join(base_doc["_dir"], "golden"), dest)
    matrix = build_matrix({label: infos[label]["results"] for label in labels})
    errors = {label: info["error"] for label, info in infos.items() if info.get("error")}
    versions = {label: info.get("versions") or {} for label, info in infos.items()}
    result = verdict(matrix, baseline, labels[1:], errors, versions, accepts)
    notes = [d.get("golden_note") for d in ([base_doc] if base_doc else []) + docs if d.get("golden_note")]
    result["golden_reference"] = notes[0] if notes else "unknown (no side report says)"
    return matrix, result, infos
