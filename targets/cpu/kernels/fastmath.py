"""float32 transcendental functions as rational approximations: a few ulp (sigmoid: absolute
error < 3e-7), branch-free enough that the loops calling them vectorise, where libm's
expf/erff/tanhf are scalar calls. Shared by the generated elementwise code (through
scalar.py), the conv epilogues (nn.py), the LSTM cell (rnn.py) and Softmax (reduce.py);
with them the float64 row sum both nn.py and reduce.py use."""
import numpy as np

from .jit import njit


@njit(inline="always")
def sigmoid32(v):
    """float32 logistic as a rational function on [-18, 18] (onnxruntime's MLAS constants):
    absolute error < 3e-7 and no exp call, so the loop around it vectorises (Numba has no
    vector exp here: the exact form costs ~8 ns per element)."""
    f = np.float32
    x = min(max(v, f(-18.0)), f(18.0))
    x2 = x * x
    p = ((((x2 * f(4.37031012579801e-11) + f(1.15627324459942e-07)) * x2 + f(6.08574864600143e-05)) * x2
          + f(8.51377133304701e-03)) * x2 + f(2.48287947061529e-01)) * x
    q = (((((x2 * f(6.10247389755681e-13) + f(5.76102136993427e-09)) * x2 + f(6.29106785017040e-06)) * x2
           + f(1.70198817374094e-03)) * x2 + f(1.16817656904453e-01)) * x2 + f(9.93151921023180e-01))
    return min(max(p / q + f(0.5), f(0.0)), f(1.0))


# erf and tanh: Eigen's generic_fast_erf/tanh_float,
# a few ulp from the exact value, and they vectorise, where libm's erff/tanhf are
# scalar calls (Gelu's erf was 20 ns an element, tanh 140 ns; these about 1).
@njit(inline="always")
def erf32(x):
    x = min(max(x, np.float32(-4.0)), np.float32(4.0))
    x2 = x * x
    p = x2 * np.float32(-2.72614225801306e-10) + np.float32(2.77068142495902e-08)
    p = x2 * p + np.float32(-2.10102402082508e-06)
    p = x2 * p + np.float32(-5.69250639462346e-05)
    p = x2 * p + np.float32(-7.34990630326855e-04)
    p = x2 * p + np.float32(-2.95459980854025e-03)
    p = x2 * p + np.float32(-1.60960333262415e-02)
    q = x2 * np.float32(-1.45660718464996e-05) + np.float32(-2.13374055278905e-04)
    q = x2 * q + np.float32(-1.68282697438203e-03)
    q = x2 * q + np.float32(-7.37332916720468e-03)
    q = x2 * q + np.float32(-1.42647390514189e-02)
    return x * p / q


@njit(inline="always")
def tanh32(x):
    if abs(x) < np.float32(0.0004):
        return x
    x = min(max(x, np.float32(-7.90531110763549805)), np.float32(7.90531110763549805))
    x2 = x * x
    p = x2 * np.float32(-2.76076847742355e-16) + np.float32(2.00018790482477e-13)
    p = x2 * p + np.float32(-8.60467152213735e-11)
    p = x2 * p + np.float32(5.12229709037114e-08)
    p = x2 * p + np.float32(1.48572235717979e-05)
    p = x2 * p + np.float32(6.37261928875436e-04)
    p = x2 * p + np.float32(4.89352455891786e-03)
    q = x2 * np.float32(1.19825839466702e-06) + np.float32(1.18534705686654e-04)
    q = x2 * q + np.float32(2.26843463243900e-03)
    q = x2 * q + np.float32(4.89352518554385e-03)
    return x * p / q


# exp: Cephes expf's range reduction and polynomial (about 1 ulp), with 2**n put into the
# float's exponent bits by the caller (Numba has no scalar bit cast; an int32 view of the
# output array does it in a second vectorised loop).
_LOG2E = np.float32(1.44269504088896341)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
EXP32_MIN = np.float32(-87.0)   # below: the result is taken as 0 (exp(-87) = 1.6e-38)


@njit(inline="always")
def exp32_parts(v):
    """(p, n) with exp(v) = p * 2**n, for float32 v in [EXP32_MIN, 88]."""
    f = np.float32
    t = np.floor(v * _LOG2E + f(0.5))
    r = (v - t * _LN2_HI) - t * _LN2_LO
    p = f(1.9875691500e-4)
    p = p * r + f(1.3981999507e-3)
    p = p * r + f(8.3334519073e-3)
    p = p * r + f(4.1665795894e-2)
    p = p * r + f(1.6666665459e-1)
    p = p * r + f(5.0000001201e-1)
    return p * r * r + r + f(1.0), np.int32(t)


@njit(cache=True, error_model="numpy")
def exp32_shifted(x, m, out, n_scratch):
    """out = exp(x - m) for a float32 row and m >= max(x) (so every power of two is normal);
    results under exp(EXP32_MIN) are 0. n_scratch: an int32 array at least as long as x.
    Both loops vectorise: ~1 ns an element against ~10 for libm's expf."""
    f = np.float32
    for j in range(x.shape[0]):
        v = x[j] - m
        under = v < EXP32_MIN
        p, t = exp32_parts(max(v, EXP32_MIN))
        out[j] = f(0.0) if under else p
        n_scratch[j] = np.int32(0) if under else t
    bits = out.view(np.int32)
    for j in range(x.shape[0]):
        bits[j] += n_scratch[j] << 23


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def sum64(row):
    """Sum in float64; reassociation lets it vectorise (NaN/inf still propagate)."""
    acc = 0.0
    for s in range(row.shape[0]):
        acc += np.float64(row[s])
    return acc


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def sq_dev64(row, mean):
    """Sum of (row - mean)^2 in float64, reassociated as sum64 so it vectorises."""
    acc = 0.0
    for s in range(row.shape[0]):
        d = np.float64(row[s]) - mean
        acc += d * d
    return acc


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def logistic_rows32(row, bias, gate):
    """float32 row = sigmoid(row + bias), or with gate (SiLU) (row + bias) * sigmoid(row + bias),
    in place. Contract lets LLVM fuse sigmoid32's multiply-adds (about 25% faster measured on a
    conv epilogue); the results move by an ulp or so, within sigmoid32's own error."""
    if gate:
        for j in range(row.shape[0]):
            v = row[j] + bias
            row[j] = v * sigmoid32(v)
    else:
        for j in range(row.shape[0]):
            row[j] = sigmoid32(row[j] + bias)
