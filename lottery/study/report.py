"""Stage `report`: the Markdown report, the DVC plots tables, the summary metric, and the
study's MLflow parent run."""

from __future__ import annotations

from pathlib import Path

from lottery.core import io, paths
from lottery.core.params import Params
from lottery.study.common import log
from lottery.study.visualise import stages


def _artifact_dir(top: str, rel: Path) -> str:
    return top if rel == Path(".") else f"{top}/{rel.as_posix()}"


def report(params: Params, root: Path) -> Path:
    """The Markdown report, the DVC plots tables and the top-level summary metrics."""
    from lottery.analysis import frames
    from lottery.report import dvc_tables
    from lottery.report import text as rep

    lay = paths.Layout(root)
    metrics = frames.load_metrics(root, stages(params))
    runs = frames.runs_frame(metrics)
    figures = rep.figure_order(lay.figures_dir())
    settings = params.as_dict()
    text = rep.render_report(
        runs, figures, settings, params.study_hash(), io.git_revision(), lay.reports.resolve()
    )
    rep.write_outputs(
        runs,
        text,
        rep.summary_for(runs, settings),
        lay.report_path(),
        lay.plots_dir(),
        lay.summary_metrics_path(),
    )
    curves = frames.load_curves(root, stages(params))
    dvc_tables.write_dvc_plot_tables(dvc_tables.dvc_curve_rows(curves, runs), lay.plots_dir())
    _record_report(lay, params, figures)
    log(f"wrote {paths.report_path()} ({len(metrics)} metrics files, {len(figures)} figures)")
    return lay.report_path()


def _record_report(lay: paths.Layout, params: Params, figures: dict[str, Path]) -> None:
    """The study's parent run holds the headline numbers, the report and the figures."""
    from lottery.tracking.recorder import StudyRecorder

    recorder = StudyRecorder(params.study.name, params.study_hash(), params.as_dict())
    summary = io.read_json(lay.summary_metrics_path())
    headline = {
        k: float(v)
        for k, v in summary.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    recorder.log_summary(recorder.parent_id, headline)
    fig_root = lay.figures_dir().resolve()
    recorder.log_artifacts(
        recorder.parent_id,
        [
            (lay.report_path(), "report"),
            (lay.summary_metrics_path(), "report"),
            *(
                (p, _artifact_dir("figures", p.parent.relative_to(fig_root)))
                for p in figures.values()
            ),
        ],
    )
