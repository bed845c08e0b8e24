"""`odapi export` and `odapi predict`: a trained run as a model, and the model at work."""

from __future__ import annotations

import argparse
from pathlib import Path

from odapi.cli.options import EXIT_FAILED, EXIT_OK, Shared, log, positive_int
from odapi.quiet import quiet_model_garden


def add_export(commands, shared: Shared) -> None:
    p = commands.add_parser(
        "export", parents=[shared.common, shared.model_dir, shared.overwrite],
        help="write a trained run as a SavedModel (and TFLite) for inference",
        description="Export a run's checkpoint as a SavedModel whose serving signature returns "
                    "what OD API inference code reads: detection_boxes (normalized "
                    "[ymin, xmin, ymax, xmax] of the original image), detection_scores, "
                    "detection_classes (label-map ids) and num_detections. The label map, a "
                    "manifest and a README of the signature go next to it.")
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
    p.set_defaults(run=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from odapi.export import export_model

    quiet_model_garden(args.verbose)
    result = export_model(args.model_dir, args.out, checkpoint=args.checkpoint,
                          input_type=args.input_type, tflite=args.tflite, quantize=args.quantize,
                          overwrite=args.overwrite, log=log)
    rows = [["SavedModel", f"{result.out}/saved_model ({result.input_type})"],
            ["checkpoint", f"{result.checkpoint} (step {result.step})"]]
    for path, check in zip(result.tflite, result.tflite_checks.values(), strict=True):
        rows.append([path.name, f"matches the SavedModel on {check['images']} images: "
                     f"{check['compared']} detections, score difference <= "
                     f"{check['max_score_difference']:.4f}, IoU >= {check['min_iou']:.3f}"])
    print(tabulate(rows, tablefmt="plain"))
    print(f"signature and classes: {result.out}/README.md")
    return EXIT_OK


def add_predict(commands, shared: Shared) -> None:
    p = commands.add_parser(
        "predict", parents=[shared.common, shared.quiet],
        help="run an exported model on images; optional AP against ground truth",
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
    p.set_defaults(run=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from odapi.evaluation.coco import metrics_table
    from odapi.predict import predict

    quiet_model_garden(args.verbose)
    report = predict(args.model, args.inputs, args.out, threshold=args.threshold,
                     max_detections=args.max_detections, batch_size=args.batch_size,
                     ground_truth=args.ground_truth, progress=not args.quiet, log=log)
    print(f"{report.images} image(s), {report.detections} detection(s) scored >= "
          f"{args.threshold}; wrote {report.out}/images/, detections.json, detections.csv")
    if report.unreadable:
        print(f"{len(report.unreadable)} input(s) could not be read (listed above)")
    if report.metrics is not None:
        print(metrics_table(report.metrics, report.per_class))
    return EXIT_OK if report.images else EXIT_FAILED
