"""runs.train: what a training records (its data, accuracy per class) and the warnings it gives about its result."""

import json

from pcdarts.runs.train import chance_warnings, selection_warnings


def test_warnings_for_a_model_at_chance_and_a_validation_split_too_small():
    at_chance = {"num_classes": 3, "test_images": 24, "test_accuracy": 0.3333}
    assert "at chance level" in chance_warnings(at_chance)[0]
    assert chance_warnings({**at_chance, "test_accuracy": 0.9}) == []
    small = {"num_classes": 3, "val_images": 24, "selected_by": "val"}
    assert "24 images for 3 classes" in selection_warnings(small)[0]
    assert (
        selection_warnings({**small, "val_images": 300}) == []
        and selection_warnings({**small, "selected_by": "x"}) == []
    )


def test_a_training_records_its_data_and_per_class_accuracy_and_the_report_shows_them(digits_runs, tmp_path):
    from pcdarts.viz.report import build_report

    result = json.loads((digits_runs / "train" / "result.json").read_text())
    assert result["classes"] == [str(i) for i in range(10)] and result["input"] == [1, 8, 8]
    assert result["genotype_from"] == str(digits_runs / "search")
    per_class = result["test_per_class"]
    assert len(per_class) == 10
    assert all(a is None or 0 <= a <= 1 for a in per_class) and any(a is not None for a in per_class)
    page = build_report(digits_runs / "train", tmp_path / "r.html").read_text()
    assert "Test accuracy per class" in page and "dataset" in page and "1 x 8 x 8" in page
