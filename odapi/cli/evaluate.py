"""`odapi eval` and `odapi tensorboard`: how a run is doing."""

from __future__ import annotations

import argparse
from pathlib import Path

from odapi.cli.options import EXIT_OK, EXIT_USAGE, Shared, log, positive_int
from odapi.errors import OdapiError
from odapi.quiet import quiet_model_garden


def add_eval(commands, shared: Shared) -> None:
    p = commands.add_parser(
        "eval", parents=[shared.common, shared.model_dir, shared.supervised],
        help="COCO AP/AR with per-class AP for a run's checkpoints",
        description="Evaluate the latest checkpoint of a run on its validation records (or "
                    "--val-data), writing TensorBoard summaries, eval/metrics.json and the "
                    "confusion matrix and PR and F1 curves (PNG and JSON) beside it. With "
                    "--follow, wait for and evaluate each new checkpoint, and exit 0 after the "
                    "final one.")
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


def cmd_eval(args: argparse.Namespace) -> int:
    from odapi.evaluation.coco import metrics_table
    from odapi.evaluation.evaluate import evaluate_run

    quiet_model_garden(args.verbose)

    def show(result) -> None:
        print(f"step {result.step} ({result.checkpoint}; results in {result.metrics_file})"
              + ("  best so far" if result.is_best else ""))
        print(metrics_table(result.metrics, result.per_class))
        figures = ", ".join(result.figures) or "those in eval/ stay a later step's"
        print(f"best F1 {result.thresholds['F1']:.3f} at score {result.thresholds['score']:.2f}"
              f" (predict --threshold best); confusion matrix, PR and F1 curves, worst "
              f"images: {figures}", flush=True)

    if args.follow and args.checkpoint:
        raise OdapiError("--follow evaluates each new checkpoint until the run's last, "
                         "--checkpoint one checkpoint: give one of them", exit_code=EXIT_USAGE)
    results = evaluate_run(args.model_dir, checkpoint=args.checkpoint, val_data=args.val_data,
                           follow=args.follow, poll_seconds=args.poll, timeout=args.timeout,
                           on_result=show, on_wait=lambda m: print(m, flush=True))
    if not results:
        print("nothing new to evaluate: every checkpoint's step already has results under "
              f"{args.model_dir}")
    elif not args.val_data:  # the run's own evaluation: the report shows it
        from odapi.run_report import write_report_or_say

        report = write_report_or_say(args.model_dir, log)
        if report:
            print(f"report: {report}")
    return EXIT_OK


def add_report(commands, shared: Shared) -> None:
    p = commands.add_parser(
        "report", parents=[shared.common, shared.model_dir],
        help="one HTML page about a run (also written at the end of training)",
        description="Write the run's report: config, dataset, loss and AP curves, per-class "
                    "table, confusion matrix, PR and F1 curves and worst images, in one HTML "
                    "file with its pictures inside (open it from disk; no server).")
    p.add_argument("-o", "--out", type=Path, metavar="FILE",
                   help="where to write it (default: MODEL_DIR/report.html)")
    p.set_defaults(run=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from odapi.run_report import write_report

    print(f"wrote {write_report(args.model_dir, args.out)}")
    return EXIT_OK


def add_tensorboard(commands, shared: Shared) -> None:
    p = commands.add_parser(
        "tensorboard", parents=[shared.common, shared.model_dir],
        help="serve TensorBoard on a model dir",
        description="TensorBoard with the run's train and eval scalars and images.")
    p.add_argument("--host", default="127.0.0.1",
                   help="bind address (default: 127.0.0.1; 0.0.0.0 to share)")
    p.add_argument("--port", type=positive_int, default=6006)
    p.set_defaults(run=cmd_tensorboard)


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from odapi.tensorboard import serve

    return serve(args.model_dir, args.host, args.port) or EXIT_OK
