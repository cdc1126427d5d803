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
    TensorProto.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn, TensorProto.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
    TensorProto.FLOAT8E5M2: ml_dtypes.float8_e5m2, TensorProto.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz,
    TensorProto.FLOAT4E2M1: ml_dtypes.float4_e2m1fn, TensorProto.FLOAT8E8M0: ml_dtypes.float8_e8m0fnu,
    TensorProto.INT4: ml_dtypes.int4, TensorProto.UINT4: ml_dtypes.uint4,
    TensorProto.INT2: ml_dtypes.int2, TensorProto.UINT2: ml_dtypes.uint2,
}

# Small floats: the types onnx.numpy_helper gives (numpy / ml_dtypes), but
# without CPU arithmetic in Numba, so targets hold them as their bit patterns.
SMALL_FLOATS = {np.dtype(t): np.dtype(np.uint16) for t in (np.float16, ml_dtypes.bfloat16)}
SMALL_FLOATS.update({np.dtype(t): np.dtype(np.uint8) for t in (
    ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz,
    ml_dtypes.float4_e2m1fn, ml_dtypes.float8_e8m0fnu)})
# Small integers: ml_dtypes keeps one per byte, as its low bits; held as those bytes too.
SMALL_INTS = {np.dtype(t): np.dtype(np.uint8) for t in (ml_dtypes.int4, ml_dtypes.uint4, ml_dtypes.int2, ml_dtypes.uint2)}
HELD_AS_BITS = {**SMALL_FLOATS, **SMALL_INTS}   # dtype -> the unsigned type of its bit patterns
SUB_BYTE_BITS = {np.dtype(t): b for t, b in ((ml_dtypes.int4, 4), (ml_dtypes.uint4, 4), (ml_dtypes.float4_e2m1fn, 4),
                                             (ml_dtypes.int2, 2), (ml_dtypes.uint2, 2))}


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


def is_small_float(dtype) -> bool:
    return np.dtype(dtype) in SMALL_FLOATS


def is_held(dtype) -> bool:
    """Held as bit patterns by the targets (a small float or small integer)."""
    return np.dtype(dtype) in HELD_AS_BITS


def bit_width(dtype) -> int:
    """Bits per element as ONNX counts them (BitCast keeps them)."""
    return SUB_BYTE_BITS.get(np.dtype(dtype), np.dtype(dtype).itemsize * 8)


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f" or is_small_float(dtype)


def is_int(dtype) -> bool:
    return np.dtype(dtype).kind in "iu" or np.dtype(dtype) in SMALL_INTS
