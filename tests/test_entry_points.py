"""The entry points (stage scripts and `lottery`) as a user meets them: file modes under the
umask, params.yaml read as DVC reads it, one-line refusals of unknown sections and stages,
the project found from a subdirectory, presets that keep edits, and Ctrl-C, SIGTERM and a
closed pipe ending quietly with the usual exit status."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, base_env, copy_study, make_project, run, write_params
from tests.helpers import all_runs, local_store, mlflow_client, wait_for


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh tiny project in its own git repo (never run): for commands that edit it."""
    return make_project(tmp_path / "project")


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def test_new_files_honour_the_umask_and_rewritten_files_keep_their_mode(tmp_path: Path) -> None:
    from lottery.core import io

    old = os.umask(0o027)
    try:
        io.write_text(tmp_path / "new.txt", "x")
        io.write_json(tmp_path / "sub" / "new.json", {"a": 1})
        io.save_npz(tmp_path / "new.npz", {"a": np.zeros(3)})
        for name in ("new.txt", "sub/new.json", "new.npz"):
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name
        os.umask(0o022)
        io.write_text(tmp_path / "other.txt", "x")
        assert (tmp_path / "other.txt").stat().st_mode & 0o777 == 0o644
        (tmp_path / "tracked.yaml").write_text("a: 1\n")
        os.chmod(tmp_path / "tracked.yaml", 0o664)
        io.write_text(tmp_path / "tracked.yaml", "a: 2\n")  # an existing file keeps its mode
        assert (tmp_path / "tracked.yaml").stat().st_mode & 0o777 == 0o664
        assert (tmp_path / "tracked.yaml").read_text() == "a: 2\n"
    finally:
        os.umask(old)


def test_lottery_rounds_keeps_params_yaml_mode_and_git_sees_no_mode_change(
    project: Path,
) -> None:
    params = project / "params.yaml"
    assert params.stat().st_mode & 0o777 == 0o644
    run(project, "lottery", "rounds", "3")
    assert params.stat().st_mode & 0o777 == 0o644
    assert "rounds: 3" in params.read_text()
    diff = run(project, "git", "diff", "--summary").stdout
    assert "mode change" not in diff, diff


def test_stage_outputs_honour_the_umask(tiny_study: Path) -> None:
    """Everything the pipeline wrote under umask 022 (the tests' default) is 644."""
    assert os.umask(os.umask(0o022)) == 0o022
    written = [
        *(tiny_study / "metrics").rglob("*.json"),
        *(tiny_study / "reports").rglob("*.*"),
        *(tiny_study / "mlruns").rglob("*.npz"),
    ]
    assert len(written) > 20
    owner_only = [str(p) for p in written if p.is_file() and p.stat().st_mode & 0o044 != 0o044]
    assert owner_only == []


def test_params_yaml_is_read_as_dvc_reads_it(tmp_path: Path) -> None:
    """YAML 1.2 (DVC's ruamel): `1e-3` is a number; PyYAML's YAML 1.1 makes it a string."""
    from dvc.utils.serialize import parse_yaml

    from lottery.core.params import load_params, read_yaml

    text = (
        (ROOT / "params.yaml").read_text().replace("learning_rate: 0.0012", "learning_rate: 1e-3")
    )
    assert "learning_rate: 1e-3" in text
    (tmp_path / "params.yaml").write_text(text)
    assert yaml.safe_load(text)["train"]["learning_rate"] == "1e-3"  # the old reading
    assert load_params(tmp_path / "params.yaml").train.learning_rate == 0.001
    tricky = "a: 1e-3\nb: yes\nc: 0o17\nd: 017\ne: .5\nf: 1_000\ng: on\nh: 1:20\n"
    assert read_yaml(tricky) == parse_yaml(tricky, "params.yaml")
    full = (ROOT / "params.yaml").read_text()
    assert read_yaml(full) == parse_yaml(full, "params.yaml")


STAGE_SCRIPTS = [
    ["stages/prepare.py"],
    ["stages/init.py"],
    ["stages/train.py", "ticket", "r00"],
    ["stages/train.py", "reinit", "r01"],
    ["stages/visualise.py"],
    ["stages/report.py"],
]


def test_every_entry_point_refuses_an_unknown_section(project: Path) -> None:
    params = project / "params.yaml"
    params.write_text(params.read_text() + "\noptimizer:\n  momentum: 0.9\n")
    commands = [[sys.executable, *s] for s in STAGE_SCRIPTS]
    commands += [["lottery", "rounds", "3"], ["lottery", "audit"]]
    for cmd in commands:
        proc = run(project, *cmd, check=False, timeout=300)
        assert proc.returncode == 2, (cmd, proc.stderr)
        line = proc.stderr.strip()
        assert "\n" not in line, (cmd, proc.stderr)
        assert line.startswith("error: ") and "unknown key optimizer" in line, (cmd, line)
        assert "sections are study, data, model, train, prune, controls" in line, line
    assert not (project / "artifacts").exists() and not (project / "metrics").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ticket", "rXX"], "usage: python stages/train.py {ticket,reinit,random} rNN"),
        (["pruned", "r01"], "usage: python stages/train.py"),
        (["ticket"], "usage: python stages/train.py"),
        (["reinit", "r00"], "no stage reinit@r00 (controls start at round 1"),
        (["ticket", "r07"], "so its ticket stages are r00 to r02. For more rounds run `lottery"),
        (["random", "r03"], "no stage random@r03: the random stages are r01, r02"),
    ],
)
def test_train_stage_refuses_stages_dvc_yaml_lacks(
    bare_project: Path, args: list[str], expected: str
) -> None:
    proc = run(bare_project, sys.executable, "stages/train.py", *args, check=False, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert not (bare_project / "artifacts").exists()


def test_cli_finds_the_project_from_a_subdirectory(
    project: Path, tiny_study: Path, tmp_path: Path
) -> None:
    sub = project / "docs" / "deep"
    sub.mkdir(parents=True)
    run(sub, "lottery", "rounds", "3")
    assert "rounds: 3" in (project / "params.yaml").read_text()
    assert not (sub / "params.yaml").exists()
    run(project, "git", "commit", "-qam", "3 rounds")
    proc = run(sub, "lottery", "preset", "paper")
    assert (project / "params.yaml").read_bytes() == (project / "presets/paper.yaml").read_bytes()
    assert "now holds preset 'paper'" in proc.stdout
    # --params is relative to where the user stands; the store and files to the project.
    reports = tiny_study / "reports"  # an existing subdirectory: nothing is written there
    proc = run(reports, "lottery", "audit", "--json", "--params", "../params.yaml", check=False)
    result = json.loads(proc.stdout)
    assert proc.returncode == 0, result["problems"]
    assert result["root"] == str(tiny_study) and result["problems"] == []
    assert str(tiny_study / "mlflow.db") in result["tracking_uri"]
    elsewhere = tmp_path / "elsewhere"  # no project at or above it
    elsewhere.mkdir()
    outside = run(elsewhere, "lottery", "rounds", check=False)
    assert outside.returncode == 2 and "is not inside a lottery project" in outside.stderr


def test_preset_keeps_edits_unless_forced(project: Path) -> None:
    params = project / "params.yaml"
    edited = params.read_text().replace("seed: 0", "seed: 7")
    assert edited != params.read_text()
    params.write_text(edited)
    proc = run(project, "lottery", "preset", "paper", check=False)
    assert proc.returncode == 2
    assert "has edits not committed to git" in proc.stderr and "--force" in proc.stderr
    assert proc.stderr.count("\n") == 1 and params.read_text() == edited
    proc = run(project, "lottery", "preset", "paper", "--force")
    assert "your version is kept in" in proc.stdout
    assert (project / "params.yaml.bak").read_text() == edited
    assert params.read_bytes() == (project / "presets/paper.yaml").read_bytes()
    assert params.stat().st_mode & 0o777 == 0o644
    # What git holds is never lost: a committed params.yaml is replaced without --force.
    run(project, "git", "checkout", "-q", "params.yaml")
    run(project, "lottery", "preset", "paper")


def test_closed_pipe_ends_quietly_with_141(tiny_study: Path) -> None:
    """`lottery audit --json | head -c 0`: the reader is gone before the audit prints."""
    proc = subprocess.Popen(
        ["lottery", "audit", "--json"],
        cwd=tiny_study,
        env=base_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader exits at once
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=600) == 141, err
    assert err == "", err  # like git or cat: no traceback, no "Exception ignored"


def test_ctrl_c_during_training_exits_130_and_marks_runs_interrupted(
    tiny_study: Path, tmp_path: Path
) -> None:
    project = copy_study(tiny_study, tmp_path / "study")
    write_params(project, {"train": {"iterations": 3000, "eval_every": 100, "test_every": 500}})
    client = mlflow_client(local_store(project))
    before = {r.info.run_id for r in all_runs(client)}
    log = tmp_path / "stage.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "stages/train.py", "ticket", "r01"],
            cwd=project,
            env=base_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches the whole foreground group
        )
        try:
            wait_for(log, "[ticket@r01] iteration", proc, timeout=600)
            os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text(errors="replace")
    assert code == 130, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert last_line(text).startswith("interrupted: the stage stopped by Ctrl-C"), text[-2000:]
    assert "2 MLflow run(s) marked FAILED (interrupted)" in last_line(text)
    new = [
        client.get_run(r.info.run_id)
        for r in all_runs(client)
        if r.info.run_id not in before and r.data.tags.get("lottery.kind") != "study"
    ]
    assert len(new) == 2  # one per trial (the new params made a new, FINISHED study run)
    for r in new:
        assert r.info.status == "FAILED"
        assert r.data.tags["lottery.failure"] == "interrupted"
    assert (project / "metrics/ticket/r01.json").read_bytes() == (
        tiny_study / "metrics/ticket/r01.json"
    ).read_bytes()


def test_sigterm_exits_143(bare_project: Path) -> None:
    """SIGTERM (a queue worker stopped, `kill`): one line, 143, after the stage's cleanup."""
    code = (
        "import sys, time\n"
        "from lottery.study.entry import stage_main\n"
        "def stage(params):\n"
        "    try:\n"
        "        print('ready', file=sys.stderr, flush=True)\n"
        "        time.sleep(120)\n"
        "    finally:\n"
        "        print('cleaned up', file=sys.stderr, flush=True)\n"
        "stage_main(stage)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=bare_project,
        env=base_env({"PYTHONPATH": str(bare_project)}),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert proc.stderr.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err == "cleaned up\nterminated: the stage stopped by SIGTERM.\n", err
