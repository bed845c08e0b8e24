"""Training length: --steps, --epochs and --set trainer.train_steps, with the learning-rate
schedule stretched to the run (the demo preset decays over its 300 steps, warms up over 30)."""

from __future__ import annotations

import pytest
import yaml

SCHEDULE = "trainer.optimizer_config"


def checked(odapi, records, tmp_path, *args) -> tuple[dict, str]:
    """`odapi train --check`: the resolved run as YAML, and what it said on stderr."""
    result = odapi("train", "--config", "demo", "--data", records, "--model-dir",
                   tmp_path / "m", "--check", *args)
    assert result.code == 0, result.text
    return yaml.safe_load(result.out.split("\nconfig ", 1)[0]), result.err


def schedule(run: dict) -> tuple[int, int, int]:
    trainer = run["params"]["trainer"]
    optimizer = trainer["optimizer_config"]
    return (trainer["train_steps"], optimizer["learning_rate"]["cosine"]["decay_steps"],
            optimizer["warmup"]["linear"]["warmup_steps"])


@pytest.mark.parametrize("args, expected, source", [
    ((), (300, 300, 30), "the config"),
    (("--steps", "600"), (600, 600, 60), "--steps"),
    (("--set", "trainer.train_steps=150"), (150, 150, 15), "--set trainer.train_steps"),
    (("--epochs", "2"), (10, 10, 1), "--epochs"),  # 36 training images, batch 8: 5 per epoch
])
def test_the_schedule_stretches_with_the_length(odapi, records, tmp_path, args,
                                                expected, source):
    run, err = checked(odapi, records, tmp_path, *args)
    assert schedule(run) == expected
    assert run["length"]["from"] == source
    if source == "--epochs":  # the records are counted only then (training counts them anyway)
        assert run["length"]["epochs"] == 2
    if expected[0] != 300:
        assert err.count("note: learning-rate schedule stretched from the config's 300 steps "
                         f"to {expected[0]}: cosine decay_steps 300 -> {expected[1]}, linear "
                         f"warmup_steps 30 -> {expected[2]}") == 1


def test_schedule_keys_set_on_the_command_line_stay(odapi, records, tmp_path):
    run, err = checked(odapi, records, tmp_path, "--steps", "600", "--set",
                       f"{SCHEDULE}.learning_rate.cosine.decay_steps=100")
    assert schedule(run) == (600, 100, 60)


def test_steps_and_epochs_together_are_refused(odapi, records, tmp_path):
    result = odapi("train", "--config", "demo", "--data", records, "--model-dir",
                   tmp_path / "m", "--check", "--steps", "5", "--epochs", "2")
    assert result.code == 1
    assert result.err.strip() == "error: give --steps or --epochs, not both"
