"""OD API `pipeline.config` files, translated onto TF Model Garden experiments.

Read in the order the data flows:

- `reading`: parse the file with odapi's schema (`odapi/protos`); every field it sets, with its
  line; placeholders left in.
- `translate`: `translate()` runs the sections below over a `draft.Draft` (the tree being built
  and each field's fate so far) and returns a `fates.Translation`.
  - `model`: experiment, backbone (`backbones`), levels and input size; the heads in
    `retinanet` (SSD, EfficientDet, CenterNet) and `faster_rcnn`, NMS in `post_processing`.
  - `training`: batch size, steps, augmentation, fine_tune_checkpoint; `optimizer` with its
    learning-rate schedule.
  - `inputs`: input readers, label map, eval_config and its sample.
  - `ignored`: why the fields no section maps change nothing.
- `fates`: the result, a `Translation`: each field's fate (applied, approximated, ignored), the
  explain table and the YAML `odapi config convert` writes.

Entry points: `reading.is_pipeline_config`, `reading.read_pipeline_config`,
`translate.translate`. `odapi.engine.config.resolve` takes the translation from there.
"""
