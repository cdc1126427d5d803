"""Optimizer update rules of ai.onnx.preview.training, on flat arrays.

r and t are the rate and step count as 1-element arrays; scalar math is
float64, results are stored in the outputs' dtype."""
import math

from .jit import njit


@njit(cache=True, error_model="numpy")
def adagrad(r, t, x, g, h, x_out, h_out, decay, eps, norm):
    rate = r[0] / (1.0 + t[0] * decay)
    for i in range(x.shape[0]):
        gr = norm * x[i] + g[i]
        hn = h[i] + gr * gr
        h_out[i] = hn
        x_out[i] = x[i] - rate * gr / (math.sqrt(hn) + eps)


@njit(cache=True, error_model="numpy")
def adam(r, t, x, g, v, h, x_out, v_out, h_out, alpha, beta, eps, norm, norm_post):
    rate = r[0]
    if t[0] > 0:
        rate = rate * math.sqrt(1.0 - beta ** t[0]) / (1.0 - alpha ** t[0])
    for i in range(x.shape[0]):
        gr = norm * x[i] + g[i]
        vn = alpha * v[i] + (1.0 - alpha) * gr
        hn = beta * h[i] + (1.0 - beta) * gr * gr
        v_out[i] = vn
        h_out[i] = hn
        x_out[i] = (1.0 - norm_post) * (x[i] - rate * vn / (math.sqrt(hn) + eps))


@njit(cache=True, error_model="numpy")
def momentum(r, t, x, g, v, x_out, v_out, alpha, beta, norm, nesterov):
    b = beta if t[0] > 0 else 1.0
    for i in range(x.shape[0]):
        gr = norm * x[i] + g[i]
        vn = alpha * v[i] + b * gr
        v_out[i] = vn
        x_out[i] = x[i] - r[0] * (gr + alpha * vn if nesterov else vn)
