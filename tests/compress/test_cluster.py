"""Weight clustering: each layer keeps at most ``clusters`` values, zeros stay zero, the
centroids learn, and the coded file shrinks while accuracy holds."""

import pytest
import torch

import edgeslim as es
from edgeslim.compress import layers as L
from edgeslim.errors import ConfigError
from tests.conftest import QUICK


@pytest.fixture(scope="module")
def dense_record(trained_small_cnn, digits, tmp_path_factory):
    return es.measure(
        es.export(trained_small_cnn, digits, tmp_path_factory.mktemp("d")), digits, QUICK
    )


def distinct(model: torch.nn.Module) -> dict[str, int]:
    return {n: int(torch.unique(m.weight).numel()) for n, m in L.weighted_layers(model).items()}


@pytest.mark.slow
def test_clustering_shares_values_keeps_accuracy_and_codes_small(
    trained_small_cnn, digits, dense_record, tmp_path
):
    recipes = [
        [{"cluster": {"clusters": 16, "epochs": 2}}],
        [
            {"prune": {"kind": "unstructured", "sparsity": 0.8}},
            {"finetune": {"epochs": 2}},
            {"cluster": {"clusters": 16, "epochs": 2}},
        ],
    ]
    shared, pruned = es.compress(
        trained_small_cnn,
        digits,
        recipes,
        names=["shared", "pruned"],
        out_dir=tmp_path,
        show_progress=False,
    )
    assert all(v <= 16 for v in distinct(shared.model).values())
    result = shared.step("cluster")["result"]
    assert {v["bits"] for v in result["clustered_layers"].values()} == {4}
    weights = sum(m.weight.numel() for m in L.weighted_layers(shared.model).values())
    assert result["packed_kb"] == pytest.approx((weights / 2 + 4 * 16 * 4) / 1024, rel=0.01)
    # zeros stay zero: the pruned layers' sparsity is what pruning left
    assert pruned.step("cluster")["result"]["sparsity_reached"] == pytest.approx(0.8, abs=0.01)
    assert all(v <= 16 for v in distinct(pruned.model).values())
    records = {c.name: es.measure(c, digits, QUICK) for c in (shared, pruned)}
    for record in records.values():
        assert record["accuracy"] >= dense_record["accuracy"] - 0.02  # on ONNX Runtime
    # 16 shared values code in about 4 bits a weight instead of 32: at least 5x smaller;
    # gzip over the FP32 file sees less of it
    assert records["shared"]["storage_coded_kb"] * 5 <= dense_record["storage_coded_kb"]
    assert records["shared"]["storage_compressed_kb"] > 1.3 * records["shared"]["storage_coded_kb"]
    assert records["pruned"]["storage_coded_kb"] < records["shared"]["storage_coded_kb"] / 1.8


def test_fine_tuning_moves_the_shared_values(trained_small_cnn, digits):
    recipes = [[{"cluster": {"clusters": 8, "epochs": e, "lr": 3e-3}}] for e in (0, 1)]
    frozen, tuned = es.compress(trained_small_cnn, digits, recipes, show_progress=False)
    name = "3.0"  # a conv layer of small-cnn
    before = torch.unique(L.weighted_layers(frozen.model)[name].weight)
    after = torch.unique(L.weighted_layers(tuned.model)[name].weight)
    assert len(before) == len(after) == 8
    assert not torch.allclose(before, after)  # the centroids learned
    # the layer is a plain parameter again: no parametrization is left behind
    assert not hasattr(L.weighted_layers(tuned.model)[name], "parametrizations")


def test_clusters_per_layer_and_bad_names(trained_small_cnn, digits):
    recipe = [{"cluster": {"clusters": 32, "layers": {"3.0": 4}, "skip": ["0.0"], "epochs": 0}}]
    (c,) = es.compress(trained_small_cnn, digits, [recipe], show_progress=False)
    values = distinct(c.model)
    assert values["3.0"] == 4 and values["0.0"] > 32
    assert all(v <= 32 for n, v in values.items() if n != "0.0")
    with pytest.raises(ConfigError, match="no conv/linear layer named 'conv9'"):
        es.compress(trained_small_cnn, digits, [[{"cluster": {"layers": {"conv9": 4}}}]])
    with pytest.raises(ConfigError, match="clusters"):
        es.compress(trained_small_cnn, digits, [[{"cluster": {"clusters": 1}}]])
