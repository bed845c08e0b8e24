"""From an OD API pipeline.config to a Model Garden experiment, with each field's fate.

The result is the tree `odapi.engine.config.resolve` reads from a YAML config (`experiment`,
`label_map`, `task`, `trainer`), so everything after it (`--set`, the label map's class count,
the device policy, checks) works the same. `translate` reads the file, lets each section give
the fields it handles a fate (model, train_config, input readers, eval_config, in the file's
order), checks that the paths exist, and gives every field left a reason to be ignored.
"""

from __future__ import annotations

from pathlib import Path

from odapi.engine.pipeline_config.draft import Draft
from odapi.engine.pipeline_config.fates import Translation
from odapi.engine.pipeline_config.ignored import why_ignored
from odapi.engine.pipeline_config.inputs import translate_eval_config, translate_input_readers
from odapi.engine.pipeline_config.model import translate_model
from odapi.engine.pipeline_config.reading import check_placeholders, read_pipeline_config
from odapi.engine.pipeline_config.training import add_trainer_defaults, translate_train_config
from odapi.errors import OdapiError

# what each command-line flag replaces: those fields may keep their placeholders
REPLACED_BY_FLAG = (
    ("train_data", "train_input_reader.tf_record_input_reader"),
    ("val_data", "eval_input_reader.tf_record_input_reader"),
    ("label_map", "train_input_reader.label_map_path"),
    ("label_map", "eval_input_reader.label_map_path"),
    ("init_checkpoint", "train_config.fine_tune_checkpoint"),
)
TREE_ORDER = ("experiment", "label_map", "task", "trainer")  # as a YAML config has them


def translate(path: Path, data: Path | None = None,
              given: dict[str, str] | None = None) -> Translation:
    """Parse and translate the pipeline.config at `path`.

    Relative paths in it are looked up beside the config, then in `data`. `given` names what
    the command line supplies instead (train_data, val_data, label_map, init_checkpoint):
    those fields are neither checked nor used.
    """
    file = read_pipeline_config(Path(path))
    bases = [Path(path).resolve().parent] + ([Path(data).resolve()] if data else [])
    given = dict(given or {})
    check_placeholders(file, tuple(key for flag, key in REPLACED_BY_FLAG if flag in given))

    draft = Draft(file, bases, given)
    config = file.message
    kind = config.model.WhichOneof("model")
    model = translate_model(draft, config.model, kind)
    translate_train_config(draft, config.train_config, kind, model.checkpoint_advice)
    inputs = translate_input_readers(draft, config)
    max_eval_examples = translate_eval_config(draft, config.eval_config)
    if draft.missing:
        looked = " and ".join(str(base) for base in bases)
        raise OdapiError(f"paths in the config that exist nowhere (looked in {looked}; "
                         "--data adds a folder to look in):\n" + "\n".join(draft.missing),
                         where=str(file.path))
    add_trainer_defaults(draft)
    draft.ignore_the_rest(why_ignored)

    translation = Translation(
        source=file.path, summary=model.summary,
        tree={key: draft.tree[key] for key in TREE_ORDER if key in draft.tree},
        fates=[draft.fates[f.path] for f in draft.fields],
        num_classes=model.num_classes, num_classes_where=model.num_classes_where,
        train_data=inputs.train_data, val_data=inputs.val_data, label_map=inputs.label_map,
        eval_every_nth=inputs.eval_every_nth, max_eval_examples=max_eval_examples)
    if translation.label_map:
        from odapi.labelmap import LabelMap

        label_map = Path(translation.label_map)
        translation.check_label_map(LabelMap.read(label_map), label_map)
    return translation
