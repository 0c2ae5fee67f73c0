"""What DVC's run cache restores, and that docs/scaling.md says so.

DVC saves a run-cache entry only for a stage whose outputs are all cached, or are metrics
or plots (`Stage.run`: `run_cache=not no_cache_outs`). The training stages and the report
write `cache: false` outputs that are neither, so params that go back to earlier values
(seed 0 -> 1 -> 0) train them again: the docs must not promise otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT, ran_stages, run


def stage_outs(stage: dict[str, Any]) -> list[Any]:
    body = stage.get("do", stage)
    outs: list[Any] = body.get("outs") or []
    return outs


def run_cached(dvc_yaml: dict[str, Any]) -> dict[str, bool]:
    """Each stage of dvc.yaml (a foreach stage by its name) -> whether DVC's run cache can
    hold it: no output under `outs` has `cache: false`."""
    out = {}
    for name, stage in dvc_yaml["stages"].items():
        uncached = [
            o
            for o in stage_outs(stage)
            if isinstance(o, dict) and any(v.get("cache") is False for v in o.values())
        ]
        out[name] = not uncached
    return out


def listed(text: str, prefix: str) -> set[str]:
    """The stage names of the docs' line starting with `prefix` (`ticket@rNN` -> ticket)."""
    line = next(ln for ln in text.splitlines() if ln.startswith(prefix))
    return {name.split("@")[0] for name in re.findall(r"`([^`]+)`", line)}


def test_the_docs_name_the_stages_the_run_cache_holds() -> None:
    cached = run_cached(yaml.safe_load((ROOT / "dvc.yaml").read_text()))
    assert not cached["dense"] and not cached["report"]  # today's dvc.yaml
    text = (ROOT / "docs" / "scaling.md").read_text()
    assert listed(text, "- in the run cache:") == {s for s, ok in cached.items() if ok}
    assert listed(text, "- not in the run cache:") == {s for s, ok in cached.items() if not ok}
    assert "lets\n`dvc repro` elsewhere restore a stage" not in text  # the old promise


DVC_YAML = """\
stages:
  plain:
    cmd: python -c "print(${seed})" > plain.txt && echo {} > plain.json
    params: [seed]
    outs:
      - plain.txt
      - plain.json:
          cache: false
  metric:
    cmd: python -c "print(${seed})" > metric.txt && echo {} > metric.json
    params: [seed]
    outs:
      - metric.txt
    metrics:
      - metric.json:
          cache: false
"""


def test_dvc_restores_a_stage_only_when_its_uncached_outputs_are_metrics(tmp_path: Path) -> None:
    """The rule the docs state, on a two-stage pipeline in a real DVC repository."""
    project = tmp_path / "toy"
    project.mkdir()
    run(project, "git", "init", "-q", "-b", "main")
    run(project, "dvc", "init", "-q")
    (project / "dvc.yaml").write_text(DVC_YAML)
    for seed in (0, 1):
        (project / "params.yaml").write_text(f"seed: {seed}\n")
        assert sorted(ran_stages(run(project, "dvc", "repro").stdout)) == ["metric", "plain"]
    (project / "params.yaml").write_text("seed: 0\n")
    back = run(project, "dvc", "repro").stdout
    assert ran_stages(back) == ["plain"], back
    assert "Stage 'metric' is cached - skipping run" in back, back
