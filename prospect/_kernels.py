"""Numba kernels (private): inverse distance weighting for :mod:`prospect.interpolate` and
nearest-segment distances for :mod:`prospect.layers`.

IDW precision: distances are formed in float32 from coordinates made local to a
block of 64 pixels, so that a sample near a pixel has a small, nearly exact
offset (raw UTM coordinates in float32 would be off by millimetres); weights are
summed in float32 over runs of 256 samples and the runs in float64. The result
agrees with a float64 evaluation to a few parts in a million.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

BLOCK = 64   # pixels of a row that share one local origin
RUN = 256    # samples summed in float32 before adding to the float64 totals


@njit(parallel=True, fastmath=True, cache=True)
def idw_all(px, py, sx, sy, z, power, use_radius, r2, min_points, out):  # pragma: no cover - compiled
    """All-points IDW over the grid rows ``py`` and columns ``px`` (float64, shifted).

    ``z`` (n, E) float32 values, ``r2`` squared search radius (used when
    ``use_radius``), ``out`` (E, rows, cols) float32 receives the result; pixels
    with fewer than ``min_points`` samples inside the radius become NaN. The
    squared distance is kept above 1e-20 (fastmath assumes no infinities), so a
    pixel that coincides with a sample is dominated by it; the caller then sets
    such pixels to the sample's exact value.
    """
    rows = py.shape[0]
    cols = px.shape[0]
    n = sx.shape[0]
    n_el = z.shape[1]
    blocks = (cols + BLOCK - 1) // BLOCK
    tiny = np.float32(1e-20)
    exponent = np.float32(-0.5 * power)
    r2_32 = np.float32(r2)
    for task in prange(rows * blocks):
        r = task // blocks
        j0 = (task % blocks) * BLOCK
        m = min(cols, j0 + BLOCK) - j0
        x0 = 0.5 * (px[j0] + px[j0 + m - 1])
        local = np.empty(m, np.float32)
        for j in range(m):
            local[j] = np.float32(px[j0 + j] - x0)
        total = np.zeros((n_el, m), np.float64)
        weight_total = np.zeros(m, np.float64)
        run = np.zeros((n_el, m), np.float32)
        weight_run = np.zeros(m, np.float32)
        count = np.zeros(m, np.int32)
        d2 = np.empty(m, np.float32)
        w = np.empty(m, np.float32)
        for i in range(n):
            dy = np.float32(py[r] - sy[i])
            dy2 = dy * dy
            xi = np.float32(sx[i] - x0)
            # Every loop below is branch-free over the pixels, so it vectorises; the choices are made outside.
            for j in range(m):
                dx = local[j] - xi
                d2[j] = max(dx * dx + dy2, tiny)
            if power == 2.0:
                for j in range(m):
                    w[j] = np.float32(1.0) / d2[j]
            elif power == 1.0:
                for j in range(m):
                    w[j] = np.float32(1.0) / np.sqrt(d2[j])
            else:
                for j in range(m):
                    w[j] = d2[j] ** exponent
            if use_radius:
                for j in range(m):
                    inside = d2[j] <= r2_32
                    count[j] += inside
                    w[j] = w[j] if inside else np.float32(0.0)
            for j in range(m):
                weight_run[j] += w[j]
            for e in range(n_el):
                value = z[i, e]
                for j in range(m):
                    run[e, j] += w[j] * value
            if (i + 1) % RUN == 0 or i == n - 1:
                for j in range(m):
                    weight_total[j] += weight_run[j]
                    weight_run[j] = 0.0
                for e in range(n_el):
                    for j in range(m):
                        total[e, j] += run[e, j]
                        run[e, j] = 0.0
        for j in range(m):
            ok = (not use_radius) or count[j] >= min_points
            for e in range(n_el):
                out[e, r, j0 + j] = total[e, j] / weight_total[j] if ok else np.nan


@njit(parallel=True, cache=True)  # no fastmath: missing neighbours are marked with inf
def idw_neighbours(distance, index, z, power, min_points, out):  # pragma: no cover - compiled
    """Weight the k nearest samples of each pixel.

    ``distance`` (P, k) float64 with ``inf`` for missing neighbours, ``index``
    (P, k) int64, ``z`` (n, E) float64, ``out`` (E, P) float32. A zero distance
    takes that sample's value; fewer than ``min_points`` neighbours give NaN.
    """
    pixels, k = distance.shape
    n_el = z.shape[1]
    for p in prange(pixels):
        found = 0
        exact = -1
        for q in range(k):
            if distance[p, q] < np.inf:
                found += 1
                if distance[p, q] == 0.0 and exact < 0:
                    exact = index[p, q]
        if found < min_points or found == 0:
            for e in range(n_el):
                out[e, p] = np.nan
            continue
        if exact >= 0:
            for e in range(n_el):
                out[e, p] = z[exact, e]
            continue
        weight_total = 0.0
        sums = np.zeros(n_el)
        for q in range(found):
            w = distance[p, q] ** -power
            weight_total += w
            for e in range(n_el):
                sums[e] += w * z[index[p, q], e]
        for e in range(n_el):
            out[e, p] = sums[e] / weight_total


@njit(inline="always")
def _to_segment(qx, qy, sx, sy, dx, dy, length2):
    px = qx - sx
    py = qy - sy
    t = min(1.0, max(0.0, (px * dx + py * dy) / length2))
    ex = px - t * dx
    ey = py - t * dy
    return np.sqrt(ex * ex + ey * ey)


@njit(parallel=True, cache=True)
def nearest_segment(query, start, direction, length2, index, kth_midpoint, reach, best):  # pragma: no cover
    """Exact distance from each query point to the nearest segment, improving ``best`` in place.

    ``index`` (P, k) are candidate segments (those with the nearest midpoints) and
    ``kth_midpoint`` the distance of the k-th; any other segment is at least
    ``kth_midpoint - reach`` away, so when that does not exceed the best
    candidate every segment is checked.
    """
    n_pieces = start.shape[0]
    for p in prange(query.shape[0]):
        qx, qy = query[p, 0], query[p, 1]
        value = best[p]
        for c in range(index.shape[1]):
            s = index[p, c]
            value = min(value, _to_segment(qx, qy, start[s, 0], start[s, 1], direction[s, 0], direction[s, 1],
                                           length2[s]))
        if kth_midpoint[p] - reach < value:
            for s in range(n_pieces):
                value = min(value, _to_segment(qx, qy, start[s, 0], start[s, 1], direction[s, 0],
                                               direction[s, 1], length2[s]))
        best[p] = value


@njit(inline="always")
def _insert(best_d2, best_index, found, k, d2, index):
    """Insert (d2, index) into the ascending top-k lists holding ``found`` entries."""
    position = found if found < k else k - 1
    while position > 0 and best_d2[position - 1] > d2:
        if position < k:
            best_d2[position] = best_d2[position - 1]
            best_index[position] = best_index[position - 1]
        position -= 1
    best_d2[position] = d2
    best_index[position] = index
    return min(found + 1, k)


@njit(parallel=True, cache=True)
def idw_nearest(px, py, x0, y0, cell, nbx, nby, start, order, sx, sy, z, k, use_radius, r2, power, min_points,
                out):  # pragma: no cover - compiled
    """IDW over the ``k`` nearest samples of each pixel, found in a bucket grid.

    Samples are sorted into square buckets of side ``cell`` (``start`` holds the
    CSR offsets of bucket ``by * nbx + bx`` into ``order``). Each pixel searches
    rings of buckets outward and stops once its k-th nearest distance is within
    the distance to the unsearched rings — the search is exact, like a KD-tree,
    but every pixel's weights are applied at once, with no neighbour arrays.
    Distances are float64. ``out`` (E, rows, cols) float32.
    """
    rows = py.shape[0]
    cols = px.shape[0]
    n_el = z.shape[1]
    for r in prange(rows):
        best_d2 = np.empty(k)
        best_index = np.empty(k, np.int64)
        sums = np.empty(n_el)
        qy = py[r]
        by = min(max(int(np.floor((qy - y0) / cell)), 0), nby - 1)
        for c in range(cols):
            qx = px[c]
            bx = min(max(int(np.floor((qx - x0) / cell)), 0), nbx - 1)
            found = 0
            ring = 0
            while True:
                for iy in range(by - ring, by + ring + 1):
                    if iy < 0 or iy >= nby:
                        continue
                    step = 1 if (iy == by - ring or iy == by + ring) else 2 * ring
                    ix = bx - ring
                    while ix <= bx + ring:
                        if 0 <= ix < nbx:
                            bucket = iy * nbx + ix
                            for slot in range(start[bucket], start[bucket + 1]):
                                p = order[slot]
                                dx = sx[p] - qx
                                dy = sy[p] - qy
                                d2 = dx * dx + dy * dy
                                if use_radius and d2 > r2:
                                    continue
                                if found < k or d2 < best_d2[k - 1]:
                                    found = _insert(best_d2, best_index, found, k, d2, p)
                        ix += step if step > 0 else 1
                # Anything not yet searched lies outside this block of buckets.
                margin = min(qx - (x0 + (bx - ring) * cell), x0 + (bx + ring + 1) * cell - qx,
                             qy - (y0 + (by - ring) * cell), y0 + (by + ring + 1) * cell - qy)
                everything = bx - ring <= 0 and by - ring <= 0 and bx + ring >= nbx - 1 and by + ring >= nby - 1
                if everything or (found == k and best_d2[k - 1] <= margin * margin) or \
                        (use_radius and r2 <= margin * margin):
                    break
                ring += 1
            if found < min_points or found == 0:
                for e in range(n_el):
                    out[e, r, c] = np.nan
            elif best_d2[0] == 0.0:
                for e in range(n_el):
                    out[e, r, c] = z[best_index[0], e]
            else:
                total = 0.0
                for e in range(n_el):
                    sums[e] = 0.0
                for q in range(found):
                    w = best_d2[q] ** (-0.5 * power)
                    total += w
                    for e in range(n_el):
                        sums[e] += w * z[best_index[q], e]
                for e in range(n_el):
                    out[e, r, c] = sums[e] / total
