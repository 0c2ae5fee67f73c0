"""dvc.yaml tells the truth: code deps, plots, and the install files around the pipeline.

- Each stage's code deps are exactly the import closure of its script (computed here with
  `ast`), so a code change reruns every stage it can affect and no other.
- `dvc plots show` renders every declared plot, and warns about nothing when a control is off.
- One lock per platform, all pinning the same versions; `scripts/setup.sh` picks the lock
  and reinstalls when LOTTERY_GPU changes.
"""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lottery.analysis import results
from lottery.report import dvc_tables
from tests.conftest import ROOT, copy_study, ran_stages, run, write_params
from tests.importgraph import PACKAGE, import_closure


def stage_definitions(root: Path) -> dict[str, dict]:
    """dvc.yaml's stages, a foreach stage by its `do` body."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return {name: s.get("do", s) for name, s in stages.items()}


def stage_script(stage: dict) -> str:
    scripts = [w for w in stage["cmd"].split() if w.endswith(".py")]
    assert len(scripts) == 1, f"expected one python script in {stage['cmd']!r}"
    return scripts[0]


def code_deps(stage: dict) -> set[str]:
    """The deps that are code: Python files, or anything under lottery/ or stages/."""
    deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
    return {d for d in deps if d.endswith(".py") or d.split("/")[0] in (PACKAGE, "stages")}


def test_code_deps_are_the_import_closure_of_each_stage_script() -> None:
    problems = []
    for name, stage in stage_definitions(ROOT).items():
        script = stage_script(stage)
        closure = import_closure(ROOT / script, ROOT)
        listed = code_deps(stage)
        if missing := sorted(closure - listed):
            problems.append(f"{name}: dvc.yaml lacks {missing} ({script} imports them)")
        if extra := sorted(listed - closure):
            problems.append(f"{name}: dvc.yaml lists {extra}, which {script} never imports")
    assert not problems, "code deps of dvc.yaml are not true:\n" + "\n".join(problems)


def test_closure_follows_every_import_form(tmp_path: Path) -> None:
    pkg = tmp_path / PACKAGE
    (tmp_path / "stages").mkdir()
    pkg.mkdir()
    files = {
        "lottery/__init__.py": "",
        "lottery/a.py": "from lottery import b\n",
        "lottery/b.py": "def f():\n    from lottery.c import thing\n    return thing\n",
        "lottery/c.py": "import lottery.d\nthing = 1\n",
        "lottery/d.py": "from . import e\n",
        "lottery/e.py": "from .f import g\n",
        "lottery/f.py": "g = 1\n",
        "lottery/typed.py": "",
        "lottery/unused.py": "",
        "lottery/g.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from lottery import typed\n"
            "else:\n    import lottery.h\n"
        ),
        "lottery/h.py": "import numpy\n",
        "stages/_helper.py": "",
        "stages/run.py": "import _helper\nfrom lottery.a import b\nimport lottery.g\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    got = import_closure(tmp_path / "stages/run.py", tmp_path)
    assert got == set(files) - {"lottery/typed.py", "lottery/unused.py"}


def test_changing_the_seed_streams_stales_init_and_everything_downstream(
    tiny_study: Path, tmp_path: Path
) -> None:
    study = copy_study(tiny_study, tmp_path / "study")
    # The module that derives θ0's seed (whichever module defines `rng_for`): give θ0 a
    # different seed stream id, a pure code change.
    (seeding,) = [p for p in (study / PACKAGE).rglob("*.py") if "def rng_for(" in p.read_text()]
    text, n = re.subn(r'"theta0": 0\b', '"theta0": 7', seeding.read_text())
    assert n == 1, f'no `"theta0": 0` seed stream id in {seeding.name} to change'
    seeding.write_text(text)
    rel = seeding.relative_to(study).as_posix()
    status = json.loads(run(study, "dvc", "status", "--json").stdout)
    locked = set(yaml.safe_load((study / "dvc.lock").read_text())["stages"])
    downstream = locked - {"prepare"}  # every stage reads θ0 through init, directly or not
    assert downstream <= set(status), f"not marked changed: {sorted(downstream - set(status))}"
    changed = [e["changed deps"] for e in status["init"] if "changed deps" in e]
    assert changed and changed[0].get(rel) == "modified", status["init"]


# ---------------------------------------------------------------- dvc plots


class _PlotsHtml(HTMLParser):
    """The vega divs (id -> spec) and images of `dvc plots show`'s index.html."""

    def __init__(self) -> None:
        super().__init__()
        self.div: str | None = None
        self.specs: dict[str, dict] = {}
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and a.get("id"):
            self.div = a["id"]
        elif tag == "img" and a.get("src"):
            self.images.append(str(a["src"]))

    def handle_data(self, data: str) -> None:
        m = re.search(r"var spec = (\{.*\});\s*vegaEmbed", data, re.DOTALL)
        if self.div is not None and m:
            self.specs[self.div] = json.loads(m.group(1))


def declared_plots(root: Path) -> tuple[dict[str, dict], list[str]]:
    """dvc.yaml's data plots (id -> props) and its image files (a directory: every image)."""
    data: dict[str, dict] = {}
    images: list[str] = []
    for entry in yaml.safe_load((root / "dvc.yaml").read_text())["plots"]:
        ((plot_id, props),) = entry.items() if isinstance(entry, dict) else [(entry, None)]
        if props and "y" in props:
            data[plot_id] = props
        elif (root / plot_id).is_dir():
            images += sorted(
                p.relative_to(root).as_posix() for p in (root / plot_id).rglob("*.png")
            )
        else:
            images.append(plot_id)
    return data, images


def with_templates(study: Path) -> Path:
    """The project's plot templates in a copied study (the fixture copies the pipeline)."""
    shutil.copytree(ROOT / ".dvc/plots", study / ".dvc/plots", dirs_exist_ok=True)
    return study


def test_plots_show_renders_every_declared_plot(tiny_study: Path, tmp_path: Path) -> None:
    study = with_templates(copy_study(tiny_study, tmp_path / "study"))
    data, images = declared_plots(study)
    assert {"accuracy_vs_remaining", "end_accuracy_vs_remaining"} <= set(data)
    assert {"early_stop_vs_remaining", "learning_curves_val_accuracy"} <= set(data)
    # The summary figures only: the mask images are a group of their own (below).
    assert sorted(images) == sorted(
        p.relative_to(study).as_posix() for p in (study / "reports/figures").glob("*.png")
    )
    assert len(images) == 5 and not any("masks" in i for i in images)
    shown = json.loads(run(study, "dvc", "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    assert set(shown["data"]) == set(data) | set(images)
    out = tmp_path / "html"
    proc = run(study, "dvc", "plots", "show", "-o", str(out))
    assert "failed to load" not in proc.stdout + proc.stderr
    page = _PlotsHtml()
    page.feed((out / "index.html").read_text())
    assert set(page.specs) == set(data)
    for plot_id, props in data.items():
        spec = page.specs[plot_id]
        assert spec["title"]["text"] == props["title"], plot_id
        rows = spec["data"]["values"]
        if props["template"] == "remaining":  # % remaining: log scale, 100% on the left
            enc = spec["encoding"]
            assert enc["x"]["scale"] == {"type": "log", "reverse": True, "nice": False}
            # A band (95% interval), a whisker (min-max) and the mean, from the row's fields
            (field,) = set(props["y"].values())
            band, whisker, mean = (layer["encoding"] for layer in spec["layer"])
            assert (band["y"]["field"], band["y2"]["field"]) == (
                f"{field}_ci_low",
                f"{field}_ci_high",
            )
            assert (whisker["y"]["field"], whisker["y2"]["field"]) == (
                f"{field}_min",
                f"{field}_max",
            )
            assert mean["y"]["field"] == field and band["y"]["title"] == props["y_label"]
            assert all(r[f"{field}_min"] <= r[field] <= r[f"{field}_max"] for r in rows), plot_id
            assert all(f"{field}_ci_low" in r for r in rows)  # null below 3 trials
        else:  # learning curves: one panel per condition
            assert props["template"] == "curves" and spec["facet"]["column"]["field"] == "condition"
            enc = spec["spec"]["encoding"]
            assert enc["y"]["title"] == props["y_label"]
        assert enc["x"]["title"] == props["x_label"]
        assert {row["condition"] for row in rows} == {"ticket", "reinit", "random"}, plot_id
        assert all(row[props["x"]] is not None for row in rows)
    assert sorted(page.images) == sorted("static/workspace_" + i.replace("/", "_") for i in images)
    assert all((out / i).stat().st_size > 1000 for i in page.images)
    # The mask images, on a page of their own: two per round.
    masks = json.loads(run(study, "dvc", "plots", "show", "--json", "reports/figures/masks").stdout)
    assert not masks.get("errors") and len(masks["data"]) == 2 * 3, list(masks["data"])


def test_a_control_switched_off_gives_no_plots_warning(tiny_study: Path, tmp_path: Path) -> None:
    study = with_templates(copy_study(tiny_study, tmp_path / "study"))
    write_params(study, {"controls": {"random": False}})
    proc = run(study, "dvc", "repro")
    assert sorted(ran_stages(proc.stdout)) == ["report", "visualise"]
    shown = run(study, "dvc", "plots", "show", "--json")
    assert not json.loads(shown.stdout).get("errors"), shown.stdout[-2000:]
    assert "failed to load" not in shown.stderr
    for plot_id in ("accuracy_vs_remaining", "learning_curves_val_loss"):
        spec = json.loads(shown.stdout)["data"][plot_id][0]["content"]
        assert {row["condition"] for row in spec["data"]["values"]} == {"ticket", "reinit"}


def test_curve_table_averages_each_evaluation_over_the_runs_evaluated_there() -> None:
    def stage(cond: str, rnd: int, n_evals: dict[str, int]) -> tuple[dict, dict]:
        runs = {
            key: {
                "iteration": [10 * (i + 1) for i in range(n)],
                "train_loss": [1.0 + t] * n,
                "val_loss": [2.0 + t] * n,
                "val_accuracy": [0.5 + t / 10] * n,
                "test_iteration": [10],
                "test_loss": [3.0],
                "test_accuracy": [0.9],
            }
            for t, (key, n) in enumerate(n_evals.items())
        }
        metrics = {
            "condition": cond,
            "round": rnd,
            "runs": {
                k: {"trial": t, "repeat": 0, "percent_remaining": 100.0 * 0.8**rnd}
                for t, k in enumerate(n_evals)
            },
        }
        return {"condition": cond, "round": rnd, "runs": runs}, metrics

    stages = [stage("reinit", 1, {"t0": 3, "t1": 3}), stage("ticket", 0, {"t0": 251, "t1": 120})]
    curves = pd.concat([results.curves_frame(c, m) for c, m in stages], ignore_index=True)
    runs = pd.DataFrame(
        [
            {"condition": m["condition"], "round": m["round"], **r}
            for _, m in stages
            for r in m["runs"].values()
        ]
    )
    rows = dvc_tables.dvc_curve_rows(curves, runs)["curves.json"]
    assert [r["condition"] for r in rows][:1] == ["ticket"]  # conditions in study order
    assert all(set(r) == set(rows[0]) for r in rows)  # DVC reads a list of same-keyed rows
    ticket = [r for r in rows if r["condition"] == "ticket"]
    # 251 evaluations: every 3rd (84 rows) plus the last; at most DVC_CURVE_POINTS.
    assert [r["iteration"] for r in ticket[:3]] == [10, 40, 70] and ticket[-1]["iteration"] == 2510
    assert len(ticket) == 85 <= dvc_tables.DVC_CURVE_POINTS
    first, late = ticket[0], ticket[-1]
    assert (first["n_runs"], first["val_loss"], first["train_loss"]) == (2, 2.5, 1.5)
    assert (late["n_runs"], late["val_loss"]) == (1, 2.0)  # t1 stopped at iteration 1200
    assert first["percent_remaining"] == 100.0 and "test_accuracy" not in first
    reinit = [r for r in rows if r["condition"] == "reinit"]
    assert [r["iteration"] for r in reinit] == [10, 20, 30] and reinit[0]["round"] == 1
    assert reinit[0]["percent_remaining"] == 80.0
    assert reinit[0]["val_accuracy"] == pytest.approx(55.0)  # in %, as everywhere


# ---------------------------------------------------------------- installs


LOCKS = {
    "x86-64 Linux": "requirements.lock",
    "aarch64 Linux": "requirements-linux-aarch64.lock",
    "arm64 macOS": "requirements-macos-arm64.lock",
    "x86-64 Linux, CUDA": "requirements-gpu.lock",
}


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / lock).read_text()
    return dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", text, re.MULTILINE))


#: Direct dependencies every platform's lock pins at one version.
CORE_PINS = ("keras", "numpy", "dvc", "mlflow", "matplotlib", "pyyaml", "ruamel-yaml-clib", "uv")


def test_every_platform_lock_pins_the_same_versions() -> None:
    base = pins(LOCKS["x86-64 Linux"])
    assert base["tensorflow-cpu"] == "2.21.0" and "tensorflow" not in base
    for where, lock in LOCKS.items():
        p = pins(lock)
        tf = "tensorflow-cpu" if lock == "requirements.lock" else "tensorflow"
        assert p[tf] == "2.21.0", f"{lock} ({where})"
        for core in CORE_PINS:
            assert p[core] == base[core], f"{lock} ({where}) pins {core} {p[core]}"
        differ = {k: (base[k], v) for k, v in p.items() if k in base and base[k] != v}
        assert not differ, f"{lock} ({where}) differs from requirements.lock: {differ}"
        header = (ROOT / lock).read_text().splitlines()[1]
        assert f"-o {lock}" in header, f"{lock} was not written by `make lock`"
    gpu = pins(LOCKS["x86-64 Linux, CUDA"])
    assert "tensorflow-cpu" not in gpu and gpu["nvidia-cudnn-cu12"]


def test_dvc_and_the_params_reader_parse_yaml_with_ruamels_c_parser() -> None:
    """ruamel.yaml (0.19.1 on) no longer brings its C parser; without it DVC parses dvc.lock
    in pure Python, twice per command (docs/speed.md, "DVC's own time")."""
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    assert CParser is not None, "ruamel.yaml.clib is not installed: run `make setup`"
    assert YAML(typ="safe").Parser is CParser  # DVC's and lottery.core.io's loader
    assert "ruamel-yaml-clib" in pins(LOCKS["x86-64 Linux"])


def test_pyproject_declares_the_platforms_pythons_and_licence() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.14"
    assert project["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT")
    deps = project["dependencies"]
    assert any(d.startswith("tensorflow-cpu==2.21.0;") for d in deps)
    assert any(d.startswith("tensorflow==2.21.0;") for d in deps)
    extras = project["optional-dependencies"]
    assert extras["ssh"] == ["dvc[ssh]==3.67.1"] and extras["s3"] == ["dvc[s3]==3.67.1"]


def setup_plan(gpu: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["bash", "scripts/setup.sh", "--plan"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "LOTTERY_GPU": gpu},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not check or proc.returncode == 0, proc.stderr
    return proc


def test_setup_picks_the_lock_and_stamps_the_gpu_switch() -> None:
    expected = {
        ("Linux", "x86_64"): "requirements.lock",
        ("Linux", "aarch64"): "requirements-linux-aarch64.lock",
        ("Darwin", "arm64"): "requirements-macos-arm64.lock",
    }[(platform.system(), platform.machine())]
    cpu = dict(line.split("=", 1) for line in setup_plan("0").stdout.splitlines())
    assert cpu["lock"] == expected
    if expected == "requirements.lock":
        gpu = dict(line.split("=", 1) for line in setup_plan("1").stdout.splitlines())
        assert gpu["lock"] == "requirements-gpu.lock"
        assert gpu["stamp"] != cpu["stamp"], "LOTTERY_GPU must be part of the setup stamp"
    bad = setup_plan("yes", check=False)
    assert bad.returncode != 0 and "LOTTERY_GPU must be 0 or 1" in bad.stderr
