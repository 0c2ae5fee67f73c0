"""The audit's text output: each θ0's tree of links (controls of a round before the next
round's mask), reproductions, the machine kinds that trained the runs, RUNNING runs, then the
problems or the verdict."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lottery.audit.chain import Auditor
from lottery.audit.links import Link, Problem
from lottery.audit.render import machine_lines, render
from tests.audit.chain_files import ARCH, M0, M1, THETA0, chain_lock, make_chain

M2 = "artifacts/ticket/r01/t0/next_mask.npz"
REINIT = "artifacts/reinit/r01/t0-rep0/mask.npz"
RANDOM = "artifacts/random/r01/t0/mask.npz"


def result(auditor: Auditor, targets: list[str], running: list[dict[str, Any]]) -> dict[str, Any]:
    """What `lottery.audit.main` hands `render` (its `--json`), for these links."""
    return {
        "root": "/study",
        "tracking_uri": "sqlite:////study/mlflow.db",
        "targets": targets,
        "running": running,
        "problems": [asdict(p) for p in auditor.problems()],
    }


def sha(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def row(label: str, path: str, status: str = "ok") -> str:
    return f"{label}  {path}  sha256 {sha(path)[:16]}  stage stage  run -  {status}"


def hand_made(tmp_path: Path) -> Auditor:
    """An auditor holding links as a walk of a study with both controls leaves them."""
    auditor = Auditor(tmp_path, "sqlite:///unused.db", ARCH)
    auditor.general.clear()  # no dvc.lock here: not what these tests are about

    def add(path: str, label: str, parent: str | None, rnd: int | None, cond: str | None) -> None:
        kind = "mask" if parent else "theta0"
        link = Link(path, kind, label, 0, sha(path), sha(path), "stage", None, parent, cond, rnd)
        auditor.links[path] = link

    add(M2, "m_2", M1, 2, "ticket")  # reached first: the order of the tree is its own
    add(RANDOM, "random m_1", M1, 1, "random")
    add(REINIT, "reinit m_1 repeat 0", M1, 1, "reinit")
    add(M1, "m_1", M0, 1, "ticket")
    add(M0, "m_0", THETA0, 0, "ticket")
    add(THETA0, "θ0", None, None, None)
    return auditor


def test_the_tree_puts_a_rounds_controls_before_the_next_mask(tmp_path: Path) -> None:
    auditor = hand_made(tmp_path)
    auditor.links[M2].reproductions = ["r" * 32]
    assert render(result(auditor, [M2, REINIT, RANDOM], []), auditor).split("\n") == [
        "audit of 3 mask(s) in /study",
        "MLflow: sqlite:////study/mlflow.db",
        "",
        row("θ0", THETA0),
        "└─ " + row("m_0", M0),
        "   └─ " + row("m_1", M1),
        "      ├─ " + row("reinit m_1 repeat 0", REINIT),
        "      ├─ " + row("random m_1", RANDOM),
        "      └─ " + row("m_2", M2),
        f"            reproduction: run {'r' * 32} (same stage, same hash)",
        "",
        "OK: 6 links agree: files, lineage, dvc.lock and MLflow; 1 reproduction run(s).",
    ]


def test_running_runs_and_problems_end_it(tmp_path: Path) -> None:
    auditor = hand_made(tmp_path)
    auditor.links[M1].problems.append(Problem(M1, "file", "mask hashes to …"))
    auditor.general.append(Problem("dvc.lock", "dvc", "no dvc.lock"))
    entry = {"run_name": "n", "stage": "dense", "pid": "7", "host": "h", "where": None}
    running = [
        {**entry, "run_id": "a", "owner": "alive", "repaired": False},
        {**entry, "run_id": "g", "owner": "gone", "repaired": True},
        {**entry, "run_id": "e", "owner": "elsewhere", "repaired": False, "where": "host x"},
    ]
    text = render(result(auditor, [M2], running), auditor)
    assert "   └─ " + row("m_1", M1, "1 problem(s)") in text
    assert text.endswith(
        "\n\nRUNNING run a (n, stage dense, pid 7): in progress\n"
        "RUNNING run g (n, stage dense, pid 7): ORPHAN (process gone); marked FAILED (--repair)\n"
        "RUNNING run e (n, stage dense, pid 7): on host x: not checkable from here\n"
        "FAILED: 2 disagreement(s):\n"
        "  - dvc.lock [dvc]: no dvc.lock\n"
        f"  - {M1} [file]: mask hashes to …"
    )


def test_a_walked_chain_renders_its_run_and_its_unreadable_hash(tmp_path: Path) -> None:
    make_chain(tmp_path)
    (tmp_path / "dvc.lock").write_text(chain_lock(tmp_path))
    (tmp_path / M0).write_bytes(b"not a mask")
    auditor = Auditor(tmp_path, "sqlite:///unused.db", ARCH)
    auditor.mask(M1)
    auditor.links[M1].run_id = "f" * 32
    text = render(result(auditor, [M1], []), auditor)
    assert f"└─ m_0  {M0}  sha256 unreadable  stage init  run -  " in text
    assert f"run {'f' * 32}  " in text
    assert "FAILED: " in text and "OK:" not in text


AMD = "AMD EPYC; x86_64: sse4_2 avx avx2 fma, 2 threads"
INTEL = "Intel(R) Xeon(R); x86_64: sse4_2 avx avx2 fma avx512f, 2 threads"


def test_the_machine_kinds_that_trained_the_runs_come_before_the_verdict(tmp_path: Path) -> None:
    auditor = hand_made(tmp_path)
    res = result(auditor, [M2], []) | {"machines": {AMD: 5}, "this_machine": AMD}
    lines = render(res, auditor).split("\n")
    assert lines[-2:] == [
        f"trained on: {AMD} (5 run(s)); this machine's kind: a rebuild here gives the same bits",
        "OK: 6 links agree: files, lineage, dvc.lock and MLflow.",
    ]
    assert machine_lines({AMD: 5}, INTEL) == [
        f"trained on: {AMD} (5 run(s)); not this machine's ({INTEL}): a rebuild here may "
        "give other bits"
    ]
    assert machine_lines({AMD: 3, INTEL: 2}, INTEL) == [
        "trained on 2 machine kinds (each run's bits rebuild only on its own):",
        f"  {AMD}: 3 run(s)",
        f"  {INTEL}: 2 run(s)  (this machine)",
    ]
    assert machine_lines({}, AMD) == []  # no MLflow runs audited (θ0 and m_0 only)
