"""Detection data: the built-in scenes, COCO JSON and YOLO folders, and their validation."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

import edgeslim as es
from edgeslim.errors import DataError
from tests.ci import require


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


# Hostile files (issue 26): each is refused with one DataError naming the file and what is wrong.


def png_declaring(path, width, height):
    """A PNG whose header declares ``width`` x ``height`` pixels (its data holds one row)."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * (width + 1))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


HOSTILE_IMAGES = {  # name -> (spoil the image file, what the message says)
    "empty": (lambda path: path.write_bytes(b""), "not a readable image"),
    "text": (lambda path: path.write_text("not a picture"), "not a readable image"),
    "truncated": (lambda path: path.write_bytes(path.read_bytes()[:60]), "not a readable image"),
    "bomb": (lambda path: png_declaring(path, 100_000, 100_000), "decompression bomb"),
    "bomb-warning": (lambda path: png_declaring(path, 10_000, 10_000), "decompression bomb"),
}


@pytest.mark.parametrize("which", ["img0.png", "img5.png"])  # the first image is read apart
@pytest.mark.parametrize("hostile", sorted(HOSTILE_IMAGES))
def test_coco_refuses_a_hostile_image_naming_it(tmp_path, hostile, which):
    path = coco_file(tmp_path)
    spoil, message = HOSTILE_IMAGES[hostile]
    spoil(tmp_path / "images" / which)
    with pytest.raises(DataError, match=rf"{which}: .*{message}"):
        es.data.load(f"coco:{path}")


@pytest.mark.parametrize("hostile", sorted(HOSTILE_IMAGES))
def test_yolo_refuses_a_hostile_first_image_naming_it(tmp_path, hostile):
    folder = yolo_folder(tmp_path)
    spoil, message = HOSTILE_IMAGES[hostile]
    spoil(folder / "images" / "img0.png")
    with pytest.raises(DataError, match=rf"img0.png: .*{message}"):
        es.data.load(f"yolo:{folder}")


@pytest.mark.parametrize("hostile", sorted(HOSTILE_IMAGES))
def test_imagefolder_refuses_a_hostile_first_image_naming_it(tmp_path, hostile):
    for name in ("cat", "dog"):
        write_images(tmp_path / name, 3)
    spoil, message = HOSTILE_IMAGES[hostile]
    spoil(tmp_path / "cat" / "img0.png")
    with pytest.raises(DataError, match=rf"img0.png: .*{message}"):
        es.data.load(f"imagefolder:{tmp_path}")


def spoil_coco(key, value, index=0):
    """Set ``doc[key][index]``'s field (``"images.file_name"``) or ``doc[key]`` itself."""
    top, _, inner = key.partition(".")

    def spoil(doc):
        if inner:
            doc[top][index][inner] = value
        else:
            doc[top] = value
        return doc

    return spoil


def duplicate(key):
    def spoil(doc):
        doc[key].append(dict(doc[key][0]))
        return doc

    return spoil


HOSTILE_COCO = {  # name -> (change the document, what the message says)
    "bbox-3-values": (spoil_coco("annotations.bbox", [1, 2, 3]), "'bbox' should be"),
    "bbox-string": (spoil_coco("annotations.bbox", "2 3 10 8"), "'bbox' should be"),
    "bbox-null": (spoil_coco("annotations.bbox", None), "'bbox' should be"),
    "bbox-booleans": (spoil_coco("annotations.bbox", [1, 2, True, 3]), "'bbox' should be"),
    "bbox-infinite": (spoil_coco("annotations.bbox", [1, 2, 1e999, 3]), "'bbox' should be"),
    "file-name-number": (spoil_coco("images.file_name", 17), r"images\[0\]: 'file_name' should"),
    "file-name-empty": (spoil_coco("images.file_name", ""), "'file_name' should be"),
    "file-name-endless": (spoil_coco("images.file_name", "a" * 5000), "'file_name' should be"),
    "categories-numbers": (spoil_coco("categories", [7, 9]), r"categories\[0\] should be an obj"),
    "category-id-list": (spoil_coco("categories.id", [7]), r"categories\[0\]: 'id' should be"),
    "category-name-object": (spoil_coco("categories.name", {"a": 1}), "'name' should be"),
    "category-id-twice": (duplicate("categories"), r"categories\[2\]: id 7 is used twice"),
    "images-not-a-list": (spoil_coco("images", {"0": "img0.png"}), "a list under 'images'"),
    "image-id-string": (spoil_coco("images.id", "100"), r"images\[0\]: 'id' should be"),
    "image-id-twice": (duplicate("images"), "id 100 is used twice"),
    "width-string": (spoil_coco("images.width", "wide"), "'width' should be"),
    "height-negative": (spoil_coco("images.height", -24), "'height' should be"),
    "annotation-a-list": (spoil_coco("annotations", [[100, 7]]), r"annotations\[0\] should be"),
    "image-id-float": (spoil_coco("annotations.image_id", 100.0), "'image_id' should be"),
    "category-id-null": (spoil_coco("annotations.category_id", None), "'category_id' should"),
    "top-level-list": (lambda doc: [doc], "expected a JSON object"),
    "top-level-string": (lambda doc: "images", "expected a JSON object"),
}


@pytest.mark.parametrize("hostile", sorted(HOSTILE_COCO))
def test_coco_refuses_wrong_json_types_naming_the_key(tmp_path, hostile):
    path = coco_file(tmp_path)
    change, message = HOSTILE_COCO[hostile]
    path.write_text(json.dumps(change(json.loads(path.read_text()))))
    with pytest.raises(DataError, match=rf"instances.json: .*{message}") as refused:
        es.data.load(f"coco:{path}")
    message = str(refused.value)
    assert len(message) < len(str(path)) + 200 and "\n" not in message  # cut, one line


def test_coco_names_a_file_name_too_long_for_the_system_as_not_found(tmp_path):
    path = coco_file(tmp_path)
    path.write_text(
        json.dumps(spoil_coco("images.file_name", "a" * 300)(json.loads(path.read_text())))
    )
    with pytest.raises(
        DataError, match=r"a{300}: image file not found \(named by .*instances.json"
    ):
        es.data.load(f"coco:{path}")


@pytest.mark.parametrize(
    ("rewrite", "message"),
    [
        (lambda text: b'{"images": [\xff\xfe]}', "is not UTF-8 text"),
        (lambda text: b"\x00\x01\x02", "not a readable JSON file"),
        (lambda text: b"[" * 100_000 + b"]" * 100_000, "not a readable JSON file"),  # too deep
        (lambda text: b'{"images": "' + b"x" * 100_000, "not a readable JSON file"),
        (
            lambda text: text.replace(b"[2, 3, 10, 8]", b"[2, 3, 1%s, 8]" % (b"0" * 400), 1),
            "'bbox' should be",
        ),
    ],
    ids=["not-utf8", "binary", "nested-deep", "unterminated", "huge-integer"],
)
def test_coco_refuses_unreadable_json_naming_the_file(tmp_path, rewrite, message):
    path = coco_file(tmp_path)
    path.write_bytes(rewrite(path.read_bytes()))
    with pytest.raises(DataError, match=rf"instances.json: .*{message}"):
        es.data.load(f"coco:{path}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (
            lambda folder: png_declaring(folder / "images" / "img0.png", 100_000, 100_000),
            "img0.png: refused as a possible decompression bomb",
        ),
        (
            lambda folder: (folder / "instances.json").write_text(
                '{"images": [], "annotations": 7}'
            ),
            "instances.json: expected a list under 'annotations'",
        ),
    ],
    ids=["bomb", "annotations-a-number"],
)
def test_coco_hostile_file_is_one_error_line_through_the_cli(tmp_path, spoil, message):
    path = coco_file(tmp_path)
    spoil(tmp_path)
    command = [sys.executable, "-m", "edgeslim.cli", "measure", "small-cnn"]
    done = subprocess.run([*command, "--data", f"coco:{path}"], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error:") and "Traceback" not in done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (
            lambda f: (f / "labels" / "img0.txt").write_bytes(b"0 0.5\xff 0.5 0.2 0.2\n"),
            r"img0.txt: the label file is not UTF-8",
        ),
        (
            lambda f: (f / "classes.txt").write_bytes(b"person\n\xe9t\xe9\n"),
            r"classes.txt: the class list is not UTF-8",
        ),
        (
            lambda f: yaml_names(f, b"names: [person, car\n  - : ]: {"),
            "data.yaml: not readable YAML",
        ),
        (lambda f: yaml_names(f, b"- person\n- car\n"), "data.yaml: expected names:"),
        (lambda f: yaml_names(f, b"\xff\xfe"), "data.yaml: the data.yaml is not UTF-8"),
        (lambda f: yaml_names(f, b"names: {0: person, x: car}\n"), "keys should be 0, 1, 2"),
        (lambda f: yaml_names(f, b"names: [person, [a, b]]\n"), r"names\[1\] should be a class"),
        (lambda f: yaml_names(f, b"names: [person, no]\n"), r"names\[1\] should be a class"),
        (lambda f: yaml_names(f, b"[" * 5000 + b"]" * 5000), "data.yaml: "),
        (
            lambda f: (f / "labels" / "img0.txt").write_text("0 " + "1" * 10_000 + "\n"),
            r"img0.txt:1: expected 'class cx cy w h', got '0 1111",
        ),
    ],
    ids=[
        "label-not-utf8",
        "classes-not-utf8",
        "yaml-malformed",
        "yaml-a-list",
        "yaml-not-utf8",
        "yaml-keys-mixed",
        "yaml-name-a-list",
        "yaml-name-a-boolean",
        "yaml-nested-deep",
        "label-line-endless",
    ],
)
def test_yolo_refuses_hostile_text_files_naming_them(tmp_path, spoil, message):
    folder = yolo_folder(tmp_path)
    spoil(folder)
    with pytest.raises(DataError, match=message) as refused:
        es.data.load(f"yolo:{folder}")
    message = str(refused.value)
    assert len(message) < len(str(folder)) + 200 and "\n" not in message  # cut, one line


def yaml_names(folder, text):
    (folder / "classes.txt").unlink()
    (folder / "data.yaml").write_bytes(text)


def test_yolo_reads_names_from_data_yaml_in_any_key_order(tmp_path):
    folder = yolo_folder(tmp_path)
    yaml_names(folder, b"names: {1: car, 0: person}\n")
    assert es.data.load(f"yolo:{folder}").spec.class_names == ("person", "car")


def test_a_detector_refuses_classification_data(digits):
    with pytest.raises(es.errors.ModelLoadError, match="centernet is a detector"):
        es.models.build("centernet", digits.spec)


def test_the_example_file_is_the_detection_demo():
    from pathlib import Path

    import yaml

    from edgeslim.demo import DETECTION_DEMO

    example = Path(__file__).parents[2] / "examples" / "detection.yaml"
    assert yaml.safe_load(example.read_text()) == DETECTION_DEMO


@pytest.mark.slow
def test_fashion_mnist_scenes_use_its_items_and_names():
    require(es.data.fashion_mnist.DEFAULT_DIR.is_dir(), "Fashion-MNIST is not installed "
            "(apt-get install dataset-fashion-mnist)")  # fmt: skip
    data = es.data.load("scenes:fashion-mnist")
    assert data.spec.input_shape == (1, 96, 96) and data.spec.class_names[0] == "T-shirt/top"
    assert (data.train.y[:, :, 0] >= 0).any()
