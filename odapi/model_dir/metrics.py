"""Evaluation results of a run, `eval/metrics.json` in the model dir, and its best checkpoint.

One entry per evaluated step, never two; `best` names the step with the highest AP, whose
checkpoint is copied to `best/` so that training's checkpoint retention cannot delete it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from odapi.atomic import atomic_write_text, exclusive, replace_folder

EVAL_DIR = "eval"
METRICS_FILE = "metrics.json"
BEST_DIR = "best"


class MetricsStore:
    """`subdir` is `eval` for the run's own validation data; other data gets its own folder,
    and only the run's own results choose the best checkpoint."""

    def __init__(self, model_dir: Path, subdir: str = EVAL_DIR):
        self.model_dir = Path(model_dir)
        self.subdir = subdir
        self.path = self.model_dir / subdir / METRICS_FILE

    def load(self) -> dict:
        try:
            return json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {"evaluations": [], "best": None}

    def evaluated_steps(self) -> set[int]:
        return {int(e["step"]) for e in self.load()["evaluations"]}

    def best(self) -> dict | None:
        return self.load().get("best")

    def since_best(self) -> tuple[int, dict | None]:
        """How many evaluations came after the best one (by AP), and the best: what early
        stopping (`train --patience`) counts."""
        data = self.load()
        best = data.get("best")
        if best is None:
            return 0, None
        return sum(int(e["step"]) > int(best["step"]) for e in data["evaluations"]), best

    def summary_of(self, step: int | None) -> dict | None:
        """The evaluation of `step` as `best` summarises one: AP, AP50, best-F1 thresholds."""
        for entry in self.load()["evaluations"]:
            if int(entry["step"]) == step:
                return {"step": step, "AP": entry["metrics"]["AP"],
                        "AP50": entry["metrics"]["AP50"], "checkpoint": entry["checkpoint"],
                        "thresholds": entry.get("thresholds")}
        return None

    def add(self, entry: dict, checkpoint: str | None) -> bool:
        """Record one evaluation; returns whether it is the new best (by AP).

        One writer at a time (`train --eval-every` and the eval service may both record), so
        neither loses the other's entry or best/.
        """
        with exclusive(self.path.parent / ".metrics.lock"):
            data = self.load()
            if any(int(e["step"]) == int(entry["step"]) for e in data["evaluations"]):
                return False
            data["evaluations"].append(entry)
            data["evaluations"].sort(key=lambda e: int(e["step"]))
            best = data.get("best")
            is_best = checkpoint is not None and self.subdir == EVAL_DIR and (
                best is None or entry["metrics"]["AP"] > best["AP"])
            if is_best:
                copied = copy_checkpoint(checkpoint, self.model_dir / BEST_DIR)
                data["best"] = {"step": entry["step"], "AP": entry["metrics"]["AP"],
                                "AP50": entry["metrics"]["AP50"], "checkpoint": copied,
                                "thresholds": entry.get("thresholds")}
            atomic_write_text(self.path, json.dumps(data, indent=2))
            return is_best


def copy_checkpoint(prefix: str, folder: Path) -> str:
    """Copy a checkpoint into `folder`, replacing what was there in one rename.

    The copy is made in this process's own staging folder (atomic.replace_folder): a second
    writer (the eval service beside `train --eval-every`) never works in the same folder, and
    a killed one leaves nothing that the next copy does not remove.
    """
    prefix_path = Path(prefix)

    def write(new: Path) -> None:
        for source in prefix_path.parent.glob(prefix_path.name + ".*"):
            shutil.copy2(source, new / source.name)
        (new / "checkpoint").write_text(
            f'model_checkpoint_path: "{prefix_path.name}"\n'
            f'all_model_checkpoint_paths: "{prefix_path.name}"\n')

    replace_folder(folder, write)
    return str(folder / prefix_path.name)
