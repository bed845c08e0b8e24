"""Bad configs and bad datasets, mutated at random: odapi never answers with only a traceback.

Each case takes a good input (a preset, an OD API pipeline.config, a dataset in each format, a
label map, a record file), applies one seeded mutation (a truncation, a dropped or repeated
line, a number or name swapped for a strange one, a mapping key deleted or given a value of
the wrong type, junk bytes), and runs the command that reads it through the CLI. Every outcome
must be exit 0, or exit 1 or 2 with an `error: ...` sentence, and never a traceback.

odapi's CLI turns an exception it did not expect into a sentence too (cli.BUG_REPORT); a case
fails when that sentence appears, so that these tests keep finding real bugs. A failure names
its case id: `pytest tests/test_fuzz.py -k 'preset-17'` replays it. ODAPI_FUZZ_SCALE=N runs N
times as many cases.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import pytest
import yaml

from odapi.cli import BUG_REPORT
from odapi.data.synthetic import FORMATS, write_demo_dataset
from odapi.engine.config import list_presets, preset_dir

from conftest import run_odapi

CONFIGS = Path(__file__).parent / "data" / "pipeline_configs"
SCALE = int(os.environ.get("ODAPI_FUZZ_SCALE", "1"))  # more cases: ODAPI_FUZZ_SCALE=10
CASES = {group: n * SCALE for group, n in
         {"preset": 150, "pipeline": 200, "dataset": 300, "label-map": 60, "records": 60}.items()}

STRANGE_NUMBERS = ["0", "-1", "-0.5", "1e309", "nan", "inf", "99999999999", "3.5", "1e-30",
                   "2147483648", "0x10"]
STRANGE_VALUES = [None, -1, 0, 0.5, 1e12, "x", "", [], {}, [1, 2], True, "../../nowhere",
                  "PATH_TO_BE_CONFIGURED", "ü" * 3, {"a": 1}, [[0, 0, 0]]]
JUNK = ["{", "}", ":", '"', "'", "\n", "\t", "[", "]", ",", "<", ">", "&", "#", "\\", "\x00",
        "\u2028", " ", "-", "*", "%"]


# --------------------------------------------------------------------------------- mutations


def _lines_mutation(text: str, rng: random.Random) -> tuple[str, str]:
    lines = text.splitlines(keepends=True) or [""]
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    kind = rng.choice(["drop", "repeat", "swap"])
    if kind == "drop":
        del lines[i]
    elif kind == "repeat":
        lines.insert(i, lines[i])
    else:
        lines[i], lines[j] = lines[j], lines[i]
    return "".join(lines), f"{kind} line {i + 1}" + (f" and {j + 1}" if kind == "swap" else "")


def _token_mutation(text: str, rng: random.Random) -> tuple[str, str]:
    """Swap one number, name or quoted string for a strange one."""
    pattern = rng.choice([r"-?\d+(\.\d+)?([eE]-?\d+)?", r"[A-Za-z_][A-Za-z_0-9]*",
                          r"\"[^\"\n]*\"|'[^'\n]*'"])
    matches = list(re.finditer(pattern, text))
    if not matches:
        return text + rng.choice(JUNK), "appended junk"
    match = rng.choice(matches)
    token = match.group()
    if token[0].isdigit() or token[0] == "-":
        new = rng.choice(STRANGE_NUMBERS)
    elif token[0] in "\"'":
        new = token[0] + rng.choice(["", "/nowhere/x", "ü", "a" * 300, "*", "train-*"]) \
            + token[0]
    else:
        new = rng.choice([token[:-1], token + "x", token.upper(), "", rng.choice(matches).group()])
    return (text[:match.start()] + new + text[match.end():],
            f"token {token[:40]!r} at {match.start()} -> {new[:40]!r}")


def mutate_text(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    kind = rng.choice(["truncate", "lines", "token", "token", "junk", "bytes"])
    if kind == "truncate":
        cut = rng.randrange(len(data) + 1)
        return data[:cut], f"truncated at byte {cut} of {len(data)}"
    if kind == "bytes":
        data = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(max(1, len(data)))] = rng.randrange(256) if data else 0
        return bytes(data), "random bytes overwritten"
    text = data.decode("utf-8", "replace")
    if kind == "lines":
        text, what = _lines_mutation(text, rng)
    elif kind == "token":
        text, what = _token_mutation(text, rng)
    else:
        at = rng.randrange(len(text) + 1)
        junk = "".join(rng.choice(JUNK) for _ in range(rng.randint(1, 3)))
        text, what = text[:at] + junk + text[at:], f"junk {junk!r} inserted at {at}"
    return text.encode("utf-8"), what


def _paths(node, prefix=()) -> list[tuple]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def mutate_tree(tree, rng: random.Random) -> tuple[object, str]:
    """Delete a key, rename it, or give it a value of another type, somewhere in the tree."""
    paths = _paths(tree)
    if not paths:
        return rng.choice(STRANGE_VALUES), "replaced the whole document"
    path = rng.choice(paths)
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    kind = rng.choice(["delete", "rename", "value", "value", "value"])
    where = ".".join(map(str, path))
    if kind == "delete":
        del parent[key]
    elif kind == "rename" and isinstance(key, str):
        parent[key[:-1] or "x"] = parent.pop(key)
    else:
        value = rng.choice(STRANGE_VALUES)
        parent[key] = value
        return tree, f"{where} = {value!r}"
    return tree, f"{kind} {where}"


def mutate_file(path: Path, rng: random.Random) -> str:
    """Mutate `path` in place: structurally for YAML and JSON half the time; returns what."""
    data = path.read_bytes()
    if path.suffix in (".yaml", ".yml", ".json") and rng.random() < 0.5:
        try:
            tree = yaml.safe_load(data) if path.suffix != ".json" else json.loads(data)
        except (yaml.YAMLError, ValueError):
            tree = None
        if isinstance(tree, dict | list):
            tree, what = mutate_tree(tree, rng)
            path.write_text(json.dumps(tree) if path.suffix == ".json" else
                            yaml.safe_dump(tree, allow_unicode=True))
            return f"{path.name}: {what}"
    data, what = mutate_text(data, rng)
    path.write_bytes(data)
    return f"{path.name}: {what}"


# --------------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """Small good inputs: a dataset in every format, records converted from it, configs."""
    root = tmp_path_factory.mktemp("fuzz")
    datasets = write_demo_dataset(root / "data", count=8, seed=5, formats=FORMATS)
    assert run_odapi("convert", datasets["voc"], "--out", root / "records", "--split",
                     "train=0.5,val=0.5", "-q").code == 0
    configs = root / "configs"
    configs.mkdir()
    for source in CONFIGS.glob("*.config"):
        (configs / source.name).write_text(resolvable(source.read_text()))
    return {"root": root, "records": root / "records", "configs": configs,
            **{f"data:{name}": path for name, path in datasets.items()}}


def resolvable(text: str) -> str:
    """A sample pipeline.config that resolves against the test records, so that mutations
    reach past the placeholder check into the translation."""
    text = re.sub(r'"PATH_TO_BE_CONFIGURED/[^"]*label_map[^"]*"', '"label_map.pbtxt"', text)
    text = re.sub(r'"PATH_TO_BE_CONFIGURED/train[^"]*"', '"train-*.tfrecord"', text)
    text = re.sub(r'"PATH_TO_BE_CONFIGURED/val[^"]*"', '"val-*.tfrecord"', text)
    text = re.sub(r"^\s*fine_tune_checkpoint\w*:.*$", "", text, flags=re.M)
    return re.sub(r"num_classes: \d+", "num_classes: 3", text)


def case_ids(group: str) -> list[str]:
    return [f"{group}-{i}" for i in range(CASES[group])]


def check(result, case: str, what: str) -> None:
    """The one rule: 0, or 1/2 with an `error: ` sentence; never a traceback or a bug."""
    context = f"{case} ({what})\n--- stdout\n{result.out[-1500:]}\n--- stderr\n{result.err[-3000:]}"
    assert "Traceback" not in result.text, context
    assert BUG_REPORT not in result.err, context
    assert result.code in (0, 1, 2), context
    if result.code:
        sentences = [line for line in result.err.splitlines() if "error: " in line]
        assert sentences, context
        assert len(sentences[-1].split("error: ", 1)[1]) > 15, context  # says something


# --------------------------------------------------------------------------------- cases


def test_an_unexpected_exception_is_one_sentence_and_exit_1(odapi, good, tmp_path,
                                                            monkeypatch):
    """What the fuzz cases guard against, shown once: a bug still gets a sentence, not a
    traceback, and --verbose shows the traceback for the report."""
    from odapi.data import convert as conversion

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(conversion, "convert", broken)
    result = odapi("convert", good["data:voc"], "--out", tmp_path / "out", "-q")
    assert result.code == 1
    assert result.err == (f"error: unexpected ZeroDivisionError: division by zero; "
                          f"{BUG_REPORT}\n")
    with pytest.raises(ZeroDivisionError):
        odapi("convert", good["data:voc"], "--out", tmp_path / "out", "-q", "--verbose")


def test_every_good_input_passes(odapi, good, tmp_path):
    """The unmutated inputs succeed, so that every mutation starts from a working baseline."""
    for preset in list_presets():
        result = odapi("train", "--config", preset, "--data", good["records"], "--model-dir",
                       tmp_path / "m", "--check")
        assert result.code == 0, result.text
    for config in sorted(good["configs"].iterdir()):
        assert odapi("config", "explain", config, "--data", good["records"]).code == 0, config
    for name in FORMATS:
        result = odapi("convert", good[f"data:{name}"], "--out", tmp_path / name, "-q")
        assert result.code == 0, result.text


@pytest.mark.fuzz
@pytest.mark.parametrize("case", case_ids("preset"))
def test_mutated_preset(odapi, good, tmp_path, case):
    rng = random.Random(case)
    source = preset_dir() / f"{rng.choice(list_presets())}.yaml"
    config = tmp_path / source.name
    shutil.copyfile(source, config)
    what = mutate_file(config, rng)
    result = odapi("train", "--config", config, "--data", good["records"], "--model-dir",
                   tmp_path / "model", "--check")
    check(result, case, what)


@pytest.mark.fuzz
@pytest.mark.parametrize("case", case_ids("pipeline"))
def test_mutated_pipeline_config(odapi, good, tmp_path, case):
    rng = random.Random(case)
    source = rng.choice(sorted(good["configs"].iterdir()))
    config = tmp_path / source.name
    shutil.copyfile(source, config)
    what = mutate_file(config, rng)
    check(odapi("config", "explain", config, "--data", good["records"]), case, what)
    result = odapi("train", "--config", config, "--data", good["records"], "--model-dir",
                   tmp_path / "model", "--check")
    check(result, case, what)


def _dataset_copy(good: dict, name: str, tmp_path: Path) -> tuple[Path, list[Path]]:
    """A copy of the `name` dataset; returns what to convert and its annotation files."""
    source = good[f"data:{name}"]
    if name == "tutorial-csv":  # the CSV beside images/
        shutil.copytree(source.parent / "images", tmp_path / "data" / "images")
        shutil.copyfile(source, tmp_path / "data" / source.name)
        return tmp_path / "data" / source.name, [tmp_path / "data" / source.name]
    folder = source if source.is_dir() else source.parent
    shutil.copytree(folder, tmp_path / "data")
    target = tmp_path / "data" / source.relative_to(folder) if source != folder \
        else tmp_path / "data"
    files = [p for p in (tmp_path / "data").rglob("*")
             if p.is_file() and p.suffix in (".csv", ".xml", ".json", ".txt", ".yaml")]
    return target, files


@pytest.mark.fuzz
@pytest.mark.parametrize("case", case_ids("dataset"))
def test_mutated_dataset(odapi, good, tmp_path, case):
    rng = random.Random(case)
    name = FORMATS[int(case.split("-")[1]) % len(FORMATS)]
    target, files = _dataset_copy(good, name, tmp_path)
    what = [mutate_file(rng.choice(sorted(files)), rng)]
    if rng.random() < 0.2:  # and sometimes an image too
        images = sorted(p for p in (tmp_path / "data").rglob("*.jpg"))
        image = rng.choice(images)
        data, how = mutate_text(image.read_bytes(), rng)
        image.write_bytes(data)
        what.append(f"{image.name}: {how}")
    result = odapi("convert", target, "--out", tmp_path / "out", "-q")
    check(result, case, f"{name}: {'; '.join(what)}")


@pytest.mark.fuzz
@pytest.mark.parametrize("case", case_ids("label-map"))
def test_mutated_label_map(odapi, good, tmp_path, case):
    rng = random.Random(case)
    label_map = tmp_path / "label_map.pbtxt"
    shutil.copyfile(good["records"] / "label_map.pbtxt", label_map)
    what = mutate_file(label_map, rng)
    result = odapi("convert", good["data:voc"], "--label-map", label_map, "--out",
                   tmp_path / "out", "-q")
    check(result, case, what)


@pytest.mark.fuzz
@pytest.mark.parametrize("case", case_ids("records"))
def test_mutated_records(odapi, good, tmp_path, case):
    rng = random.Random(case)
    shard = rng.choice(sorted(good["records"].glob("*.tfrecord")))
    copy = tmp_path / shard.name
    shutil.copyfile(shard, copy)
    data, what = mutate_text(copy.read_bytes(), rng) if rng.random() < 0.5 else \
        (copy.read_bytes()[:rng.randrange(copy.stat().st_size)], "truncated")
    copy.write_bytes(data)
    result = odapi("inspect", copy, "--render", "2", "--out", tmp_path / "drawn")
    check(result, case, f"{shard.name}: {what}")
