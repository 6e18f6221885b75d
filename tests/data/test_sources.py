from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import edgeslim as es
from edgeslim.errors import DataError
from tests.ci import require
from tests.conftest import FASHION_DIR


def test_digits_splits_are_deterministic_disjoint_and_normalised(digits):
    again = es.data.load("digits")
    np.testing.assert_array_equal(digits.test.x, again.test.x)
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1258, 180, 359)
    assert digits.spec.input_shape == (1, 8, 8) and digits.spec.num_classes == 10
    assert abs(float(digits.train.x.mean())) < 1e-4
    assert abs(float(digits.train.x.std()) - 1) < 1e-3
    other_seed = es.data.load("digits", seed=1)
    assert not np.array_equal(other_seed.test.y, digits.test.y)
    # no sample appears in two splits
    rows = {s: {r.tobytes() for r in getattr(digits, s).x} for s in ("train", "val", "test")}
    assert not rows["test"] & rows["val"]
    assert not rows["train"] & rows["test"] and not rows["train"] & rows["val"]
    # and together they are the whole data set (scikit-learn's 1797 images, all distinct)
    assert len(rows["train"] | rows["val"] | rows["test"]) == 1797


def test_fashion_mnist_keeps_official_test_split():
    require(
        FASHION_DIR.is_dir(),
        "Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
    )
    data = es.data.load(f"fashion-mnist:{FASHION_DIR}")
    assert data.spec.input_shape == (1, 28, 28)
    assert (len(data.train), len(data.val), len(data.test)) == (54000, 6000, 10000)
    assert data.spec.class_names[0] == "T-shirt/top"
    assert data.validation.startswith("carved from the training files: 10% drawn at seed 0")


def test_a_validation_split_carved_from_training_data_is_seeded_disjoint_and_said(tmp_path):
    """A file with train and test only: validation comes out of train, the same rows for the
    same seed and other rows for another, never a training row; the record-facing text says
    so, and a split too weak to rank on is warned about."""
    from edgeslim.data.bundle import validation_warnings

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1200, 6)).astype("float32"), np.arange(1200) % 4
    source = write_npz(
        tmp_path / "split.npz", x_train=x[:1000], y_train=y[:1000], x_test=x[1000:], y_test=y[1000:]
    )
    data, again, other = (es.data.load(source, seed=s) for s in (0, 0, 1))
    assert len(data.val) == 100 and len(data.train) == 900 and len(data.test) == 200
    np.testing.assert_array_equal(data.val.x, again.val.x)
    assert not np.array_equal(data.val.y, other.val.y)

    def rows(split):  # normalised with the train statistics of the same load: comparable
        return {r.tobytes() for r in split.x}

    assert not rows(data.val) & rows(data.train)
    assert len(rows(data.val) | rows(data.train)) == 1000  # together: the file's x_train
    assert data.validation == (
        "carved from the file's x_train: 10% drawn at seed 0, disjoint from the others"
    )
    assert validation_warnings(data) == []

    given = write_npz(
        tmp_path / "given.npz",
        x_train=x[:900], y_train=y[:900], x_val=x[900:940], y_val=np.zeros(40, int),
        x_test=x[1000:], y_test=y[1000:],
    )  # fmt: skip
    small = es.data.load(given)
    assert small.validation == "given in the file (x_val, y_val)"
    assert validation_warnings(small) == [
        "the validation split has 40 samples, fewer than 100: too few to rank candidates a "
        "point of accuracy apart; give more data or a larger val_fraction",
        "the validation split has no sample of class 1, 2, 3: a choice made on it never sees "
        "that class",
    ]


def test_fashion_mnist_bad_files_are_named(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: file not found"):
        es.data.load(f"fashion-mnist:{tmp_path}")
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        es.data.load(f"fashion-mnist:{tmp_path}")


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_npz_with_and_without_explicit_splits(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 12)).astype("float32"), np.arange(100) % 3
    data = es.data.load(write_npz(tmp_path / "flat.npz", x=x, y=y))
    assert data.spec.input_shape == (12,) and data.spec.num_classes == 3
    assert len(data.train) + len(data.val) + len(data.test) == 100
    source = write_npz(
        tmp_path / "split.npz", x_train=x[:80], y_train=y[:80], x_test=x[80:], y_test=y[80:]
    )
    data = es.data.load(source)
    assert len(data.test) == 20 and len(data.train) + len(data.val) == 80


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((10, 4)), "y": np.zeros(9)}, "10 samples but 9 labels|x has 10"),
        ({"x": np.zeros((10, 4)), "y": -np.ones(10)}, "labels must be >= 0"),
        ({"x": np.full((10, 4), np.nan), "y": np.zeros(10)}, "NaN or Inf"),
        ({"x": np.zeros((10, 4)), "y": np.full(10, 0.5)}, "whole numbers"),
        (
            {"x": np.zeros((10, 4)), "y": np.arange(10) % 2, "num_classes": np.array(1)},
            "out of range",
        ),
        ({"x": np.zeros((2, 4)), "y": np.arange(2) % 2}, "split empty"),
        ({"images": np.zeros((10, 4))}, "expected arrays 'x' and 'y'"),
    ],
)
def test_npz_bad_content_gives_one_clear_error(tmp_path, arrays, message):
    with pytest.raises(DataError, match=message) as info:
        es.data.load(write_npz(tmp_path / "bad.npz", **arrays))
    assert "bad.npz" in str(info.value)


def test_npz_missing_or_not_npz(tmp_path):
    with pytest.raises(DataError, match="not found"):
        es.data.load(f"npz:{tmp_path / 'missing.npz'}")
    (tmp_path / "junk.npz").write_text("hello")
    with pytest.raises(DataError, match="junk.npz: not a readable npz"):
        es.data.load(f"npz:{tmp_path / 'junk.npz'}")


def make_images(root, sizes):
    for label, size_list in sizes.items():
        (root / label).mkdir(parents=True)
        for i, size in enumerate(size_list):
            Image.fromarray(np.full(size[::-1], i * 20 % 255, dtype=np.uint8)).save(
                root / label / f"{i}.png"
            )


def test_imagefolder_reads_classes_and_rejects_mixed_sizes(tmp_path):
    make_images(tmp_path / "ok", {"cat": [(6, 5)] * 10, "dog": [(6, 5)] * 10})
    data = es.data.load(f"imagefolder:{tmp_path / 'ok'}")
    assert data.spec.input_shape == (1, 5, 6) and data.spec.class_names == ("cat", "dog")
    make_images(tmp_path / "mixed", {"cat": [(6, 5)] * 5, "dog": [(6, 5), (7, 7)]})
    with pytest.raises(DataError, match=r"1\.png: image is 7x7 but earlier images are 6x5"):
        es.data.load(f"imagefolder:{tmp_path / 'mixed'}")


def test_unknown_source_lists_the_known_ones():
    with pytest.raises(DataError, match="unknown data source 'mnist'.*digits"):
        es.data.load("mnist")
