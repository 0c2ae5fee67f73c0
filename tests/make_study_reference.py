"""Regenerate tests/data/study_reference.json: `python -m tests.make_study_reference`.

Builds the tests' tiny study (conftest's TINY: 2 trials, 2 rounds, 30 iterations, both
controls) with a real `dvc repro` in a temporary directory and records every mask's and
weights file's canonical hash and every metrics file, in the reference's spelling (run keys
`t0`, `t0r1`; `final_*` for today's `*_at_stop`). Rewrite it only when the arithmetic
changes on purpose, and say so in the commit: the rewritten file holds this CPU family's
weights only.

`--add-cpu` records the weights of a CPU family the file does not have yet (their last
bits depend on the CPU's vector extensions, `lottery.core.machine`): it refuses unless this
machine's masks and metrics are the recorded ones, and keeps every other family's weights.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from lottery.core import paths
from lottery.core.arch import LENET
from lottery.core.machine import describe
from lottery.core.masks import load_mask, load_weights, mask_hash, weights_hash
from tests.conftest import make_project, run
from tests.study.test_reference import disagreements

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "study_reference.json"
#: Today's per-run metric name -> the reference's.
NAMES = {"test_accuracy_at_stop": "final_test_accuracy", "val_loss_at_stop": "final_val_loss"}
KEPT = (
    "early_stop_iteration",
    "test_accuracy_at_early_stop",
    "val_accuracy_at_early_stop",
    "val_loss_at_early_stop",
    "test_accuracy_at_stop",
    "val_loss_at_stop",
    "percent_remaining",
    "trial",
    "repeat",
)


def old_key(key: str) -> str:
    trial, repeat = paths.parse_run_key(key)
    return f"t{trial}" if repeat is None else f"t{trial}r{repeat}"


def old_path(rel: Path) -> str:
    parts = [old_key(p) if p.startswith("t") and p[1:2].isdigit() else p for p in rel.parts]
    return "/".join(parts)


def metrics_record(m: dict[str, Any]) -> dict[str, Any]:
    runs = {old_key(k): {NAMES.get(n, n): r[n] for n in KEPT} for k, r in sorted(m["runs"].items())}
    summary = {n: m["summary"][n] for n in ("early_stop_iteration", "test_accuracy_at_early_stop")}
    summary["final_test_accuracy"] = m["summary"]["test_accuracy_at_stop"]
    keep = ("round", "condition", "percent_remaining", "density")
    return {**{k: m[k] for k in keep}, "runs": runs, "summary": summary}


def main(add_cpu: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        study = make_project(Path(tmp) / "study")
        run(study, "dvc", "repro")
        art = study / "artifacts"
        masks = {
            old_path(p.relative_to(study)): mask_hash(load_mask(p, arch=LENET), arch=LENET)
            for p in sorted(art.rglob("*mask.npz"))
        }
        weights = {
            old_path(p.relative_to(study)): weights_hash(load_weights(p, arch=LENET), arch=LENET)
            for p in sorted(art.rglob("*.npz"))
            if not p.name.endswith("mask.npz") and "data" not in p.relative_to(art).parts
        }
        metrics = {
            str(p.relative_to(study)): metrics_record(json.loads(p.read_text()))
            for p in sorted((study / "metrics").rglob("*.json"))
        }
        disagree = disagreements(study) if add_cpu else []
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    source = (
        f"lottery at commit {commit} (+ working tree) on the tests' TINY params (2 trials, "
        "2 rounds, 30 iterations every 10, both controls)"
    )
    if disagree:
        sys.exit(
            f"refused: this machine's masks or metrics differ from {OUT}'s, so more than the "
            f"CPU family changed ({'; '.join(disagree)}); rewrite the whole file (no "
            "--add-cpu) only if the arithmetic changed on purpose"
        )
    mine = {"cpu": describe(), "hashes": weights}
    if add_cpu:
        doc = json.loads(OUT.read_text())
        others = [e for e in doc["weights_by_cpu"] if e["cpu"] != mine["cpu"]]
        doc["weights_by_cpu"] = [*others, mine]
    else:
        doc = {"source": source, "masks": masks, "weights_by_cpu": [mine], "metrics": metrics}
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}: {len(masks)} masks, {len(weights)} weights, {len(metrics)} metrics")


if __name__ == "__main__":
    if sys.argv[1:] not in ([], ["--add-cpu"]):
        sys.exit("usage: python -m tests.make_study_reference [--add-cpu]")
    main(add_cpu=sys.argv[1:] == ["--add-cpu"])
