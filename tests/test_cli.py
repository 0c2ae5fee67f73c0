"""The `lottery` command as a first-time user meets it: its help, its version, the presets
it offers, and what it does to params.yaml (a second `preset --force` keeps the first
backup; CRLF line ends stay CRLF)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT, make_project, run


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


def test_version_and_help_speak_to_a_user() -> None:
    proc = run(ROOT, "lottery", "--version")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert proc.stdout.strip() == f"lottery {version}"
    text = run(ROOT, "lottery", "--help").stdout
    for internal in ("stage_main", "lottery.errors", "entry point", "`COMMANDS`"):
        assert internal not in text, internal
    for command in ("preset", "rounds", "audit", "bench", "dvc repro"):
        assert command in text, command
    assert max(len(line) for line in text.splitlines()) <= 100


def test_preset_help_lists_the_presets() -> None:
    text = run(ROOT, "lottery", "preset", "--help").stdout
    presets = sorted(p.stem for p in (ROOT / "presets").glob("*.yaml"))
    assert presets
    listed = text.split("presets (presets/NAME.yaml):", 1)[1]
    for name in presets:
        assert f"\n  {name} " in listed, (name, listed)
    assert "The paper's LeNet-300-100 settings" in listed


def test_a_second_forced_preset_keeps_the_first_backup(project: Path) -> None:
    params = project / "params.yaml"
    first = params.read_text().replace("seed: 0", "seed: 7")
    params.write_text(first)
    run(project, "lottery", "preset", "paper", "--force")
    assert (project / "params.yaml.bak").read_text() == first
    second = params.read_text().replace("seed: 0", "seed: 8")
    params.write_text(second)
    proc = run(project, "lottery", "preset", "fashion-mnist", "--force")
    assert "params.yaml.bak.1" in proc.stdout
    assert (project / "params.yaml.bak").read_text() == first
    assert (project / "params.yaml.bak.1").read_text() == second
    # The same edits again are not copied twice.
    params.write_text(second)
    proc = run(project, "lottery", "preset", "paper", "--force")
    assert "params.yaml.bak.1" in proc.stdout and not (project / "params.yaml.bak.2").exists()


def test_rounds_keeps_crlf_line_ends(project: Path) -> None:
    params = project / "params.yaml"
    params.write_bytes(params.read_bytes().replace(b"\n", b"\r\n"))
    run(project, "lottery", "rounds", "3")
    data = params.read_bytes()
    assert b"rounds: 3\r\n" in data
    assert data.count(b"\r\n") == data.count(b"\n"), "a line lost its CR"
    run(project, "dvc", "status")  # DVC reads it as it is
