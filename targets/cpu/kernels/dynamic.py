"""Kernels for ops with data-dependent output shapes: each writes into a
buffer of the largest possible size and returns how much it filled."""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def nonzero(x, shape, out):
    """out[:, :n] = the indices (rows: dims) of x's nonzero elements, in C order."""
    n = 0
    rank = shape.shape[0]
    for i in range(x.shape[0]):
        if x[i] != 0:
            r = i
            for d in range(rank - 1, -1, -1):
                out[d, n] = r % shape[d]
                r //= shape[d]
            n += 1
    return n


@njit(cache=True, error_model="numpy")
def compress(x, cond, out):
    """out[:, :k, :] = the slices x[:, j, :] where cond[j] (x: (outer, n, inner))."""
    k = 0
    for j in range(min(x.shape[1], cond.shape[0])):
        if cond[j]:
            out[:, k, :] = x[:, j, :]
            k += 1
    return k


@njit(cache=True, error_model="numpy")
def _compare(x, i, j):
    """-1, 0, 1: slice x[:, i, :] against x[:, j, :], lexicographically in C order."""
    for o in range(x.shape[0]):
        for t in range(x.shape[2]):
            a = x[o, i, t]
            b = x[o, j, t]
            if a < b:
                return -1
            if a > b:
                return 1
    return 0


@njit(cache=True, error_model="numpy")
def unique(x, sort, y, first, inverse, counts):
    """The distinct slices x[:, j, :] (x: (outer, n, inner)) into y[:, :k, :], in
    order of first occurrence or sorted; first index, inverse map and counts."""
    n = x.shape[1]
    reps = np.empty(n, np.int64)
    seen = np.zeros(n, np.int64)
    k = 0
    for j in range(n):
        found = -1
        for u in range(k):
            if _compare(x, reps[u], j) == 0:
                found = u
                break
        if found < 0:
            reps[k] = j
            found = k
            k += 1
        seen[found] += 1
        inverse[j] = found
    order = np.arange(k)
    if sort:
        for p in range(1, k):       # insertion sort: stable, k is small in practice
            u = order[p]
            q = p - 1
            while q >= 0 and _compare(x, reps[order[q]], reps[u]) > 0:
                order[q + 1] = order[q]
                q -= 1
            order[q + 1] = u
    rank = np.empty(k, np.int64)
    for p in range(k):
        u = order[p]
        rank[u] = p
        y[:, p, :] = x[:, reps[u], :]
        first[p] = reps[u]
        counts[p] = seen[u]
    for j in range(n):
        inverse[j] = rank[inverse[j]]
    return k


@njit(cache=True, error_model="numpy")
def _corners(b, center):
    """(y_min, x_min, y_max, x_max) of a box given as corners (either order) or centre + size."""
    if center:
        return b[1] - b[3] / 2, b[0] - b[2] / 2, b[1] + b[3] / 2, b[0] + b[2] / 2
    return min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])


@njit(cache=True, error_model="numpy")
def _suppresses(a, b, center, iou_threshold):
    ay0, ax0, ay1, ax1 = _corners(a, center)
    by0, bx0, by1, bx1 = _corners(b, center)
    iw = min(ax1, bx1) - max(ax0, bx0)
    ih = min(ay1, by1) - max(ay0, by0)
    if iw <= 0 or ih <= 0:
        return False
    inter = iw * ih
    area_a = (ax1 - ax0) * (ay1 - ay0)
    area_b = (bx1 - bx0) * (by1 - by0)
    union = area_a + area_b - inter
    if area_a <= 0 or area_b <= 0 or union <= 0:
        return False
    return inter / union > iou_threshold


@njit(cache=True, error_model="numpy")
def nms(boxes, scores, max_per_class, iou_threshold, score_threshold, use_score, center, out):
    """Greedy non-max suppression per (batch, class): rows (batch, class, box) into out[:n]."""
    n = 0
    nb = boxes.shape[1]
    taken = np.empty(nb, np.int64)
    done = np.empty(nb, np.bool_)
    for b in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            s = scores[b, c]
            for i in range(nb):
                done[i] = use_score and not s[i] > score_threshold
            kept = 0
            while kept < max_per_class:
                best = -1
                for i in range(nb):        # highest score, then lowest index
                    if not done[i] and (best < 0 or s[i] > s[best]):
                        best = i
                if best < 0:
                    break
                done[best] = True
                ok = True
                for t in range(kept):
                    if _suppresses(boxes[b, best], boxes[b, taken[t]], center, iou_threshold):
                        ok = False
                        break
                if ok:
                    taken[kept] = best
                    kept += 1
                    out[n, 0] = b
                    out[n, 1] = c
                    out[n, 2] = best
                    n += 1
    return n
