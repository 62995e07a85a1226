"""CheckpointMetadata (the checkpoint's "lightkit" section) is untrusted input: every field checked."""

from __future__ import annotations

import pytest

from lightkit._metadata import CheckpointMetadata
from lightkit.checkpointing import CheckpointError

GOOD = {
    "task": "lightkit.tasks.classification.ClassificationModule",
    "input_shape": [3, 32, 32],
    "inference": {"transform": {"class_path": "x", "init_args": {}}, "image_mode": "RGB"},
    "class_names": ["cat", "dog"],
    "temperature": 1.5,
}


def test_a_good_section_round_trips():
    meta = CheckpointMetadata.from_checkpoint({"lightkit": GOOD}, "f.ckpt")
    assert meta.to_dict() == GOOD
    assert meta.class_names == ("cat", "dog") and meta.input_shape == (3, 32, 32)
    assert (
        CheckpointMetadata.from_checkpoint({}, "f.ckpt") == CheckpointMetadata()
    )  # plain Lightning


def test_an_older_section_without_a_temperature_is_uncalibrated():
    old = {k: v for k, v in GOOD.items() if k != "temperature"}
    assert CheckpointMetadata.from_checkpoint({"lightkit": old}, "f.ckpt").temperature is None


def test_an_older_section_without_class_names_still_loads():
    old = {k: v for k, v in GOOD.items() if k != "class_names"}
    assert CheckpointMetadata.from_checkpoint({"lightkit": old}, "f.ckpt").class_names is None


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("task", 5, "records its task as 5"),
        ("input_shape", [3, -1], "input_shape"),
        ("input_shape", [1] * 9, "input_shape"),
        ("input_shape", "3x32", "input_shape"),
        ("inference", "eval", "inference record"),
        ("inference", {"image_mode": "CMYK"}, "image_mode"),
        ("class_names", ["cat", 2], r"class_names\[1\] must be a string"),
        ("class_names", ["cat", "cat"], "repeats"),
        ("class_names", ["x" * 300, "y"], "1 to 256 characters"),
        ("class_names", [str(i) for i in range(100_001)], "at most 100,000"),
        ("class_names", "catdog", "must be a list or tuple"),
        ("class_names", [["nested"], "x"], "must be a string"),
        ("temperature", 0.0, "temperature 0.0"),
        ("temperature", -2.0, "temperature -2.0"),
        ("temperature", float("nan"), "temperature nan"),
        ("temperature", float("inf"), "temperature inf"),
        ("temperature", "1.5", "temperature '1.5'"),
        ("temperature", True, "temperature True"),
        ("temperature", 1e9, "temperature 1000000000.0"),
    ],
)
def test_a_malformed_field_is_a_checkpoint_error_naming_it(field, value, named):
    with pytest.raises(CheckpointError, match=named):
        CheckpointMetadata.from_checkpoint({"lightkit": {**GOOD, field: value}}, "f.ckpt")


def test_a_section_that_is_not_a_dict_is_named():
    with pytest.raises(CheckpointError, match="'lightkit' section is a list"):
        CheckpointMetadata.from_checkpoint({"lightkit": [1, 2]}, "f.ckpt")


def test_a_repeat_among_many_names_is_found_in_linear_time():
    names = [f"c{i}" for i in range(100_000)]
    names[-1] = "c0"  # a quadratic search took minutes here (a hostile checkpoint's stall)
    with pytest.raises(CheckpointError, match=r"repeats \['c0'\]"):
        CheckpointMetadata.from_checkpoint({"lightkit": {**GOOD, "class_names": names}}, "f")
