"""The result of an alignment: the score -> audio time map (TimeMap), the Alignment that holds it,
and the conversion of a DTW path into a TimeMap (path_to_timemap)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np

from ..errors import AlignmentError


@dataclass
class TimeMap:
    """A monotonic map from score time to audio time (seconds), piecewise linear between
    anchor points; beyond the anchors it continues with the average tempo ratio."""

    score_times: np.ndarray
    audio_times: np.ndarray

    def __post_init__(self):
        s = np.asarray(self.score_times, dtype=np.float64)
        a = np.asarray(self.audio_times, dtype=np.float64)
        if s.ndim != 1 or s.shape != a.shape or len(s) < 2:
            raise AlignmentError("a time map needs at least two matching anchor points")
        if not (np.all(np.isfinite(s)) and np.all(np.isfinite(a))):
            raise AlignmentError("the time map holds non-finite times")
        if np.any(np.diff(s) <= 0):
            raise AlignmentError("the alignment path goes backwards in score time (not monotonic); "
                                 "check that the MIDI belongs to this recording")
        if np.any(np.diff(a) < 0):
            raise AlignmentError("the alignment path goes backwards in audio time (not monotonic); "
                                 "check that the MIDI belongs to this recording")
        self.score_times, self.audio_times = s, a

    @classmethod
    def identity(cls, end: float = 1.0) -> "TimeMap":
        return cls(np.array([0.0, max(end, 1.0)]), np.array([0.0, max(end, 1.0)]))

    @property
    def slope(self) -> float:
        ds = self.score_times[-1] - self.score_times[0]
        return float((self.audio_times[-1] - self.audio_times[0]) / ds) if ds > 0 else 1.0

    def __call__(self, t):
        t = np.asarray(t, dtype=np.float64)
        s, a = self.score_times, self.audio_times
        out = np.interp(t, s, a)
        k = self.slope
        out = np.where(t < s[0], a[0] + (t - s[0]) * k, out)
        out = np.where(t > s[-1], a[-1] + (t - s[-1]) * k, out)
        return out

    def inverse(self) -> "TimeMap":
        a, idx = np.unique(self.audio_times, return_index=True)
        return TimeMap(a, self.score_times[idx])

    def to_dict(self):
        return {"score_times": self.score_times.round(4).tolist(), "audio_times": self.audio_times.round(4).tolist()}


@dataclass
class Alignment:
    """The result of aligning a score to a recording.

    time_map: score seconds -> audio seconds.
    confidence: 0 (no evidence the score matches the recording) .. 1 (a clear match).
    path: ``(n, 2)`` the finest level's path as (score time, audio time) in seconds.
    frame_rate: audio frames per second of the finest level.
    cost: the global (coarsest) level's cost matrix ``(n_score_frames, n_audio_frames)`` when
        kept (for plots), with ``cost_extent`` = (score_t0, score_t1, audio_t0, audio_t1) seconds
        and ``coarse_path`` ``(m, 2)`` its path in seconds; else None.
    info: figures for reports (levels, rates, band sizes, the largest block built, ...).
    """

    time_map: TimeMap
    confidence: float
    path: np.ndarray
    frame_rate: float
    cost: Optional[np.ndarray] = None
    cost_extent: Optional[Tuple[float, float, float, float]] = None
    coarse_path: Optional[np.ndarray] = None
    info: dict = field(default_factory=dict)


def path_to_timemap(rows: np.ndarray, cols: np.ndarray, s0: float, s_period: float, a_period: float,
                    shift: float = 0.0) -> TimeMap:
    """A DTW path (score rows, audio columns) -> TimeMap. Score frame i spans
    [s0 + i * s_period, s0 + (i + 1) * s_period); its start maps to the start of the first audio
    frame the path pairs it with (audio frame j spans (j -+ 0.5) * a_period), the last frame's end
    to the end of the last audio frame."""
    uq, first = np.unique(rows, return_index=True)
    entry = cols[first]
    s = s0 + uq * s_period
    a = (entry - 0.5) * a_period
    s = np.append(s, s0 + (uq[-1] + 1) * s_period)
    a = np.append(a, (cols[-1] + 0.5) * a_period)
    a = np.maximum.accumulate(np.maximum(a, 0.0)) + shift
    return TimeMap(s, a)
