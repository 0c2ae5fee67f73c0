"""Every path of the pipeline, relative to the project root: one place, one-line functions.

dvc.yaml spells the same paths; `tests/test_pipeline.py` checks that the two agree.
"""

from __future__ import annotations

from pathlib import Path

MNIST_DIR = Path("data/mnist")
ARTIFACTS = Path("artifacts")
METRICS = Path("metrics")
REPORTS = Path("reports")

CONDITIONS = ("ticket", "reinit", "random")


def run_key(trial: int, repeat: int | None = None) -> str:
    """Key of one network in a stage: `t0`, or `t0r1` for a reinit repeat."""
    return f"t{trial}" if repeat is None else f"t{trial}r{repeat}"


def prepared_dir() -> Path:
    return ARTIFACTS / "data"


def init_dir() -> Path:
    return ARTIFACTS / "init"


def theta0_path(trial: int) -> Path:
    return init_dir() / run_key(trial) / "theta0.npz"


def initial_mask_path(trial: int) -> Path:
    """m_0, the all-ones mask of the dense network."""
    return init_dir() / run_key(trial) / "mask.npz"


def dense_dir() -> Path:
    """What later rounds start from: the rewind weights and the dense trained weights."""
    return ARTIFACTS / "dense"


def rewind_path(trial: int) -> Path:
    """Weights at iteration `prune.rewind_iteration` of the dense run (θ0 when it is 0)."""
    return dense_dir() / run_key(trial) / "rewind.npz"


def dense_trained_path(trial: int) -> Path:
    return dense_dir() / run_key(trial) / "trained.npz"


def stage_dir(condition: str, name: str) -> Path:
    return ARTIFACTS / condition / name


def trained_path(condition: str, name: str, key: str) -> Path:
    return stage_dir(condition, name) / key / "trained.npz"


def start_weights_path(condition: str, name: str, key: str) -> Path:
    """A control's own starting weights (the reinit's fresh θ0')."""
    return stage_dir(condition, name) / key / "init.npz"


def next_mask_path(name: str, trial: int) -> Path:
    """m_{k+1}: the mask a ticket round prunes to (the next round's input)."""
    return stage_dir("ticket", name) / run_key(trial) / "next_mask.npz"


def control_mask_path(condition: str, name: str, key: str) -> Path:
    """The mask a control trained with (the random-prune control draws its own)."""
    return stage_dir(condition, name) / key / "mask.npz"


def curves_path(condition: str, name: str) -> Path:
    return stage_dir(condition, name) / "curves.json"


def round_mask_path(round_index: int, trial: int) -> Path:
    """m_k, the mask round k trains: m_0 from init, m_k from round k-1's pruning."""
    if round_index == 0:
        return initial_mask_path(trial)
    return next_mask_path(f"r{round_index - 1:02d}", trial)


def metrics_path(condition: str, name: str) -> Path:
    return METRICS / condition / f"{name}.json"


def figures_dir() -> Path:
    return REPORTS / "figures"


def plots_dir() -> Path:
    return REPORTS / "plots"


def report_path() -> Path:
    return REPORTS / "report.md"


def summary_metrics_path() -> Path:
    return REPORTS / "summary.json"
