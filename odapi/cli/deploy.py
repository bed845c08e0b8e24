"""`odapi export` and `odapi predict`: a trained run as a model, and the model at work."""

from __future__ import annotations

import argparse
from pathlib import Path

from odapi.cli.options import EXIT_FAILED, EXIT_OK, Shared, log, positive_int, score_threshold
from odapi.measure import TOLERANCE
from odapi.quiet import quiet_model_garden
from odapi.tflite import INT8_IO, INT8_OUTPUTS, QUANTIZATIONS


def add_export(commands, shared: Shared) -> None:
    allowed = ", ".join(f"{precision} {loss}" for precision, loss in TOLERANCE.items())
    p = commands.add_parser(
        "export", parents=[shared.common, shared.model_dir, shared.overwrite],
        help="write a trained run as a SavedModel (and ONNX, TFLite), each measured",
        description="Export a run's checkpoint as a SavedModel whose serving signature returns "
                    "what OD API inference code reads: detection_boxes (normalized "
                    "[ymin, xmin, ymax, xmax] of the original image), detection_scores, "
                    "detection_classes (label-map ids) and num_detections. ONNX and TFLite "
                    "models go beside it on request; every model is measured (COCO AP50 and "
                    "AP on the run's validation images, size, ms per image) and one that loses "
                    f"more AP50 against the SavedModel than allowed ({allowed}) fails the "
                    "export, keeping nothing. The label map, a manifest and a README of "
                    "inputs, outputs and the measurements go next to them.")
    p.add_argument("-o", "--out", type=Path, required=True, help="the export folder")
    p.add_argument("--checkpoint", default="best", metavar="best|latest|PATH",
                   help="best: the highest eval AP `odapi eval` recorded (default); latest; "
                        "or a checkpoint path")
    p.add_argument("--input-type", default="image_tensor",
                   choices=["image_tensor", "image_bytes", "tf_example"],
                   help="what the signature takes (default: image_tensor, uint8 images)")
    p.add_argument("--tflite", action="store_true",
                   help="also write model.tflite in builtin TFLite ops (RetinaNet: ending in "
                        "TFLite_Detection_PostProcess, outputs as the OD API's TFLite "
                        "detectors; Faster R-CNN: its own NMS), or, where the converter "
                        "cannot, with TensorFlow ops kept (model_flex.tflite)")
    p.add_argument("--quantize", nargs="*", choices=QUANTIZATIONS, metavar="KIND",
                   help="also quantized TFLite models (implies --tflite): dynamic (int8 "
                        "weights), fp16, int8 (integer only, calibrated; RetinaNet models); "
                        "several may follow; bare --quantize means dynamic")
    p.add_argument("--int8-io", choices=INT8_IO, default="uint8",
                   help="the int8 model's input type (default: uint8)")
    p.add_argument("--int8-output", choices=INT8_OUTPUTS, default="float32",
                   help="the int8 model's output type: float32 (default, as TFLite's "
                        "detection post-processing computes them and the OD API's quantized "
                        "models gave them), or uint8 / int8: boxes and scores in 1/255 steps, "
                        "classes and count whole")
    p.add_argument("--calibration-images", type=positive_int, default=100, metavar="N",
                   help="training images int8 calibrates on (default: 100)")
    p.add_argument("--onnx", action="store_true",
                   help="also write model.onnx (tf2onnx, opset 17), checked in onnxruntime")
    p.add_argument("--check-images", type=positive_int, metavar="N",
                   help="validation images each model is measured on (default: all; the "
                        "training images when the run has no validation records)")
    p.set_defaults(run=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from odapi.export import ExportOptions, export_model
    from odapi.measure import table

    quiet_model_garden(args.verbose)
    quantize = () if args.quantize is None else tuple(args.quantize or ["dynamic"])
    options = ExportOptions(
        checkpoint=args.checkpoint, input_type=args.input_type, tflite=args.tflite,
        quantize=quantize, int8_io=args.int8_io, int8_output=args.int8_output,
        calibration_images=args.calibration_images, check_images=args.check_images,
        onnx=args.onnx)
    result = export_model(args.model_dir, args.out, options, overwrite=args.overwrite, log=log)
    if result.models:
        print(f"exported {result.checkpoint} (step {result.step}) to {result.out}; measured "
              f"on {result.measured_on}:")
        print(table(result.models))
    else:
        print(f"exported {result.checkpoint} (step {result.step}) to {result.out} (not "
              "measured: the run's records are gone)")
    print(f"inputs, outputs and classes: {result.out}/README.md")
    return EXIT_OK


def add_predict(commands, shared: Shared) -> None:
    p = commands.add_parser(
        "predict", parents=[shared.common, shared.quiet],
        help="run an exported model on images; optional AP against ground truth",
        description="Detect objects in images, folders and globs with an `odapi export`. "
                    "Writes annotated images, detections.json (COCO results) and "
                    "detections.csv. With --ground-truth (any format `convert` reads) it also "
                    "reports COCO AP, draws missed and false boxes in other colours, and "
                    "writes the confusion matrix and PR and F1 curves.")
    p.add_argument("--model", type=Path, required=True,
                   help="an `odapi export` folder (its SavedModel) or one of its models "
                        "(.tflite, .onnx)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--threshold", type=score_threshold, default=0.5,
                   help="minimum score to draw and list a detection (default: 0.5); 'best': "
                        "per class, the score with the best F1 in the exported checkpoint's "
                        "evaluation")
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
    scores = report.thresholds.describe(report.class_names)
    print(f"{report.images} image(s), {report.detections} detection(s) scored >= {scores}; "
          f"wrote {report.out}/images/, detections.json, detections.csv")
    if report.unreadable:
        print(f"{len(report.unreadable)} input(s) could not be read (listed above)")
    if report.metrics is not None:
        print(metrics_table(report.metrics, report.per_class))
        print(f"confusion matrix, PR and F1 curves: {', '.join(report.figures)}")
    return EXIT_OK if report.images else EXIT_FAILED
