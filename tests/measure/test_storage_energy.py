import torch

from edgeslim.graph import summarize
from edgeslim.measure import energy as energy_module
from edgeslim.measure.energy import energy
from edgeslim.measure.storage import XZ_PRESET, storage
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


def test_coded_storage_rebuilds_the_model_and_counts_shared_values(tmp_path):
    import lzma

    import numpy as np
    import onnx
    from onnx import numpy_helper

    from edgeslim.measure import coding

    data = random_data((1, 16, 16))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 256))
    dense = export(model, data, tmp_path / "dense.onnx")
    with torch.no_grad():  # 16 shared values: 4 bits of information a weight
        levels = torch.linspace(-0.1, 0.1, 16)
        model[1].weight.copy_(levels[torch.randint(0, 16, model[1].weight.shape)])
    shared = export(model, data, tmp_path / "shared.onnx")
    records = {p.stem: storage(summarize(p)) for p in (dense, shared)}
    # random FP32 weights do not code smaller; 16 values code near 4 bits a weight
    assert records["dense"]["storage_coded_kb"] > 0.85 * records["dense"]["storage_kb"]
    weight_kb = 256 * 256 / 1024
    assert records["shared"]["storage_coded_kb"] < weight_kb * 4 / 8 * 1.15
    assert records["shared"]["storage_coded_kb"] * 1.3 < records["shared"]["storage_compressed_kb"]
    for path in (dense, shared):
        original = onnx.load(str(path))
        blob = coding.encode(original, XZ_PRESET)
        assert len(blob) / 1024 == records[path.stem]["storage_coded_kb"]
        rebuilt = coding.decode(blob)
        assert [n.op_type for n in rebuilt.graph.node] == [n.op_type for n in original.graph.node]
        for a, b in zip(original.graph.initializer, rebuilt.graph.initializer, strict=True):
            assert a.name == b.name
            assert np.array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b))
    # a runtime's own file (not ONNX) is coded as its bytes
    other = tmp_path / "model.tflite"
    other.write_bytes(bytes(4096))
    summary = summarize(dense)
    summary.artifact = other
    coded = storage(summary)["storage_coded_kb"]
    assert coded == len(lzma.compress(bytes(4096), preset=XZ_PRESET)) / 1024
