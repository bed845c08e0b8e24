"""The `odapi` command: a thin layer over the library; each subcommand calls one function."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from odapi import __version__
from odapi.errors import OdapiError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
RESTART_ON_CRASH = "--restart-on-crash"  # handled before the command runs (supervise.py)


def _quiet_tensorflow(verbose: bool) -> None:
    """TensorFlow's C++ start-up chatter hides what matters; keep it off unless asked for."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def non_negative_int(text: str) -> int:
    return positive_int(text) if text.strip() not in ("0", "+0", "-0") else 0


def _reading_options(args: argparse.Namespace, **more):
    """ConvertOptions from the options `convert` and `train --data` share."""
    from odapi.data.convert import ConvertOptions
    from odapi.data.split import parse_split_spec

    return ConvertOptions(
        format=args.format, images=args.images, class_name=args.class_name,
        label_map=args.label_map, split=parse_split_spec(args.split) if args.split else None,
        progress=not args.quiet, **more)


def cmd_convert(args: argparse.Namespace) -> int:
    from odapi.data.convert import ConversionFailed, convert

    options = _reading_options(
        args, coords=args.coords, seed=args.seed, shards=args.shards, workers=args.workers,
        strict=args.strict, overwrite=args.overwrite, verify_pixels=args.verify_pixels)
    try:
        report = convert(args.inputs, args.out, options)
    except ConversionFailed as e:
        print(e.report.summary(), file=sys.stderr)
        raise
    print(report.summary())
    print(f"\nwrote {args.out}/ (label_map.pbtxt, report.txt, report.json, "
          f"{sum(len(s.shards) for s in report.splits.values())} record file(s))")
    return EXIT_OK


def cmd_inspect(args: argparse.Namespace) -> int:
    from odapi.data.inspect import inspect_records
    from odapi.labelmap import LabelMap

    label_map = LabelMap.read(args.label_map) if args.label_map else None
    stats, written = inspect_records(args.records, args.render, args.out, label_map, args.seed)
    print(stats.summary())
    if written:
        print(f"\ndrew {len(written)} example(s) with their boxes into {args.out}/")
    return EXIT_OK


def cmd_demo_data(args: argparse.Namespace) -> int:
    from odapi.data.synthetic import write_demo_dataset

    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    written = write_demo_dataset(args.out, args.count, args.seed, formats)
    print(f"wrote {args.count} synthetic images to {args.out}/images; convert them with:")
    for name, path in written.items():
        print(f"  odapi convert {path} --out records --split train=0.8,val=0.2   # {name}")
    return EXIT_OK


def _quiet_model_garden(verbose: bool) -> None:
    """Model Garden logs every loop through absl; the progress bar and tables replace that."""
    if verbose:
        return
    import warnings

    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="keras|tf_keras")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def cmd_train(args: argparse.Namespace) -> int:
    from odapi.engine.job import TrainRequest, plan, run_training
    from odapi.engine.length import Length
    from odapi.engine.train import summary_table

    _quiet_model_garden(args.verbose)
    request = TrainRequest(
        model_dir=args.model_dir, config=args.config, data=args.data,
        reading=_reading_options(args), demo_if_empty=args.demo_if_empty,
        train_data=args.train_data, val_data=args.val_data, label_map=args.label_map,
        length=Length(steps=args.steps, epochs=args.epochs), sets=args.set,
        init_checkpoint=args.init_checkpoint, from_scratch=args.from_scratch,
        eval_every=args.eval_every, sample_1_of_n_eval=args.sample_1_of_n_eval_examples)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    if args.check:
        import yaml

        run = plan(request, log, prepare=False)
        print(yaml.safe_dump(run.to_dict(), sort_keys=False))
        print(f"config {run.source} resolves: {len(run.label_map)} classes (model outputs "
              f"{run.label_map.max_id + 1} with background); nothing was trained (--check)")
        return EXIT_OK
    ready = ReadyFile(args.ready_file)
    result = run_training(request, log, progress=not args.quiet, verbose=args.verbose,
                          on_started=ready.write)
    print(summary_table(result))
    ready.linger()
    return 130 if result.interrupted else EXIT_OK


class ReadyFile:
    """`--ready-file`: written when training starts, for a container's health check, which
    the compose stack's eval and tensorboard services wait for. Compose takes a container that
    ends before its check has seen it healthy for a failed one, so a run that was already
    finished stays a few seconds after writing it."""

    LINGER = 5.0  # seconds; more than the compose health check's interval

    def __init__(self, path: Path | None):
        self.path = path
        self.written_at: float | None = None

    def write(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(f"{os.getpid()}\n")
            self.written_at = time.monotonic()

    def linger(self) -> None:
        if self.written_at is not None:
            time.sleep(max(0.0, self.written_at + self.LINGER - time.monotonic()))


def cmd_config_explain(args: argparse.Namespace) -> int:
    from odapi.engine.pipeline.translate import translate

    translation = translate(args.file, data=args.data)
    counts = translation.counts()
    print(translation.table())
    print(f"\n{len(translation.fates)} fields: {counts['applied']} applied, "
          f"{counts['approximated']} approximated, {counts['ignored']} ignored")
    print(f"\nModel Garden experiment: {translation.summary}; what `odapi config convert` "
          f"writes (`odapi train --config {args.file} --check` shows it fully resolved):\n")
    print(translation.to_yaml())
    return EXIT_OK


def cmd_config_convert(args: argparse.Namespace) -> int:
    from odapi.atomic import atomic_write_text
    from odapi.engine.pipeline.translate import translate

    if args.out.exists() and not args.overwrite:
        raise OdapiError("exists already; pass --overwrite to replace it", where=str(args.out))
    translation = translate(args.file, data=args.data)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, translation.to_yaml())
    counts = translation.counts()
    print(f"wrote {args.out}: {translation.summary} ({counts['approximated']} field(s) "
          f"approximated, {counts['ignored']} ignored; see `odapi config explain {args.file}`)")
    print(f"train it with: odapi train --config {args.out} --model-dir DIR")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from odapi.evaluation.evaluate import evaluate_run

    _quiet_model_garden(args.verbose)

    def show(result) -> None:
        rows = [[name, f"{value:.3f}"] for name, value in result.metrics.items()]
        print(f"step {result.step} ({result.checkpoint}; results in {result.metrics_file})"
              + ("  best so far" if result.is_best else ""))
        print(tabulate(rows, tablefmt="plain"))
        per_class = [[name, f"{v['AP']:.3f}", f"{v['AP50']:.3f}"]
                     for name, v in result.per_class.items()]
        print(tabulate(per_class, headers=["class", "AP", "AP50"]), flush=True)

    if args.follow and args.checkpoint:
        raise OdapiError("--follow evaluates each new checkpoint until the run's last, "
                         "--checkpoint one checkpoint: give one of them", exit_code=EXIT_USAGE)
    results = evaluate_run(args.model_dir, checkpoint=args.checkpoint, val_data=args.val_data,
                           follow=args.follow, poll_seconds=args.poll, timeout=args.timeout,
                           on_result=show, on_wait=lambda m: print(m, flush=True))
    if not results:
        print("nothing new to evaluate: every checkpoint's step already has results under "
              f"{args.model_dir}")
    return EXIT_OK


def cmd_checkpoints_list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from odapi import zoo

    rows = [[name, entry.what, ", ".join(entry.fits), size, state]
            for name, entry, size, state in zoo.listing()]
    print(tabulate(rows, headers=["name", "what", "fits", "size", "cache"]))
    print(f"\ncache: {zoo.cache_dir()} (ODAPI_CACHE); `coco` names the config's own COCO "
          "checkpoint")
    return EXIT_OK


def cmd_checkpoints_download(args: argparse.Namespace) -> int:
    from odapi import zoo

    for name in args.names:
        prefix = zoo.fetch(name, log=lambda m: print(m, file=sys.stderr), progress=not args.quiet)
        print(f"{name}: {prefix}")
    return EXIT_OK


def cmd_checkpoints_verify(args: argparse.Namespace) -> int:
    from odapi import zoo

    states = zoo.verify()
    for name, state in states.items():
        print(f"{name}: {state}")
    if not states:
        print(f"no checkpoint in {zoo.cache_dir()} yet")
    return EXIT_OK if all(state == "ok" for state in states.values()) else EXIT_FAILED


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from odapi.tensorboard import serve

    return serve(args.model_dir, args.host, args.port) or EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from odapi.demo import run_demo

    _quiet_model_garden(args.verbose)
    result = run_demo(args.out, steps=args.steps, count=args.count, progress=not args.quiet,
                      log=print)
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_export(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from odapi.export import export_model

    _quiet_model_garden(args.verbose)
    result = export_model(args.model_dir, args.out, checkpoint=args.checkpoint,
                          input_type=args.input_type, tflite=args.tflite, quantize=args.quantize,
                          overwrite=args.overwrite, log=lambda m: print(m, file=sys.stderr))
    rows = [["SavedModel", f"{result.out}/saved_model ({result.input_type})"],
            ["checkpoint", f"{result.checkpoint} (step {result.step})"]]
    for path, check in zip(result.tflite, result.tflite_checks.values(), strict=True):
        rows.append([path.name, f"matches the SavedModel on {check['images']} images: "
                     f"{check['compared']} detections, score difference <= "
                     f"{check['max_score_difference']:.4f}, IoU >= {check['min_iou']:.3f}"])
    print(tabulate(rows, tablefmt="plain"))
    print(f"signature and classes: {result.out}/README.md")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from odapi.predict import predict

    _quiet_model_garden(args.verbose)
    report = predict(args.model, args.inputs, args.out, threshold=args.threshold,
                     max_detections=args.max_detections, batch_size=args.batch_size,
                     ground_truth=args.ground_truth, progress=not args.quiet,
                     log=lambda m: print(m, file=sys.stderr))
    print(f"{report.images} image(s), {report.detections} detection(s) scored >= "
          f"{args.threshold}; wrote {report.out}/images/, detections.json, detections.csv")
    if report.unreadable:
        print(f"{len(report.unreadable)} input(s) could not be read (listed above)")
    if report.metrics is not None:
        print(tabulate([[k, f"{v:.3f}"] for k, v in report.metrics.items()], tablefmt="plain"))
        print(tabulate([[n, f"{v['AP']:.3f}", f"{v['AP50']:.3f}"]
                        for n, v in report.per_class.items()], headers=["class", "AP", "AP50"]))
    return EXIT_OK if report.images else EXIT_FAILED


def cmd_doctor(args: argparse.Namespace) -> int:
    from odapi.doctor import format_checks, run_checks

    checks = run_checks(args.data, args.output)
    print(format_checks(checks))
    failed = [c for c in checks if c.status == "FAIL"]
    return EXIT_FAILED if failed else EXIT_OK


def _presets() -> list[str]:
    from odapi.engine.config import list_presets

    return list_presets()


def build_parser() -> argparse.ArgumentParser:
    from odapi.data.formats import FORMATS
    from odapi.data.synthetic import DEFAULT_FORMATS
    from odapi.data.synthetic import FORMATS as DEMO_FORMATS

    parser = argparse.ArgumentParser(
        prog="odapi",
        description="Train TensorFlow object detectors on your own labelled images.",
        epilog="Run `odapi COMMAND --help` for a command's options. Exit status: 0 success, "
               "1 failure (the message says why), 2 bad command line.")
    parser.add_argument("--version", action="version", version=f"odapi {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="show TensorFlow's own log output, and tracebacks on errors")
    supervised = argparse.ArgumentParser(add_help=False)
    supervised.add_argument(
        RESTART_ON_CRASH, action="store_true",
        help="run the command in a child process and start it again when it crashes (killed "
             "by a signal, e.g. by the OOM killer); errors to fix (exit 1, 2) end it at once")
    reading = argparse.ArgumentParser(add_help=False)
    group = reading.add_argument_group("reading a dataset")
    group.add_argument("--format", choices=list(FORMATS),
                       help="annotation format (default: detect)")
    group.add_argument("--images", type=Path, metavar="DIR",
                       help="the folder that holds the images (default: found beside the "
                            "annotations, in the folder they name, or in an images/, "
                            "JPEGImages/, imgs/ or img/ folder next to them)")
    group.add_argument("--class-name", metavar="NAME",
                       help="class of every box in a tutorial CSV without a class column")
    group.add_argument("--label-map", type=Path, metavar="FILE",
                       help="class names and ids from this label_map.pbtxt (default: the "
                            "classes sorted by name, ids from 1; for records, their own)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, *parents: argparse.ArgumentParser, **kwargs) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common, *parents], **kwargs)

    formats = "\n".join(f"  {name:13} {m.DESCRIPTION}" for name, m in FORMATS.items())
    p = add(
        "convert", reading,
        help="annotations in any common format -> TFRecords + label map + report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Convert labelled images to sharded TFRecords, a label_map.pbtxt and a "
                    "report of everything that was skipped or fixed.\n\nFormats (detected; "
                    f"--format overrides):\n{formats}",
        epilog="examples:\n"
               "  odapi convert annotations.csv --class-name Ball --images img/out --out records\n"
               "  odapi convert my-roboflow-export/ --out records\n"
               "  odapi convert voc/ --out records --split train=0.8,val=0.2\n\n"
               "exit status: 0 converted (skipped items are listed), 1 nothing usable was "
               "left or --strict found problems, 2 bad command line")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="annotation file or dataset folder")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--split", metavar="SPEC",
                   help="split by image, e.g. train=0.8,val=0.2 (default: keep the input's "
                        "train/valid/test folders, else everything is train)")
    p.add_argument("--seed", type=int, default=0, help="seed for --split (default: 0)")
    p.add_argument("--coords", choices=["auto", "pixel", "normalized"], default="auto",
                   help="box coordinate frame (default: detect per file)")
    p.add_argument("--shards", type=positive_int, metavar="N",
                   help="record files per split (default: one per ~100 MB)")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="parallel workers (default: all cores)")
    p.add_argument("--strict", action="store_true", help="fail on any item that would be skipped")
    p.add_argument("--verify-pixels", action="store_true",
                   help="decode every image to find damaged pixel data (slower; by default "
                        "JPEGs are checked by their structure: markers and end-of-image)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier conversion in --out")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_convert)

    p = add(
        "inspect", help="count what TFRecords hold and draw examples with their boxes",
        description="Print images, boxes per class, image sizes and boxes per image of detection "
                    "TFRecords, flag what would trouble training, and draw examples to PNG.")
    p.add_argument("records", nargs="+", metavar="RECORDS",
                   help="record files, folders of them, or globs")
    p.add_argument("--render", type=non_negative_int, default=8, metavar="N",
                   help="examples to draw (default: 8; 0 draws none)")
    p.add_argument("-o", "--out", type=Path, default=Path("inspect"),
                   help="folder for the drawings (default: ./inspect)")
    p.add_argument("--label-map", type=Path, metavar="FILE",
                   help="name class ids of records that carry no class text")
    p.add_argument("--seed", type=int, default=0, help="which examples to draw")
    p.set_defaults(run=cmd_inspect)

    p = add(
        "demo-data", help="write an offline synthetic dataset of coloured shapes",
        description="Generate images of circles, squares and triangles on varied backgrounds, "
                    "annotated in each chosen format.")
    p.add_argument("out", type=Path, help="new or empty folder")
    p.add_argument("--count", type=positive_int, default=300, help="images (default: 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--formats", default=",".join(DEFAULT_FORMATS),
                   help=f"comma-separated, from {', '.join(DEMO_FORMATS)} "
                        f"(default: {','.join(DEFAULT_FORMATS)})")
    p.set_defaults(run=cmd_demo_data)

    p = add(
        "train", reading, supervised,
        help="train a detector on converted records (resumes in the same model dir)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train with TF Model Garden. CONFIG is a preset from configs/ ("
                    + ", ".join(_presets()) + "), a YAML file naming a Model Garden "
                    "experiment with its overrides, or an OD API pipeline.config. Without "
                    "--config, a real dataset trains retinanet_resnet50_fpn (GPU) or "
                    "retinanet_mobile (CPU) fine-tuned from its COCO checkpoint, and the "
                    "synthetic demo trains demo from scratch. The class count comes from the "
                    "label map. The same command again resumes from the latest checkpoint.",
        epilog="examples:\n"
               "  odapi train --data my-dataset --model-dir runs/mine\n"
               "  odapi train --config demo --data records --model-dir runs/demo\n"
               "  odapi train --config retinanet_resnet50_fpn --data records --model-dir runs/r50 "
               "\\\n      --init-checkpoint coco --epochs 30 --eval-every 1000\n"
               "  odapi train --config demo --data records --model-dir runs/x "
               "--set task.train_data.global_batch_size=4")
    p.add_argument("--config",
                   help="preset name, experiment YAML, or an OD API pipeline.config (default, "
                        "or `auto`: chosen for the data, as above)")
    p.add_argument("--model-dir", type=Path, required=True,
                   help="checkpoints, event files and the run manifest go here")
    p.add_argument("--data", type=Path, metavar="DIR",
                   help="a folder written by `odapi convert` (its train-*, val-* records and "
                        "label_map.pbtxt), or a dataset in any format `convert` reads, which is "
                        "converted into MODEL_DIR/records first")
    p.add_argument("--split", metavar="SPEC",
                   help="with a dataset --data: how to split it (default: its own train/valid "
                        "folders, else train=0.8,val=0.2)")
    p.add_argument("--demo-if-empty", action="store_true",
                   help="train on the synthetic demo dataset when --data holds nothing "
                        "(what `docker compose up` does without a dataset)")
    p.add_argument("--train-data", metavar="GLOB", help="training records (overrides --data)")
    p.add_argument("--val-data", metavar="GLOB", help="validation records (overrides --data)")
    p.add_argument("--steps", "--num-train-steps", "--num_train_steps", dest="steps",
                   type=positive_int, metavar="N",
                   help="train until step N (the learning-rate schedule stretches with it)")
    p.add_argument("--epochs", type=positive_float, metavar="N",
                   help="train N passes over the training records (instead of --steps)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a Model Garden config key, e.g. trainer.train_steps=500 "
                        "(repeatable; values are YAML)")
    p.add_argument("--init-checkpoint", metavar="NAME|PATH",
                   help="fine-tune from `coco` (the config's COCO checkpoint), a published "
                        "checkpoint's name (`odapi checkpoints list`; downloaded on first use), "
                        "a checkpoint path or another odapi run's model dir; with another class "
                        "count only backbone and decoder are restored")
    p.add_argument("--from-scratch", action="store_true",
                   help="start from random weights, whatever the config or the default says")
    p.add_argument("--sample-1-of-n-eval-examples", "--sample_1_of_n_eval_examples",
                   dest="sample_1_of_n_eval_examples", type=positive_int, metavar="N",
                   help="evaluate every Nth validation example (a sample written into the "
                        "model dir)")
    p.add_argument("--eval-every", type=positive_int, metavar="N",
                   help="evaluate on the validation records every N steps, in this process")
    p.add_argument("--check", action="store_true",
                   help="resolve the config and print it; train nothing")
    p.add_argument("--ready-file", type=Path, metavar="FILE",
                   help="write FILE once training starts (for container health checks)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_train)

    p = add(
        "config", help="explain or convert an OD API pipeline.config",
        description="An OD API pipeline.config trains as it is (`odapi train --config "
                    "pipeline.config`). These show what becomes of each of its fields in Model "
                    "Garden, or write the resulting experiment as odapi YAML.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, run, summary in (
            ("explain", cmd_config_explain, "list each field with its fate (applied, "
             "approximated or ignored), then the resulting Model Garden experiment"),
            ("convert", cmd_config_convert, "write the resulting experiment as YAML that "
             "`odapi train --config` accepts")):
        action = actions.add_parser(name, parents=[common], help=summary, description=summary)
        action.add_argument("file", type=Path, metavar="PIPELINE_CONFIG")
        action.add_argument("--data", type=Path, metavar="DIR",
                            help="where the config's relative paths may point, after its own "
                                 "folder (odapi train's --data)")
        if name == "convert":
            action.add_argument("-o", "--out", type=Path, required=True,
                                metavar="EXPERIMENT_YAML")
            action.add_argument("--overwrite", action="store_true",
                                help="replace an existing file")
        action.set_defaults(run=run)

    p = add(
        "eval", supervised, help="COCO AP/AR with per-class AP for a run's checkpoints",
        description="Evaluate the latest checkpoint of a run on its validation records (or "
                    "--val-data), writing TensorBoard summaries and eval/metrics.json. With "
                    "--follow, wait for and evaluate each new checkpoint, and exit 0 after the "
                    "final one.")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--follow", action="store_true",
                   help="evaluate each new checkpoint until the run's final step")
    p.add_argument("--checkpoint", metavar="PATH", help="evaluate this checkpoint instead")
    p.add_argument("--val-data", metavar="GLOB",
                   help="other records to evaluate on; results go to their own eval-* folder")
    p.add_argument("--poll", type=float, default=10.0, metavar="SECONDS",
                   help="how often --follow looks for checkpoints (default: 10)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="with --follow, give up after this long without a new checkpoint")
    p.set_defaults(run=cmd_eval)

    p = add("checkpoints", help="list, download and verify published checkpoints by name",
            description="The checkpoints `--init-checkpoint NAME` takes, and the local cache "
                        "they are downloaded into on first use ($ODAPI_CACHE, default "
                        "~/.cache/odapi). On a host without internet, put the published file "
                        "in the cache's checkpoints/downloads/ folder.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    action = actions.add_parser("list", parents=[common], help="the table, and what is cached")
    action.set_defaults(run=cmd_checkpoints_list)
    action = actions.add_parser("download", parents=[common], help="fill the cache")
    action.add_argument("names", nargs="+", metavar="NAME")
    action.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    action.set_defaults(run=cmd_checkpoints_download)
    action = actions.add_parser("verify", parents=[common],
                                help="check every cached file's sha256 (exit 1 if one changed)")
    action.set_defaults(run=cmd_checkpoints_verify)

    p = add("tensorboard", help="serve TensorBoard on a model dir",
            description="TensorBoard with the run's train and eval scalars and images.")
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1",
                   help="bind address (default: 127.0.0.1; 0.0.0.0 to share)")
    p.add_argument("--port", type=positive_int, default=6006)
    p.set_defaults(run=cmd_tensorboard)

    p = add(
        "demo", help="synthetic data -> convert -> train -> evaluate, offline, on the CPU",
        description="Generate the synthetic shapes dataset, convert it, train configs/demo.yaml "
                    "and evaluate it on held-out images: the whole pipeline in minutes.")
    p.add_argument("--out", type=Path, default=Path("demo-run"),
                   help="folder for data, records and the model (default: ./demo-run)")
    p.add_argument("--steps", type=positive_int, metavar="N",
                   help="training steps (default: the preset's)")
    p.add_argument("--count", type=positive_int, default=400,
                   help="synthetic images (default: 400)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(run=cmd_demo)

    p = add(
        "export", help="write a trained run as a SavedModel (and TFLite) for inference",
        description="Export a run's checkpoint as a SavedModel whose serving signature returns "
                    "what OD API inference code reads: detection_boxes (normalized "
                    "[ymin, xmin, ymax, xmax] of the original image), detection_scores, "
                    "detection_classes (label-map ids) and num_detections. The label map, a "
                    "manifest and a README of the signature go next to it.")
    p.add_argument("--model-dir", type=Path, required=True, help="a run `odapi train` wrote")
    p.add_argument("-o", "--out", type=Path, required=True, help="the export folder")
    p.add_argument("--checkpoint", default="best", metavar="best|latest|PATH",
                   help="best: the highest eval AP `odapi eval` recorded (default); latest; "
                        "or a checkpoint path")
    p.add_argument("--input-type", default="image_tensor",
                   choices=["image_tensor", "image_bytes", "tf_example"],
                   help="what the signature takes (default: image_tensor, uint8 images)")
    p.add_argument("--tflite", action="store_true",
                   help="also write model.tflite, checked against the SavedModel")
    p.add_argument("--quantize", action="store_true",
                   help="with --tflite, also a dynamic-range quantized model_quantized.tflite")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export")
    p.set_defaults(run=cmd_export)

    p = add(
        "predict", help="run an exported model on images; optional AP against ground truth",
        description="Detect objects in images, folders and globs with an `odapi export`. "
                    "Writes annotated images, detections.json (COCO results) and "
                    "detections.csv. With --ground-truth (any format `convert` reads) it also "
                    "reports COCO AP and draws missed and false boxes in other colours.")
    p.add_argument("--model", type=Path, required=True, help="an `odapi export` folder")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="minimum score to draw and list a detection (default: 0.5)")
    p.add_argument("--max-detections", type=positive_int, default=100, metavar="N")
    p.add_argument("--batch-size", type=positive_int, default=8, metavar="N")
    p.add_argument("--ground-truth", type=Path, metavar="ANNOTATIONS",
                   help="annotations of the same images, in any format `convert` reads")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_predict)

    p = add(
        "doctor", help="check TensorFlow, Model Garden, GPUs, protos and folder access",
        description="Report versions, the GPUs TensorFlow sees, whether odapi's protos are "
                    "compiled, and whether the given folders are readable / writable. Exit "
                    "status 1 when a check fails (no GPU is only a warning).")
    p.add_argument("--data", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder that must be readable (repeatable)")
    p.add_argument("--output", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder that must be writable (repeatable)")
    p.set_defaults(run=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    args = parser.parse_args(argv)
    _quiet_tensorflow(args.verbose)
    if getattr(args, "restart_on_crash", False):
        from odapi.supervise import supervise

        return supervise([a for a in argv if a != RESTART_ON_CRASH],
                         log=lambda m: print(m, file=sys.stderr, flush=True))
    try:
        return args.run(args)
    except OdapiError as e:
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one sentence and a status, never a bare traceback
        if args.verbose:
            raise
        print(f"error: {unexpected(e)}", file=sys.stderr)
        return EXIT_FAILED


BUG_REPORT = "this is a bug in odapi, please report it with the output of --verbose"


def unexpected(error: Exception) -> str:
    """The message for an exception odapi did not expect; tests look for BUG_REPORT in it."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else "no message"
    return f"unexpected {type(error).__name__}: {detail}; {BUG_REPORT}"
