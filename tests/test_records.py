"""Record paths, expanded in one place: input_path lists, globs, folders, and the error for none."""

from __future__ import annotations

from pathlib import Path

import pytest

from odapi.data.records import expand_record_paths, record_files, require_records, split_files
from odapi.errors import OdapiError


@pytest.fixture
def shards(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("a/train-00000-of-00002.tfrecord", "a/train-00001-of-00002.tfrecord",
                 "a/val-00000-of-00001.tfrecord", "a/extra.record", "b[1]/train-0.tfrecord",
                 "c/._train-0.tfrecord", "c/train-0.tfrecord"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_an_input_path_is_comma_separated_files_and_globs_in_order(shards):
    assert [str(p) for p in record_files("a/val-*.tfrecord,,missing.tfrecord,a/extra.record")] \
        == ["a/val-00000-of-00001.tfrecord", "a/extra.record"]
    assert record_files("a") == []  # a folder is no input_path


def test_a_glob_matches_names_starting_with_a_dot_as_tensorflow_does(shards):
    """TensorFlow's input_path glob reads a macOS `._train-0.tfrecord` too: so do the checks
    before training, or they would pass files training then fails on."""
    import tensorflow as tf

    assert [p.name for p in record_files("c/*train-*.tfrecord")] == [
        Path(f).name for f in sorted(tf.io.gfile.glob("c/*train-*.tfrecord"))] == [
        "._train-0.tfrecord", "train-0.tfrecord"]


def test_a_split_of_a_folder_is_found_whatever_the_folder_is_called(shards):
    assert [p.name for p in split_files("a", "train")] == ["train-00000-of-00002.tfrecord",
                                                          "train-00001-of-00002.tfrecord"]
    assert [p.name for p in split_files(shards / "b[1]", "train")] == ["train-0.tfrecord"]


def test_command_line_records_may_name_folders_and_none_found_is_an_error(shards):
    assert [p.name for p in expand_record_paths(["a", "a/val-*"])] == [
        "extra.record", "train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord",
        "val-00000-of-00001.tfrecord", "val-00000-of-00001.tfrecord"]
    with pytest.raises(OdapiError, match="no TFRecord files here; give record files"):
        expand_record_paths(["a", "nothing-*.tfrecord"])


def test_a_split_without_records_says_what_to_pass(shards):
    with pytest.raises(OdapiError) as raised:
        require_records("gone/val-*", "validation", "pass the records with --val-data")
    assert str(raised.value) == ("validation: no validation records match 'gone/val-*'; "
                                 "pass the records with --val-data")
