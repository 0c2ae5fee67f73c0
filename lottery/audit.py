"""`lottery audit`: walk masks back to θ0 and check that files, dvc.lock and MLflow agree.

For every mask audited (one file, or every mask of the study: m_0 from init, each ticket
round's `next_mask.npz`, each control's `mask.npz`) the chain is followed through the
lineage sidecars (`parent_path`) down to m_0 and θ0. Each link is checked three ways:

- the file: its canonical hash (`mask_hash` / `weights_hash`) against the hash its lineage
  JSON (or `theta0.json`) records, the parent's hash against the child's `parent_sha256`,
  θ0's hash against every link's `theta0_sha256`, the round/trial/condition/stage the
  lineage records against where the file lies, and the init and trained weights hashes;
- DVC: the md5 `dvc.lock` recorded for the stage output holding the file (a directory
  output's per-file md5s come from its `.dir` manifest in DVC's cache) against the md5
  of the file on disk, and the stage that output belongs to against the lineage's stage;
- MLflow: the run the lineage names exists, is not deleted (its lifecycle stage, nor its
  experiment's), and FINISHED; its `lottery.*` tags (mask, parent mask, θ0, start
  weights, params hashes, stage, trial, round) agree with the files; the mask and
  lineage artifacts it logged equal the files on disk.

Every RUNNING run of the store is checked too: one whose owning process (`lottery.host`,
`.pid`, `.pid_start`) is gone is an orphan, a disagreement until `--repair` marks it
FAILED with the reason; one owned by another host is listed, since its process cannot be
checked from here.

Other finished runs of the same stage with the same result hash are reproductions (a
forced rerun makes new runs with the same hashes): reported, not errors.
Exit status: 0 when everything agrees, 1 naming each disagreement otherwise.

The checks live in one module each: `audit_chain` (files and lineage), `audit_dvc`,
`audit_mlflow`; `audit_links` holds what they record, `audit_render` the text output.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lottery.audit_chain import Auditor, study_masks
from lottery.audit_render import render
from lottery.errors import UserError
from lottery.params import load_params

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

OK, FAILED = 0, 1


def audit(
    target: str | None,
    params_file: str | Path = "params.yaml",
    root: Path | None = None,
    repair: bool = False,
) -> tuple[dict[str, Any], Auditor]:
    """Audit `target` (a mask path, relative to the current directory) or every mask.

    `params_file` relative paths are read from the current directory; `root` defaults to
    the project holding it. With `repair`, orphaned RUNNING runs are first marked FAILED."""
    from lottery.tracking import project_root, tracking_uri

    root = root or project_root()
    if target is None:
        params_path = Path(params_file)
        if not params_path.is_absolute():
            params_path = Path.cwd() / params_path
        targets = study_masks(load_params(params_path))
    else:
        p = Path(target)
        p = p.resolve() if p.is_absolute() else (Path.cwd() / p).resolve()
        try:
            targets = [p.relative_to(root).as_posix()]
        except ValueError:
            raise UserError(f"{target} is not inside the project {root}") from None
        if not p.is_file():
            raise UserError(f"{target}: no such mask file")
    auditor = Auditor(root, tracking_uri())
    running = auditor.runs.running(repair) if auditor.runs.client() is not None else []
    try:
        for rel in targets:
            auditor.mask(rel)
    finally:
        auditor.runs.cleanup()
    problems = auditor.problems()
    result = {
        "ok": not problems,
        "root": str(root),
        "tracking_uri": auditor.uri,
        "targets": targets,
        "chains": {rel: auditor.chain(rel) for rel in targets},
        "links": [
            {k: v for k, v in asdict(lk).items() if k != "problems"}
            for lk in auditor.links.values()
        ],
        "reproductions": {
            lk.path: lk.reproductions for lk in auditor.links.values() if lk.reproductions
        },
        "running": running,
        "problems": [asdict(p) for p in problems],
    }
    return result, auditor


def main(
    target: str | None,
    as_json: bool = False,
    params_file: str | Path = "params.yaml",
    root: Path | None = None,
    repair: bool = False,
) -> int:
    result, auditor = audit(target, params_file, root, repair)
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(render(result, auditor))
    return OK if result["ok"] else FAILED
