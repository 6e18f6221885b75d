import torch

from edgeslim.measure import energy as energy_module
from edgeslim.measure.energy import energy
from edgeslim.measure.graph import summarize
from edgeslim.measure.storage import storage
from tests.measure.helpers import conv_linear, export, random_data


def test_storage_is_the_file_size_and_zeros_compress(tmp_path):
    data = random_data((1, 16, 16))
    dense = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 3)
    )
    dense_path = export(dense, data, tmp_path / "dense.onnx")
    with torch.no_grad():
        dense[1].weight.mul_((torch.rand_like(dense[1].weight) > 0.9).float())
    sparse_path = export(dense, data, tmp_path / "sparse.onnx")
    records = {p.stem: storage(summarize(p)) for p in (dense_path, sparse_path)}
    for path in (dense_path, sparse_path):
        assert records[path.stem]["storage_kb"] == path.stat().st_size / 1024
    assert records["dense"]["storage_compressed_kb"] > 0.9 * records["dense"]["storage_kb"]
    assert (
        records["sparse"]["storage_compressed_kb"] < records["dense"]["storage_compressed_kb"] / 3
    )


def test_energy_estimate_follows_the_published_table(tmp_path):
    summary = summarize(export(conv_linear(), random_data((1, 4, 4)), tmp_path / "m.onnx"))
    record = energy(summary)
    expected_compute_pj = 384 * (3.7 + 0.9)
    expected_weights_pj = 119 * 4 * 640 / 4
    assert abs(record["energy_breakdown_mj"]["compute"] - expected_compute_pj * 1e-9) < 1e-15
    assert abs(record["energy_breakdown_mj"]["weights"] - expected_weights_pj * 1e-9) < 1e-15
    assert record["energy_mj"] == sum(record["energy_breakdown_mj"].values())
    assert "Horowitz" in energy_module.SOURCE and "estimate" in energy_module.SOURCE
