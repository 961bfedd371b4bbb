"""Score-to-audio alignment: the MIDI's notes against the recording, with dtw-python.

No rendering: the score is symbolic, and the question asked of every (score frame, audio frame)
pair is "are the notes the score plays here present in the recording there?", which holds
whether the MIDI has every part or one part of a larger ensemble.

Features (recording side, one frame every ``hop`` = 10 ms):
  * pitch salience ``(n, 88)``: a semitone log-spectrum (tuned to the recording) summed over
    each pitch's first harmonics, each frame scaled to its own strongest pitch;
  * onset salience ``(n, 88)``: the same harmonic sum of the log-spectral flux (rises only),
    scaled by its local maximum over a few seconds (locally adaptive normalisation) and given a
    decaying tail: decaying locally adaptive normalised onsets (DLNCO), per pitch, not per chroma.
Score side: which pitches sound (piano roll) and where notes start (decaying impulses).
Cost of (score frame i, audio frame j): how many standard deviations (over the recording) the
salience of the pitches sounding at i stands above its average, at j, squashed to
1 - tanh(z / z_scale); the same for onsets where the score has them. One-sided: energy the score
does not explain (other instruments) costs nothing. Rows without notes (rests) cost 1, "no
evidence", as does an audio frame matched to nothing.

Search, coarse to fine: a global DTW (dtw-python, symmetric2 with horizontal and vertical steps
weighted against the diagonal) on the full matrix at a low frame rate, kept under
``coarse_cells`` cells, with a skip row before and after the score (open begin and end: silence
or other music at either end of the recording); once to learn the average tempo, once with the
score at that tempo. Then finer levels down to 10 ms, each only inside a band around the
previous level's path, in overlapping blocks of rows: the largest matrix ever built is one block
of the band, whatever the length of the recording.

Tempo prior: a note-level search then corrects the finest path (note_dp_times): every distinct
onset of the score gets an audio time within a few seconds of the path's, and the performer a
tempo that drifts at a price (a hidden state), so that a passage the path crammed or stretched to
land on another voice's notes of the same pitches costs what it should; the finest DTW runs again
in a narrow band around its result.

Confidence: the global path's cost against the cost of the same search with the score
transposed by a tritone (music that is not in the recording), squashed to [0, 1].

The result maps score seconds to audio seconds (TimeMap).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np

from .errors import AlignmentError

FEAT_SR = 22050
PITCH_LO, N_PITCH = 21, 88          # A0 .. C8: the notes
BIN_LO, N_BIN = 21, 100             # semitone bins of the spectrum: A0 .. C9 (harmonics)


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


@dataclass
class AlignParams:
    """Knobs of the aligner (defaults measured with bench/align_eval.py)."""

    hop: int = 220                   # samples at 22050 Hz: the finest frame (10 ms)
    n_fft: int = 2048                # window of the pitch salience
    onset_n_fft: int = 2048          # window of the onset salience
    harmonics: int = 6               # harmonics summed into a pitch's salience
    harmonic_decay: float = 0.7      # weight of harmonic h: decay ** (h - 1)
    compress: float = 1000.0         # log(1 + compress * power / reference)
    onset_weight: float = 1.0        # weight of the onset cost next to the presence cost
    onset_norm_s: float = 4.0        # window (s) of the local maximum normalising onsets (1.5 s let a
                                     #   loud chord's onset drown a quiet part's nearby)
    onset_decay_s: float = 0.05      # decaying tail of onsets (both sides)
    coarse_rate: float = 10.0        # frames per second of the global DTW at most
    coarse_cells: float = 4e6        # cells of the global DTW's matrix at most
    level_ratio: int = 10            # frame-rate ratio between successive levels
    radius_frames: float = 3.0       # band half-width, in frames of the level above
    min_radius_s: float = 0.25       # ... and in seconds at least
    block_s: float = 4.0             # rows per block of the banded DTW (seconds of score)
    overlap_s: float = 2.0           # look-ahead rows per block, discarded
    skip_cost: float = 0.8           # cost of an audio frame matched to nothing (open ends)
    z_scale: float = 3.0             # cost = 1 - tanh(z / z_scale)
    hv_weight: float = 1.5           # weight of horizontal/vertical DTW steps (diagonal: 2)
    hv_weight_coarse: float = 1.5    # ... in the global DTW
    null_shifts: Tuple[int, ...] = (6,)   # transpositions (semitones) of the score that serve as "wrong MIDI"
    conf_center: float = 0.045       # confidence = logistic((evidence - center) / scale), evidence =
    conf_scale: float = 0.01         #   (null cost - path cost) / null cost
    max_squeeze: int = 2             # >= 2: the score may advance at most this many frames per audio frame
                                     #   (no lone score steps) below the global level; 0: free
    squeeze_coarse: bool = True      # ... and in the global DTW at the recording's tempo (and its null)
    note_dp: bool = True             # tempo prior: a note-level search (see note_dp_band) then the finest DTW again
    dp_window: float = 6.0           #   s either side of the first path an onset may move
    dp_step: int = 3                 #   finest frames between candidate onset times (then refined, see below)
    dp_refine_s: float = 0.3         #   a second search within this many s of the first, every 2 frames
    dp_lambda: float = 50.0          #   weight (in frames of cost) of an interval's departure from the tempo
    dp_stretch: float = 0.5          #   penalty per unit of log-stretch (a note held longer; squeeze: 1)
    dp_onset: float = 8.0            #   weight (in frames) of the onset evidence at each onset
    # ... and of the mixture's onsets at any pitch (spectral flux): the part's notes start where
    # something in the recording starts, even where their own pitches are masked or repeated (a
    # repeated note after a fermata; a line whose pitches another voice holds). align_eval single
    # part, within 100 ms: 0 / 4 / 8 / 12 gave 96.5 / 96.9 / 97.2 / 97.2 %; full score 99.8 -> 99.9.
    dp_any_onset: float = 8.0
    dp_tempo_bins: int = 15          #   the performer's tempo, a hidden state: this many bins of log-tempo ...
    dp_tempo_step: float = 0.1       #   ... this far apart, centred on the average tempo
    dp_tempo_change: float = 100.0   #   penalty per unit of log-tempo change between onsets
    dp_passes: int = 1               #   times the note-level search and the finest DTW are run
    # An interval's presence evidence is a sum over its frames; holding a note over another voice's
    # sustained notes of the same pitch then buys evidence with every extra frame. Scaled by
    # (expected frames / actual frames) ** dp_presence_norm, a note is credited nearer its mean
    # evidence over its expected length (0: the plain sum; 1: the mean). align_eval single part,
    # within 100 ms, with onset_norm_s 1.5 and dp_stretch 0.3: 0 / 0.3 / 0.5 / 0.7 / 1 gave
    # 95.6 / 96.1 / 96.1 / 95.7 / 95.3 %; 0.5 with onset_norm_s 4: 96.3; and dp_stretch 0.5: 96.5
    # (full score unchanged: 99.7 -> 99.8).
    dp_presence_norm: float = 0.5
    # The finest DTW only polishes the note-level map (+-30 ms): with the 0.3 s it had, it pulled
    # onsets back onto the other voices the tempo search had kept them off (align_eval single part
    # 88.1 / 92.5 -> 93.2 / 95.6 % within 50 / 100 ms; full score 97.2 / 99.2 -> 98.5 / 99.7).
    dp_radius: float = 0.03          #   band (s) of the finest DTW around the note-level map


# --------------------------------------------------------------------------- features

def semitone_filterbank(sr: int, n_fft: int, tuning_cents: float = 0.0, lo: int = BIN_LO,
                        n_bins: int = N_BIN):
    """Sparse ``(n_bins, n_fft // 2 + 1)``: triangular weights summing power into semitone bands
    centred on the equal-tempered pitches lo .. lo + n_bins - 1, shifted by ``tuning_cents``;
    each band at least about two FFT bins wide."""
    import scipy.sparse

    f = np.arange(n_fft // 2 + 1) * sr / n_fft
    df = sr / n_fft
    rows, cols, vals = [], [], []
    for k in range(n_bins):
        fc = 440.0 * 2.0 ** ((lo + k - 69 + tuning_cents / 100.0) / 12.0)
        if fc >= sr / 2:
            break
        lo_f = fc * 2.0 ** (-1 / 12)
        hi_f = fc * 2.0 ** (1 / 12)
        half_lo = max(fc - lo_f, df)
        half_hi = max(hi_f - fc, df)
        w = np.where(f < fc, 1.0 - (fc - f) / half_lo, 1.0 - (f - fc) / half_hi)
        idx = np.nonzero(w > 0)[0]
        rows += [k] * len(idx)
        cols += idx.tolist()
        vals += w[idx].tolist()
    return scipy.sparse.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(n_bins, len(f)))


def harmonic_sum_matrix(n_harm: int, decay: float, lo_pitch: int = PITCH_LO, n_pitch: int = N_PITCH,
                        lo_bin: int = BIN_LO, n_bins: int = N_BIN) -> np.ndarray:
    """``(n_pitch, n_bins)``: pitch p gathers bins p + 12 log2(h), h = 1..n_harm (linear
    interpolation between semitones), weighted decay ** (h - 1), rows summing to 1."""
    H = np.zeros((n_pitch, n_bins), np.float32)
    for i in range(n_pitch):
        for h in range(1, n_harm + 1):
            b = lo_pitch + i + 12.0 * math.log2(h) - lo_bin
            k = int(math.floor(b))
            t = b - k
            w = decay ** (h - 1)
            for kk, ww in ((k, 1.0 - t), (k + 1, t)):
                if 0 <= kk < n_bins and ww > 0:
                    H[i, kk] += w * ww
        H[i] /= max(H[i].sum(), 1e-9)
    return H


@dataclass
class MixFeatures:
    """Mixture features at the finest rate: ``sal`` and ``ons`` float16 ``(n_frames, 88)``, and
    ``flux``, the onsets at any pitch."""

    sal: np.ndarray
    ons: np.ndarray
    rate: float
    tuning_cents: float
    flux: Optional[np.ndarray] = None   # float32 ``(n_frames,)``: onsets at any pitch (None: not used)
    _pooled: dict = field(default_factory=dict, repr=False)
    _flux_z: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return self.sal.shape[0]

    def flux_z(self) -> Optional[np.ndarray]:
        """``flux`` as z-scores over the recording, float32 ``(n_frames,)`` (None without flux);
        computed once."""
        if self._flux_z is None and self.flux is not None:
            f = self.flux
            self._flux_z = ((f - f.mean()) / (f.std() + 1e-9)).astype(np.float32)
        return self._flux_z

    def pooled(self, factor: int):
        """Features pooled by ``factor`` frames (salience: mean, onsets: max) with their means and
        covariances over time: (sal ``(m, 88)``, mean ``(88,)``, cov ``(88, 88)``, ons, mean, cov).
        Cached (the coarser levels)."""
        if factor not in self._pooled:
            if factor <= 1:   # the stored float16 arrays, no copy
                sal, ons = self.sal, self.ons
            else:
                sal, ons = pool(self.sal, factor, "mean"), pool(self.ons, factor, "max")
            mu_s, cov_s = _moments(sal)
            mu_o, cov_o = _moments(ons)
            self._pooled = {k: v for k, v in self._pooled.items() if k > factor}  # finer levels come last
            self._pooled[factor] = (sal, mu_s, cov_s, ons, mu_o, cov_o)
        return self._pooled[factor]


def mixture_features(y: np.ndarray, sr: int, tuning_cents: float = 0.0, params: Optional[AlignParams] = None,
                     chunk_s: float = 60.0) -> MixFeatures:
    """Pitch and onset salience of the mono recording ``y`` ``(n_samples,)``, computed in chunks
    (memory grows with the number of frames, never with the STFT)."""
    import scipy.fft
    import scipy.ndimage

    p = params or AlignParams()
    if sr != FEAT_SR:
        from .audio import resample

        y = resample(np.asarray(y, np.float32), sr, FEAT_SR)
    y = np.asarray(y, np.float32)
    hop = p.hop
    n_frames = 1 + len(y) // hop
    H = harmonic_sum_matrix(p.harmonics, p.harmonic_decay).T  # (bins, pitch)
    L = _log_semitone_spectrum(y, hop, p.n_fft, tuning_cents, p.compress, chunk_s)
    sal = L @ H
    if p.onset_n_fft != p.n_fft:
        del L
        L = _log_semitone_spectrum(y, hop, p.onset_n_fft, tuning_cents, p.compress, chunk_s)
    # onsets: rises of the log-spectrum, harmonic-summed, over a local maximum, with a tail
    np.subtract(L[1:], L[:-1], out=L[1:])
    L[0] = 0.0
    np.maximum(L, 0.0, out=L)
    flux = L.sum(axis=1)
    ons = L @ H
    del L
    # pitch salience relative to the frame's strongest pitch (floor: quiet frames stay low)
    peak = sal.max(axis=1)
    floor = 0.2 * float(np.percentile(peak, 90)) + 1e-9
    sal /= np.maximum(peak, floor)[:, None]
    rate = FEAT_SR / hop
    w = max(int(round(p.onset_norm_s * rate)), 1)
    opeak = scipy.ndimage.maximum_filter1d(ons.max(axis=1), size=w, mode="nearest")
    ofloor = 0.1 * float(np.percentile(opeak, 90)) + 1e-9
    ons /= np.maximum(opeak, ofloor)[:, None]
    fpeak = scipy.ndimage.maximum_filter1d(flux, size=w, mode="nearest")
    flux /= np.maximum(fpeak, 0.1 * float(np.percentile(fpeak, 90)) + 1e-9)
    flux = flux[:, None]
    if p.onset_decay_s > 0:
        a = math.exp(-1.0 / (p.onset_decay_s * rate))
        _decay_inplace(ons, a)
        _decay_inplace(flux, a)
    return MixFeatures(sal=sal.astype(np.float16), ons=ons.astype(np.float16), rate=rate, tuning_cents=tuning_cents,
                       flux=flux[:, 0].astype(np.float32))


def _log_semitone_spectrum(y: np.ndarray, hop: int, n_fft: int, tuning_cents: float, compress: float,
                           chunk_s: float) -> np.ndarray:
    """log(1 + compress * E / ref): E the power in semitone bands ``(n_frames, N_BIN)`` of
    centred frames every ``hop`` samples (FEAT_SR), ref a high percentile of the frames' peaks."""
    import scipy.fft

    fb = semitone_filterbank(FEAT_SR, n_fft, tuning_cents)
    win = np.hanning(n_fft).astype(np.float32)
    n_frames = 1 + len(y) // hop
    E = np.empty((n_frames, N_BIN), np.float32)
    pad = np.pad(y, (n_fft // 2, n_fft // 2 + hop))
    per = max(int(chunk_s * FEAT_SR / hop), 1)
    for f0 in range(0, n_frames, per):
        f1 = min(n_frames, f0 + per)
        seg = pad[f0 * hop: (f1 - 1) * hop + n_fft]
        fr = np.lib.stride_tricks.sliding_window_view(seg, n_fft)[::hop][: f1 - f0]
        Y = scipy.fft.rfft(fr * win, axis=1)
        P = (Y.real ** 2 + Y.imag ** 2).astype(np.float32)
        E[f0:f1] = (fb @ P.T).T
    ref = float(np.percentile(E.max(axis=1), 99)) + 1e-12
    return np.log1p(compress * E / ref, out=E)


def _decay_inplace(X: np.ndarray, a: float) -> None:
    """X[t] = max(X[t], a * X[t-1]) along axis 0 (a peak-hold with exponential decay)."""
    import scipy.signal

    # max-decay has no closed linear form; a linear IIR tail then a max with the input is close
    tail = scipy.signal.lfilter([1.0 - a], [1.0, -a], X, axis=0).astype(np.float32)
    np.maximum(X, tail / max(1.0 - a, 1e-6) * (1.0 - a), out=X)


def pool(X: np.ndarray, factor: int, how: str = "mean") -> np.ndarray:
    """Pool ``(n, d)`` rows by ``factor`` (the last group may be shorter): mean or max."""
    if factor <= 1:
        return X.astype(np.float32)
    n = X.shape[0]
    m = -(-n // factor)
    pad = m * factor - n
    Z = np.concatenate([X, np.repeat(X[-1:], pad, axis=0)]) if pad else X
    Z = Z.reshape(m, factor, -1).astype(np.float32)
    return Z.max(axis=1) if how == "max" else Z.mean(axis=1)


class ScoreFeatures:
    """The notes of a score as features at any frame rate, built block by block.

    notes: ``(n_notes, 4)`` start, end, pitch, velocity (seconds)."""

    def __init__(self, notes: np.ndarray, params: Optional[AlignParams] = None):
        p = params or AlignParams()
        notes = np.asarray(notes, np.float64)
        notes = notes[(notes[:, 1] > notes[:, 0])]
        order = np.argsort(notes[:, 0], kind="stable")
        self.notes = notes[order]
        self.starts = self.notes[:, 0]
        self.max_dur = float(np.max(self.notes[:, 1] - self.notes[:, 0])) if len(self.notes) else 0.0
        self.pitch = np.clip(np.round(self.notes[:, 2]).astype(int) - PITCH_LO, 0, N_PITCH - 1)
        self.decay_s = p.onset_decay_s
        self.t0 = float(self.notes[:, 0].min())
        self.t1 = float(self.notes[:, 1].max())

    def block(self, t0: float, period: float, n: int, pooled: int = 1) -> Tuple[np.ndarray, np.ndarray]:
        """Frames ``t0 + i * period`` (i < n), each covering ``period`` s: (act, ons), float32
        ``(n, 88)``: the fraction of the frame each pitch sounds, and the onset strength (1 at a
        note's start, decaying with its tail; the max over the frame)."""
        act = np.zeros((n, N_PITCH), np.float32)
        ons = np.zeros((n, N_PITCH), np.float32)
        t1 = t0 + n * period
        i0 = int(np.searchsorted(self.starts, t0 - self.max_dur - 1.0))
        i1 = int(np.searchsorted(self.starts, t1))
        if i1 <= i0:
            return act, ons
        nt = self.notes[i0:i1]
        pit = self.pitch[i0:i1]
        keep = nt[:, 1] > t0
        nt, pit = nt[keep], pit[keep]
        edges = t0 + np.arange(n + 1) * period
        for (s, e, _p, _v), k in zip(nt, pit):
            # activity: overlap of [s, e) with each frame
            a = int(np.searchsorted(edges, s, "right")) - 1
            b = int(np.searchsorted(edges, e, "left"))
            a, b = max(a, 0), min(b, n)
            if b > a:
                ov = np.minimum(edges[a + 1:b + 1], e) - np.maximum(edges[a:b], s)
                np.maximum(act[a:b, k], np.clip(ov / period, 0.0, 1.0), out=act[a:b, k])
            # onset: 1 in the frame holding s, then exp decay
            f = int(math.floor((s - t0) / period))
            if -1 < f < n:
                m = max(1, int(math.ceil(4 * self.decay_s / period))) if self.decay_s > 0 else 1
                f1 = min(n, f + m)
                if self.decay_s > 0:
                    v = np.exp(-np.maximum(edges[f:f1] - s, 0.0) / self.decay_s)
                else:
                    v = np.ones(f1 - f)
                v[0] = 1.0
                np.maximum(ons[f:f1, k], v, out=ons[f:f1, k])
        return act, ons


# --------------------------------------------------------------------------- cost

def presence_cost(act: np.ndarray, ons: np.ndarray, sal: np.ndarray, osal: np.ndarray,
                  onset_weight: float = 1.0) -> np.ndarray:
    """``(n_score, n_audio)`` cost: 1 - the audio's mean salience at the pitches the score
    sounds (weighted by how much of the frame they sound), plus ``onset_weight`` times the same
    for onsets where the score has them. Rows with no notes cost NaN (the caller decides)."""
    wa = act.sum(axis=1, keepdims=True)
    C = 1.0 - (act @ sal.T) / np.maximum(wa, 1e-9)
    C[wa[:, 0] <= 1e-6] = np.nan
    if onset_weight > 0:
        wo = ons.sum(axis=1, keepdims=True)
        has = wo[:, 0] > 1e-3
        if np.any(has):
            Q = 1.0 - (ons[has] @ osal.T) / wo[has]
            C[has] += onset_weight * Q * np.minimum(wo[has], 1.0)
    return C


class CostModel:
    """Cost blocks between the score (rows) and the recording (columns) at one level.

    Score frame i is at score time ``s0 + i * s_period``; audio frame j at ``j * a_period``
    (the mixture's features pooled by ``factor``).

    For a score frame with pitch weights a (summing to 1), the evidence that audio frame j
    holds it is z = a . (x_j - mean x) / sqrt(a' cov a), mean and covariance over the recording:
    how far, in standard deviations, the pitches sounding now stand above their usual level at
    j. Energy the score does not explain (other instruments, noise) does not lower it. Cost =
    1 - tanh(z / z_scale) for pitch presence and, weighted, for onsets where the score has them,
    divided by 1 + onset_weight. Rows with no notes cost 1 (no evidence either way), as does an
    audio frame matched to nothing (skip_cost)."""

    def __init__(self, score: ScoreFeatures, mix: MixFeatures, factor: int, s0: float, s_period: float,
                 n_rows: int, params: AlignParams):
        self.score, self.p = score, params
        self.factor = factor
        self.sal, self.mu_s, self.cov_s, self.osal, self.mu_o, self.cov_o = mix.pooled(factor)
        # z-scores of the onsets at any pitch, at the finest level only (the note search uses them)
        self.flux = mix.flux_z() if factor <= 1 else None
        self.a_period = factor / mix.rate
        self.s0, self.s_period, self.n_rows = s0, s_period, n_rows
        self.n_cols = self.sal.shape[0]
        self.largest = 0
        self.last_full: Optional[np.ndarray] = None

    def rows(self, r0: int, r1: int) -> Tuple[np.ndarray, np.ndarray]:
        return self.score.block(self.s0 + r0 * self.s_period, self.s_period, r1 - r0)

    def block(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Cost ``(r1 - r0, c1 - c0)`` (float64, for dtw-python)."""
        act, ons = self.rows(r0, r1)
        p = self.p
        xs = self.sal[c0:c1].astype(np.float32) - self.mu_s
        C = _z_cost(act, xs, self.cov_s, p.z_scale)
        if p.onset_weight > 0:
            xo = self.osal[c0:c1].astype(np.float32) - self.mu_o
            C += p.onset_weight * _z_cost(ons, xo, self.cov_o, p.z_scale)
            C /= 1.0 + p.onset_weight
        self.largest = max(self.largest, C.size)
        return C.astype(np.float64)


def _moments(X: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and covariance ``(d, d)`` of the rows of X (subsampled when long)."""
    step = max(1, X.shape[0] // 20000)
    Z = X[::step].astype(np.float64)
    mu = Z.mean(axis=0)
    Zc = Z - mu
    return mu.astype(np.float32), (Zc.T @ Zc / max(len(Z) - 1, 1)).astype(np.float64)


def _z_cost(W: np.ndarray, Xc: np.ndarray, cov: np.ndarray, z_scale: float) -> np.ndarray:
    """``(rows, cols)``: 1 - tanh(z / z_scale) with z = a . x / sqrt(a' cov a): a = w / sum(w) the
    row's pitch weights, x the centred audio features ``(cols, d)``, cov their covariance over
    the recording. Rows without weight cost 1."""
    s = W.sum(axis=1)
    has = s > 1e-6
    C = np.ones((W.shape[0], Xc.shape[0]), np.float32)
    if np.any(has):
        A = W[has] / s[has, None]
        var = ((A.astype(np.float64) @ cov) * A).sum(axis=1)
        sd = np.sqrt(np.maximum(var, 1e-12))
        sd = np.maximum(sd, 0.05 * float(np.median(sd)) + 1e-6)
        z = A @ Xc.T
        z *= (1.0 / (z_scale * sd)).astype(np.float32)[:, None]
        np.tanh(z, out=z)
        z *= -np.minimum(s[has], 1.0).astype(np.float32)[:, None]   # a frame partly covered by notes weighs less
        z += 1.0
        C[has] = z
    return C


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


def _with_skip_rows(C: np.ndarray, skip: float, lo: Optional[np.ndarray] = None,
                    hi: Optional[np.ndarray] = None) -> np.ndarray:
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
        c1 = int(hi[r1 - 1])
        C = model.block(r0, r1, c0, c1)
        cols = np.arange(c0, c1)
        mask = (cols[None, :] >= lo[r0:r1, None]) & (cols[None, :] < hi[r0:r1, None])
        top = c_start is None and open_begin
        bottom = last and open_end
        if top or bottom or not last:
            skip_row = np.full((1, C.shape[1]), skip)
            parts, mparts = [C], [mask]
            if top:
                parts.insert(0, skip_row)
                mparts.insert(0, cols[None, :] < hi[r0])
            if bottom or not last:
                # the block's end is open: a skip row lets it stop anywhere in its last row's band
                parts.append(skip_row)
                mparts.append(cols[None, :] >= lo[r1 - 1])
            C = np.vstack(parts)
            mask = np.vstack(mparts)
        r, c, _ = _run_dtw(C, mask, hv_weight, max_squeeze)
        if top:
            r = r - 1
        keep = (r >= 0) & (r < r1 - r0)
        r, c = r[keep] + r0, c[keep] + c0
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


def _band_around(g: np.ndarray, radius: float, model: CostModel) -> Tuple[np.ndarray, np.ndarray]:
    """Columns ``[lo, hi)`` per row within ``radius`` s of the audio times ``g`` (one per row),
    monotone and connected."""
    lo = np.floor((g - radius) / model.a_period).astype(np.int64)
    hi = np.ceil((g + radius) / model.a_period).astype(np.int64) + 1
    return _monotone_band(lo, hi, model.n_cols)


def note_dp_band(rows: np.ndarray, cols: np.ndarray, model: CostModel, score: ScoreFeatures, k: float,
                 p: AlignParams) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """A tempo prior (note_dp_times) around the path (rows, cols) of ``model``: the band of columns
    per row within ``p.dp_radius`` s of the map through the onsets' chosen times, or None."""
    res = note_dp_times(rows, cols, model, score, k, p)
    if res is None:
        return None
    on, t = res
    tm = path_to_timemap(rows, cols, model.s0, model.s_period, model.a_period)
    st = model.s0 + np.arange(model.n_rows) * model.s_period
    g = np.interp(st, on, t)
    # beyond the first and last onsets: the path's own map
    g = np.where(st < on[0], tm(st), g)
    g = np.where(st > on[-1], tm(st) - tm(on[-1]) + t[-1], g)
    return _band_around(np.maximum.accumulate(g), p.dp_radius, model)


def note_dp_times(rows: np.ndarray, cols: np.ndarray, model: CostModel, score: ScoreFeatures, k: float,
                  p: AlignParams) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """A tempo prior: each score onset u_i gets an audio time t_i near the path's (within
    ``p.dp_window`` s), and the performer a tempo tau_i (a hidden state, ``p.dp_tempo_bins`` bins of
    log-tempo around the average tempo k), chosen by dynamic programming over the onsets to minimise
      sum_i [ dp_onset * onset cost of u_i's notes at t_i + dp_any_onset * onset cost at any pitch at t_i
              + w_i * sum of the presence cost of the notes sounding in [u_i, u_i+1) over [t_i, t_i+1)
              + dp_tempo_change * |log tau_i+1 - log tau_i|
              + dp_lambda * rho(log((t_i+1 - t_i) / (tau_i+1 (u_i+1 - u_i)))) ]
    with rho(x) = dp_stretch * x for x > 0 (a note held longer: fermatas, breaths, cheap) and -x for
    x < 0 (a passage played faster than the current tempo, dear), and
    w_i = (k (u_i+1 - u_i) / (t_i+1 - t_i)) ** dp_presence_norm (a note held longer is not credited
    with every extra frame of evidence). The tempo drifts at a price, so a
    passage played faster or slower throughout costs one change, not a penalty per note; the path of
    the DTW may jump a run of notes onto another voice's notes of the same pitches, and getting there
    and back takes tempo changes this prices. Searched every ``p.dp_step`` frames (onset evidence:
    the best within each step), then again every 2 frames within ``p.dp_refine_s`` s of the result.
    Returns (u ``(n_onsets,)`` the score's distinct onset times, t ``(n_onsets,)`` their audio times
    in s), or None where there is nothing to search."""
    tm = path_to_timemap(rows, cols, model.s0, model.s_period, model.a_period)
    on = np.unique(np.round(score.starts, 3))
    n_on = len(on)
    if n_on < 3:
        return None
    # score content: onset weights at u_i, presence weights over [u_i, u_i+1)
    ons_w = np.zeros((n_on, N_PITCH), np.float32)
    idx = np.searchsorted(on, np.round(score.starts, 3))
    np.maximum.at(ons_w, (idx, score.pitch), 1.0)
    act_w = np.zeros((n_on, N_PITCH), np.float32)
    edges = np.append(on, max(score.t1, on[-1] + 1e-3))
    seg = np.maximum(np.diff(edges), 1e-6)
    for (s_, e_, _p, _v), pk in zip(score.notes, score.pitch):
        a = int(np.searchsorted(edges, s_ + 5e-4, "right")) - 1     # the segment holding the start
        b = int(np.searchsorted(edges, e_ - 1e-6))
        for i in range(max(a, 0), min(b, n_on)):
            ov = min(e_, edges[i + 1]) - max(s_, edges[i])
            if ov > 0:
                act_w[i, pk] = max(act_w[i, pk], ov / seg[i])
    t = _tempo_dp(tm(on), p.dp_window, max(int(p.dp_step), 1), on, ons_w, act_w, model, k, p)
    if t is not None and p.dp_refine_s > 0 and p.dp_step > 2:
        t = _tempo_dp(t, p.dp_refine_s, 2, on, ons_w, act_w, model, k, p)
    return None if t is None else (on, t)


def _tempo_dp(center: np.ndarray, window: float, step: int, on: np.ndarray, ons_w: np.ndarray,
              act_w: np.ndarray, model: CostModel, k: float, p: AlignParams) -> Optional[np.ndarray]:
    """note_dp_times' search: candidates every ``step`` frames within ``window`` s of ``center``
    (one audio time per onset); returns the chosen audio time (s) of each onset, or None."""
    import scipy.ndimage

    per = model.a_period
    n_on, n_cols = len(on), model.n_cols
    half = int(round(window / (per * step)))
    M = 2 * half + 1
    cen = np.round(np.asarray(center) / (per * step)).astype(np.int64)
    cand = (cen[:, None] + np.arange(-half, half + 1)[None, :]) * step     # (n_on, M) audio frames
    valid = (cand >= 0) & (cand < n_cols)
    cand = np.clip(cand, 0, n_cols - 1)
    # onset cost at the candidates: the best frame within each step
    E = np.empty(cand.shape, np.float32)
    any_on = None     # onset cost at any pitch, every frame (sliced per onset below)
    if p.dp_any_onset > 0 and model.flux is not None:
        any_on = p.dp_any_onset * (1.0 - np.tanh(model.flux / p.z_scale))
    for i in range(n_on):
        j0 = max(int(cand[i, 0]) - step // 2, 0)
        j1 = min(int(cand[i, -1]) + step, n_cols)
        xo = model.osal[j0:j1].astype(np.float32) - model.mu_o
        e = p.dp_onset * _z_cost(ons_w[i:i + 1], xo, model.cov_o, p.z_scale)[0]
        if step > 1:
            e = scipy.ndimage.minimum_filter1d(e, size=step, mode="nearest")
        if any_on is not None:
            f = any_on[j0:j1]
            if step > 1:
                f = scipy.ndimage.minimum_filter1d(f, size=step, mode="nearest")
            e = e + f
        E[i] = e[np.clip(cand[i] - j0, 0, len(e) - 1)]
    E[~valid] = np.inf
    nT = max(int(p.dp_tempo_bins), 1)
    lt = math.log(k) + (np.arange(nT) - (nT - 1) / 2) * p.dp_tempo_step         # log tempo of each bin
    change = (p.dp_tempo_change * p.dp_tempo_step
              * np.abs(np.arange(nT)[:, None] - np.arange(nT)[None, :])).astype(np.float32)
    D = np.repeat(E[0][:, None], nT, axis=1)                                    # (M, nT)
    back_d = np.zeros((n_on, M, nT), np.int16)     # candidate steps back to the previous onset
    back_l = np.zeros((n_on, M, nT), np.int8)      # previous tempo bin
    inf = np.float32(np.inf)
    for i in range(n_on - 1):
        # the tempo may change: G[m, l'] = min_l D[m, l] + change[l, l']
        X = D[:, :, None] + change[None, :, :]
        bl = np.argmin(X, axis=1)                                               # (M, nT)
        G = np.take_along_axis(X, bl[:, None, :], axis=1)[:, 0, :]
        # presence over [t_i, t_i+1): a difference of cumulative sums
        j0, j1 = int(cand[i, 0]), int(cand[i + 1, -1]) + 1
        if j1 <= j0:
            return None
        xs = model.sal[j0:j1].astype(np.float32) - model.mu_s
        c = _z_cost(act_w[i:i + 1], xs, model.cov_s, p.z_scale)[0] - np.float32(p.skip_cost)
        cs = np.concatenate([[0.0], np.cumsum(c, dtype=np.float64)]).astype(np.float32)
        cs_from, cs_to = cs[cand[i] - j0], cs[cand[i + 1] - j0]                 # (M,) each
        # intervals of d candidate steps, d = 1 .. dmax (longer: a hold of several seconds at most)
        du = on[i + 1] - on[i]
        expected = k * du / (per * step)                                        # in candidate steps
        shift = int(cen[i + 1] - cen[i])
        dmax = int(math.ceil((2.0 * du * math.exp(lt[-1]) + 4.0) / (per * step)))   # twice the slowest tempo's, + 4 s
        dmax = max(1, min(dmax, M + shift - 1))
        d = np.arange(1, dmax + 1)
        x = np.log(d * step * per)[:, None] - (lt[None, :] + math.log(du))     # (dmax, nT)
        pen = (p.dp_lambda * np.where(x > 0, p.dp_stretch * x, -x)).astype(np.float32)
        best = np.full((M, nT), inf, np.float32)
        arg = np.zeros((M, nT), np.int16)
        for dd in range(1, dmax + 1):
            # candidate m' of onset i+1 is dd steps after candidate m = m' + shift - dd of onset i
            off = shift - dd
            lo, hi = max(0, -off), min(M, M - off)
            if hi <= lo:
                continue
            w = np.float32((expected / dd) ** p.dp_presence_norm) if p.dp_presence_norm else np.float32(1.0)
            pres = (cs_to[lo:hi] - cs_from[lo + off:hi + off]) * w                  # presence over the interval
            v = G[lo + off:hi + off] + pres[:, None] + pen[dd - 1]
            seg_best = best[lo:hi]
            better = v < seg_best
            seg_best[better] = v[better]
            arg[lo:hi][better] = dd
        D = best + E[i + 1][:, None]
        back_d[i + 1] = arg
        mprev = np.clip(np.arange(M)[:, None] + shift - arg, 0, M - 1)
        back_l[i + 1] = np.take_along_axis(bl, mprev, axis=0)
    if not np.isfinite(D).any():
        return None
    m, l = (int(v) for v in np.unravel_index(int(np.argmin(D)), D.shape))
    sel = np.empty(n_on, np.int64)
    for i in range(n_on - 1, -1, -1):
        sel[i] = m
        if i > 0:
            dd = int(back_d[i, m, l])
            l = int(back_l[i, m, l])
            m = m + int(cen[i] - cen[i - 1]) - dd
    return cand[np.arange(n_on), sel] * per


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


def align_notes(mix: np.ndarray, sr: int, notes: np.ndarray, tuning_cents: float = 0.0,
                params: Optional[AlignParams] = None, keep_cost: bool = False,
                features: Optional[MixFeatures] = None, onset_lag: float = 0.0) -> Alignment:
    """Align a score's notes to a recording.

    mix: mono ``(n_samples,)`` at ``sr``. notes: ``(n_notes, 4)`` start, end, pitch, velocity in
    score seconds (every part that should guide the alignment; see midi.notes_array).
    onset_lag: seconds the instruments take to speak after their note-on (see attack_lag); the
    time map places note-ons that much before the onsets heard in the recording.
    Returns an Alignment whose time map takes score seconds to audio seconds.
    """
    import time as _time

    p = params or AlignParams()
    notes = np.asarray(notes, np.float64)
    if notes.ndim != 2 or notes.shape[1] < 3:
        raise AlignmentError("the MIDI holds no notes to align")
    notes = notes[notes[:, 1] > notes[:, 0]]
    if len(notes) == 0:
        raise AlignmentError("the MIDI holds no notes to align")
    t_start = _time.perf_counter()
    feats = features if features is not None else mixture_features(mix, sr, tuning_cents, p)
    t_feat = _time.perf_counter() - t_start
    score = ScoreFeatures(notes, p)
    rate = feats.rate
    s0, s1 = score.t0, score.t1
    span = max(s1 - s0, 1.0 / rate)
    f0 = max(int(math.ceil(rate / p.coarse_rate)), int(math.ceil(math.sqrt(span * rate * feats.n / p.coarse_cells))), 1)
    factors = [f0]
    while factors[-1] > 1:
        factors.append(max(1, factors[-1] // p.level_ratio))

    def coarse_model(sc, k):
        s_period = f0 * k / rate
        n_rows = max(int(math.ceil(span / s_period)), 2)
        return CostModel(sc, feats, f0, s0, s_period, n_rows, p)

    # global DTW: first at the score's own tempo, to learn the recording's average tempo ...
    model = coarse_model(score, 1.0)
    if model.n_cols < 2:
        raise AlignmentError("the recording is too short to align")
    r, c, _ = coarse_dtw(model, p.skip_cost, 1.0)
    k = float(np.clip(((c[-1] - c[0] + 1) * model.a_period) / span, 0.25, 4.0))
    # ... then again with the score at that tempo, preferring the diagonal
    model = coarse_model(score, k)
    r, c, dist = coarse_dtw(model, p.skip_cost, p.hv_weight_coarse, p.max_squeeze if p.squeeze_coarse else 0)
    coarse = model
    coarse_path = np.stack([s0 + (r + 0.5) * model.s_period, (c + 0.5) * model.a_period], axis=1)
    # confidence: the same search with the score transposed (music that is not there)
    nulls = []
    for shift in p.null_shifts:
        moved = notes.copy()
        moved[:, 2] = np.where(moved[:, 2] + shift > PITCH_LO + N_PITCH - 1, moved[:, 2] + shift - 12, moved[:, 2] + shift)
        nulls.append(coarse_dtw(coarse_model(ScoreFeatures(moved, p), k), p.skip_cost, p.hv_weight_coarse,
                                p.max_squeeze if p.squeeze_coarse else 0)[2])
    null = float(np.mean(nulls)) if nulls else 1.0
    evidence = (null - dist) / max(null, 1e-6)
    confidence = float(1.0 / (1.0 + math.exp(-(evidence - p.conf_center) / p.conf_scale)))
    levels = [{"factor": f0, "rows": model.n_rows, "cols": model.n_cols, "cells": int(model.largest)}]
    prev = model
    for F in factors[1:]:
        s_period = F * k / rate
        n_rows = max(int(math.ceil(span / s_period)), 2)
        model = CostModel(score, feats, F, s0, s_period, n_rows, p)
        ratio_r = prev.s_period / s_period
        ratio_c = prev.factor / F
        radius = int(math.ceil(max(p.radius_frames * ratio_c, p.min_radius_s * rate / F)))
        lo, hi = band_from_path(r, c, ratio_r, ratio_c, n_rows, model.n_cols, radius)
        r, c = banded_dtw(model, lo, hi, p.skip_cost, max(int(p.block_s / s_period), 8),
                          max(int(p.overlap_s / s_period), 4), hv_weight=p.hv_weight, max_squeeze=p.max_squeeze)
        levels.append({"factor": F, "rows": n_rows, "cols": model.n_cols, "band_cells": int(np.sum(hi - lo)),
                       "largest_block": int(model.largest)})
        prev = model
    tempo_prior = None
    for _ in range(p.dp_passes if p.note_dp else 0):
        band = note_dp_band(r, c, prev, score, k, p)
        if band is not None:
            lo, hi = band
            try:
                r, c = banded_dtw(prev, lo, hi, p.skip_cost, max(int(p.block_s / prev.s_period), 8),
                                  max(int(p.overlap_s / prev.s_period), 4), hv_weight=p.hv_weight,
                                  max_squeeze=p.max_squeeze)
            except AlignmentError:   # no path inside the band: keep the DTW's own
                break
            tempo_prior = {"band_cells": int(np.sum(hi - lo)), "largest_block": int(prev.largest)}
    tm = path_to_timemap(r, c, s0, prev.s_period, prev.a_period, shift=-onset_lag)
    path = np.stack([s0 + (r + 0.5) * prev.s_period, c * prev.a_period], axis=1)
    info = {"levels": levels, "tempo_ratio": k, "path_cost": dist, "null_cost": null, "evidence": evidence,
            "feature_s": t_feat, "total_s": _time.perf_counter() - t_start, "tuning_cents": feats.tuning_cents,
            "onset_lag": onset_lag, "tempo_prior": tempo_prior}
    return Alignment(time_map=tm, confidence=confidence, path=path, frame_rate=rate / prev.factor,
                     cost=coarse.last_full.astype(np.float32) if keep_cost else None,
                     cost_extent=(s0, s0 + coarse.n_rows * coarse.s_period, 0.0, coarse.n_cols * coarse.a_period),
                     coarse_path=coarse_path, info=info)


# How late the aligner hears a note start behind its note-on, per GM program, as the default
# soundfont (FluidR3_GM) renders it: the time the instrument takes to speak (bowed strings and
# flutes: tens of ms; piano, plucked, percussive: none). Measured with bench/attack_lag.py.
ATTACK_LAG_MS = (
    -10, -10, -15, -15, -15, -15, -10, -20, -10, -5, -10, -10, -20, -25, -15, -15,
    -10, 0, -10, 25, 10, 10, 10, 10, -10, -5, -10, -5, -25, 15, 0, -5,
    -10, -5, 0, 0, -20, -15, -20, -15, 30, 30, 40, 20, 80, -15, -20, -20,
    45, 30, 25, 35, 30, 15, 35, -10, -5, 25, 10, 0, 10, 10, -15, -5,
    5, 5, 5, 0, 5, 5, 10, 5, 50, 30, 10, 15, 40, 45, 20, 0,
    -15, -5, -5, -10, -15, 20, -10, -15, -5, 80, 10, 25, 25, 15, 10, 15,
    -5, 5, -10, 10, 0, 5, 35, 45, -15, -20, -10, -20, -20, 5, 20, 0,
    -20, -20, -20, -20, -20, -20, -20, -20, 0, 0, 0, 0, 0, 0, 0, 0,
)


def attack_lag(program: int, is_drum: bool = False) -> float:
    """Seconds a note of GM ``program`` takes to be heard after its note-on (ATTACK_LAG_MS)."""
    if is_drum:
        return 0.0
    return ATTACK_LAG_MS[int(program) % 128] / 1000.0


def align_pm(mix: np.ndarray, sr: int, pm, tuning_cents: float = 0.0, params: Optional[AlignParams] = None,
             keep_cost: bool = False, compensate_attack: bool = True, programs: Optional[dict] = None) -> Alignment:
    """Align a pretty_midi.PrettyMIDI to a recording (mono ``(n_samples,)`` at ``sr``) by the notes
    of all its pitched parts (drum parts carry no pitch and are left out of the search; they are
    moved with the rest by the time map).

    compensate_attack: place note-ons before the heard onsets by the instruments' attack time
    (the notes' mean attack_lag), so that the aligned MIDI, rendered, sounds in time with the
    recording. programs: {part index: GM program} overriding the MIDI's (the real instruments).
    """
    from .midi import notes_array

    programs = programs or {}
    pitched, lags = [], []
    for i, inst in enumerate(pm.instruments):
        if inst.is_drum or not inst.notes:
            continue
        arr = notes_array(inst)
        pitched.append(arr)
        lags.append(np.full(len(arr), attack_lag(programs.get(i, inst.program))))
    if not pitched:
        raise AlignmentError("the MIDI has no pitched notes to align by (drums only)")
    lag = float(np.mean(np.concatenate(lags))) if compensate_attack else 0.0
    return align_notes(mix, sr, np.concatenate(pitched), tuning_cents=tuning_cents, params=params,
                       keep_cost=keep_cost, onset_lag=lag)
