"""Detection data: the built-in scenes, COCO JSON and YOLO folders, and their validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import edgeslim as es
from edgeslim.errors import DataError


@pytest.fixture(scope="module")
def scenes():
    return es.data.load("scenes")


def test_scenes_are_deterministic_labelled_and_varied(scenes):
    again = es.data.load("scenes")
    np.testing.assert_array_equal(scenes.test.x, again.test.x)
    np.testing.assert_array_equal(scenes.test.y, again.test.y)
    assert scenes.spec.task == "detection" and scenes.spec.input_shape == (1, 64, 64)
    assert scenes.notes["synthetic"] is True
    counts = (scenes.train.y[:, :, 0] >= 0).sum(axis=1)
    assert 0.05 < (counts == 0).mean() < 0.15  # some scenes empty
    assert counts.max() >= 5  # some crowded
    real = scenes.train.y[scenes.train.y[:, :, 0] >= 0]
    assert (real[:, 1:3] >= 0).all() and (real[:, 3:5] <= 64).all()
    assert (real[:, 3] > real[:, 1]).all() and set(real[:, 0].astype(int)) == set(range(10))
    assert 10 < scenes.spec.typical_box[0] < 40


def test_a_different_seed_gives_different_scenes(scenes):
    other = es.data.load("scenes", seed=1)
    assert not np.array_equal(other.test.y, scenes.test.y)


def write_images(folder, count, size=(32, 24)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        pixels = (rng.random((size[1], size[0])) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")


def coco_file(tmp_path, annotations=None, images=12):
    write_images(tmp_path / "images", images)
    doc = {
        "images": [{"id": 100 + i, "file_name": f"img{i}.png"} for i in range(images)],
        "categories": [{"id": 7, "name": "person"}, {"id": 9, "name": "car"}],
        "annotations": annotations
        if annotations is not None
        else [
            {"image_id": 100 + i, "category_id": 7 if i % 2 else 9, "bbox": [2, 3, 10, 8]}
            for i in range(images - 2)  # the last two images hold no objects
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_loads_boxes_in_pixels_and_renumbers_categories(tmp_path):
    data = es.data.load(f"coco:{coco_file(tmp_path)}", val_fraction=0.2, test_fraction=0.2)
    assert data.spec.class_names == ("person", "car") and data.spec.input_shape == (1, 24, 32)
    every = np.concatenate([data.train.y, data.val.y, data.test.y]).reshape(-1, 5)
    real = every[every[:, 0] >= 0]
    assert len(real) == 10 and set(real[:, 0]) == {0.0, 1.0}
    np.testing.assert_array_equal(real[0, 1:], [2, 3, 12, 11])


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        ({"image_id": 100, "category_id": 7, "bbox": [25, 3, 10, 8]}, "lies outside the 32x24"),
        ({"image_id": 100, "category_id": 5, "bbox": [2, 3, 10, 8]}, "unknown category_id 5"),
        ({"image_id": 999, "category_id": 7, "bbox": [2, 3, 10, 8]}, "image_id 999 is not"),
        ({"image_id": 100, "category_id": 7, "bbox": [2, 3, 0, 8]}, "has no area"),
    ],
)
def test_coco_refuses_bad_annotations(tmp_path, annotation, message):
    path = coco_file(tmp_path, annotations=[annotation])
    with pytest.raises(DataError, match=message):
        es.data.load(f"coco:{path}")


def test_coco_names_a_missing_image_file(tmp_path):
    path = coco_file(tmp_path)
    (tmp_path / "images" / "img3.png").unlink()
    with pytest.raises(DataError, match="img3.png: image file not found"):
        es.data.load(f"coco:{path}")


def yolo_folder(tmp_path, lines=None, images=10):
    write_images(tmp_path / "images", images)
    (tmp_path / "labels").mkdir()
    (tmp_path / "classes.txt").write_text("person\ncar\n")
    for i in range(images - 1):  # the last image has no label file: no objects
        text = lines if lines is not None and i == 0 else f"{i % 2} 0.5 0.5 0.25 0.5\n"
        (tmp_path / "labels" / f"img{i}.txt").write_text(text)
    return tmp_path


def test_yolo_loads_normalised_boxes_as_pixels(tmp_path):
    data = es.data.load(f"yolo:{yolo_folder(tmp_path)}", val_fraction=0.2, test_fraction=0.2)
    assert data.spec.class_names == ("person", "car") and data.spec.task == "detection"
    every = np.concatenate([data.train.y, data.val.y, data.test.y]).reshape(-1, 5)
    real = every[every[:, 0] >= 0]
    assert len(real) == 9
    np.testing.assert_allclose(real[0, 1:], [12, 6, 20, 18])  # 32x24: cx 16, cy 12, w 8, h 12


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2 0.5 0.5 0.2 0.2\n", "unknown class id 2"),
        ("0 0.5 0.5 0.2\n", "expected 'class cx cy w h'"),
        ("0 1.5 0.5 0.2 0.2\n", "must be fractions"),
        ("0 0.95 0.5 0.5 0.2\n", "lies outside"),
        ("0 a 0.5 0.2 0.2\n", "not numbers"),
    ],
)
def test_yolo_refuses_bad_lines_and_names_the_line(tmp_path, line, message):
    folder = yolo_folder(tmp_path, lines=line)
    with pytest.raises(DataError, match=rf"img0.txt:1: .*{message}"):
        es.data.load(f"yolo:{folder}")


def test_yolo_label_without_its_image_is_refused(tmp_path):
    folder = yolo_folder(tmp_path)
    (folder / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match="ghost.txt: its image file images/ghost.* is missing"):
        es.data.load(f"yolo:{folder}")


def test_a_detector_refuses_classification_data(digits):
    with pytest.raises(es.errors.ModelLoadError, match="centernet is a detector"):
        es.models.build("centernet", digits.spec)


def test_the_example_file_is_the_detection_demo():
    from pathlib import Path

    import yaml

    from edgeslim.demo import DETECTION_DEMO

    example = Path(__file__).parents[2] / "examples" / "detection.yaml"
    assert yaml.safe_load(example.read_text()) == DETECTION_DEMO


@pytest.mark.skipif(
    not es.data.fashion_mnist.DEFAULT_DIR.is_dir(), reason="Fashion-MNIST is not installed"
)
def test_fashion_mnist_scenes_use_its_items_and_names():
    data = es.data.load("scenes:fashion-mnist")
    assert data.spec.input_shape == (1, 96, 96) and data.spec.class_names[0] == "T-shirt/top"
    assert (data.train.y[:, :, 0] >= 0).any()
