"""Score-to-audio alignment: features -> DTW (dtw-python) -> a validated monotonic time map.

The score is rendered with fluidsynth, both signals become chroma + onset features, and
dtw-python finds the cheapest monotonic path. The result maps score seconds to audio seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .errors import AlignmentError


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
    confidence: 0 (no evidence the score matches) .. 1 (a clear match).
    path: ``(n, 2)`` frame indices (score, audio) at ``frame_rate`` frames per second.
    cost: the local cost matrix ``(n_score_frames, n_audio_frames)`` when kept (for plots), else None.
    """

    time_map: TimeMap
    confidence: float
    path: np.ndarray
    frame_rate: float
    cost: Optional[np.ndarray] = None
    info: dict = field(default_factory=dict)


def chroma_onset_features(y: np.ndarray, sr: int, hop: int, tuning_cents: float = 0.0) -> np.ndarray:
    """Features ``(24, n_frames)``: 12 log-compressed, normalised chroma and 12 chroma-wise
    onset strengths (half-wave rectified chroma flux), each frame unit-norm per half."""
    import librosa

    n_fft = 4 * hop if hop <= 1024 else 2 * hop
    S = np.abs(librosa.stft(y.astype(np.float32), n_fft=n_fft, hop_length=hop, center=True)) ** 2
    C = librosa.feature.chroma_stft(S=S, sr=sr, tuning=tuning_cents / 100.0, norm=None, n_chroma=12)
    C = np.log1p(100.0 * C / (np.max(C) + 1e-12))
    flux = np.maximum(np.diff(C, axis=1, prepend=C[:, :1]), 0.0)
    def unit(X):
        return X / (np.linalg.norm(X, axis=0, keepdims=True) + 1e-6)
    return np.concatenate([unit(C), 0.5 * unit(flux)], axis=0).astype(np.float32)


def cosine_cost(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``(n_a, n_b)`` cost 1 - cosine similarity between the columns of A and B."""
    An = A / (np.linalg.norm(A, axis=0, keepdims=True) + 1e-9)
    Bn = B / (np.linalg.norm(B, axis=0, keepdims=True) + 1e-9)
    return (1.0 - An.T @ Bn).astype(np.float64)


def path_to_timemap(path: np.ndarray, frame_rate: float, score_offset: float = 0.0) -> TimeMap:
    """A DTW path ``(n, 2)`` (score frame, audio frame) -> strictly monotonic TimeMap.

    Runs of the same score frame are averaged; the audio times are then made non-decreasing.
    """
    q, r = path[:, 0], path[:, 1]
    uq, start = np.unique(q, return_index=True)
    sums = np.add.reduceat(r.astype(np.float64), start)
    counts = np.diff(np.append(start, len(r)))
    ra = sums / counts
    ra = np.maximum.accumulate(ra)
    return TimeMap(uq / frame_rate + score_offset, ra / frame_rate)


def align_audio(mix: np.ndarray, sr: int, score_audio: np.ndarray, score_sr: int,
                feature_rate: float = 20.0, tuning_cents: float = 0.0, keep_cost: bool = False,
                score_span: Optional[tuple] = None) -> Alignment:
    """Align a rendering of the score to the mixture (both mono ``(n_samples,)``).

    score_span: (start, end) seconds of the score's notes; the score rendering is cut to it
    (plus a margin) so silence at either end of the recording is skipped (open begin and end).
    """
    import dtw as dtwlib
    import librosa

    fr_sr = 22050
    hop = int(round(fr_sr / feature_rate))
    rate = fr_sr / hop
    y_mix = librosa.resample(mix.astype(np.float32), orig_sr=sr, target_sr=fr_sr) if sr != fr_sr else mix
    y_sc = librosa.resample(score_audio.astype(np.float32), orig_sr=score_sr, target_sr=fr_sr) \
        if score_sr != fr_sr else score_audio
    offset = 0.0
    if score_span is not None:
        s0 = max(0.0, score_span[0] - 0.25)
        s1 = score_span[1] + 0.5
        offset = s0
        y_sc = y_sc[int(s0 * fr_sr):int(s1 * fr_sr)]
    F_mix = chroma_onset_features(y_mix, fr_sr, hop, tuning_cents)
    F_sc = chroma_onset_features(y_sc, fr_sr, hop, tuning_cents)
    C = cosine_cost(F_sc, F_mix)
    n_q, n_r = C.shape
    open_ends = n_r > 1.05 * n_q
    try:
        if open_ends:
            res = dtwlib.dtw(C, step_pattern=dtwlib.rabinerJuangStepPattern(4, "c", smoothed=True),
                             open_begin=True, open_end=True)
        else:
            res = dtwlib.dtw(C, step_pattern="symmetric2")
    except ValueError as e:
        raise AlignmentError(f"DTW found no path ({e}); is the MIDI much longer than the recording?") from e
    path = np.stack([res.index1, res.index2], axis=1)
    tm = path_to_timemap(path, rate, score_offset=offset)
    along = float(np.mean(C[res.index1, res.index2]))
    # confidence: how much cheaper the path is than the typical cost of the matrix
    typical = float(np.median(C))
    conf = float(np.clip(1.0 - along / max(typical, 1e-9), 0.0, 1.0))
    return Alignment(time_map=tm, confidence=conf, path=path, frame_rate=rate,
                     cost=C.astype(np.float32) if keep_cost else None,
                     info={"path_cost": along, "median_cost": typical, "open_ends": bool(open_ends),
                           "score_offset": offset})
