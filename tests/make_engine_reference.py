"""Regenerate tests/data/engine_reference.json: `python -m tests.make_engine_reference`.

The reference pins the engine's arithmetic bit for bit (weights, curves, early stop, test
accuracies of three LeNet networks at densities 100%, 30% and 5%, 400 iterations). Rewrite
it only when the arithmetic changes on purpose, and say so in the commit; the test
`test_engine.py::test_patience_zero_is_bit_identical_to_the_reference_engine` then checks
every later change against it. A rewritten file holds this CPU family's results only.

`--add-cpu` records the results of a CPU family the file does not have yet, keeping the
others: XLA compiles for the CPU's vector extensions, so each family has its own bits
(`lottery.core.machine`). Record a family only from a commit whose arithmetic is unchanged
(the tests pass on a family already recorded).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from lottery.core.arch import LENET
from lottery.core.machine import describe
from lottery.core.masks import weights_hash
from lottery.data.prepare import prepare
from lottery.data.split import load_split
from lottery.engine.training import Engine, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "data" / "engine_reference.json"
CONFIG = {
    "iterations": 400,
    "eval_every": 20,
    "batch_size": 60,
    "learning_rate": 0.0012,
    "init_seeds": [[7, 0], [7, 1], [7, 2]],
    "mask_seeds": [100, 101, 102],
    "mask_densities": [1.0, 0.3, 0.05],
    "data_seeds": [1000, 1001, 1002],
}


def main(add_cpu: bool) -> None:
    from tests.helpers import reference_inputs

    with tempfile.TemporaryDirectory() as tmp:
        prepare(ROOT / "data" / "mnist", Path(tmp), validation_size=5000, stratified=True, seed=0)
        split = load_split(Path(tmp))
    c = CONFIG
    inits, masks, seeds = reference_inputs({"config": c})
    cfg = TrainConfig(int(c["iterations"]), eval_every=int(c["eval_every"]))  # type: ignore[call-overload]
    results = Engine(split, len(seeds), cfg, LENET).train(
        inits, masks, seeds, progress=lambda _: None
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    networks = [
        {
            "weights_sha256": weights_hash(r.weights, arch=LENET),
            "early_stop_iteration": r.early_stop_iteration,
            "summary": {
                **{k: r.summary[k] for k in ("early_stop_iteration", "val_loss_at_early_stop")},
                "val_accuracy_at_early_stop": r.summary["val_accuracy_at_early_stop"],
                "test_accuracy_at_early_stop": r.summary["test_accuracy_at_early_stop"],
                "final_test_accuracy": r.summary["test_accuracy_at_stop"],
                "final_val_loss": r.summary["val_loss_at_stop"],
            },
            "curves": {
                k: r.curves[k]
                for k in (
                    "iteration",
                    "train_loss",
                    "val_loss",
                    "val_accuracy",
                    "test_loss",
                    "test_accuracy",
                )
            },
        }
        for r in results
    ]
    source = (
        f"lottery engine at commit {commit} (+ working tree): every batch sum taken per "
        "network, so a network's bits do not depend on its stack"
    )
    mine = {"cpu": describe(), "networks": networks}
    if add_cpu:
        doc = json.loads(OUT.read_text())
        if doc["config"] != c:
            sys.exit(f"refused: {OUT} was recorded with another config; rewrite it whole")
        others = [e for e in doc["networks_by_cpu"] if e["cpu"] != mine["cpu"]]
        doc["networks_by_cpu"] = [*others, mine]
    else:
        doc = {"source": source, "config": c, "networks_by_cpu": [mine]}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    if sys.argv[1:] not in ([], ["--add-cpu"]):
        sys.exit("usage: python -m tests.make_engine_reference [--add-cpu]")
    main(add_cpu=sys.argv[1:] == ["--add-cpu"])
