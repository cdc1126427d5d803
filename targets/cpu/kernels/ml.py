"""Hand-written kernels for the ONNX-ML ops: tree ensembles, SVMs, linear
models, post transforms and feature transforms. Rows are independent;
scores are computed in float64 and cast by the caller.

Codes (see compiler/ops/ml.py): modes LEQ LT GTE GT EQ NEQ MEMBER LEAF = 0..7;
post transforms NONE SOFTMAX LOGISTIC SOFTMAX_ZERO PROBIT = 0..4;
aggregates AVERAGE SUM MIN MAX = 0..3; SVM kernels LINEAR POLY RBF SIGMOID = 0..3;
norms MAX L1 L2 = 0..2."""
import math

import numpy as np

from .jit import njit

LEAF = 7


# trees ----------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _goes_true(v, m, th, members, lo, hi):
    if m == 0:
        return v <= th
    if m == 1:
        return v < th
    if m == 2:
        return v >= th
    if m == 3:
        return v > th
    if m == 4:
        return v == th
    if m == 5:
        return v != th
    for k in range(lo, hi):
        if v == members[k]:
            return True
    return False


@njit(cache=True, error_model="numpy")
def _leaf(xr, root, feature, threshold, mode, true, false, missing, member_ptr, members):
    """The leaf node that row xr reaches from `root` (at most one step per node)."""
    node = root
    for _ in range(mode.shape[0]):
        m = mode[node]
        if m == LEAF:
            return node
        v = float(xr[feature[node]])
        if v != v:
            go = missing[node] != 0
        else:
            go = _goes_true(v, m, threshold[node], members, member_ptr[node], member_ptr[node + 1])
        node = true[node] if go else false[node]
    raise ValueError("a tree has a cycle")


@njit(cache=True, error_model="numpy")
def tree_ensemble(x, feature, threshold, mode, true, false, missing, member_ptr, members,
                  leaf_ptr, leaf_target, leaf_weight, roots, aggregate, init, base, out):
    """out[r, t] = aggregate over trees of the weights of the leaves row r reaches, + base."""
    for r in range(x.shape[0]):
        xr = x[r]
        row = out[r]
        row[:] = init
        for root in roots:
            node = _leaf(xr, root, feature, threshold, mode, true, false, missing, member_ptr, members)
            for k in range(leaf_ptr[node], leaf_ptr[node + 1]):
                t, w = leaf_target[k], leaf_weight[k]
                if aggregate <= 1:
                    row[t] += w
                elif aggregate == 2:
                    row[t] = min(row[t], w)
                else:
                    row[t] = max(row[t], w)
        if aggregate == 0 and roots.shape[0] > 0:
            row /= roots.shape[0]
        row += base


# post transforms and labels ----------------------------------------------------------

@njit(cache=True, error_model="numpy")
def _logistic(v):
    e = 1.0 / (1.0 + math.exp(-abs(v)))
    return 1.0 - e if v < 0 else e


@njit(cache=True, error_model="numpy")
def _probit(v):
    """sqrt(2) * erfinv(2v - 1), with the approximation onnxruntime uses."""
    x = 2.0 * v - 1.0
    sgn = -1.0 if x < 0 else 1.0
    x = (1.0 - x) * (1.0 + x)
    if x == 0:
        return 0.0
    lg = math.log(x)
    a = 2.0 / (math.pi * 0.147) + 0.5 * lg
    return 1.41421356 * sgn * math.sqrt(-a + math.sqrt(a * a - lg / 0.147))


@njit(cache=True, error_model="numpy")
def post_transform(s, code):
    """In place, per row of s (rows, classes)."""
    for r in range(s.shape[0]):
        row = s[r]
        if code == 1:
            row -= row.max()
            for j in range(row.shape[0]):
                row[j] = math.exp(row[j])
            row /= row.sum()
        elif code == 2:
            for j in range(row.shape[0]):
                row[j] = _logistic(row[j])
        elif code == 3:
            vmax = row.max()
            total = 0.0
            for j in range(row.shape[0]):
                v = row[j]
                row[j] = math.exp(v - vmax) if (v > 1e-7 or v < -1e-7) else v * math.exp(-vmax)
                total += row[j]
            if total == 0:
                row[:] = 0.5
            else:
                row /= total
        elif code == 4:
            for j in range(row.shape[0]):
                row[j] = _probit(row[j])


@njit(cache=True, error_model="numpy")
def two_columns(score, out, complement):
    """Binary case: out[:, 1] = score, out[:, 0] = 1 - score or -score (score may alias out[:, 0])."""
    for r in range(out.shape[0]):
        v = score[r]
        out[r, 1] = v
        out[r, 0] = 1.0 - v if complement else -v


@njit(cache=True, error_model="numpy")
def pick_labels(s, labels, threshold, out):
    """labels[argmax] per row (first maximum); one column: labels[0] if s >= threshold else 0."""
    for r in range(s.shape[0]):
        if s.shape[1] == 1:
            out[r] = labels[0] if s[r, 0] >= threshold else 0
        else:
            out[r] = labels[np.argmax(s[r])]


# linear models and SVMs -------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def linear(x, coef, intercept, out):
    """out = x @ coef.T + intercept, in float64."""
    for r in range(x.shape[0]):
        for c in range(coef.shape[0]):
            acc = intercept[c]
            for j in range(x.shape[1]):
                acc += float(x[r, j]) * coef[c, j]
            out[r, c] = acc


@njit(cache=True, error_model="numpy")
def _svm_kernel(a, b, kernel, gamma, coef0, degree):
    if kernel == 2:
        acc = 0.0
        for j in range(a.shape[0]):
            d = float(a[j]) - b[j]
            acc += d * d
        return math.exp(-gamma * acc)
    acc = 0.0
    for j in range(a.shape[0]):
        acc += float(a[j]) * b[j]
    if kernel == 1:
        return (gamma * acc + coef0) ** degree
    if kernel == 3:
        return math.tanh(gamma * acc + coef0)
    return acc


@njit(cache=True, error_model="numpy")
def svm_regressor(x, sv, coef, rho, kernel, gamma, coef0, degree, one_class, out):
    """out[r] = sum_j coef[j] * K(x[r], sv[j]) + rho (or its sign, one-class)."""
    for r in range(x.shape[0]):
        s = rho
        for j in range(sv.shape[0]):
            s += coef[j] * _svm_kernel(x[r], sv[j], kernel, gamma, coef0, degree)
        out[r] = (1.0 if s > 0 else -1.0) if one_class else s


@njit(cache=True, error_model="numpy")
def svm_classifier(x, sv, coef, rho, start, count, kernel, gamma, coef0, degree, votes, scores):
    """One-vs-one libsvm decision values (scores) and votes per class."""
    nc = start.shape[0]
    k = np.empty(sv.shape[0])
    for r in range(x.shape[0]):
        for j in range(sv.shape[0]):
            k[j] = _svm_kernel(x[r], sv[j], kernel, gamma, coef0, degree)
        votes[r, :] = 0
        e = 0
        for i in range(nc):
            for j in range(i + 1, nc):
                s = rho[e]
                for v in range(start[i], start[i] + count[i]):
                    s += coef[j - 1, v] * k[v]
                for v in range(start[j], start[j] + count[j]):
                    s += coef[i, v] * k[v]
                scores[r, e] = s
                if s > 0:
                    votes[r, i] += 1
                else:
                    votes[r, j] += 1
                e += 1


@njit(cache=True, error_model="numpy")
def _coupling(k, R, P):
    """libsvm's multiclass probability from pairwise ones (Wu, Lin and Weng)."""
    Q = np.empty((k, k))
    Qp = np.empty(k)
    for t in range(k):
        P[t] = 1.0 / k
        Q[t, t] = 0.0
        for j in range(t):
            Q[t, t] += R[j, t] * R[j, t]
            Q[t, j] = Q[j, t]
        for j in range(t + 1, k):
            Q[t, t] += R[j, t] * R[j, t]
            Q[t, j] = -R[j, t] * R[t, j]
    eps = 0.005 / k
    for _ in range(max(100, k)):
        pQp = 0.0
        for t in range(k):
            Qp[t] = 0.0
            for j in range(k):
                Qp[t] += Q[t, j] * P[j]
            pQp += P[t] * Qp[t]
        err = 0.0
        for t in range(k):
            err = max(err, abs(Qp[t] - pQp))
        if err < eps:
            break
        for t in range(k):
            diff = (-Qp[t] + pQp) / Q[t, t]
            P[t] += diff
            pQp = (pQp + diff * (diff * Q[t, t] + 2 * Qp[t])) / ((1 + diff) * (1 + diff))
            for j in range(k):
                P[j] /= 1 + diff
                Qp[j] = (Qp[j] + diff * Q[t, j]) / (1 + diff)


@njit(cache=True, error_model="numpy")
def svm_probabilities(scores, prob_a, prob_b, out):
    """Platt-scaled pairwise probabilities coupled into per-class ones."""
    k = out.shape[1]
    R = np.zeros((k, k))
    for r in range(scores.shape[0]):
        e = 0
        for i in range(k):
            for j in range(i + 1, k):
                p = 1.0 - _logistic(scores[r, e] * prob_a[e] + prob_b[e])
                p = min(max(p, 1e-7), 1 - 1e-7)
                R[i, j] = p
                R[j, i] = 1 - p
                e += 1
        _coupling(k, R, out[r])


# feature transforms -------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def scaler(x, offset, scale, out):
    """out = (x - offset) * scale; offset and scale have one value or one per column."""
    no, ns = offset.shape[0], scale.shape[0]
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[r, j] = (float(x[r, j]) - offset[j if no > 1 else 0]) * scale[j if ns > 1 else 0]


@njit(cache=True, error_model="numpy")
def normalizer(x, norm, out):
    """Each row divided by its max-abs, L1 or L2 norm (at least 1e-30)."""
    for r in range(x.shape[0]):
        d = 0.0
        for j in range(x.shape[1]):
            v = abs(float(x[r, j]))
            if norm == 0:
                d = max(d, v)
            elif norm == 1:
                d += v
            else:
                d += v * v
        if norm == 2:
            d = math.sqrt(d)
        d = max(d, 1e-30)
        for j in range(x.shape[1]):
            out[r, j] = float(x[r, j]) / d


@njit(cache=True, error_model="numpy")
def binarizer(x, threshold, out):
    for i in range(x.shape[0]):
        out[i] = 1 if x[i] > threshold else 0


@njit(cache=True, error_model="numpy")
def imputer(x, values, replaced, out):
    """Entries equal to `replaced` (or NaN when it is NaN) become values[column]."""
    nv = values.shape[0]
    nan = replaced != replaced
    for r in range(x.shape[0]):
        for j in range(x.shape[1]):
            v = x[r, j]
            hit = (v != v) if nan else (v == replaced)
            out[r, j] = values[j if nv > 1 else 0] if hit else v


@njit(cache=True, error_model="numpy")
def one_hot(x, sorted_cats, positions, zeros, out):
    """out[i, positions[k]] = 1 where x[i] == sorted_cats[k] (binary search)."""
    out[:] = 0
    n = sorted_cats.shape[0]
    for i in range(x.shape[0]):
        v = x[i]
        k = np.searchsorted(sorted_cats, v)
        if k < n and sorted_cats[k] == v:
            out[i, positions[k]] = 1
        elif not zeros:
            raise ValueError("OneHotEncoder: a value is not one of the categories")


@njit(cache=True, error_model="numpy")
def label_encode(x, keys, values, fallback, out):
    """out[i] = values[k] where keys[k] == x[i] (keys sorted), else fallback[0];
    NaN gets fallback[1] (the value of a NaN key, or the default)."""
    n = keys.shape[0]
    for i in range(x.shape[0]):
        v = x[i]
        if v != v:
            out[i] = fallback[1]
            continue
        k = np.searchsorted(keys, v)
        out[i] = values[k] if k < n and keys[k] == v else fallback[0]


@njit(cache=True, error_model="numpy")
def take_columns(x, index, out):
    """out[r, k] = x[r, index[k]] (ArrayFeatureExtractor)."""
    c = x.shape[1]
    for k in range(index.shape[0]):
        if not -c <= index[k] < c:
            raise IndexError("ArrayFeatureExtractor: index out of range")
    for r in range(x.shape[0]):
        for k in range(index.shape[0]):
            j = index[k]
            out[r, k] = x[r, j + c if j < 0 else j]


@njit(cache=True, error_model="numpy")
def place_columns(x, out, first, width):
    """out[:, first:first + width] = x cut or zero-padded to `width` columns."""
    for r in range(out.shape[0]):
        for j in range(width):
            out[r, first + j] = x[r, j] if j < x.shape[1] else 0
