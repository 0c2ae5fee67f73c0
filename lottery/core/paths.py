"""The artifact layout: every path and name of the pipeline, built and parsed here only.

Paths hang off an explicit project root, `Layout(root)`, never the working directory;
`Layout()` and the module-level path functions spell them relative to the root. Names: a
round is `r00`, `r01`, … (`round_name`); a network of a stage is its run key, `t0` for
trial 0, `t0-rep1` for trial 0's reinit repeat 1 (`run_key`); a mask figure is
`masks/r03_fc1_mask` or `masks/r03_conv1_mask` (`layer_mask_figure_name`). Each name has
its parser here, so no other module spells or parses one. dvc.yaml spells the same
paths; `tests/study/test_pipeline.py` checks that the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_ROUND = re.compile(r"^r(\d{2,})$")
_RUN_KEY = re.compile(r"^t(\d+)(?:-rep(\d+))?$")
_MASK_FIGURE = re.compile(r"(?:^|/)r(\d{2,})_([a-z]+\d*_mask|pixel_map)$")
_INITIAL_MASK = re.compile(r"^artifacts/init/([^/]+)/mask\.npz$")
_TICKET_MASK = re.compile(r"^artifacts/ticket/([^/]+)/([^/]+)/next_mask\.npz$")
_CONTROL_MASK = re.compile(r"^artifacts/(reinit|random)/([^/]+)/([^/]+)/mask\.npz$")


def round_name(rnd: int) -> str:
    """The name of round `rnd` in stage names and paths: `r00`, `r01`, …"""
    return f"r{rnd:02d}"


def parse_round(name: str) -> int:
    """`r03` -> 3; `ValueError` for anything `round_name` does not write."""
    m = _ROUND.match(name)
    if m is None:
        raise ValueError(f"{name!r} is not a round name (r00, r01, …)")
    return int(m[1])


def run_key(trial: int, repeat: int | None = None) -> str:
    """Key of one network in a stage: `t0`, or `t0-rep1` for a reinit repeat."""
    return f"t{trial}" if repeat is None else f"t{trial}-rep{repeat}"


def parse_run_key(key: str) -> tuple[int, int | None]:
    """`t0` -> (0, None), `t0-rep1` -> (0, 1); `ValueError` otherwise."""
    m = _RUN_KEY.match(key)
    if m is None:
        raise ValueError(f"{key!r} is not a run key (t0, t0-rep1, …)")
    return int(m[1]), None if m[2] is None else int(m[2])


def layer_mask_figure_name(rnd: int, layer: str) -> str:
    """Name of round `rnd`'s figure of layer `layer`'s mask: `masks/r03_conv1_mask`."""
    return f"masks/{round_name(rnd)}_{layer}_mask"


def mask_figure_names(rnd: int) -> tuple[str, str]:
    """Names of the first-layer (fc1) mask figure and the pixel map of round `rnd`
    (file = figures dir / f"{name}.png")."""
    return layer_mask_figure_name(rnd, "fc1"), f"masks/{round_name(rnd)}_pixel_map"


def parse_mask_figure(name: str) -> tuple[int, str] | None:
    """(round, `<layer>_mask` | `pixel_map`) of a mask figure's name, None for other
    figures."""
    m = _MASK_FIGURE.search(name)
    return None if m is None else (int(m[1]), m[2])


@dataclass(frozen=True)
class MaskPlace:
    """What a mask's place in the artifacts tree says it is."""

    condition: str  # ticket (m_0 and pruned masks) | reinit | random
    stage_round: int | None  # the round of the stage that wrote it; None for m_0 (init)
    trial: int
    repeat: int | None = None


def parse_mask_path(rel: str) -> MaskPlace | None:
    """The place of a mask file (a POSIX path relative to the root), None if it is none of
    m_0, a ticket round's `next_mask.npz` or a control's `mask.npz`."""
    try:
        if m := _INITIAL_MASK.match(rel):
            trial, repeat = parse_run_key(m[1])
            return None if repeat is not None else MaskPlace("ticket", None, trial)
        if m := _TICKET_MASK.match(rel):
            trial, repeat = parse_run_key(m[2])
            if repeat is not None:
                return None
            return MaskPlace("ticket", parse_round(m[1]), trial)
        if m := _CONTROL_MASK.match(rel):
            trial, repeat = parse_run_key(m[3])
            return MaskPlace(m[1], parse_round(m[2]), trial, repeat)
    except ValueError:
        return None
    return None


@dataclass(frozen=True)
class Layout:
    """Every artifact path of the project at `root`: `Layout(root).theta0_path(0)`.

    `Layout()` (root `.`) spells the paths relative to the root, as dvc.yaml and dvc.lock
    do; the module-level functions below are that relative layout's methods.
    """

    root: Path = Path()

    def dataset_dir(self, dataset: str) -> Path:
        """Where dataset `dataset` (`data.dataset` in params.yaml) is read from: `data/NAME`."""
        return self.root / "data" / dataset

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def presets_dir(self) -> Path:
        """The params presets `lottery preset NAME` copies over params.yaml."""
        return self.root / "presets"

    def preset_path(self, name: str) -> Path:
        return self.presets_dir / f"{name}.yaml"

    def patience_dir(self) -> Path:
        """The committed patience evidence (`lottery patience`)."""
        return self.reports / "patience"

    def benchmark_path(self) -> Path:
        """What `lottery bench` writes by default."""
        return self.reports / "benchmark.json"

    def prepared_dir(self) -> Path:
        return self.artifacts / "data"

    def init_dir(self) -> Path:
        return self.artifacts / "init"

    def theta0_path(self, trial: int) -> Path:
        return self.init_dir() / run_key(trial) / "theta0.npz"

    def initial_mask_path(self, trial: int) -> Path:
        """m_0, the all-ones mask of the dense network."""
        return self.init_dir() / run_key(trial) / "mask.npz"

    def dense_dir(self) -> Path:
        """What later rounds start from: the rewind weights and the dense trained weights."""
        return self.artifacts / "dense"

    def rewind_path(self, trial: int) -> Path:
        """Weights at iteration `prune.rewind_iteration` of the dense run (θ0 when it is 0)."""
        return self.dense_dir() / run_key(trial) / "rewind.npz"

    def dense_trained_path(self, trial: int) -> Path:
        return self.dense_dir() / run_key(trial) / "trained.npz"

    def stage_dir(self, condition: str, name: str) -> Path:
        return self.artifacts / condition / name

    def trained_path(self, condition: str, name: str, key: str) -> Path:
        return self.stage_dir(condition, name) / key / "trained.npz"

    def start_weights_path(self, condition: str, name: str, key: str) -> Path:
        """A control's own starting weights (the reinit's fresh θ0')."""
        return self.stage_dir(condition, name) / key / "init.npz"

    def next_mask_path(self, name: str, trial: int) -> Path:
        """m_{k+1}: the mask a ticket round prunes to (the next round's input)."""
        return self.stage_dir("ticket", name) / run_key(trial) / "next_mask.npz"

    def control_mask_path(self, condition: str, name: str, key: str) -> Path:
        """The mask a control trained with (the random-prune control draws its own)."""
        return self.stage_dir(condition, name) / key / "mask.npz"

    def curves_path(self, condition: str, name: str) -> Path:
        return self.stage_dir(condition, name) / "curves.json"

    def round_mask_path(self, rnd: int, trial: int) -> Path:
        """m_k, the mask round k trains: m_0 from init, m_k from round k-1's pruning."""
        if rnd == 0:
            return self.initial_mask_path(trial)
        return self.next_mask_path(round_name(rnd - 1), trial)

    def metrics_path(self, condition: str, name: str) -> Path:
        return self.metrics_dir / condition / f"{name}.json"

    def figures_dir(self) -> Path:
        return self.reports / "figures"

    def plots_dir(self) -> Path:
        return self.reports / "plots"

    def report_path(self) -> Path:
        return self.reports / "report.md"

    def summary_metrics_path(self) -> Path:
        return self.reports / "summary.json"

    def relative(self, path: Path) -> str:
        """`path` (under the root) as dvc.lock and `parse_mask_path` spell it."""
        return path.relative_to(self.root).as_posix()


#: The layout relative to the root (the spelling of dvc.yaml and dvc.lock).
RELATIVE = Layout()
prepared_dir = RELATIVE.prepared_dir
init_dir = RELATIVE.init_dir
theta0_path = RELATIVE.theta0_path
initial_mask_path = RELATIVE.initial_mask_path
dense_dir = RELATIVE.dense_dir
rewind_path = RELATIVE.rewind_path
dense_trained_path = RELATIVE.dense_trained_path
stage_dir = RELATIVE.stage_dir
trained_path = RELATIVE.trained_path
start_weights_path = RELATIVE.start_weights_path
next_mask_path = RELATIVE.next_mask_path
control_mask_path = RELATIVE.control_mask_path
curves_path = RELATIVE.curves_path
round_mask_path = RELATIVE.round_mask_path
metrics_path = RELATIVE.metrics_path
figures_dir = RELATIVE.figures_dir
plots_dir = RELATIVE.plots_dir
report_path = RELATIVE.report_path
summary_metrics_path = RELATIVE.summary_metrics_path
