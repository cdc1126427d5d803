"""CPU lowerings of convolution, pooling and normalisation onto the
hand-written kernels of targets/cpu/kernels/nn.py (rank-5 views, 3-tuples)."""
from __future__ import annotations

import importlib

import numpy as np

from compiler.ops import nn as nn_ops
from compiler.ops.common import attr
from runtime.cache import target_cpu

from . import source
from .kernels import nn as nn_kernels
from .kernels import sgemm
from .kernels.blas import OWN_MIN_M
from .emitter import KERNEL_DIR as CPU_KERNEL_DIR
from .lower import gemm_parts, lower


def _as5(shape):
    """(N, C, *spatial) -> (N, C, D, H, W) with size-1 dims in front."""
    return tuple(shape[:2]) + (1,) * (5 - len(shape)) + tuple(shape[2:])


def _t3(values, fill):
    values = tuple(int(v) for v in values)
    return (fill,) * (3 - len(values)) + values


def _p3(values, fill):
    return source.ints(_t3(values, fill))


def _float_only(node):
    if node.inputs[0].dtype.kind != "f":
        raise NotImplementedError(f"{node.op} on {node.inputs[0].dtype} is not supported")


def _view5(em, v):
    return f"{em[v]}.reshape({source.ints(_as5(v.shape))})"


# Activation of a fused conv epilogue (compiler/passes/conv_epilogue.py) -> the kernel's ACT_* code.
ACT_CODES = {None: nn_kernels.ACT_NONE, "Relu": nn_kernels.ACT_RELU, "Clip": nn_kernels.ACT_CLIP,
             "Sigmoid": nn_kernels.ACT_SIGMOID, "HardSigmoid": nn_kernels.ACT_HARDSIGMOID,
             "HardSwish": nn_kernels.ACT_HARDSWISH, "Silu": nn_kernels.ACT_SILU, "LeakyRelu": nn_kernels.ACT_LEAKY}
# the activations the LLVM-IR conv kernels apply in registers (nn.vec_epilogue's four)
IN_REGISTER_ACTS = (nn_kernels.ACT_NONE, nn_kernels.ACT_RELU, nn_kernels.ACT_CLIP, nn_kernels.ACT_HARDSWISH)


@lower("Conv")
def _conv(node, em):
    _float_only(node)
    x, w, out = node.inputs[0], node.inputs[1], node.outputs[0]
    geo = nn_ops.conv_geometry(node)
    b = node.input(2)
    bias = em[b] if b is not None else em.const(np.zeros(w.shape[0], x.dtype))
    r = node.input(3)
    res5 = _view5(em, r) if r is not None else em.empty((0,) * 5, x.dtype)
    L = em.lib("nn")
    res = em.alloc(out)
    act = ACT_CODES[attr(node, "_act")]
    alpha, beta = source.num(float(attr(node, '_alpha', 0.0))), source.num(float(attr(node, '_beta', 0.0)))
    out5 = f"{res}.reshape({source.ints(_as5(out.shape))})"
    # With constant filters on the CPU library the path is chosen here, from the shapes; otherwise
    # conv_fused chooses at run time (CUDA's library has only conv_fused).
    chosen_here = w.is_const and em.KERNEL_DIR == CPU_KERNEL_DIR
    group, threads = int(attr(node, 'group', 1)), em.threads
    path = _kernel_of(node, geo, act) if chosen_here else None
    if path == "gemv":
        # one input and output position an image: a fully connected layer (squeeze-excite)
        em.emit(f"{L}.conv_gemv({_view5(em, x)}, {_view5(em, w)}, {bias}, {out5}, {res5}, {act}, {alpha}, {beta})")
        return
    if path == "winograd32":
        from .kernels import winograd   # for workspace (its callbacks stay uncompiled here: kernels/jit.py)
        u = np.empty((16, w.shape[0], w.shape[1]), np.float32)
        nn_kernels.winograd_weights(np.ascontiguousarray(w.const, np.float32).reshape(_as5(w.shape)), u)
        ws = em.tmp()    # the scratch is a buffer of the graph: the memory plan puts it in the arena
        em.emit(f"{ws} = {em.empty((int(winograd.workspace(_as5(x.shape), _as5(out.shape))),), np.float32)}")
        parts = _wino_parts(x, out, em)
        fn, tail = ("conv_par", f", {parts}") if parts > 1 else ("conv", "")
        em.emit(f"{em.lib('winograd')}.{fn}({_view5(em, x)}, {em.const(u)}, {bias}, {out5}, {_p3(geo['pads_begin'], 0)}, "
                f"{res5}, {act}, {alpha}, {beta}, {ws}{tail})")
        return
    if path == "winograd":
        # Filters are constants: transform them once, here, with the kernel library's own code.
        u = np.empty((16, w.shape[0], w.shape[1]), x.dtype)
        nn_kernels.winograd_weights(np.ascontiguousarray(w.const, x.dtype).reshape(_as5(w.shape)), u)
        parts = _wino_parts(x, out, em)
        fn, tail = ("conv_winograd_par", f", {parts}") if parts > 1 else ("conv_winograd", "")
        em.emit(f"{L}.{fn}({_view5(em, x)}, {em.const(u)}, {bias}, {out5}, {_p3(geo['pads_begin'], 0)}, "
                f"{res5}, {act}, {alpha}, {beta}{tail})")
        return
    tiles = path if path in ("conv_small", "conv_lanes") else None
    scale = node.input(4)     # x's per-channel scale, folded into the filters (conv_input_scale.py)
    if scale is not None and tiles != "conv_small":
        raise NotImplementedError("an input scale on a conv that conv_small does not take")
    if tiles:
        # kernels/conv_small.py or conv_lanes.py: the same interface; the package's module for
        # pack and items only (its callback stays uncompiled: kernels/jit.py), the model's copy runs
        kernel = importlib.import_module(f".kernels.{tiles}", __package__)
        wp = em.const(kernel.pack(np.asarray(w.const, np.float32).reshape(_as5(w.shape))))
        if scale is not None:
            wp, packed = em.tmp(), wp
            em.emit(f"{wp} = {em.lib(tiles)}.scale_panels({packed}, {em[scale]}.reshape({w.shape[1]}), "
                    f"{w.shape[0]}, {int(np.prod(w.shape[2:]))})")
        m, k = w.shape[0], int(np.prod(w.shape[1:]))
        n = int(np.prod(out.shape[2:])) * out.shape[0]
        parts = min(gemm_parts(em, m, k, n, CONV_PARALLEL_MACS, 1), int(kernel.items(_as5(out.shape))))
        args = (f"{_view5(em, x)}, {wp}, {bias}, {out5}, {_p3(geo['strides'], 1)}, {_p3(geo['pads_begin'], 0)}, "
                f"{source.ints(tuple(int(d) for d in w.shape[2:]))}, {res5}, {act}, {alpha}, {beta}")
        L4 = em.lib(tiles)
        split = f", {kernel.rows_first(w.shape, out.shape)}" if tiles == "conv_small" else ""
        em.emit(f"{L4}.conv_par({args}, {parts}{split})" if parts > 1 else f"{L4}.conv({args})")
        return
    if path == "pointwise":
        L6 = em.lib("pointwise")
        m, k = w.shape[0], w.shape[1]
        parts = min(gemm_parts(em, m, k, int(np.prod(out.shape[2:])) * out.shape[0], CONV_PARALLEL_MACS, 1),
                    out.shape[2])
        args = f"{_view5(em, x)}, {_view5(em, w)}, {bias}, {out5}, {res5}, {act}, {alpha}, {beta}"
        em.emit(f"{L6}.conv_par({args}, {parts})" if parts > 1 else f"{L6}.conv({args})")
        return

    def conv_args(filters):
        return (f"{_view5(em, x)}, {filters}, {bias}, {out5}, {_p3(geo['strides'], 1)}, {_p3(geo['pads_begin'], 0)}, "
                f"{_p3(geo['dilations'], 1)}, {group}, {res5}, {act}, {alpha}, {beta}")
    args = conv_args(_view5(em, w))
    if not chosen_here:
        em.emit(f"{L}.conv_fused({args}, {threads})")
    elif nn_kernels.is_direct(x.shape[1], w.shape[0], group):   # only the path this conv takes is compiled
        wide = nn_kernels.dw_wide(_as5(x.shape), _as5(w.shape), _t3(geo["strides"], 1), _t3(geo["dilations"], 1))
        if wide and x.dtype != np.float32:
            em.emit(f"{L}.conv_direct({args}, {threads})")
            return
        par = nn_kernels.direct_parallel(_as5(x.shape), _as5(w.shape), _as5(out.shape), group, threads)
        if _window3x3_conv(x, w, geo, group):
            # imported only here: a kernel is compiled where a model has one
            if _dw_small(x, w, out, geo, act):   # its filters packed here (kernels/dw_small.pack)
                wt = em.const(importlib.import_module(".kernels.dw_small", __package__).pack(w.const))
                L3, args = em.lib("dw_small"), conv_args(wt)
            else:
                L3 = em.lib("window3x3")
            em.emit(f"{L3}.conv_par({args}, {threads})" if par else f"{L3}.conv({args})")
        elif wide:
            em.lib("callback_dw")   # binds the symbol conv_dw_serial and conv_dw_par call
            em.emit(f"{L}.conv_dw_par({args}, {threads})" if par else f"{L}.conv_dw_serial({args})")
        else:
            em.emit(f"{L}.conv_planes_{'par' if par else 'serial'}({args})")
    else:
        parts = _conv_gemm_parts(x, w, out, geo, group, em)
        f32 = x.dtype == np.float32
        if f32:
            em.lib("callback_conv_gemm")   # binds the symbol conv_gemm32 and conv_gemm_par's float32 bands call
        em.emit(f"{L}.conv_gemm_par({args}, {parts})" if parts > 1 else f"{L}.conv_gemm{'32' if f32 else ''}({args})")


# kernels/conv_small.py's tiles (positions of an output row by 32 output channels) against the
# NCHW GEMM (nn.conv_gemm32), one thread, us: pointwise 160 -> 640 at 7x7 130 -> 95, 480 -> 80
# 51 -> 35, 288 -> 48 at 14x14 62 -> 49; 3x3 256 -> 256 at 7x7 705 -> 505, 3x3 stride 2
# 128 -> 256 from 14x14 378 -> 265; 1x1 stride 2 64 -> 64 from 28x28 33 -> 17; even on 56x56
# (96 -> 16: 90 both). Below 32 multiply-adds an output (16 -> 96 pointwise: 113 -> 129; 8 -> 48
# 134 -> 184) the tile's transpose costs more than its arithmetic. Stems with enough of them
# gain despite the padded copy of a large image: resnet18_half's 7x7 stride-2 3 -> 32 at
# 224x224 1241 -> 1174 alone, 1519 -> 1181 in the model. Winograd keeps the 3x3 stride-1
# convs it takes (faster from 14x14 up: 128 channels at 14x14 390 against 517).
SMALL_MIN_K = 32
# With AVX2 (tiles of 6, 5 or 4 positions by 16 channels), one thread, against the conv GEMM
# (nn.conv_gemm32), us, built for znver3 on the Zen 4 machine, interleaved: 3x3 256 -> 256 at
# 7x7 720 -> 662, 3x3 stride 2 128 -> 256 from 14x14 401 -> 350, 128 -> 128 from 28x28 736 ->
# 655; 1x1 stride 2 64 -> 64 from 28x28 56 -> 61; stems 7x7 stride 2 3 -> 64 at 224x224 2585 ->
# 2835 (3 -> 32: 1291 -> 1387). The stems still go: each conv left to the GEMM compiles
# nn.conv_gemm32's callback and conv_gemm_par's bands, ~30 s of light_resnet50's cold compile
# for AVX2. Below 32 multiply-adds an output the GEMM is 1.6x faster (3 -> 16 3x3 stride 2 at
# 224x224: 180 against 280); no conv_lanes there. Pointwise convs of stride 1 stay on
# kernels/pointwise.py's GEMM, 1.1-2x faster: 160 -> 640 at 7x7 147 against 175, 48 -> 288 at
# 14x14 66 against 110, 96 -> 16 at 56x56 117 against 157.
# With SiLU, whose sigmoid the tile evaluates before its transpose, the GEMM and its SiLU pass
# stay ahead up to 64 multiply-adds an output: se_cnn's 32 -> 128 at 28x28 102 against 117 us,
# 64 -> 256 at 14x14 92 against 90.
SMALL_MIN_K_SILU = 64
# Tried (session 24, the Xeon): ResNet-50's pointwise convs of 64 filters or more on planes
# above 196 positions on kernels/pointwise.py's GEMM instead, where a tile's input steps a
# whole plane a reduction step. One conv, one thread, us, conv_small -> pointwise: 256 -> 64 at
# 56x56 1202 -> 1100, 512 -> 128 at 28x28 1049 -> 1011, but 1024 -> 256 at 14x14 709 -> 839;
# light_resnet50 against onnxruntime 1.46 -> 1.42. Not kept: pointwise.py's njit GEMM is
# compiled into the model's own module, light_resnet50's cold compile 17.5 -> 23 s (28.4 s
# with no kernel cached, against the 30 s the bench allows).


def _one_position(x, w, out, group) -> bool:
    """A float32 group-1 conv with one input and output position an image (a fully connected
    layer written as Conv): nn.conv_gemv's."""
    return (x.dtype == np.float32 and group == 1
            and all(int(d) == 1 for d in (*x.shape[2:], *w.shape[2:], *out.shape[2:])))


def _kernel_of(node, geo, act):
    """The kernel _conv runs a conv with constant filters on (CPU library), the first that takes
    it: "gemv", "winograd32", "winograd", "conv_small", "conv_lanes", "pointwise", or None for
    _conv's later paths."""
    x, w, out = node.inputs[0], node.inputs[1], node.outputs[0]
    group = int(attr(node, "group", 1))
    if _one_position(x, w, out, group):
        return "gemv"
    if _winograd32(node, geo, act):
        return "winograd32"
    if _winograd(node, geo):
        return "winograd"
    if _conv_small(x, w, out, geo, group, act):
        return "conv_small"
    if _conv_lanes(x, w, out, geo, group, act):
        return "conv_lanes"
    if _pointwise(x, w, out, geo, group):
        return "pointwise"
    return None


def takes_conv_small(node, geo, act) -> bool:
    """Whether _conv lowers this Conv (constant filters, CPU kernels) on kernels/conv_small.py
    (conv_input_scale.py folds scales only into such convs)."""
    return node.inputs[1].is_const and _kernel_of(node, geo, act) == "conv_small"


def _conv_small(x, w, out, geo, group, act):
    """Whether a float32 conv with constant filters runs as kernels/conv_small.py's: 2-D, group 1,
    dilation 1, output channels a multiple of the vector width (16 floats with AVX-512, 8 with
    AVX2), equal strides, rows of 7 or more, an activation its epilogue applies, enough work an output."""
    if x.dtype != np.float32 or len(x.shape) != 4 or group != 1:
        return False
    if any(int(d) != 1 for d in geo["dilations"]) or w.shape[0] % sgemm.W or out.shape[3] < 7:
        return False
    if len(set(int(s) for s in geo["strides"])) != 1:
        return False
    if act not in IN_REGISTER_ACTS + (nn_kernels.ACT_SILU,):     # SiLU: conv_small's own (vecir.Vec.sigmoid)
        return False
    if sgemm.W == 8 and _is_pointwise(x, w, out, geo):
        return False        # AVX2: kernels/pointwise.py's GEMM (see SMALL_MIN_K)
    k = int(np.prod(w.shape[1:]))
    return k >= (SMALL_MIN_K_SILU if act == nn_kernels.ACT_SILU else SMALL_MIN_K)


# kernels/conv_lanes.py (16 positions of a row in the lanes by 16 channels) against the GEMM
# (nn.conv_gemm32), us at 1 / 2 threads in a one-conv model: 3 -> 16 3x3 stride 2 at 224x224
# 158 / 111 -> 130 / 73, at 112x112 46 / 41 -> 44 / 28; 3 -> 8 at 224x224 in panels of 8 98 / 93
# -> 83 / 61 (3 -> 24, three such panels: 62 -> 75 at 1 thread, so only 8). Pointwise convs stay
# on the implicit GEMM (kernels/pointwise.py), which reads their rows in place (16 -> 96 at 56x56:
# 116 against 143).
# With AVX2 (8 positions by 8 channels) it is behind the GEMM alone, one thread, us: 3 -> 16 at
# 224x224 180 -> 205, 3 -> 24 at 112x112 70 -> 82; but it spares a model the GEMM's callback
# and bands, and applies SiLU in registers: cold compiles for AVX2 mobilenetv2_half 38.5 -> 31.4
# s, se_cnn 41.5 -> 25.7 s; one thread (with dw_small) mobilenetv2_half even, se_cnn 0.96 -> 0.84 ms.
LANES_MAX_K = SMALL_MIN_K


def _conv_lanes(x, w, out, geo, group, act):
    """Whether a float32 conv with constant filters too few multiply-adds an output for
    conv_small (stems) runs as kernels/conv_lanes.py's: 2-D and not pointwise, group 1,
    dilation 1, output channels a multiple of 16 or 8 of them (with AVX2 a multiple of 8),
    equal strides of 1 or 2, an activation its epilogue applies."""
    m = int(w.shape[0])
    if x.dtype != np.float32 or len(x.shape) != 4 or group != 1 or (m % 8 if sgemm.W == 8 else m % 16 and m != 8):
        return False
    if all(int(d) == 1 for d in w.shape[2:]):
        return False
    if any(int(d) != 1 for d in geo["dilations"]) or len(set(int(s) for s in geo["strides"])) != 1:
        return False
    return (int(geo["strides"][0]) in (1, 2) and act in IN_REGISTER_ACTS + (nn_kernels.ACT_SILU,)
            and int(np.prod(w.shape[1:])) < LANES_MAX_K)


def _pointwise(x, w, out, geo, group):
    """Whether a float32 conv with constant filters left to the conv GEMM runs on
    kernels/pointwise.py: 2-D, 1x1, stride 1, no pads, group 1, the GEMM's own kernel's rows
    (blas.OWN_MIN_M filters or more); its module compiles in seconds where nn.conv_gemm32's
    callback of all the GEMM's paths took ~17."""
    return (x.dtype == np.float32 and len(x.shape) == 4 and group == 1 and w.shape[0] >= OWN_MIN_M
            and _is_pointwise(x, w, out, geo))


def _is_pointwise(x, w, out, geo) -> bool:
    """nn.is_pointwise for a conv's values: 1x1, stride 1, no pads, the input's size."""
    return nn_kernels.is_pointwise(_as5(x.shape), _as5(w.shape), _as5(out.shape), _t3(geo["strides"], 1),
                                   _t3(geo["pads_begin"], 0))


def _window3x3_conv(x, w, geo, group):
    """A float32 conv kernels/window3x3.py runs (its applies(); the module is not imported to ask)."""
    if x.dtype != np.float32:
        return False
    xs, ws = _as5(x.shape), _as5(w.shape)
    strides, dil = _t3(geo["strides"], 1), _t3(geo["dilations"], 1)
    return (xs[2] == 1 and tuple(ws[1:]) == (1, 1, 3, 3) and group == xs[1] and ws[0] % group == 0
            and dil[1:] == (1, 1) and strides[1] == strides[2] and strides[1] in (1, 2))


# kernels/dw_small.py (16 channels in the lanes, rows transposed in registers) against
# window3x3.py (lanes along a plane's row), one thread, us: 288 channels 14x14 stride 2
# 25.9 -> 12.1, 480 at 7x7 25.8 -> 12.9, 192 at 14x14 20.6 -> 16.7, 96 at 28x28 37.0 -> 30.7,
# 128 at 28x28 stride 2 26.7 -> 21.1, 96 at 56x56 stride 2 67.9 -> 56.2; 48 at 112x112 stride 2
# 109 against 111.
# With AVX2 window3x3's rows hold 8 floats, and dw_small is ahead on every plane it takes (up to
# its MAX_W of 128 columns), one thread, built for znver3 on the Zen 4 machine, us: 144 channels
# at 28x28 143 -> 84, stride 2 54 -> 38; 288 at 14x14 70 -> 54; 480 at 7x7 47 -> 35; 96 at
# 56x56 stride 2 100 -> 77, stride 1 179 -> 147; 16 at 112x112 111 -> 98; 48 at 112x112
# stride 2 135 -> 120.
DW_SMALL_AVX2_WIDEST = 128


def _dw_small(x, w, out, geo, act):
    """Whether a depthwise conv window3x3 takes runs on kernels/dw_small.py instead: one filter a
    channel, channels in multiples of the vector width, with AVX-512 planes at most 32 wide at
    stride 1 or 64 at stride 2 (wider, window3x3's 16-float rows fill its vectors: even at 112
    wide stride 2), with AVX2 up to 128; pads before of 0 or 1, an activation its epilogue applies."""
    widest = (32 if int(geo["strides"][-1]) == 1 else 64) if sgemm.W == 16 else DW_SMALL_AVX2_WIDEST
    return (w.shape[0] == x.shape[1] and x.shape[1] % sgemm.W == 0 and x.shape[-1] <= widest
            and out.shape[-1] <= x.shape[-1] and all(0 <= int(p) <= 1 for p in geo["pads_begin"])
            and act in IN_REGISTER_ACTS)


# Conv GEMMs (conv_gemm_par) and Winograd (conv_winograd_par) split from 512K multiply-adds
# (~10 us), with at least 8 output channels a band; Winograd bands take at least
# WINO_PAR_MIN_ROWS tile rows each. Waking the other thread costs ~5 us when nothing else
# spins on its core (the ~0.1 ms once measured here was onnxruntime's idle workers spinning
# beside us in the bench): mobilenetv2_half at 2 threads, alone, 5.1 -> 3.2 ms, se_cnn
# 1.43 -> 1.05 ms against the old 8M threshold.
CONV_PARALLEL_MACS = 1 << 19
CONV_PARALLEL_MIN_CHANNELS = 8     # output channels per band, at least
WINO_PAR_MIN_ROWS = 2


def _conv_gemm_parts(x, w, out, geo, group, em):
    """Bands for conv_gemm_par (group 1 only): gemm_parts of the conv's GEMM, where bands of
    output rows (nn.rows_split) need no minimum of channels: a pointwise conv to 8 channels on
    112x112 (MobileNetV2) stayed serial as too few for 2 bands of 8; in row bands, 89 -> 66 us."""
    if group != 1:
        return 1
    m, k, n = w.shape[0], int(np.prod(w.shape[1:])), int(np.prod(out.shape[2:])) * out.shape[0]
    by_rows = nn_kernels.rows_split(_as5(x.shape), _as5(w.shape), _as5(out.shape), _t3(geo["strides"], 1),
                                    _t3(geo["pads_begin"], 0), group, em.threads)
    return gemm_parts(em, m, k, n, CONV_PARALLEL_MACS, 1 if by_rows else CONV_PARALLEL_MIN_CHANNELS)


def _wino_parts(x, out, em):
    """Tile-row bands for conv_winograd_par, for convs of CONV_PARALLEL_MACS or more (counted as
    direct 3x3 convs)."""
    n, c = _as5(x.shape)[:2]
    _, m, _, oh, ow = _as5(out.shape)
    if 9 * n * c * m * oh * ow < CONV_PARALLEL_MACS:
        return 1
    return max(1, min(em.threads, ((oh + 1) // 2) // WINO_PAR_MIN_ROWS))


def _winograd(node, geo):
    """Whether the CPU kernel library picks Winograd for this conv with pre-transformed filters
    (only for the CPU library: the CUDA target reuses this lowering with its own)."""
    x, w, out = node.inputs[0], node.inputs[1], node.outputs[0]
    return nn_kernels.use_winograd(_as5(x.shape), _as5(w.shape), _as5(out.shape), _t3(geo["strides"], 1),
                                   _t3(geo["pads_begin"], 0), _t3(geo["dilations"], 1), int(attr(node, "group", 1)), True,
                                   x.dtype.itemsize)


# float32 3x3 convs take Winograd F(2x2, 3x3) (kernels/winograd.py) from this many 2x2 output
# tiles an image and channels in and out: measured against the implicit GEMM at one thread,
# interleaved (ms, median): 32 channels 56x56 0.60 -> 0.50, 64 at 28x28 0.62 -> 0.36, 128 at
# 14x14 (49 tiles) 0.69 -> 0.46, but 256 at 7x7 (16 tiles: half a GEMM panel, and 8x8 outputs
# computed for 7x7) 0.81 -> 1.20; 16 channels at 56x56 about even, 8 at 112x112 2x slower.
WINO32_MIN_TILES, WINO32_MIN_CHANNELS = 49, 32
# Those figures are AMD's: Zen 4 runs a 512-bit FMA as two 256-bit halves, one a cycle, and
# Zen 3 (AVX2) has two 256-bit units, so Winograd's 2.25x fewer multiplies pay for its
# transforms. An Intel AVX-512 core issues two 512-bit FMAs a cycle (214 GFLOPS measured on the
# session-24 Xeon, LLVM name "rocketlake" under its hypervisor), and conv_small's tiles, bound
# by those FMAs, run at twice the rate while the transforms do not: there every 3x3 conv is
# conv_small's. resnet18_half, interleaved with onnxruntime in one process (bench protocol),
# ms at 1 / 2 threads: Winograd from 14x14 8.04 / 4.79, from 28x28 7.74 / 4.69, none 7.46 /
# 4.21 (onnxruntime 6.23 / 3.37). AVX-512 CPUs not measured (Zen 5's full-width FMAs among
# them) go without, as Intel's.
WINO32_CPUS_AVX512 = ("znver4",)
WINO32 = sgemm.W == 8 or target_cpu() in WINO32_CPUS_AVX512


def _winograd32(node, geo, act):
    """Whether a float32 conv with constant filters runs as kernels/winograd.py's: on a CPU
    where it pays (WINO32), 2-D 3x3, stride 1, dilation 1, group 1, an activation its epilogue
    applies, and enough tiles and channels (above)."""
    x, w, out = node.inputs[0], node.inputs[1], node.outputs[0]
    if x.dtype != np.float32 or len(x.shape) != 4 or int(attr(node, "group", 1)) != 1:
        return False
    if tuple(w.shape[2:]) != (3, 3) or any(int(v) != 1 for v in (*geo["strides"], *geo["dilations"])):
        return False
    if act not in IN_REGISTER_ACTS or not WINO32:
        return False
    tiles = ((out.shape[2] + 1) // 2) * ((out.shape[3] + 1) // 2)
    return tiles >= WINO32_MIN_TILES and min(w.shape[0], w.shape[1]) >= WINO32_MIN_CHANNELS


@lower("ConvTranspose")
def _conv_transpose(node, em):
    _float_only(node)
    x, w, out = node.inputs[0], node.inputs[1], node.outputs[0]
    geo = nn_ops.conv_transpose_geometry(node)
    b = node.input(2)
    bias = em[b] if b is not None else em.const(np.zeros(out.shape[1], x.dtype))
    L = em.lib("nn")
    res = em.alloc(out)
    em.emit(f"{L}.conv_transpose({_view5(em, x)}, {_view5(em, w)}, {bias}, {res}.reshape({source.ints(_as5(out.shape))}), "
            f"{_p3(geo['strides'], 1)}, {_p3(geo['pads_begin'], 0)}, {_p3(geo['dilations'], 1)}, {int(attr(node, 'group', 1))})")


@lower("MaxPool", "AveragePool", "LpPool")
def _pool(node, em):
    _float_only(node)
    x, out = node.inputs[0], node.outputs[0]
    geo = nn_ops.pool_geometry(node)
    L = em.lib("nn")
    res = em.alloc(out)
    o5 = f"{res}.reshape({source.ints(_as5(out.shape))})"
    common = f"{_p3(geo['kernel'], 1)}, {_p3(geo['strides'], 1)}, {_p3(geo['pads_begin'], 0)}"
    dil = _p3(geo["dilations"], 1)
    if node.op == "MaxPool" and len(node.outputs) == 1 and em.KERNEL_DIR == CPU_KERNEL_DIR and _maxpool3x3(x, geo):
        L3 = em.lib("maxpool3x3")
        x5, args = _view5(em, x), f"{_p3(geo['strides'], 1)}, {_p3(geo['pads_begin'], 0)}"
        n, c = _as5(x.shape)[:2]
        if em.threads > 1 and n * c >= 2 * em.threads and 9 * int(np.prod(out.shape)) >= nn_kernels.PAR_MIN_FLOPS:
            em.emit(f"{L3}.max_pool_par({x5}, {o5}, {args}, {em.threads})")
        else:
            em.emit(f"{L3}.max_pool({x5}, {o5}, {args})")
        return
    if node.op == "AveragePool" and _whole_window(x, out, geo):
        em.emit(f"{L}.global_pool({em[x]}.reshape({_nc_s(x)}), {res}.reshape({source.ints(out.shape[:2])}), False)")
        return
    if node.op == "MaxPool":
        if len(node.outputs) > 1:
            idx = em.alloc(node.outputs[1]) + f".reshape({source.ints(_as5(out.shape))})"
        else:
            idx = em.empty((0, 0, 0, 0, 0), np.int64)
        em.emit(f"{L}.max_pool({_view5(em, x)}, {o5}, {idx}, {common}, {dil}, {int(attr(node, 'storage_order', 0))})")
    elif node.op == "AveragePool":
        em.emit(f"{L}.avg_pool({_view5(em, x)}, {o5}, {common}, {_p3(geo['pads_end'], 0)}, {dil}, "
                f"{int(attr(node, 'count_include_pad', 0))})")
    else:
        em.emit(f"{L}.lp_pool({_view5(em, x)}, {o5}, {common}, {dil}, {source.num(float(attr(node, 'p', 2)))})")


def _maxpool3x3(x, geo):
    """A float32 MaxPool kernels/maxpool3x3.py runs: 2-D 3x3, strides (1, 1) or (2, 2), dilation 1."""
    strides = _t3(geo["strides"], 1)
    return (x.dtype == np.float32 and len(x.shape) == 4 and _t3(geo["kernel"], 1)[1:] == (3, 3)
            and _t3(geo["dilations"], 1)[1:] == (1, 1) and strides[1] == strides[2] and strides[1] in (1, 2))


def _whole_window(x, out, geo):
    """A pool whose one window is the whole unpadded image: the global pool's kernel computes it
    (ResNet's closing 7x7 AveragePool: its general kernel took 2.8 s of light_resnet50's cold compile)."""
    return (tuple(geo["kernel"]) == tuple(x.shape[2:]) and not any(geo["pads_begin"]) and not any(geo["pads_end"])
            and all(int(d) == 1 for d in geo["dilations"]) and all(int(d) == 1 for d in out.shape[2:]))


def _nc_s(v):
    return source.ints((v.shape[0], v.shape[1], int(np.prod(v.shape[2:], dtype=np.int64))))


@lower("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(node, em):
    _float_only(node)
    x, out = node.inputs[0], node.outputs[0]
    L = em.lib("nn")
    res = em.alloc(out)
    em.emit(f"{L}.global_pool({em[x]}.reshape({_nc_s(x)}), {res}.reshape({source.ints(out.shape[:2])}), "
            f"{node.op == 'GlobalMaxPool'})")


@lower("LRN")
def _lrn(node, em):
    _float_only(node)
    x, out = node.inputs[0], node.outputs[0]
    L = em.lib("nn")
    res = em.alloc(out)
    em.emit(f"{L}.lrn({em[x]}.reshape({_nc_s(x)}), {res}.reshape({_nc_s(x)}), {int(attr(node, 'size'))}, "
            f"{source.num(float(attr(node, 'alpha', 1e-4)))}, {source.num(float(attr(node, 'beta', 0.75)))}, "
            f"{source.num(float(attr(node, 'bias', 1.0)))})")


@lower("InstanceNormalization")
def _instance_norm(node, em):
    _float_only(node)
    x, s, b = node.inputs[:3]
    out = node.outputs[0]
    L = em.lib("nn")
    res = em.alloc(out)
    em.emit(f"{L}.instance_norm({em[x]}.reshape({_nc_s(x)}), {em[s]}, {em[b]}, {res}.reshape({_nc_s(x)}), "
            f"{source.num(float(attr(node, 'epsilon', 1e-5)))})")


@lower("Resize", "Upsample")
def _resize(node, em):
    from compiler.ops.resize import resize_geometry
    from .kernels import resize as rk
    x, out = node.inputs[0], node.outputs[0]
    _, axis_scales = resize_geometry(node)
    try:
        if attr(node, "_legacy", False):
            mode, coord, nearest = rk.upsample_codes(attr(node, "mode", "nearest"))
        else:
            mode, coord, nearest = rk.resize_codes(attr(node, "mode", "nearest"),
                                                   attr(node, "coordinate_transformation_mode", "half_pixel"),
                                                   attr(node, "nearest_mode", "round_prefer_floor"))
    except ValueError as e:
        raise NotImplementedError(str(e)) from None
    roi_v = node.input(1)
    roi = None if roi_v is None or roi_v.const is None or roi_v.const.size == 0 else roi_v.const
    full_roi = rk.expand_roi(len(x.shape), None if roi is None else roi.tolist(), attr(node, "axes"))
    roi_dtype = np.float64 if roi is None or roi.dtype != np.float32 else np.float32
    L = em.lib("resize")
    res = em.alloc(out)
    xs = em[x] if x.shape else f"{em[x]}.reshape(1)"
    os_ = res if x.shape else f"{res}.reshape(1)"
    em.emit(f"{L}.resize({xs}, {os_}, {em.const(np.asarray(axis_scales or (1.0,), np.float64))}, "
            f"{em.const(np.asarray(full_roi, roi_dtype))}, {mode}, {coord}, {nearest}, "
            f"{source.num(float(attr(node, 'cubic_coeff_a', -0.75)))}, {int(attr(node, 'exclude_outside', 0))}, "
            f"{source.num(float(attr(node, 'extrapolation_value', 0.0)))}, {int(attr(node, 'antialias', 0))})")
