import shutil

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import edgeslim as es
from edgeslim.compact import compact
from edgeslim.compress.quantize import StaticSettings, calibration_set, quantize_static
from edgeslim.export import export_onnx
from edgeslim.graph import summarize


def outputs(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_int8_file_shrinks_and_computes_the_same(trained_small_cnn, digits, tmp_path):
    fp32 = tmp_path / "fp32.onnx"
    export_onnx(trained_small_cnn.model, digits, fp32)
    raw = tmp_path / "raw-int8.onnx"
    quantize_static(fp32, raw, calibration_set(digits, 64, 0), StaticSettings())
    compacted = tmp_path / "int8.onnx"
    shutil.copy(raw, compacted)

    saved = compact(compacted)

    before, after = raw.stat().st_size, compacted.stat().st_size
    assert saved == before - after and after < 0.9 * before  # names were >10% of the file
    x = digits.test.x
    assert np.array_equal(outputs(raw, x), outputs(compacted, x))
    old, new = summarize(raw), summarize(compacted)
    assert [layer.name for layer in new.layers] == [layer.name for layer in old.layers]
    assert (new.params, new.input_name, new.output_names) == (
        old.params,
        old.input_name,
        old.output_names,
    )
    assert compact(compacted) <= 0  # nothing left to strip


def test_every_artifact_edgeslim_writes_is_compacted(trained_small_cnn, digits, tmp_path):
    (int8,) = es.compress(trained_small_cnn, digits, ["int8-static"], out_dir=tmp_path)
    export_step, quantize_step = int8.recipe[-2]["export"], int8.recipe[-1]["quantize"]
    assert export_step["names_stripped_bytes"] > 0
    assert quantize_step["result"]["names_stripped_bytes"] > 0
    assert quantize_step["result"]["top1_agreement"] >= 0.95
    assert all(not node.name for node in onnx.load(str(int8.artifact)).graph.node)


def test_files_with_external_data_are_left_alone(tmp_path):
    weight = numpy_helper.from_array(np.ones((4, 4), np.float32), "a.long.weight.name")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "a.long.weight.name"], ["a.long.output"])],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("a.long.output", TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    path = tmp_path / "model.onnx"
    onnx.save(
        helper.make_model(graph),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    before = path.read_bytes()
    assert compact(path) == 0 and path.read_bytes() == before
