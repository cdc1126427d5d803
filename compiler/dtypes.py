"""ONNX element types and the numpy dtypes our kernels compute in."""
import ml_dtypes
import numpy as np
from onnx import TensorProto

ONNX_TO_NUMPY = {
    TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64,
    TensorProto.INT8: np.int8, TensorProto.INT16: np.int16,
    TensorProto.INT32: np.int32, TensorProto.INT64: np.int64,
    TensorProto.UINT8: np.uint8, TensorProto.UINT16: np.uint16,
    TensorProto.UINT32: np.uint32, TensorProto.UINT64: np.uint64,
    TensorProto.BOOL: np.bool_,
    TensorProto.FLOAT16: np.float16, TensorProto.BFLOAT16: ml_dtypes.bfloat16,
}

# 16-bit floats: the types onnx.numpy_helper gives (numpy / ml_dtypes), but
# without CPU arithmetic in Numba, so targets hold them as uint16 bits.
HALF = {np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)}


class UnsupportedDType(Exception):
    pass


def to_numpy(elem_type: int) -> np.dtype:
    try:
        return np.dtype(ONNX_TO_NUMPY[elem_type])
    except KeyError:
        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else str(elem_type)
        raise UnsupportedDType(f"element type {name} is not supported on this target") from None


def from_numpy(dtype) -> int:
    for elem, t in ONNX_TO_NUMPY.items():
        if np.dtype(t) == np.dtype(dtype):
            return elem
    raise UnsupportedDType(f"dtype {np.dtype(dtype)} has no ONNX element type here")


def is_half(dtype) -> bool:
    return np.dtype(dtype) in HALF


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f" or is_half(dtype)


def is_int(dtype) -> bool:
    return np.dtype(dtype).kind in "iu"
