"""Bad params: `load_params` refuses them with a message naming the key, and every stage
entry (`lottery.study.entry.stage_main`) turns that into one `error: ...` paragraph, exit code 2,
without calling the stage (so nothing is written)."""

from __future__ import annotations

import contextlib
import copy
import io
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lottery.core.errors import UserError
from lottery.core.params import Params, ParamsError, load_params, parse_params
from lottery.core.rounds import (
    check_dvc_yaml,
    generate_pipeline,
    read_dvc_yaml_rounds,
    rewrite_dvc_yaml,
)
from lottery.study.entry import stage_main

ROOT = Path(__file__).resolve().parents[2]


def valid_raw() -> dict[str, Any]:
    """The committed params, pinned to what these tests assume (both controls, 10 rounds)."""
    raw: dict[str, Any] = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["study"]["rounds"] = 10
    raw["data"]["validation_size"] = 5000
    raw["train"].update(iterations=5000, eval_every=100, batch_size=60)
    raw["prune"]["rewind_iteration"] = 0
    raw["controls"].update(reinit=True, random=True)
    return raw


def dump(tmp: Path, raw: Any) -> Path:
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def set_path(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    *parents, last = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[last] = value
    return out


def del_path(raw: dict[str, Any], dotted: str) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    *parents, last = dotted.split(".")
    node = out
    for key in parents:
        node = node[key]
    del node[last]
    return out


def rejected(tmp: Path, raw: Any) -> str:
    path = dump(tmp, raw)
    with pytest.raises(ParamsError) as info:
        load_params(path)
    msg = str(info.value)
    assert str(path) in msg, msg  # names the file
    assert "\n" not in msg, msg
    return msg


def test_the_committed_params_are_valid(tmp_path: Path) -> None:
    p = load_params(ROOT / "params.yaml")
    assert isinstance(p, Params)
    assert isinstance(load_params(dump(tmp_path, valid_raw())), Params)
    assert p.train.iterations >= p.train.eval_every


# ------------------------------------------------------------------ ranges


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("prune.rates.fc1", -0.1),
        ("prune.rates.fc2", 1.0),
        ("prune.rates.out", 1.5),
        ("prune.global_rate", -0.2),
        ("prune.global_rate", 1),
        ("train.learning_rate", 0),
        ("train.learning_rate", -0.001),
        ("train.learning_rate", 1.0),
        ("train.learning_rate", float("nan")),
        ("train.iterations", 0),
        ("train.iterations", -5),
        ("train.batch_size", 0),
        ("train.batch_size", 60_000),
        ("study.trials", 0),
        ("study.trials", 101),
        ("study.seed", -1),
        ("study.rounds", -1),
        ("study.rounds", 100),
        ("data.validation_size", 0),
        ("data.validation_size", 60_000),
        ("data.split_seed", -3),
        ("prune.rewind_iteration", -1),
        ("prune.rewind_iteration", 5000),
        ("controls.reinit_repeats", 0),
        ("controls.reinit_repeats", 21),
        ("train.test_every", 50),
        ("train.test_every", 150),
        ("train.patience", -100),
        ("train.patience", 250),
    ],
)
def test_out_of_range_values_name_the_key(tmp_path: Path, key: str, value: Any) -> None:
    msg = rejected(tmp_path, set_path(valid_raw(), key, value))
    assert key in msg, msg
    assert repr(value) in msg or str(value) in msg, msg  # says what was found


def test_unknown_layer_in_global_exclude(tmp_path: Path) -> None:
    msg = rejected(tmp_path, set_path(valid_raw(), "prune.global_exclude", ["out", "fc9"]))
    assert "prune.global_exclude[1]" in msg and "'fc9'" in msg, msg


def test_eval_every_above_iterations(tmp_path: Path) -> None:
    raw = set_path(set_path(valid_raw(), "train.iterations", 50), "train.eval_every", 100)
    msg = rejected(tmp_path, raw)
    assert "train.eval_every" in msg and "train.iterations (50)" in msg, msg


def test_eval_every_zero(tmp_path: Path) -> None:
    assert "train.eval_every" in rejected(tmp_path, set_path(valid_raw(), "train.eval_every", 0))


def test_rates_for_wrong_layers(tmp_path: Path) -> None:
    raw = set_path(valid_raw(), "prune.rates", {"fc1": 0.2, "fc2": 0.2, "conv1": 0.1})
    msg = rejected(tmp_path, raw)
    assert "prune.rates" in msg and "conv1" in msg, msg


# ------------------------------------------------------------------ types


@pytest.mark.parametrize(
    ("key", "value", "wanted"),
    [
        ("train.iterations", "5000", "an integer"),
        ("train.iterations", 1.5, "an integer"),
        ("train.iterations", True, "an integer"),
        ("study.trials", True, "an integer"),
        ("study.trials", None, "an integer"),
        ("train.batch_size", [60], "an integer"),
        ("train.learning_rate", "0.001", "a number"),
        ("train.learning_rate", False, "a number"),
        ("data.stratified", "yes please", "true or false"),
        ("data.stratified", 1, "true or false"),
        ("controls.random", 0, "true or false"),
        ("study.name", "", "a non-empty string"),
        ("study.name", 7, "a non-empty string"),
        ("prune.strategy", "greedy", "'iterative' or 'oneshot'"),
        ("prune.scope", "local", "'layerwise' or 'global'"),
        ("prune.rates", 0.2, "a mapping"),
        ("prune.rates.fc1", "0.2", "a number"),
        ("prune.global_exclude", "out", "a list"),
        ("prune.global_exclude", [1], "a non-empty string"),
        ("train", [1, 2], "a mapping"),
        ("controls", "none", "a mapping"),
    ],
)
def test_wrong_types_name_the_key(tmp_path: Path, key: str, value: Any, wanted: str) -> None:
    msg = rejected(tmp_path, set_path(valid_raw(), key, value))
    assert key in msg and wanted in msg, msg


# ------------------------------------------------------------------ keys


@pytest.mark.parametrize(
    "key",
    ["train.momentum", "study.epochs", "data.augment", "extra_section", "controls.reinit_rounds"],
)
def test_unknown_keys(tmp_path: Path, key: str) -> None:
    msg = rejected(tmp_path, set_path(valid_raw(), key, 1))
    assert f"unknown key {key}" in msg, msg


@pytest.mark.parametrize(
    "key",
    ["train.batch_size", "study.seed", "prune.rewind_iteration", "controls", "data"],
)
def test_missing_keys(tmp_path: Path, key: str) -> None:
    msg = rejected(tmp_path, del_path(valid_raw(), key))
    assert f"missing key {key}" in msg, msg


def test_missing_rate_for_a_layer(tmp_path: Path) -> None:
    msg = rejected(tmp_path, del_path(valid_raw(), "prune.rates.out"))
    assert "prune.rates" in msg and "out" in msg, msg


# ------------------------------------------------------------------ files


@pytest.mark.parametrize(
    "text",
    ["study: [unclosed\n", "train:\n  iterations: 1\n bad_indent: 2\n", "a: b: c\n", "\t- x\n"],
)
def test_malformed_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match="not valid YAML") as info:
        load_params(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", ["", "just a string\n", "- 1\n- 2\n", "42\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match="must be a mapping"):
        load_params(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(b"study:\n  name: \xff\xfe\n")
    with pytest.raises(ParamsError, match=r"params\.yaml"):
        load_params(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="no such params file"):
        load_params(tmp_path / "nope.yaml")


# ------------------------------------------------------------------ generated round lists


def dvc_yaml_for(tmp: Path, pipeline: dict[str, Any]) -> Path:
    """The committed dvc.yaml with `pipeline`'s round lists written in."""
    path = tmp / "dvc.yaml"
    path.write_text(rewrite_dvc_yaml((ROOT / "dvc.yaml").read_text(), pipeline, "dvc.yaml"))
    return path


@pytest.mark.parametrize(
    ("rounds", "reinit", "random", "control_rounds"),
    [
        (10, True, True, "all"),
        (3, True, False, "all"),
        (0, False, False, "all"),
        (15, True, True, [7, 3]),
    ],
)
def test_round_lists_written_into_dvc_yaml_read_back_as_dvc_reads_them(
    tmp_path: Path, rounds: int, reinit: bool, random: bool, control_rounds: Any
) -> None:
    pipeline = generate_pipeline(rounds, reinit, random, control_rounds)
    path = dvc_yaml_for(tmp_path, pipeline)
    assert read_dvc_yaml_rounds(path) == pipeline
    check_dvc_yaml(path, pipeline, "the params")  # agrees: no error
    # Rewriting is idempotent, and from any list to any other.
    again = rewrite_dvc_yaml(path.read_text(), pipeline, "dvc.yaml")
    assert again == path.read_text()
    other = generate_pipeline(2, True, True)
    back = rewrite_dvc_yaml(rewrite_dvc_yaml(again, other, "x"), pipeline, "x")
    assert back == again

    # Only the lists change: every other line of dvc.yaml is kept.
    def kept(text: str) -> list[str]:
        return [ln for ln in text.splitlines() if not ("{parent:" in ln or "foreach:" in ln)]

    assert kept(again) == kept((ROOT / "dvc.yaml").read_text())


@pytest.mark.parametrize(
    "change",
    [
        lambda raw: raw["study"].__setitem__("rounds", 3),  # edited rounds, not regenerated
        lambda raw: raw["controls"].__setitem__("reinit", False),
        lambda raw: raw["controls"].__setitem__("rounds", [2, 5]),
    ],
)
def test_a_dvc_yaml_out_of_sync_with_the_params_stops_the_stage(
    tmp_path: Path, change: Callable[[dict[str, Any]], Any]
) -> None:
    dvc_yaml_for(tmp_path, generate_pipeline(10, True, True))
    raw = valid_raw()
    change(raw)
    code, stderr, called = run_stage_entry(dump(tmp_path, raw))
    body = assert_clean_error(code, stderr, called)
    assert "dvc.yaml" in body and "lottery rounds" in body, body


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text.replace("      r10: {parent: r09, round: 10}\n", "", 1),
        lambda text: text.replace("r02: {parent: r01, round: 2}", "r02: {parent: r00, round: 2}"),
        lambda text: text.replace("r01: {parent: r00, round: 1}", "r01: {parent: r00, round: 7}"),
    ],
)
def test_a_hand_edited_round_list_is_refused(tmp_path: Path, edit: Callable[[str], str]) -> None:
    path = dvc_yaml_for(tmp_path, generate_pipeline(10, True, True))
    path.write_text(edit(path.read_text()))
    with pytest.raises(UserError, match="lottery rounds") as info:
        check_dvc_yaml(path, generate_pipeline(10, True, True), "the params")
    assert str(path) in str(info.value)


def test_a_dvc_yaml_without_the_foreach_stages_is_refused_before_any_write() -> None:
    with pytest.raises(UserError, match=r"git checkout dvc\.yaml"):
        rewrite_dvc_yaml("stages:\n  prepare:\n    cmd: x\n", generate_pipeline(1, True, True), "d")


def test_an_old_params_file_with_its_pipeline_section_still_reads(tmp_path: Path) -> None:
    """Params files kept from before the round lists moved to dvc.yaml (reports/results)
    carry a `pipeline` section: it follows from the params, so it is ignored."""
    raw = valid_raw()
    raw["pipeline"] = generate_pipeline(3, False, False)  # even a stale one
    p = load_params(dump(tmp_path, raw))
    assert p.pipeline_dict() == generate_pipeline(10, True, True)
    assert p.study_hash() == parse_params(valid_raw()).study_hash()


# ------------------------------------------------------------------ property: the stage entry

#: Values that are wrong for each leaf type (never accepted whatever the key).
WRONG_FOR: dict[str, list[Any]] = {
    "int": ["5000", 1.5, True, False, None, [1], {"a": 1}, "", 2.0],
    "float": ["0.1", True, None, [0.1], {"a": 0.1}, ""],
    "bool": [0, 1, "yes", "true", None, 1.0, [True]],
    "str": [0, None, "", "   ", [], ["x"], {"a": "b"}],
    "literal": ["greedy", "", 0, None, ["iterative"], "Iterative"],
    "list": ["out", 3, None, {"out": 1}, [1], ["fc9"]],
    "mapping": ["x", 3, None, [1, 2], True],
    "widths": ["300", 300, None, [], [0], [-1, 5], [1.5], [True], {"a": 1}],
}

#: Values out of the allowed range, per key (every one is refused).
OUT_OF_RANGE: dict[str, list[Any]] = {
    "study.seed": [-1, -100],
    "study.trials": [0, -1, 101],
    "study.rounds": [-1, 100],
    "data.validation_size": [0, -5, 60_000, 10**9],
    "data.split_seed": [-1],
    "train.iterations": [0, -1],
    "train.batch_size": [0, -60, 55_001],
    "train.learning_rate": [0, 0.0, -1e-3, 1, 1.0, 10.0, float("inf"), float("nan")],
    "train.eval_every": [0, -1, 5001, 10**6],
    "train.test_every": [0, -100, 50, 101],
    "train.patience": [-1, -100, 50, 150],
    "prune.rates.fc1": [-0.01, 1, 1.0, 2.5, float("nan")],
    "prune.rates.fc2": [-1, 1.0],
    "prune.rates.out": [1.0, -0.5],
    "prune.global_rate": [-0.1, 1.0, float("inf")],
    "prune.rewind_iteration": [-1, 5000, 10**6],
    "controls.reinit_repeats": [0, 21],
}


def leaf_kind(dotted: str, value: Any) -> str:
    if dotted in ("prune.strategy", "prune.scope", "data.dataset", "model.network"):
        return "literal"
    if dotted == "prune.global_exclude":
        return "list"
    if dotted == "model.hidden":
        return "widths"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "mapping"


def leaves(raw: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every (dotted key, value) of the params tree, mappings included."""
    out: list[tuple[str, Any]] = []
    for k, v in raw.items():
        key = f"{prefix}{k}"
        out.append((key, v))
        if isinstance(v, dict):
            out += leaves(v, key + ".")
    return out


VALID = valid_raw()
LEAVES = leaves(VALID)
MAPPINGS = [k for k, v in LEAVES if isinstance(v, dict)] + [""]


@st.composite
def mutation(draw: st.DrawFn) -> tuple[str, str, Any]:
    """(kind, dotted key, new value); kind is set, delete or add."""
    kind = draw(st.sampled_from(["type", "range", "delete", "add"]))
    if kind == "type":
        key, value = draw(st.sampled_from(LEAVES))
        return ("set", key, draw(st.sampled_from(WRONG_FOR[leaf_kind(key, value)])))
    if kind == "range":
        key = draw(st.sampled_from(sorted(OUT_OF_RANGE)))
        return ("set", key, draw(st.sampled_from(OUT_OF_RANGE[key])))
    if kind == "delete":
        key = draw(st.sampled_from([k for k, _ in LEAVES]))
        return ("delete", key, None)
    parent = draw(st.sampled_from(MAPPINGS))
    name = draw(st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True))
    value = draw(st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none()))
    return ("add", f"{parent}.{name}" if parent else name, value)


def apply(raw: dict[str, Any], kind: str, key: str, value: Any) -> dict[str, Any] | None:
    """The mutated params, or None when the mutation happens to be a no-op / invalid to make."""
    *parents, last = key.split(".")
    out = copy.deepcopy(raw)
    node: Any = out
    for p in parents:
        if not isinstance(node, dict) or p not in node:
            return None  # an earlier mutation replaced the parent
        node = node[p]
    if not isinstance(node, dict):
        return None
    if kind == "delete":
        if last not in node:
            return None
        del node[last]
    elif kind == "add":
        if last in node or (parents == ["prune", "rates"] and last == "fc"):
            return None  # `fc` is a layer type of the mlp: a valid rate key, not a mutation
        node[last] = value
    else:
        node[last] = value
    return out


def names_a_key(msg: str, keys: list[str]) -> bool:
    """The message names a mutated key, or the mapping / generated section it belongs to."""
    for key in keys:
        parts = key.split(".")
        # a key inside prune.rates is reported as prune.rates; else the full key
        shortest = 2 if key.startswith("prune.rates.") else len(parts)
        if any(".".join(parts[:i]) in msg for i in range(len(parts), shortest - 1, -1)):
            return True
    return False


def run_stage_entry(params_file: Path) -> tuple[int, str, list[Params]]:
    called: list[Params] = []
    err = io.StringIO()
    code: Any = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            stage_main(called.append, str(params_file))
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue(), called


def assert_clean_error(code: Any, stderr: str, called: list[Params]) -> str:
    assert called == [], "the stage function ran on invalid params"
    assert code == 2, (code, stderr)
    assert stderr.startswith("error: "), stderr
    assert "Traceback" not in stderr, stderr
    body = stderr.rstrip("\n")
    assert "\n" not in body, f"not one paragraph: {stderr!r}"
    return body


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation(), min_size=1, max_size=3))
def test_stage_entry_rejects_mutated_params(muts: list[tuple[str, str, Any]]) -> None:
    raw: dict[str, Any] | None = VALID
    keys = []
    for kind, key, value in muts:
        new = apply(raw or VALID, kind, key, value)
        if new is not None:
            raw = new
            keys.append(key)
    if not keys:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = dump(Path(tmp), raw)
        code, stderr, called = run_stage_entry(path)
        body = assert_clean_error(code, stderr, called)
        assert str(path) in body, body
        assert names_a_key(body, keys), (keys, body)


@settings(max_examples=50, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.lists(
            st.sampled_from(
                [
                    "study:",
                    "  ",
                    "- ",
                    ": ",
                    "[",
                    "]",
                    "{",
                    "}",
                    "'",
                    '"',
                    "\t",
                    "\n",
                    "&a",
                    "*a",
                    "!!python/object:os.system",
                    "train",
                    "iterations: 5",
                    "%YAML 9.9",
                    "---",
                    "...",
                ]
            ),
            max_size=30,
        ).map(lambda xs: "".join(xs).encode()),
    )
)
def test_stage_entry_rejects_garbage_files(blob: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_bytes(blob)
        code, stderr, called = run_stage_entry(path)
        body = assert_clean_error(code, stderr, called)
        assert str(path) in body, body


def test_stage_entry_passes_valid_params_through() -> None:
    code, stderr, called = run_stage_entry(ROOT / "params.yaml")
    assert code is None and stderr == "" and len(called) == 1


# ------------------------------------------------------------------ the real stage scripts


@pytest.mark.parametrize(
    ("script", "change", "key"),
    [
        ("prepare.py", ("train.iterations", "5000"), "train.iterations"),
        ("init.py", ("study.trials", True), "study.trials"),
        ("train.py", ("prune.rates.fc1", 1.0), "prune.rates.fc1"),
        ("report.py", ("study.rounds", 4), "round lists"),  # dvc.yaml lists 10 rounds
    ],
)
def test_real_stage_scripts_print_one_error(
    tmp_path: Path, script: str, change: tuple[str, Any], key: str
) -> None:
    for rel in ("stages", "lottery"):
        shutil.copytree(ROOT / rel, tmp_path / rel, ignore=shutil.ignore_patterns("__pycache__"))
    dvc_yaml_for(tmp_path, generate_pipeline(10, True, True))
    dump(tmp_path, set_path(valid_raw(), *change))
    args = ["ticket", "r01"] if script == "train.py" else []
    proc = subprocess.run(
        [sys.executable, f"stages/{script}", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    named = "dvc.yaml" if key == "round lists" else "params.yaml"
    assert proc.stderr.startswith(f"error: {named}: "), proc.stderr
    assert key in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "metrics").exists()


def test_controls_can_be_limited_to_some_rounds() -> None:
    raw = valid_raw()
    raw["controls"]["rounds"] = [7, 3]
    p = parse_params(raw)
    assert list(p.pipeline.reinit_rounds) == ["r03", "r07"] == list(p.pipeline.random_rounds)
    assert p.pipeline.reinit_rounds["r03"].parent == "r02"
    assert len(p.pipeline.rounds) == 10


@pytest.mark.parametrize("value", [[], [0], [11], "some", 3])
def test_controls_rounds_must_be_all_or_rounds_that_exist(value: object) -> None:
    raw = valid_raw()
    raw["controls"]["rounds"] = value
    with pytest.raises(ParamsError, match=r"controls\.rounds"):
        parse_params(raw)


def test_patience_must_leave_room_for_the_rewind_snapshot(tmp_path: Path) -> None:
    early = set_path(valid_raw(), "prune.point", "early_stop")
    raw = set_path(set_path(early, "train.patience", 200), "prune.rewind_iteration", 301)
    msg = rejected(tmp_path, raw)
    assert "prune.rewind_iteration" in msg and "train.patience" in msg, msg
    ok = set_path(set_path(early, "train.patience", 200), "prune.rewind_iteration", 300)
    assert load_params(dump(tmp_path, ok)).train.patience == 200
    # With the pruning point at the horizon the dense network trains to the end: any
    # rewind iteration below the horizon is reachable whatever the patience.
    horizon = set_path(set_path(valid_raw(), "train.patience", 200), "prune.rewind_iteration", 301)
    assert load_params(dump(tmp_path, horizon)).prune.rewind_iteration == 301


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("prune.point", "stop", "'horizon' or 'early_stop'"),
        ("train.adam_epsilon", 0, "(0, 0.01]"),
        ("train.adam_epsilon", "1e-8x", "a number"),
        ("report.match_margin_pp", -0.1, "percentage points"),
    ],
)
def test_protocol_keys_are_validated(tmp_path: Path, key: str, value: Any, words: str) -> None:
    msg = rejected(tmp_path, set_path(valid_raw(), key, value))
    assert key in msg and words in msg, msg


# ------------------------------------------------------------------ datasets and networks


def with_model(raw: dict[str, Any], network: str, hidden: list[int], **rates: float) -> Any:
    out = set_path(raw, "model", {"network": network, "hidden": hidden})
    return set_path(out, "prune.rates", rates) if rates else out


def test_literals_are_the_registries() -> None:
    import typing

    from lottery.core import arch, datasets
    from lottery.core.params import DataParams, ModelParams

    hints = typing.get_type_hints(DataParams)
    assert typing.get_args(hints["dataset"]) == tuple(datasets.DATASETS)
    assert typing.get_args(typing.get_type_hints(ModelParams)["network"]) == arch.NETWORKS


def test_default_is_lenet_on_mnist_and_hashes_as_before(tmp_path: Path) -> None:
    from lottery.core import arch

    p = load_params(ROOT / "params.yaml")
    assert (p.data.dataset, p.model.network, p.model.hidden) == ("mnist", "mlp", [300, 100])
    assert p.architecture() == arch.LENET
    assert p.layer_rates() == {"fc1": 0.2, "fc2": 0.2, "out": 0.1} == p.prune.rates
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    # The network and dataset count as soon as they differ from LeNet-300-100 on MNIST, and
    # so do the pruning point and Adam's ε; the study's name and the report's margin
    # (how results are read, not what they are) do not.
    hashes = {
        p.study_hash(),
        parse_params(set_path(raw, "model.hidden", [300, 101])).study_hash(),
        parse_params(set_path(raw, "data.dataset", "fashion-mnist")).study_hash(),
        parse_params(set_path(raw, "prune.point", "early_stop")).study_hash(),
        parse_params(set_path(raw, "train.adam_epsilon", 1e-8)).study_hash(),
    }
    assert len(hashes) == 5
    for key, value in (("study.name", "another"), ("report.match_margin_pp", 0.5)):
        assert parse_params(set_path(raw, key, value)).study_hash() == p.study_hash(), key


@pytest.mark.parametrize(
    ("dataset", "network", "hidden", "shape", "names"),
    [
        ("fashion-mnist", "mlp", [300, 100], (28, 28, 1), ["fc1", "fc2", "out"]),
        ("cifar10", "mlp", [50], (32, 32, 3), ["fc1", "out"]),
        ("mnist", "conv2", [], (28, 28, 1), ["conv1", "conv2", "fc1", "fc2", "out"]),
        (
            "cifar10",
            "conv6",
            [],
            (32, 32, 3),
            [f"conv{i}" for i in range(1, 7)] + ["fc1", "fc2", "out"],
        ),
    ],
)
def test_architecture_follows_model_and_dataset(
    dataset: str, network: str, hidden: list[int], shape: tuple[int, ...], names: list[str]
) -> None:
    raw = with_model(set_path(valid_raw(), "data.dataset", dataset), network, hidden)
    raw = set_path(raw, "prune.rates", {"conv": 0.1, "fc": 0.2, "out": 0.1})
    if network == "mlp":
        raw["prune"]["rates"].pop("conv")
    a = parse_params(raw).architecture()
    assert a.network == network and a.input_shape == shape and list(a.names) == names
    if network == "mlp":
        assert a.layers[0].kernel_shape == (shape[0] * shape[1] * shape[2], hidden[0])


def test_rates_by_type_and_a_name_overrides_its_type() -> None:
    raw = with_model(valid_raw(), "conv4", [], conv=0.1, fc=0.2, out=0.1, conv3=0.05, fc2=0.3)
    p = parse_params(raw)
    assert p.layer_rates() == {
        "conv1": 0.1,
        "conv2": 0.1,
        "conv3": 0.05,
        "conv4": 0.1,
        "fc1": 0.2,
        "fc2": 0.3,
        "out": 0.1,
    }
    mixed = parse_params(set_path(valid_raw(), "prune.rates", {"fc": 0.2, "fc1": 0.25, "out": 0.1}))
    assert mixed.layer_rates() == {"fc1": 0.25, "fc2": 0.2, "out": 0.1}


def test_rate_for_a_layer_type_the_network_lacks(tmp_path: Path) -> None:
    raw = set_path(valid_raw(), "prune.rates", {"conv": 0.1, "fc": 0.2, "out": 0.1})
    msg = rejected(tmp_path, raw)
    assert "prune.rates.conv" in msg and "mlp 784-300-100-10 on 28x28x1" in msg, msg
    assert "layers fc1, fc2, out or layer types fc, out" in msg, msg


def test_rates_must_cover_every_layer_of_the_network(tmp_path: Path) -> None:
    msg = rejected(tmp_path, with_model(valid_raw(), "conv2", [], fc=0.2, out=0.1))
    assert "prune.rates" in msg and "no rate for the layers conv1, conv2 of conv2" in msg, msg
    assert "conv1, conv2, fc1, fc2, out or layer types conv, fc, out" in msg, msg


def test_a_type_rate_is_range_checked(tmp_path: Path) -> None:
    msg = rejected(tmp_path, with_model(valid_raw(), "conv2", [], conv=1.0, fc=0.2, out=0.1))
    assert "prune.rates.conv must be a number in [0, 1) (got 1.0)" in msg, msg


def test_global_exclude_names_the_chosen_networks_layers(tmp_path: Path) -> None:
    raw = with_model(valid_raw(), "conv2", [], conv=0.1, fc=0.2, out=0.1)
    assert parse_params(set_path(raw, "prune.global_exclude", ["conv1", "out"]))
    msg = rejected(tmp_path, set_path(raw, "prune.global_exclude", ["conv3"]))
    assert "prune.global_exclude[0]" in msg and "'conv3'" in msg, msg
    assert "conv1, conv2, fc1, fc2, out" in msg, msg


@pytest.mark.parametrize("hidden", [[], [0], [300, -1]])
def test_mlp_hidden_widths_are_positive(tmp_path: Path, hidden: list[int]) -> None:
    msg = rejected(tmp_path, set_path(valid_raw(), "model.hidden", hidden))
    assert "model.hidden must be a non-empty list of positive integers" in msg, msg
    assert repr(hidden) in msg, msg


@pytest.mark.parametrize(("hidden", "wanted"), [("300", "a list"), ([1.5], "an integer")])
def test_mlp_hidden_widths_type(tmp_path: Path, hidden: Any, wanted: str) -> None:
    msg = rejected(tmp_path, set_path(valid_raw(), "model.hidden", hidden))
    assert "model.hidden" in msg and wanted in msg, msg


def test_hidden_widths_are_for_mlp_only(tmp_path: Path) -> None:
    raw = with_model(valid_raw(), "conv2", [300, 100], conv=0.1, fc=0.2, out=0.1)
    msg = rejected(tmp_path, raw)
    assert "model.hidden must be [] for conv2" in msg and "256-256" in msg, msg


@pytest.mark.parametrize(
    ("key", "value"), [("model.network", "resnet18"), ("data.dataset", "svhn")]
)
def test_unknown_network_or_dataset(tmp_path: Path, key: str, value: str) -> None:
    msg = rejected(tmp_path, set_path(valid_raw(), key, value))
    assert key in msg and repr(value) in msg, msg
    allowed = "'mlp' or 'conv2'" if key == "model.network" else "'fashion-mnist' or 'cifar10'"
    assert allowed in msg, msg


def test_validation_size_follows_the_dataset(tmp_path: Path) -> None:
    raw = set_path(valid_raw(), "data.validation_size", 50_000)
    assert parse_params(raw).data.validation_size == 50_000  # MNIST has 60,000
    msg = rejected(tmp_path, set_path(raw, "data.dataset", "cifar10"))
    assert "data.validation_size must be an integer from 1 to 49999" in msg, msg
    assert "cifar10 has 50,000 training examples" in msg, msg


PAPER_CONV = {  # Frankle & Carbin 2019, Figure 2: learning rate, iterations, conv rate
    "conv2": (2e-4, 20_000, 0.1),
    "conv4": (3e-4, 25_000, 0.1),
    "conv6": (3e-4, 30_000, 0.15),
}


@pytest.mark.parametrize("network", sorted(PAPER_CONV))
def test_conv_presets_have_the_papers_settings(network: str) -> None:
    p = load_params(ROOT / "presets" / f"{network}-cifar10.yaml")
    lr, iterations, conv_rate = PAPER_CONV[network]
    assert (p.data.dataset, p.model.network, p.model.hidden) == ("cifar10", network, [])
    assert (p.train.learning_rate, p.train.iterations, p.train.batch_size) == (lr, iterations, 60)
    assert p.prune.rates == {"conv": conv_rate, "fc": 0.2, "out": 0.1}
    rates = p.layer_rates()
    assert all(rates[ly.name] == conv_rate for ly in p.architecture().layers if ly.kind == "conv")
    assert (rates["fc1"], rates["fc2"], rates["out"]) == (0.2, 0.2, 0.1)


def test_fashion_mnist_preset() -> None:
    p = load_params(ROOT / "presets" / "fashion-mnist.yaml")
    assert (p.data.dataset, p.model.network, p.model.hidden) == ("fashion-mnist", "mlp", [300, 100])
    assert (p.study.trials, p.train.iterations, p.study.rounds) == (5, 10_000, 15)
    assert p.controls.reinit and p.controls.random and p.controls.reinit_repeats == 1
    paper = load_params(ROOT / "presets" / "paper.yaml")
    assert p.prune == paper.prune and p.train.learning_rate == paper.train.learning_rate


def test_architecture_builder_refuses_bad_shapes_and_widths() -> None:
    from lottery.core import arch

    with pytest.raises(
        ValueError, match=r"hidden widths must be positive integers, got \[300, 0\]"
    ):
        arch.build("mlp", (28, 28, 1), [300, 0])
    with pytest.raises(ValueError, match=r"hidden widths must be positive integers, got \[True\]"):
        arch.build("mlp", (28, 28, 1), [True])
    with pytest.raises(ValueError, match=r"input_shape must be \(height, width, channels\)"):
        arch.build("mlp", (28, 28))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"conv6 halves the image 3 times: 4x4 is too small"):
        arch.build("conv6", (4, 4, 3))
    with pytest.raises(
        ValueError, match=r"unknown network 'conv8': one of mlp, conv2, conv4, conv6"
    ):
        arch.build("conv8")


def test_layer_rates_resolution_errors() -> None:
    from lottery.core import arch

    conv2 = arch.build("conv2", (32, 32, 3))
    with pytest.raises(ValueError, match=r"rates for conv9, which conv2 on 32x32x3 does not have"):
        conv2.layer_rates({"conv": 0.1, "fc": 0.2, "out": 0.1, "conv9": 0.1})
    with pytest.raises(ValueError, match=r"no rate for the layers fc1, fc2 of conv2 on 32x32x3"):
        conv2.layer_rates({"conv": 0.1, "out": 0.1})
    assert conv2.rate_for("fc2", {"fc": 0.2, "fc2": 0.3}) == 0.3
    assert conv2.rate_for("conv1", {"fc": 0.2}) is None
    assert [ly.type for ly in conv2.layers] == ["conv", "conv", "fc", "fc", "out"]
    assert arch.LENET.describe() == "mlp 784-300-100-10 on 28x28x1"


def test_a_study_name_mlflow_would_refuse_is_refused_first(tmp_path: Path) -> None:
    msg = rejected(tmp_path, set_path(valid_raw(), "study.name", "n" * 501))
    assert "study.name must be at most 500 characters" in msg, msg
