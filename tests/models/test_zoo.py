from __future__ import annotations

import pytest
import torch

import edgeslim as es
from edgeslim.data.bundle import DataSpec
from edgeslim.errors import ModelLoadError

SPECS = [DataSpec((1, 8, 8), 10), DataSpec((1, 28, 28), 10), DataSpec((3, 32, 32), 2)]
ZOO = es.models.models_for("classification")


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "x".join(map(str, s.input_shape)))
def test_every_zoo_model_fits_every_image_spec(name, spec):
    model = es.models.build(name, spec).eval()
    out = model(torch.zeros(2, *spec.input_shape))
    assert out.shape == (2, spec.num_classes)


def test_zoo_contains_the_mlperf_tiny_references():
    assert {"small-cnn", "lenet5", "resnet8", "ds-cnn", "mobilenet-v1", "mlp"} <= set(ZOO)


def test_width_multiplier_shrinks_mobilenet():
    spec = SPECS[1]

    def count(model):
        return sum(p.numel() for p in model.parameters())

    assert count(es.models.build("mobilenet-v1", spec, width=0.25)) < count(
        es.models.build("mobilenet-v1", spec, width=0.5)
    )


def test_resnet8_has_the_reference_topology():
    model = es.models.build("resnet8", DataSpec((3, 32, 32), 10))
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    # MLPerf Tiny ResNet-8: stem + 3 stacks of two 3x3 convs + two 1x1 shortcuts
    assert len(convs) == 9
    assert [c.out_channels for c in convs if c.kernel_size == (3, 3)] == [
        16,
        16,
        16,
        32,
        32,
        64,
        64,
    ]


def test_unknown_zoo_model_and_bad_options():
    with pytest.raises(ModelLoadError, match="unknown zoo model 'vgg'"):
        es.models.build("vgg", SPECS[0])
    with pytest.raises(ModelLoadError, match="bad options"):
        es.models.build("mlp", SPECS[0], depth=3)


def test_builds_are_reproducible_for_a_seed_and_leave_the_global_rng_alone():
    spec = SPECS[0]
    torch.manual_seed(7)
    expected_next = torch.rand(1)
    torch.manual_seed(7)
    a = es.models.build("small-cnn", spec)
    assert torch.equal(torch.rand(1), expected_next)
    b = es.models.build("small-cnn", spec)
    c = es.models.build("small-cnn", spec, seed=1)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not all(
        torch.equal(pa, pc)
        for pa, pc in zip(a.parameters(), c.parameters(), strict=True)
        if pa.dim() > 1
    )
