"""The command itself: help lists only working commands, --version, doctor's checks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import odapi

from conftest import odapi_command

COMMANDS = ["convert", "inspect", "demo-data", "train", "config", "eval", "checkpoints",
            "tensorboard", "report", "demo", "export", "predict", "doctor"]


def test_installed_console_script_lists_exactly_the_working_commands():
    script = Path(sys.executable).with_name("odapi")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    listed = [line.split()[0] for line in result.stdout.splitlines()
              if re.match(r"^    \S", line)]  # a command's row, not a wrapped description
    assert listed == COMMANDS


def test_help_starts_without_tensorflow_and_prints_no_log_lines():
    """Help, and the parser every command goes through, load no TensorFlow: it takes seconds
    and prints its own log lines before odapi can quiet them (TF_CPP_MIN_LOG_LEVEL, which
    this suite sets, unset here as in a user's shell)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    for command in (["--help"], ["export", "--help"], ["train", "--help"]):
        result = subprocess.run(odapi_command(*command), capture_output=True, text=True,
                                env=env, timeout=120, check=False)
        assert result.returncode == 0 and result.stderr == "", (command, result.stderr)
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, odapi.cli; odapi.cli.build_parser(); "
                               "print('tensorflow' in sys.modules)"],
        capture_output=True, text=True, env=env, timeout=120, check=True)
    assert loaded.stdout.strip() == "False", loaded.stderr


def test_every_command_has_help(odapi):
    for command in COMMANDS:
        result = odapi(command, "--help")
        assert result.code == 0, command
        assert "usage: odapi " + command in result.out


def test_version(odapi):
    result = odapi("--version")
    assert result.code == 0
    assert result.out.strip() == f"odapi {odapi_version()}"


def odapi_version() -> str:
    return odapi.__version__


def test_usage_errors_exit_2(odapi):
    assert odapi("convert").code == 2  # no input, no --out
    assert odapi("no-such-command").code == 2


def test_doctor_reports_versions_gpus_protos_and_folders(odapi, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    result = odapi("doctor", "--data", data, "--output", tmp_path / "runs" / "new")
    assert result.code == 0, result.text
    rows = {line.split()[0]: line for line in result.out.splitlines()[2:]}
    assert "2.20.0" in rows["tensorflow"]
    assert "tf-models-official 2.20.0" in rows["Model"]
    assert "GPUs" in rows
    assert "compiled and importable" in rows["protos"]
    assert f"data {data}" in result.out and "readable" in result.out
    assert (tmp_path / "runs" / "new").is_dir()


def test_doctor_fails_on_unusable_folders(odapi, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = odapi("doctor", "--data", tmp_path / "missing", "--output", blocker / "out")
    assert result.code == 1
    assert f"data {tmp_path / 'missing'}" in result.out
    assert "does not exist" in result.out
    assert "not writable" in result.out
    assert result.out.count("FAIL") == 2


def test_doctor_notices_uncompiled_protos(odapi, tmp_path):
    """A schema newer than its generated module is reported with the command that fixes it."""
    from odapi.protos.compile import generated_module, proto_files

    proto = proto_files()[0]
    before = proto.stat()
    compiled = generated_module(proto).stat().st_mtime  # `make test` may have just compiled it
    try:
        os.utime(proto, (before.st_atime, max(before.st_mtime, compiled) + 3600))
        result = odapi("doctor")
    finally:
        os.utime(proto, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert result.code == 1
    assert "python -m odapi.protos.compile" in result.out


def test_eval_follow_with_one_checkpoint_is_refused(odapi, tmp_path):
    """--follow waits for every new checkpoint, --checkpoint names one: together they never
    ended (unless it was the final one)."""
    result = odapi("eval", "--model-dir", tmp_path, "--follow", "--checkpoint",
                   tmp_path / "ckpt-3")
    assert result.code == 2
    assert "--follow evaluates each new checkpoint until the run's last, --checkpoint one" \
        in result.err


def test_an_error_in_the_compose_stack_names_the_variable_its_option_comes_from(
        odapi, tmp_path, monkeypatch):
    """compose.yaml passes --model-dir itself, from ODAPI_MODEL_DIR: an error asking for it
    points there, not at ODAPI_TRAIN_ARGS (test_layouts has an option that goes there)."""
    monkeypatch.delenv("ODAPI_OPTIONS_FROM", raising=False)
    args = ("export", "--model-dir", tmp_path, "--out", tmp_path / "export")
    typed = odapi(*args)
    assert typed.code == 1 and typed.err.endswith("give the --model-dir that `odapi train` "
                                                  "writes to\n"), typed.err
    monkeypatch.setenv("ODAPI_OPTIONS_FROM", "ODAPI_TRAIN_ARGS")
    assert odapi(*args).err.endswith("\n(the compose stack sets --model-dir from ODAPI_MODEL_DIR: "
                                     "set it in .env or beside `docker compose up`)\n")


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    """`odapi ... | head` stops reading early: the command ends as a shell's commands do on
    SIGPIPE (141), without calling it a bug in odapi."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as pip installs
    process = subprocess.Popen(odapi_command("demo-data", tmp_path / "data", "--count", "2"),
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # before it writes its first line
    err = process.stderr.read()
    assert process.wait(timeout=120) == 141 and err == ""
