"""train_config: batch size, steps, augmentation and the checkpoint to fine-tune from.

The optimizer and its schedule are `optimizer`'s. An OD API model-zoo checkpoint is refused
here, before any step: its variables are laid out for the OD API's own model classes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from odapi.engine.pipeline_config.draft import Draft, clean_float
from odapi.engine.pipeline_config.fates import APPLIED, APPROXIMATED, IGNORED
from odapi.engine.pipeline_config.optimizer import translate_optimizer
from odapi.errors import OdapiError

if TYPE_CHECKING:
    from odapi.protos import train_pb2

# odapi's presets' loop and checkpoint cadence (Model Garden's defaults are COCO's)
TRAINER_DEFAULTS = {"steps_per_loop": 100, "summary_interval": 100, "checkpoint_interval": 1000,
                    "max_to_keep": 5}


def translate_train_config(draft: Draft, train: train_pb2.TrainConfig, kind: str,
                           checkpoint_advice: str) -> None:
    """`checkpoint_advice` says what to fine-tune from instead of a model-zoo checkpoint."""
    draft.apply_fields(train, "train_config",
                       {"batch_size": "task.train_data.global_batch_size"})
    if train.num_steps:
        draft.set("trainer.train_steps", train.num_steps)
        draft.mark("train_config.num_steps", APPLIED,
                   "trainer.train_steps (--num-train-steps overrides it)")
    else:
        draft.mark("train_config.num_steps", IGNORED, "0 trains forever in the OD API; "
                   "odapi needs a last step: pass --num-train-steps N")
    draft.apply_fields(train, "train_config",
                       {"max_number_of_boxes": "task.train_data.parser.max_num_instances"})
    translate_optimizer(draft, train.optimizer, "train_config.optimizer")
    _augmentation(draft, train, kind)
    _fine_tune_checkpoint(draft, train, checkpoint_advice)


def add_trainer_defaults(draft: Draft) -> None:
    """The trainer settings a pipeline.config has no field for, as odapi's presets have them."""
    for key, value in TRAINER_DEFAULTS.items():
        draft.set(f"trainer.{key}", value)


def _augmentation(draft: Draft, train: train_pb2.TrainConfig, kind: str) -> None:
    """The file's list replaces the base experiment's augmentation entirely."""
    parser = "task.train_data.parser"
    flip, scale_min, scale_max, crop = False, 1.0, 1.0, None
    for index, step in enumerate(train.data_augmentation_options):
        which = step.WhichOneof("preprocessing_step")
        path = f"train_config.data_augmentation_options[{index}].{which}"
        if which == "random_horizontal_flip":
            flip = True
            draft.mark(path, APPLIED, f"{parser}.aug_rand_hflip")
        elif which == "random_scale_crop_and_pad_to_square":
            jitter = step.random_scale_crop_and_pad_to_square
            scale_min = min(scale_min, clean_float(jitter.scale_min))
            scale_max = max(scale_max, clean_float(jitter.scale_max))
            draft.mark(f"{path}.scale_min", APPLIED, f"{parser}.aug_scale_min")
            draft.mark(f"{path}.scale_max", APPLIED, f"{parser}.aug_scale_max")
            draft.mark(f"{path}.output_size", APPLIED, "the input size comes from "
                       "image_resizer, which Model Garden's jitter crops or pads to")
        elif which == "ssd_random_crop" and kind != "faster_rcnn":
            crop = {"type": "ssd_random_crop"}
            draft.mark(path, APPLIED, f"{parser}.aug_type ssd_random_crop: Model Garden's "
                       "SSD crop, the same seven crops as the OD API's default")
        elif which in ("ssd_random_crop", "random_crop_image"):
            area = step.random_crop_image.min_area if which == "random_crop_image" else 0.25
            zoom = clean_float(min(2.0, 1 / math.sqrt(max(area, 0.01))))
            scale_max = max(scale_max, zoom)
            draft.mark(path, APPROXIMATED, f"scale jitter up to {zoom}x ({parser}."
                       f"aug_scale_max), which crops like a random crop of {area:g} of the "
                       "image or more")
    draft.set(f"{parser}.aug_rand_hflip", flip)
    draft.set(f"{parser}.aug_scale_min", scale_min)
    draft.set(f"{parser}.aug_scale_max", scale_max)
    if kind != "faster_rcnn":
        draft.set(f"{parser}.aug_type", crop)


def _fine_tune_checkpoint(draft: Draft, train: train_pb2.TrainConfig,
                          checkpoint_advice: str) -> None:
    path = "train_config.fine_tune_checkpoint"
    note = ("odapi restores what fits: backbone and decoder, or every part with the same "
            "class count")
    draft.mark("train_config.fine_tune_checkpoint_type", APPROXIMATED, note)
    draft.mark("train_config.from_detection_checkpoint", APPROXIMATED, note)
    if "init_checkpoint" in draft.given:
        draft.mark(path, IGNORED, f"replaced by --init-checkpoint "
                   f"{draft.given['init_checkpoint']}")
        return
    value = train.fine_tune_checkpoint
    if not value:
        return
    found = draft.locate(path, value)
    zoo = _zoo_checkpoint(value, found)
    if zoo:
        raise OdapiError(
            f"train_config.fine_tune_checkpoint {value!r} is {zoo}: its variables are laid "
            "out for the OD API's own model classes and do not map onto Model Garden "
            f"models. {checkpoint_advice}; downloads are listed in odapi's README "
            "(Fine-tune from a checkpoint)", where=draft.where(path))
    if found is None:
        return
    draft.set("task.init_checkpoint", found)
    draft.mark(path, APPLIED, "restored before the first step (odapi's --init-checkpoint)")


def _zoo_checkpoint(value: str, found: str | None) -> str | None:
    """How `value` shows itself to be an OD API model-zoo checkpoint, or None."""
    path = Path(value)
    if path.name.startswith("model.ckpt"):
        return "a TF1 model-zoo checkpoint (model.ckpt)"
    if path.name == "ckpt-0" and path.parent.name == "checkpoint":
        return "a TF2 model-zoo checkpoint (checkpoint/ckpt-0)"
    if found:
        from odapi.engine.fine_tuning import od_api_layout

        layout = od_api_layout(found)
        if layout:
            return f"a {layout} checkpoint of the OD API"
    return None
