"""An entropy-coded container for an ONNX model: what a flash image or an over-the-air update
with a coded weight format would carry.

Every initializer with at most 256 distinct values (clustered or quantized weights, and most
small tensors) is stored as its codebook (the distinct values, in the tensor's own type) plus
one index byte per element; any other tensor as its raw bytes. The graph itself (the model with
the initializers' data removed) goes first. The whole stream is coded with xz (LZMA2, at the
preset ``storage`` gives), which entropy-codes the indices and turns
runs of zeros (pruned weights) into a few bytes.

``decode`` rebuilds the identical model from the bytes, so the figure is one a device could use.
"""

from __future__ import annotations

import lzma
import struct

import numpy as np
import onnx
from onnx import helper, numpy_helper

MAX_CODEBOOK = 256
RAW, SHARED, KEPT = 0, 1, 2  # KEPT: left in the graph (strings)


def encode(model: onnx.ModelProto, preset: int) -> bytes:
    """The coded bytes of ``model`` (its external data already loaded), xz at ``preset``."""
    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(model)
    arrays = []
    for tensor in skeleton.graph.initializer:
        if tensor.data_type == onnx.TensorProto.STRING:
            arrays.append(None)
            continue
        arrays.append(numpy_helper.to_array(tensor))
        blank = onnx.TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
        tensor.CopyFrom(blank)
    graph = skeleton.SerializeToString()
    parts = [struct.pack("<I", len(graph)), graph]
    for array in arrays:
        if array is None:
            parts.append(struct.pack("<B", KEPT))
            continue
        flat = np.ascontiguousarray(array).reshape(-1)
        values, inverse = np.unique(flat, return_inverse=True)
        if len(values) <= MAX_CODEBOOK and len(flat) > len(values):
            parts += [struct.pack("<BH", SHARED, len(values) - 1), values.tobytes()]
            parts.append(inverse.astype(np.uint8).tobytes())
        else:
            parts += [struct.pack("<B", RAW), flat.tobytes()]
    return lzma.compress(b"".join(parts), preset=preset)


def decode(blob: bytes) -> onnx.ModelProto:
    """The model ``encode`` was given, from its coded bytes."""
    stream = memoryview(lzma.decompress(blob))
    (size,) = struct.unpack_from("<I", stream)
    model = onnx.ModelProto.FromString(bytes(stream[4 : 4 + size]))
    at = 4 + size
    for tensor in model.graph.initializer:
        (kind,) = struct.unpack_from("<B", stream, at)
        at += 1
        if kind == KEPT:
            continue
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
        count = int(np.prod(tensor.dims, dtype=np.int64))
        if kind == SHARED:
            (last,) = struct.unpack_from("<H", stream, at)
            at += 2
            values = np.frombuffer(stream, dtype, last + 1, at)
            at += values.nbytes
            flat = values[np.frombuffer(stream, np.uint8, count, at)]
            at += count
        else:
            flat = np.frombuffer(stream, dtype, count, at)
            at += flat.nbytes
        tensor.CopyFrom(numpy_helper.from_array(flat.reshape(tuple(tensor.dims)), tensor.name))
    return model
