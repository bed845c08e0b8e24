"""`odapi report` (and the end of training): one HTML page about a run, what a person opens
first after training.

The run's config and data, its loss and AP curves, the latest evaluation's per-class table,
confusion matrix, PR and F1 curves and worst images: read from the model dir (manifest,
`eval/metrics.json`, the figures evaluation wrote, the train/ event files) into a single
self-contained file, its pictures embedded, so it opens from disk or a mail without a server.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from pathlib import Path

from odapi.atomic import atomic_write_text
from odapi.errors import OdapiError
from odapi.evaluation.figures import CONFUSION, CURVES, WORST
from odapi.model_dir.manifest import read_manifest
from odapi.model_dir.metrics import EVAL_DIR, MetricsStore

REPORT = "report.html"
LOSSES = ("total_loss", "cls_loss", "box_loss", "validation_loss")
STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 0 24px 48px; color: #1d2330; background: #fff; }
h1 { font-size: 26px; margin: 24px 0 4px; } h2 { font-size: 20px; margin: 0 0 12px; }
section { border-top: 1px solid #d8dde6; padding: 20px 0; }
table { border-collapse: collapse; } td, th { padding: 3px 14px 3px 0; text-align: left; }
th { color: #5a6475; font-weight: 600; } td.n { text-align: right; font-variant: tabular-nums; }
img { max-width: 100%; } .muted { color: #5a6475; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr));
        gap: 16px; } figure { margin: 0; } figcaption { font-size: 13px; color: #5a6475; }
"""


def write_report(model_dir: Path, out: Path | None = None) -> Path:
    """Write the report of the run in `model_dir` (to `out`, by default its report.html)."""
    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    if manifest is None:
        raise OdapiError("no odapi run here (manifest.json is missing)", where=str(model_dir))
    store = MetricsStore(model_dir)
    evaluations = store.load()["evaluations"]
    eval_dir = model_dir / EVAL_DIR
    curves = _read_json(eval_dir / f"{CURVES}.json")  # the latest evaluation's, mostly
    shown = next((e for e in evaluations if e["step"] == curves.get("step")),
                 evaluations[-1] if evaluations else None)
    worst = _read_json(eval_dir / WORST / "worst.json")
    sections = [
        ("run", "Run", _run(manifest, store.best())),
        ("data", "Dataset", _dataset(manifest, model_dir)),
        ("curves", "Loss and AP", _curves(model_dir, evaluations)),
        ("classes", "Per class" + _at(shown), _classes(shown, curves)),
        ("confusion", "Confusion matrix" + _at(_read_json(eval_dir / f"{CONFUSION}.json")),
         _figure(eval_dir / f"{CONFUSION}.png")),
        ("pr", "Precision-recall and F1" + _at(curves), _figure(eval_dir / f"{CURVES}.png")),
        ("worst", "Worst images" + _at(worst), _worst(eval_dir / WORST, worst)),
    ]
    body = "".join(f'<section id="{key}"><h2>{html.escape(title)}</h2>{content}</section>'
                   for key, title, content in sections)
    name = html.escape(model_dir.resolve().name)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>odapi: {name}"
            f"</title><style>{STYLE}</style></head><body><h1>{name}</h1>"
            f"<p class=muted>{html.escape(str(model_dir.resolve()))}</p>{body}</body></html>")
    out = Path(out) if out else model_dir / REPORT
    atomic_write_text(out, page)
    return out


def write_report_or_say(model_dir: Path, log: Callable[[str], None]) -> Path | None:
    """write_report for the end of a command that has done its work: a report that cannot be
    written is said, not raised (a trainer failing here would be restarted, and fail again)."""
    try:
        return write_report(model_dir)
    except Exception as e:
        log(f"the run's report could not be written ({type(e).__name__}: {e}); "
            f"`odapi report --model-dir {model_dir}` tries again")
        return None


def _at(evaluated: dict | None) -> str:
    """The step an evaluation, or a figure's numbers, are of."""
    return f" (step {evaluated['step']})" if evaluated and "step" in evaluated else ""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _none_yet(what: str) -> str:
    return (f"<p class=muted>No {what} yet: evaluate the run (<code>odapi eval --model-dir "
            "DIR</code>, or train with <code>--eval-every</code>).</p>")


def _table(rows: list[list], headers: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers) if headers else ""
    cells = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table>{f'<tr>{head}</tr>' if head else ''}{cells}</table>"


def _cell(value) -> str:
    """Numbers right-aligned (fractions to 3 places), text escaped."""
    if isinstance(value, float):
        return f'<td class="n">{value:.3f}</td>'
    if isinstance(value, int):
        return f'<td class="n">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _run(manifest: dict, best: dict | None) -> str:
    config, final = manifest["config"], manifest.get("final") or {}
    params = config["params"]
    status = manifest.get("status", "").replace("_", " ")
    if manifest.get("stopped_early"):
        status += f": {manifest['stopped_early']['reason']}"
    rows = [
        ["status", status],
        ["steps", f"{final.get('step', 0)} of {params['trainer']['train_steps']}"],
        ["config", f"{config['source']} (Model Garden experiment {config['experiment']})"],
        ["input size", "x".join(str(v) for v in params["task"]["model"]["input_size"][:2])],
        ["batch size", str(params["task"]["train_data"]["global_batch_size"])],
        ["started from", (manifest.get("init") or {}).get("checkpoint")
         or config.get("init_checkpoint") or "random weights"],
        ["best AP", f"{best['AP']:.3f} at step {best['step']} ({best['checkpoint']})"
         if best else "not evaluated"],
        ["sessions", f"{len(manifest.get('sessions', []))}, the first started "
                     f"{manifest.get('created', '?')}"],
        ["versions", ", ".join(f"{k} {v}" for k, v in (manifest.get("versions") or {}).items()
                               if v)],
    ]
    return _table(rows)


def _dataset(manifest: dict, model_dir: Path) -> str:
    names = _label_names(model_dir / "label_map.pbtxt")
    splits = {k: v for k, v in (manifest.get("dataset") or {}).items() if v}
    if not splits:
        return "<p class=muted>The manifest records no dataset.</p>"
    ids = sorted({int(i) for s in splits.values() for i in s.get("boxes_per_class_id", {})})
    rows = [[split, s["examples"], s["boxes"],
             *(s.get("boxes_per_class_id", {}).get(str(i), 0) for i in ids)]
            for split, s in splits.items()]
    return _table(rows, ["split", "images", "boxes", *(names.get(i, str(i)) for i in ids)])


def _label_names(copy: Path) -> dict[int, str]:
    """Class names by id from the run's label map copy, when it is readable."""
    from odapi.labelmap import LabelMap

    try:
        return LabelMap.read(copy).names_by_id if copy.is_file() else {}
    except (OSError, ValueError, OdapiError):
        return {}


def _curves(model_dir: Path, evaluations: list[dict]) -> str:
    losses = _scalars(model_dir / "train")
    if evaluations:
        losses["validation_loss"] = [(e["step"], e["losses"].get("validation_loss"))
                                     for e in evaluations if e.get("losses")]
    if not any(losses.values()) and not evaluations:
        return "<p class=muted>No training summaries yet.</p>"
    return _embed(_curves_png(losses, evaluations), "image/png", "loss and AP curves")


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """The losses in a folder of TensorBoard event files, step by step."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    if not folder.is_dir():
        return {}
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={"tensors": 0})
    accumulator.Reload()
    tags = set(accumulator.Tags().get("tensors", []))
    return {tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto)))
                  for e in accumulator.Tensors(tag)] for tag in LOSSES if tag in tags}


def _curves_png(losses: dict[str, list[tuple[int, float]]], evaluations: list[dict]) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4), dpi=100, layout="constrained")
    loss_axes, ap_axes = figure.subplots(1, 2)
    for name, points in losses.items():
        points = [(s, v) for s, v in points if v is not None]
        if points:
            loss_axes.plot(*zip(*points, strict=True), label=name, marker=".")
    loss_axes.set(xlabel="step", ylabel="loss", title="losses")
    for key in ("AP", "AP50"):
        points = [(e["step"], e["metrics"][key]) for e in evaluations]
        if points:
            ap_axes.plot(*zip(*points, strict=True), marker="o", label=key)
    ap_axes.set(xlabel="step", ylabel="COCO AP", title="validation AP", ylim=(0, 1))
    for axes in (loss_axes, ap_axes):
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _classes(evaluation: dict | None, curves: dict) -> str:
    if not evaluation:
        return _none_yet("evaluation")
    curves = curves.get("per_class", {}) if curves.get("step") == evaluation["step"] else {}
    rows = [[name, float(v["AP"]), float(v["AP50"]),
             curves.get(name, {}).get("objects", "?"),
             _number(curves.get(name, {}).get("best_f1")),
             _number(curves.get(name, {}).get("best_threshold"))]
            for name, v in evaluation["per_class"].items()]
    return _table(rows, ["class", "AP", "AP50", "objects", "best F1", "at score"])


def _number(value) -> float | str:
    return "-" if value is None else float(value)


def _figure(path: Path) -> str:
    if not path.is_file():
        return _none_yet("evaluation")
    return _embed(path.read_bytes(), "image/png", path.stem.replace("_", " "))


def _worst(folder: Path, worst: dict) -> str:
    listing = worst.get("images")
    if listing is None:
        return _none_yet("evaluation")
    if not listing:
        return "<p>No validation image has an error at the best thresholds.</p>"
    figures = "".join(
        f"<figure>{_embed((folder / e['file']).read_bytes(), 'image/jpeg', e['image'])}"
        f"<figcaption>{html.escape(e['image'])}: {html.escape(e['errors'])}</figcaption>"
        "</figure>" for e in listing if (folder / e["file"]).is_file())
    return f'<div class="grid">{figures}</div>'


def _embed(data: bytes, mime: str, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{encoded}">'
