"""`lottery audit`: walk masks back to θ0 and check that files, dvc.lock and MLflow agree.

For every mask audited (one file, or every mask of the study: m_0 from init, each ticket
round's `next_mask.npz`, each control's `mask.npz`) the chain is followed through the
lineage sidecars (`parent_path`) down to m_0 and θ0. Each link is checked four ways:

- the file: its canonical hash (`mask_hash` / `weights_hash`) against the hash its lineage
  JSON (or `theta0.json`) records, the parent's hash against the child's `parent_sha256`,
  θ0's hash against every link's `theta0_sha256`, the round/trial/condition/stage the
  lineage records against where the file lies, and the init and trained weights hashes;
- DVC: the md5 `dvc.lock` recorded for the stage output holding the file (a directory
  output's per-file md5s come from its `.dir` manifest in DVC's cache; without it, the
  directory's own hash) against the md5 of the file on disk, and the stage that output
  belongs to against the lineage's stage; a dvc.lock that records nothing is a problem;
- MLflow: the run the lineage names exists, is not deleted (its lifecycle stage, nor its
  experiment's), and FINISHED; its `lottery.*` tags (mask, parent mask, θ0, start
  weights, params hashes, stage, trial, round) agree with the files; the mask and
  lineage artifacts it logged equal the files on disk;
- the study: a link whose lineage records another params hash than params.yaml's must
  come from params equal to params.yaml's in every key its stage depends on (as the
  MLflow run logged them), so a study whose rounds grew passes and another study's files
  do not; a ticket's pruned mask was cut from the weights `prune.point` names
  (`pruned_from`).

Every RUNNING run of the store is checked too: one whose owning process (`lottery.host`,
`.boot_id`, `.pid_ns`, `.pid`, `.pid_start`) is gone is an orphan, a disagreement until
`--repair` marks it FAILED with the reason; one owned by another host, boot or PID
namespace is listed, since its process cannot be checked from here.

Other finished runs of the same stage with the same result hash are reproductions (a
forced rerun makes new runs with the same hashes): reported, not errors. So are the machine
kinds the runs trained on (CPU family and thread count, `lottery.core.machine.trained_on`),
against this machine's: a study rebuilds bit for bit only on the kind that trained it.
Exit status: 0 when everything agrees, 1 naming each disagreement otherwise.

The checks live in one module each: `chain` (the walk, files and lineage), `dvc`,
`mlflow_runs`, `orphans` (the RUNNING runs), `study`; `links` holds what they record,
`places` what a mask's place implies, `render` the text output.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lottery.audit.chain import Auditor
from lottery.audit.orphans import OrphanSweep
from lottery.audit.places import study_masks
from lottery.audit.render import render
from lottery.core import paths
from lottery.core.errors import UserError
from lottery.core.machine import this_machine
from lottery.core.params import Params, load_params

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

OK, FAILED = 0, 1


MASK_PLACES = (
    "m_0 (artifacts/init/tN/mask.npz), a ticket round's pruned mask "
    "(artifacts/ticket/rNN/tN/next_mask.npz) or a control's mask "
    "(artifacts/{reinit,random}/rNN/KEY/mask.npz)"
)


def not_a_mask(target: Path, rel: str) -> str:
    """Why `rel` (an existing file) cannot be audited, and what to audit instead."""
    init = re.match(r"^artifacts/init/([^/]+)/theta0\.(npz|json)$", rel)
    if init:
        return (
            f"{target} is θ0, where every chain ends, not a mask: `lottery audit "
            f"artifacts/init/{init[1]}/mask.npz` checks it, as every mask's audit of "
            "its trial does"
        )
    npz = rel.removesuffix(".json") + ".npz"
    if rel.endswith(".json") and paths.parse_mask_path(npz) is not None:
        return f"{target} is the lineage of a mask: `lottery audit {npz}` checks both"
    return (
        f"{target} is not a mask of the study: `lottery audit` takes {MASK_PLACES}, or "
        "nothing to audit every mask"
    )


def targets_of(target: Path | None, params: Params, root: Path) -> list[str]:
    """The masks to audit (relative to `root`): `target`, or every mask the params define.

    A relative `target` is relative to `root`; a file that is no mask is a `UserError`
    saying what to audit instead."""
    if target is None:
        return study_masks(params)
    p = (root / target).resolve()
    try:
        rel = p.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise UserError(f"{target} is not inside the project {root}") from None
    if not p.is_file():
        raise UserError(f"{target}: no such mask file")
    if paths.parse_mask_path(rel) is None:
        raise UserError(not_a_mask(target, rel))
    return [rel]


def _result(auditor: Auditor, targets: list[str], root: Path, running: Any) -> dict[str, Any]:
    """The audit's answer as plain data (what `--json` prints)."""
    problems = auditor.problems()
    machines = Counter(lk.machine for lk in auditor.links.values() if lk.machine)
    return {
        "ok": not problems,
        "root": str(root),
        "tracking_uri": auditor.store.uri,
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
        # {machine kind: runs}: a study rebuilds bit for bit only on the kind that trained it
        "machines": dict(sorted(machines.items())),
        "this_machine": this_machine(),
        "problems": [asdict(p) for p in problems],
    }


def audit(
    target: Path | None, params_file: Path, root: Path, repair: bool = False
) -> tuple[dict[str, Any], Auditor]:
    """Audit `target` (a mask file) or every mask of the study at `root`, whose network is
    the one its params (`params_file`, relative to `root`) name.

    With `repair`, orphaned RUNNING runs are first marked FAILED."""
    from lottery.tracking.store import tracking_uri

    params = load_params(root / params_file)
    targets = targets_of(target, params, root)
    auditor = Auditor(root, tracking_uri(), params.architecture(), params)
    running = OrphanSweep(auditor.store, auditor.general).running(repair)
    try:
        for rel in targets:
            auditor.mask(rel)
    finally:
        auditor.cleanup()
    return _result(auditor, targets, root, running), auditor


def main(
    target: Path | None,
    as_json: bool,
    params_file: Path,
    root: Path,
    repair: bool = False,
) -> int:
    """`lottery audit`: print the audit (text, or JSON with `as_json`); its exit status."""
    result, auditor = audit(target, params_file, root, repair)
    if as_json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        print(render(result, auditor))
    return OK if result["ok"] else FAILED
