"""The DTW searches, with dtw-python: the global search on a level's full matrix (coarse_dtw) and
the banded search, block by block of rows, inside a band around a coarser path (banded_dtw).

Steps: symmetric2 with the horizontal and vertical steps weighted against the diagonal, and
optionally a limit on how fast the score may advance (step_pattern). A skip row before and after
the score opens both ends: the path may pay ``skip`` per audio frame left out (silence or other
music at either end of the recording)."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from ..errors import AlignmentError
from .cost import CostModel

_PATTERNS = {}


def step_pattern(hv_weight: float, max_squeeze: int = 0):
    """symmetric2 with the horizontal and vertical steps weighted ``hv_weight`` (diagonal 2):
    above 1 the path prefers to advance on both axes at once where the costs are flat.

    max_squeeze >= 2: no lone vertical (score-only) step; instead the score may advance
    2 .. max_squeeze rows in one audio column (a diagonal step then vertical ones): a passage
    can be played at most ``max_squeeze`` times faster than the score's (average) tempo, while
    horizontal steps (a note held longer: fermatas, ritardandi) stay free."""
    from dtw.stepPattern import StepPattern

    key = (round(float(hv_weight), 4), int(max_squeeze) if max_squeeze >= 2 else 0)
    if key not in _PATTERNS:
        hv, m = key
        rows = [[1, 1, 1, -1], [1, 0, 0, 2.0], [2, 0, 1, -1], [2, 0, 0, hv]]
        if m == 0:
            rows += [[3, 1, 0, -1], [3, 0, 0, hv]]
        else:
            for q, d in enumerate(range(2, m + 1), start=3):
                rows += [[q, d, 1, -1], [q, d - 1, 0, 2.0]] + [[q, k, 0, hv] for k in range(d - 2, -1, -1)]
        _PATTERNS[key] = StepPattern(np.array(rows, dtype=float), "N+M")
    return _PATTERNS[key]


def _run_dtw(C: np.ndarray, mask: Optional[np.ndarray] = None, hv_weight: float = 1.0, max_squeeze: int = 0):
    """dtw-python on a cost matrix (optionally windowed by a boolean mask), symmetric2 with
    weighted horizontal/vertical steps (see step_pattern); returns the path as (rows, cols)
    int arrays. A squeeze-limited search that finds no path falls back to the free one."""
    if max_squeeze >= 2:
        try:
            return _dtw_call(C, mask, step_pattern(hv_weight, max_squeeze))
        except ValueError:
            pass
    try:
        return _dtw_call(C, mask, step_pattern(hv_weight))
    except ValueError as e:
        raise AlignmentError(f"DTW found no path ({e}); is the MIDI much longer than the recording?") from e


def _dtw_call(C, mask, pattern):
    import dtw as dtwlib

    kw = {"step_pattern": pattern}
    if mask is not None:
        kw.update(window_type=lambda iw, jw, query_size, reference_size, m: m, window_args={"m": mask})
    res = dtwlib.dtw(C, **kw)
    return np.asarray(res.index1), np.asarray(res.index2), float(res.normalizedDistance)


def _with_skip_rows(C: np.ndarray, skip: float) -> np.ndarray:
    """C with a row of ``skip`` cost before and after: the path may enter the score late and
    leave it early (open begin and end), paying ``skip`` per audio frame left out."""
    row = np.full((1, C.shape[1]), skip)
    return np.vstack([row, C, row])


def coarse_dtw(model: CostModel, skip: float, hv_weight: float = 1.0,
               max_squeeze: int = 0) -> Tuple[np.ndarray, np.ndarray, float]:
    """The global DTW on the full matrix of a level: path (rows, cols) with the skip rows
    removed, and the path's cost per unit of step weight (dtw-python's normalized distance)."""
    C = model.block(0, model.n_rows, 0, model.n_cols)
    model.last_full = C
    r, c, nd = _run_dtw(_with_skip_rows(C, skip), hv_weight=hv_weight, max_squeeze=max_squeeze)
    keep = (r >= 1) & (r <= model.n_rows)
    return r[keep] - 1, c[keep], nd


def band_from_path(rows: np.ndarray, cols: np.ndarray, ratio_r: float, ratio_c: float, n_rows: int,
                   n_cols: int, radius: int) -> Tuple[np.ndarray, np.ndarray]:
    """The band ``[lo[i], hi[i])`` of columns for each row of a finer level, around a coarser
    level's path: row i (fine) lies in coarse row floor(i / ratio_r); coarse column c covers fine
    columns [c * ratio_c, (c + 1) * ratio_c); widened by ``radius`` columns each side."""
    n_coarse = int(rows.max()) + 1
    cmin = np.full(n_coarse, np.iinfo(np.int64).max)
    cmax = np.full(n_coarse, -1)
    np.minimum.at(cmin, rows, cols)
    np.maximum.at(cmax, rows, cols)
    # rows the path skipped (cannot happen with symmetric2, but be safe): carry neighbours
    for k in range(1, n_coarse):
        if cmax[k] < 0:
            cmin[k], cmax[k] = cmax[k - 1], cmax[k - 1]
    ci = np.minimum((np.arange(n_rows) / ratio_r).astype(int), n_coarse - 1)
    lo = np.floor(cmin[ci] * ratio_c).astype(np.int64) - radius
    hi = np.ceil((cmax[ci] + 1) * ratio_c).astype(np.int64) + radius
    return _monotone_band(lo, hi, n_cols)


def _monotone_band(lo: np.ndarray, hi: np.ndarray, n_cols: int) -> Tuple[np.ndarray, np.ndarray]:
    """Clip per-row column bounds ``[lo, hi)`` to the matrix, make both non-decreasing and each
    row non-empty, and keep the band connected: row i + 1 starts no later than row i ends."""
    lo = np.clip(lo, 0, n_cols - 1)
    hi = np.clip(hi, 1, n_cols)
    lo = np.maximum.accumulate(lo)
    hi = np.maximum(np.maximum.accumulate(hi), lo + 1)
    lo[1:] = np.minimum(lo[1:], hi[:-1])
    return lo, hi


def banded_dtw(model: CostModel, lo: np.ndarray, hi: np.ndarray, skip: float, block_rows: int,
               overlap_rows: int, open_begin: bool = True, open_end: bool = True, hv_weight: float = 1.0,
               max_squeeze: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """DTW restricted to the band, block by block of rows: each block's matrix covers its rows
    and the columns their band spans, nothing more. A block starts where the previous block's
    path entered its first row and looks ``overlap_rows`` rows further than it keeps."""
    n = model.n_rows
    out_r: List[np.ndarray] = []
    out_c: List[np.ndarray] = []
    r0, c_start = 0, None
    while r0 < n:
        r1 = min(n, r0 + block_rows + overlap_rows)
        last = r1 == n
        c0 = int(lo[r0]) if c_start is None else int(c_start)
        r, c = _block_path(model, lo, hi, (r0, r1), c0, skip, top=c_start is None and open_begin,
                           open_bottom=not last or open_end, hv_weight=hv_weight, max_squeeze=max_squeeze)
        if last:
            out_r.append(r)
            out_c.append(c)
            break
        stop = r0 + block_rows
        k = r < stop
        out_r.append(r[k])
        out_c.append(c[k])
        c_start = int(c[np.argmax(r >= stop)])
        r0 = stop
    return np.concatenate(out_r), np.concatenate(out_c)


def _block_path(model: CostModel, lo: np.ndarray, hi: np.ndarray, block_rows: Tuple[int, int], c0: int,
                skip: float, top: bool, open_bottom: bool, hv_weight: float,
                max_squeeze: int) -> Tuple[np.ndarray, np.ndarray]:
    """banded_dtw's search in one block: rows ``[r0, r1)``, columns from ``c0`` to the end of the
    last row's band, masked to the band; a skip row above (``top``: the path may enter anywhere in
    the first row's band) and below (``open_bottom``: it may stop anywhere in the last row's band).
    Returns the path (rows, cols) in the level's frames, skip rows removed."""
    r0, r1 = block_rows
    c1 = int(hi[r1 - 1])
    C = model.block(r0, r1, c0, c1)
    cols = np.arange(c0, c1)
    mask = (cols[None, :] >= lo[r0:r1, None]) & (cols[None, :] < hi[r0:r1, None])
    if top or open_bottom:
        skip_row = np.full((1, C.shape[1]), skip)
        parts, mparts = [C], [mask]
        if top:
            parts.insert(0, skip_row)
            mparts.insert(0, cols[None, :] < hi[r0])
        if open_bottom:
            parts.append(skip_row)
            mparts.append(cols[None, :] >= lo[r1 - 1])
        C = np.vstack(parts)
        mask = np.vstack(mparts)
    r, c, _ = _run_dtw(C, mask, hv_weight, max_squeeze)
    if top:
        r = r - 1
    keep = (r >= 0) & (r < r1 - r0)
    return r[keep] + r0, c[keep] + c0


def band_around(times: np.ndarray, radius: float, model: CostModel) -> Tuple[np.ndarray, np.ndarray]:
    """Columns ``[lo, hi)`` per row within ``radius`` s of the audio times ``times`` ``(n_rows,)``
    (one per row), monotone and connected."""
    lo = np.floor((times - radius) / model.a_period).astype(np.int64)
    hi = np.ceil((times + radius) / model.a_period).astype(np.int64) + 1
    return _monotone_band(lo, hi, model.n_cols)
