"""Why the fields no section maps change nothing in Model Garden.

After the sections have given the fields they handle a fate, every field left is ignored: for
one of the known reasons below, matched on its path without list indices, or because odapi has
no Model Garden setting for it (the samples' tests check that none of theirs ends there).
"""

from __future__ import annotations

import re

from odapi.engine.pipeline_config.reading import SetField

# (pattern over SetField.key, the reason shown), first match wins
WHY_IGNORED: list[tuple[str, str]] = [
    (r".*\.initializer\..*", "Model Garden's layers use their own initializers"),
    (r".*\.conv_hyperparams\.(op|force_use_bias)",
     "Model Garden's layers choose their own convolution type and biases"),
    (r".*\.batch_norm\.(train|scale|center)",
     "Model Garden's batch norm layers always train, scale and center"),
    (r"model\.ssd\.feature_extractor\.min_depth",
     "Model Garden's backbones have fixed minimum widths"),
    (r"model\.ssd\.(encode_background_as_zeros|add_background_class)",
     "Model Garden scores each class with a sigmoid and keeps class 0 for the background; the "
     "class count comes from the label map"),
    (r"model\.ssd\.inplace_batchnorm_update",
     "TensorFlow 2 updates batch norm statistics in place anyway"),
    (r"model\.ssd\.loss\.hard_example_miner\..*",
     "Model Garden's RetinaNet uses focal loss over all anchors instead of hard example mining"),
    (r"model\.ssd\.normalize_loc_loss_by_codesize",
     "Model Garden does not divide the box loss by the code size; box_loss_weight sets its "
     "scale"),
    (r"model\.ssd\.matcher\.argmax_matcher\.use_matmul_gather",
     "a TPU implementation switch; Model Garden chooses its own ops"),
    (r"model\.faster_rcnn\.(use_static_shapes|use_matmul_crop_and_resize|clip_anchors_to_image"
     r"|use_static_balanced_label_sampler|use_matmul_gather_in_matcher)",
     "a TPU implementation switch; Model Garden chooses its own ops"),
    (r"model\.faster_rcnn\.first_stage_box_predictor_conv_hyperparams\..*",
     "Model Garden's RPN head uses its own initializer and the model-wide l2_weight_decay"),
    (r"model\.faster_rcnn\.second_stage_box_predictor\.mask_rcnn_box_predictor\."
     r"fc_hyperparams\..*",
     "Model Garden's box head uses its own initializer and the model-wide l2_weight_decay"),
    (r"model\.center_net\.feature_extractor\.(channel_means|channel_stds|bgr_ordering)",
     "Model Garden normalizes RGB images with ImageNet's mean and standard deviation"),
    (r"model\.center_net\.(object_detection_task|object_center_params)\..*",
     "CenterNet's heatmap and size losses have no place in RetinaNet, which uses focal and "
     "Huber losses"),
    (r"train_config\.(sync_replicas|startup_delay_steps|replicas_to_aggregate)",
     "odapi trains synchronously on every GPU it sees (MirroredStrategy)"),
    (r"train_config\.use_bfloat16",
     "odapi picks the precision per device (float16 on GPU, float32 on CPU); set "
     "runtime.mixed_precision_dtype with --set to choose"),
    (r"train_config\.unpad_groundtruth_tensors",
     "Model Garden pads ground truth to max_num_instances boxes"),
    (r"train_config\.fine_tune_checkpoint_version",
     "odapi reads TF2 object-based checkpoints and refuses TF1 ones"),
    (r"train_config\.data_augmentation_options\.(random_adjust_\w+|random_absolute_pad_image)"
     r"(\..*)?", "Model Garden's detection input pipelines have no such augmentation"),
    (r"(train|eval)_input_reader\.num_readers",
     "Model Garden reads record files in parallel with tf.data's autotuning"),
    (r"eval_config\.max_evals",
     "odapi evaluates every --eval-every N steps, or each checkpoint with `odapi eval "
     "--follow`, until the last step"),
]


def why_ignored(field: SetField) -> str:
    """The known reason `field` changes nothing, or that odapi has no setting for it."""
    return next((why for pattern, why in WHY_IGNORED if re.fullmatch(pattern, field.key)),
                "odapi has no Model Garden setting for it")
