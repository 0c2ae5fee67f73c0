"""What `lottery bench` measures and against which targets: the run sizes (`BenchConfig`,
`FULL` for `lottery bench`, `QUICK` for `--quick`), the two mask densities every contender
trains at, and the thresholds its PASS/FAIL lines compare with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Targets: stacked engine / notebook-way Keras; stage startup.
TARGET_SPEEDUP = 20.0
TARGET_STARTUP_S = 15.0
#: Targets: evaluation share at the paper's horizon; wall-clock of the paper preset.
TARGET_EVAL_SHARE_50K = 0.15
TARGET_PAPER_H = 3.0
#: The preset the estimate prices (presets/paper.yaml), with the stops of a kept study of its
#: protocol (reports/results) or of the patience evidence (reports/patience).
PAPER_PRESET = "paper"
#: Horizons whose evaluation share is reported (the default study's, the paper's), each
#: with the test_every of its params file.
HORIZONS = {5_000: 500, 50_000: 5_000}

#: Density of the "~20%" networks: round 7 of the paper's rates (0.8^7 hidden, 0.9^7 out).
SPARSE_DENSITY = {"fc1": 0.8**7, "fc2": 0.8**7, "out": 0.9**7}
#: Every contender is timed at both: dense (no mask) and ~20%.
DENSITIES: dict[str, dict[str, float] | None] = {"d100": None, "d20": SPARSE_DENSITY}


@dataclass(frozen=True)
class BenchConfig:
    window: int  # iterations per measured window (per network)
    eval_every: int  # evaluate every N iterations (the paper: 100)
    repeats: int  # measured windows per contender; the median is reported
    stacked: tuple[int, ...]  # K of the stacked engine runs (a)
    batch_size: int = 60
    learning_rate: float = 1.2e-3
    keras_val_size: int = 10_000  # the notebook's validation set size
    startup_k: int = 5  # K of the fresh process whose start-up is timed
    conv_stacks: tuple[int, ...] = (2,)  # K of the Conv-2 line, besides K = 1
    conv_steps: int = 1  # training iterations per timed Conv-2 chunk
    stack_sizes: tuple[int, ...] = (1, 5, 15)  # K of the stable-vs-batched step line
    stack_steps: int = 20  # training iterations per timed chunk of that line


FULL = BenchConfig(
    window=300,
    eval_every=100,
    repeats=3,
    stacked=(10, 5),
    conv_stacks=(2, 4, 8),
    conv_steps=3,
    stack_steps=200,
)
QUICK = BenchConfig(
    window=10, eval_every=10, repeats=1, stacked=(10, 5), stack_sizes=(1, 2), stack_steps=5
)


def stack_sizes(cfg: BenchConfig) -> list[int]:
    """K of the engine runs: the stacked ones (a), then K = 1 (b)."""
    return list(dict.fromkeys((*cfg.stacked, 1)))


def target(name: str, value: float, threshold: float, higher_is_better: bool) -> dict[str, Any]:
    """One target line: the value measured against its threshold, and PASS or not."""
    ok = value >= threshold if higher_is_better else value <= threshold
    return {
        "name": name,
        "value": value,
        "threshold": threshold,
        "direction": ">=" if higher_is_better else "<=",
        "pass": ok,
    }
