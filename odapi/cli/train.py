"""`odapi train`, `demo`, `checkpoints` and `config`: everything before a trained model."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from odapi.cli.options import (
    EXIT_FAILED,
    EXIT_OK,
    Shared,
    log,
    positive_float,
    positive_int,
    reading_options,
)
from odapi.quiet import quiet_model_garden


def add_train(commands, shared: Shared) -> None:
    from odapi.engine.config import list_presets

    p = commands.add_parser(
        "train", parents=[shared.common, shared.model_dir, shared.reading, shared.supervised,
                          shared.quiet],
        help="train a detector on converted records (resumes in the same model dir)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train with TF Model Garden. CONFIG is a preset from configs/ ("
                    + ", ".join(list_presets()) + "), a YAML file naming a Model Garden "
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
    p.add_argument("--demo-images", type=positive_int, metavar="N",
                   help="with --demo-if-empty: how many synthetic images the demo makes "
                        "(default: 400)")
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
    p.add_argument("--patience", type=positive_int, metavar="N",
                   help="stop when AP has not improved for N evaluations (--eval-every's, or "
                        "those of `odapi eval --follow` beside training); best/ keeps the best")
    p.add_argument("--check", action="store_true",
                   help="resolve the config and print it; train nothing")
    p.add_argument("--ready-file", type=Path, metavar="FILE",
                   help="write FILE once training starts (for container health checks)")
    p.set_defaults(run=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from odapi.data.prepare import DEMO_IMAGES
    from odapi.engine.job import TrainRequest, plan, run_training
    from odapi.engine.length import Length
    from odapi.engine.train import summary_table
    from odapi.errors import OdapiError

    quiet_model_garden(args.verbose)
    if args.demo_images and not args.demo_if_empty:
        raise OdapiError("--demo-images is how many images --demo-if-empty makes; add "
                         "--demo-if-empty, or leave --demo-images out")
    request = TrainRequest(
        model_dir=args.model_dir, config=args.config, data=args.data,
        reading=reading_options(args), demo_if_empty=args.demo_if_empty,
        demo_images=args.demo_images or DEMO_IMAGES,
        train_data=args.train_data, val_data=args.val_data, label_map=args.label_map,
        length=Length(steps=args.steps, epochs=args.epochs), sets=args.set,
        init_checkpoint=args.init_checkpoint, from_scratch=args.from_scratch,
        eval_every=args.eval_every, patience=args.patience,
        sample_1_of_n_eval=args.sample_1_of_n_eval_examples)
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


def add_demo(commands, shared: Shared) -> None:
    p = commands.add_parser(
        "demo", parents=[shared.common, shared.quiet],
        help="synthetic data -> convert -> train -> evaluate, offline, on the CPU",
        description="Generate the synthetic shapes dataset, convert it, train configs/demo.yaml "
                    "and evaluate it on held-out images: the whole pipeline in minutes.")
    p.add_argument("--out", type=Path, default=Path("demo-run"),
                   help="folder for data, records and the model (default: ./demo-run)")
    p.add_argument("--steps", type=positive_int, metavar="N",
                   help="training steps (default: the preset's)")
    p.add_argument("--count", type=positive_int, default=400,
                   help="synthetic images (default: 400)")
    p.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from odapi.demo import run_demo

    quiet_model_garden(args.verbose)
    result = run_demo(args.out, steps=args.steps, count=args.count, progress=not args.quiet,
                      log=print)
    return EXIT_OK if result.ok else EXIT_FAILED


def add_checkpoints(commands, shared: Shared) -> None:
    p = commands.add_parser(
        "checkpoints", parents=[shared.common],
        help="list, download and verify published checkpoints by name",
        description="The checkpoints `--init-checkpoint NAME` takes, and the local cache they "
                    "are downloaded into on first use ($ODAPI_CACHE, default ~/.cache/odapi). "
                    "On a host without internet, put the published file in the cache's "
                    "downloads/ folder.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    action = actions.add_parser("list", parents=[shared.common],
                                help="the table, and what is cached")
    action.set_defaults(run=cmd_checkpoints_list)
    action = actions.add_parser("download", parents=[shared.common, shared.quiet],
                                help="fill the cache")
    action.add_argument("names", nargs="+", metavar="NAME")
    action.set_defaults(run=cmd_checkpoints_download)
    action = actions.add_parser("verify", parents=[shared.common],
                                help="check every cached file's sha256 (exit 1 if one changed)")
    action.set_defaults(run=cmd_checkpoints_verify)


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
        print(f"{name}: {zoo.fetch(name, log=log, progress=not args.quiet)}")
    return EXIT_OK


def cmd_checkpoints_verify(args: argparse.Namespace) -> int:
    from odapi import zoo

    states = zoo.verify()
    for name, state in states.items():
        print(f"{name}: {state}")
    if not states:
        print(f"no checkpoint in {zoo.cache_dir()} yet")
    return EXIT_OK if all(state == "ok" for state in states.values()) else EXIT_FAILED


def add_config(commands, shared: Shared) -> None:
    p = commands.add_parser(
        "config", parents=[shared.common], help="explain or convert an OD API pipeline.config",
        description="An OD API pipeline.config trains as it is (`odapi train --config "
                    "pipeline.config`). These show what becomes of each of its fields in Model "
                    "Garden, or write the resulting experiment as odapi YAML.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, run, summary, parents in (
            ("explain", cmd_config_explain, "list each field with its fate (applied, "
             "approximated or ignored), then the resulting Model Garden experiment", []),
            ("convert", cmd_config_convert, "write the resulting experiment as YAML that "
             "`odapi train --config` accepts", [shared.overwrite])):
        action = actions.add_parser(name, parents=[shared.common, *parents], help=summary,
                                    description=summary)
        action.add_argument("file", type=Path, metavar="PIPELINE_CONFIG")
        action.add_argument("--data", type=Path, metavar="DIR",
                            help="where the config's relative paths may point, after its own "
                                 "folder (odapi train's --data)")
        if name == "convert":
            action.add_argument("-o", "--out", type=Path, required=True,
                                metavar="EXPERIMENT_YAML")
        action.set_defaults(run=run)


def cmd_config_explain(args: argparse.Namespace) -> int:
    from odapi.engine.pipeline_config.translate import translate

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
    from odapi.engine.pipeline_config.translate import translate
    from odapi.errors import OdapiError

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
