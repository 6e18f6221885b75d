import json

import onnx
import pytest

import edgeslim as es
from edgeslim.errors import DataError
from edgeslim.export import INPUT_NAME, SPEC_KEY, export_onnx


@pytest.mark.slow
@pytest.mark.parametrize("name", es.models.models_for("classification"))
def test_every_zoo_model_exports_and_matches_pytorch(name, digits, tmp_path):
    check = export_onnx(es.models.build(name, digits.spec), digits, tmp_path / f"{name}.onnx")
    assert check.agreement == 1.0 and check.max_abs_diff < 1e-4
    assert check.opset >= 17
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}.onnx"]  # one self-contained file


def test_export_records_spec_names_and_dynamic_batch(trained_small_cnn, digits, tmp_path):
    candidate = es.export(trained_small_cnn, digits, tmp_path)
    assert candidate.artifact == tmp_path / "baseline.onnx"
    assert candidate.recipe[-1]["export"]["top1_agreement"] == 1.0
    proto = onnx.load(str(candidate.artifact))
    assert proto.graph.input[0].name == INPUT_NAME
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # batch is symbolic
    spec = json.loads({p.key: p.value for p in proto.metadata_props}[SPEC_KEY])
    assert spec["input_shape"] == [1, 8, 8] and spec["num_classes"] == 10
    assert not any(node.metadata_props for node in proto.graph.node)


def test_model_that_does_not_fit_the_data_is_a_data_error(digits, tmp_path):
    wrong = es.models.build("mlp", es.data.DataSpec((1, 28, 28), 10))
    with pytest.raises(DataError, match=r"does not accept .*\(1, 8, 8\)"):
        export_onnx(wrong, digits, tmp_path / "wrong.onnx")
