"""The one time-frequency module: STFT settings (Grid), the STFT and its inverse (torch, Hann
window), the log-frequency grid the network sees and the chunked log-magnitude on it, pitch to
Hz, and score templates (where a part's harmonics lie in time and frequency). Training
(data), separation (separate) and the pictures (plot) all take their spectra from here.

Shapes: a linear spectrogram is ``(n_lin, n_frames)`` with ``n_lin = n_fft // 2 + 1``; a
log-frequency one is ``(n_log, n_frames)``. torch is imported only where a spectrum is computed,
so importing this module does not load torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Grid:
    """The analysis grid of the network: STFT at ``sr`` and a log-frequency axis."""

    sr: int = 22050
    n_fft: int = 2048
    hop: int = 512
    fmin: float = 32.7  # C1
    bins_per_octave: int = 24

    @property
    def n_lin(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def frame_rate(self) -> float:
        return self.sr / self.hop

    @property
    def lin_freqs(self) -> np.ndarray:
        return np.arange(self.n_lin) * self.sr / self.n_fft

    @property
    def log_freqs(self) -> np.ndarray:
        return log_freqs(self.fmin, self.sr / 2.0, self.bins_per_octave)

    @property
    def n_log(self) -> int:
        return len(self.log_freqs)

    def frame_times(self, n_frames: int) -> np.ndarray:
        """Centre times (s) of frames of a centred STFT."""
        return np.arange(n_frames) * self.hop / self.sr

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop


def log_freqs(fmin: float, fmax: float, bpo: int) -> np.ndarray:
    n = int(np.floor(bpo * np.log2(fmax / fmin))) + 1
    return fmin * 2.0 ** (np.arange(n) / bpo)


@lru_cache(maxsize=8)
def lin_to_log(grid: Grid) -> np.ndarray:
    """Projection ``(n_log, n_lin)``: triangular weights, never narrower than a linear bin,
    rows summing to 1 (a weighted average of linear magnitudes)."""
    f_lin = grid.lin_freqs
    f_log = grid.log_freqs
    df = grid.sr / grid.n_fft
    ratio = 2.0 ** (1.0 / grid.bins_per_octave)
    W = np.zeros((len(f_log), len(f_lin)), dtype=np.float32)
    for k, f in enumerate(f_log):
        half = max(f * (ratio - 1.0), df)
        w = np.clip(1.0 - np.abs(f_lin - f) / half, 0.0, None)
        s = w.sum()
        if s <= 0:
            j = int(np.argmin(np.abs(f_lin - f)))
            w[j], s = 1.0, 1.0
        W[k] = w / s
    return W


@lru_cache(maxsize=8)
def log_to_lin(grid: Grid, n_lin: int = 0, sr: int = 0) -> np.ndarray:
    """Interpolation ``(n_lin, n_log)`` of a log-frequency mask onto linear bins (held constant
    below fmin and above the top bin). ``n_lin``/``sr`` choose another linear grid (the input's)."""
    sr = sr or grid.sr
    n_lin = n_lin or grid.n_lin
    f_lin = np.arange(n_lin) * (sr / 2.0) / (n_lin - 1)
    lf = np.log2(grid.log_freqs)
    x = np.log2(np.clip(f_lin, grid.fmin, grid.log_freqs[-1]))
    idx = np.clip(np.searchsorted(lf, x) - 1, 0, len(lf) - 2)
    t = np.clip((x - lf[idx]) / (lf[idx + 1] - lf[idx]), 0.0, 1.0)
    P = np.zeros((n_lin, len(lf)), dtype=np.float32)
    P[np.arange(n_lin), idx] = 1.0 - t
    P[np.arange(n_lin), idx + 1] += t
    return P


class STFT:
    """A Hann-windowed STFT (``n_fft`` points, ``hop`` samples) and its inverse, in torch, on one
    device: the single definition of the window, centring and padding used everywhere."""

    def __init__(self, n_fft: int, hop: int, device="cpu"):
        import torch

        self.n_fft, self.hop = int(n_fft), int(hop)
        self.device = torch.device(device)
        self.window = torch.hann_window(self.n_fft, device=self.device)

    @classmethod
    def of_grid(cls, grid: Grid, device="cpu") -> "STFT":
        """The grid's own STFT (at ``grid.sr``)."""
        return cls(grid.n_fft, grid.hop, device)

    @classmethod
    def at_rate(cls, grid: Grid, sr: int, device="cpu") -> "STFT":
        """An STFT at another sample rate ``sr`` spanning the same time per window and per hop
        as the grid's (so 4096 points at 44.1 kHz for a 2048-point grid at 22.05 kHz)."""
        scale = sr / grid.sr
        n_fft = max(int(2 * round(grid.n_fft * scale / 2)), 64)
        hop = max(int(round(grid.hop * scale)), 1)
        return cls(n_fft, hop, device)

    @property
    def n_lin(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, x, center: bool = True):
        """Waves ``(..., n_samples)`` -> complex ``(..., n_lin, n_frames)``. ``center``: frame i
        is centred on sample ``i * hop`` (reflect-padded ends); else frame i starts there."""
        import torch

        return torch.stft(x, self.n_fft, self.hop, window=self.window, center=center, return_complex=True)

    def inverse(self, X, length: int):
        """Complex ``(..., n_lin, n_frames)`` of a centred STFT -> waves ``(..., length)``."""
        import torch

        return torch.istft(X, self.n_fft, self.hop, window=self.window, center=True, length=length)


def log_magnitude(mix: np.ndarray, grid: Grid, chunk_frames: int = 4096) -> np.ndarray:
    """The magnitude of ``mix`` ``(n_samples,)`` on the grid's log-frequency axis, float32
    ``(n_log, n_frames)``, computed in chunks (frame i centred on sample i * hop, zeros beyond
    the ends), so a long song never holds its whole linear spectrogram."""
    import torch

    W = torch.from_numpy(lin_to_log(grid))
    stft = STFT.of_grid(grid)
    n_frames = grid.n_frames(len(mix))
    half = grid.n_fft // 2
    padded = np.pad(mix.astype(np.float32), (half, half + grid.hop))
    out = np.zeros((grid.n_log, n_frames), dtype=np.float32)
    for a in range(0, n_frames, chunk_frames):
        b = min(a + chunk_frames, n_frames)
        seg = torch.from_numpy(np.ascontiguousarray(padded[a * grid.hop:(b - 1) * grid.hop + grid.n_fft]))
        X = stft.forward(seg, center=False)
        out[:, a:b] = (W @ X.abs()[:, : b - a]).numpy()
    return out


def midi_to_hz(pitch, tuning_cents: float = 0.0):
    """MIDI pitch (scalar or array, fractional allowed) -> Hz, A4 = 440 Hz shifted by
    ``tuning_cents``; float64, the shape of ``pitch``."""
    return 440.0 * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - 69.0 + tuning_cents / 100.0) / 12.0)


def harmonic_template(notes: np.ndarray, grid: Grid, n_frames: int, t0: float = 0.0,
                      tuning_cents: float = 0.0, n_harmonics: int = 24, width_semitones: float = 0.35,
                      release: float = 0.08, decay: float = 0.0) -> np.ndarray:
    """Where a part's harmonics lie: float32 ``(n_log, n_frames)`` in [0, 1].

    notes: ``(n_notes, 4)`` start, end, pitch, velocity (seconds; see midi.notes_array);
    frame ``i`` is at time ``t0 + i * hop / sr``. Each active note adds Gaussian bumps
    (``width_semitones`` std) at its harmonics; a note stays ``release`` s past its end.
    ``decay`` > 0 weights harmonic h by ``h ** -decay``.
    """
    T = np.zeros((grid.n_log, n_frames), dtype=np.float32)
    if len(notes) == 0 or n_frames == 0:
        return T
    frame_t = t0 + np.arange(n_frames) * grid.hop / grid.sr
    for s, e, p, _v in notes:
        i0 = int(np.searchsorted(frame_t, s))
        i1 = int(np.searchsorted(frame_t, e + release))
        if i1 <= i0 or i1 <= 0 or i0 >= n_frames:
            continue
        col = pitch_column(grid, int(round(p * 4)), float(tuning_cents), int(n_harmonics), float(width_semitones),
                           float(decay))
        sl = slice(max(i0, 0), min(i1, n_frames))
        np.maximum(T[:, sl], col[:, None], out=T[:, sl])
    return T


@lru_cache(maxsize=4096)
def pitch_column(grid: Grid, quarter_tones: int, tuning_cents: float = 0.0, n_harmonics: int = 24,
                 width_semitones: float = 0.35, decay: float = 0.0) -> np.ndarray:
    """One pitch's harmonic bumps on the grid, float32 ``(n_log,)`` in [0, 1] (pitch given in
    quarter semitones, ``round(4 * midi_pitch)``). Cached: training asks for the same few
    pitches thousands of times. Read-only."""
    lf = np.log2(grid.log_freqs)
    sig = width_semitones / 12.0
    f0 = midi_to_hz(quarter_tones / 4.0, tuning_cents)
    h = np.arange(1, n_harmonics + 1)
    fh = f0 * h
    h, fh = h[fh < grid.sr / 2], fh[fh < grid.sr / 2]
    if not len(fh):
        col = np.zeros(grid.n_log, np.float32)
    else:
        amp = h ** (-decay) if decay > 0 else np.ones_like(fh)
        d = (lf[:, None] - np.log2(fh)[None, :]) / sig
        col = np.max(amp[None, :] * np.exp(-0.5 * d * d), axis=1).astype(np.float32)
    col.setflags(write=False)
    return col


def onset_template(notes: np.ndarray, grid: Grid, n_frames: int, t0: float = 0.0,
                   tau: float = 0.05, tuning_cents: float = 0.0) -> np.ndarray:
    """Like harmonic_template but each note's bumps decay as exp(-(t - start) / tau): where
    attacks are. float32 ``(n_log, n_frames)``."""
    T = np.zeros((grid.n_log, n_frames), dtype=np.float32)
    if len(notes) == 0 or n_frames == 0:
        return T
    frame_t = t0 + np.arange(n_frames) * grid.hop / grid.sr
    for s, e, p, v in notes:
        i0 = int(np.searchsorted(frame_t, s - 0.5 / grid.frame_rate))
        i1 = int(np.searchsorted(frame_t, s + 5 * tau))
        if i1 <= 0 or i0 >= n_frames:
            continue
        one = pitch_column(grid, int(round(p * 4)), float(tuning_cents))
        sl = slice(max(i0, 0), min(i1, n_frames))
        env = np.exp(-np.clip(frame_t[sl] - s, 0, None) / tau).astype(np.float32)
        np.maximum(T[:, sl], one[:, None] * env[None, :], out=T[:, sl])
    return T


def estimate_tuning(y: np.ndarray, sr: int, max_seconds: float = 120.0) -> float:
    """The recording's tuning offset from A=440 in cents (-50..50). A long recording is judged
    on ``max_seconds`` of excerpts spread over it (memory and time stay bounded)."""
    import librosa

    n = int(max_seconds * sr)
    if len(y) > n:
        k = 12
        step = (len(y) - n // k) // (k - 1)
        y = np.concatenate([y[i * step: i * step + n // k] for i in range(k)])
    try:
        dev = float(librosa.estimate_tuning(y=y, sr=sr))  # fraction of a semitone
    except Exception:
        return 0.0
    return float(np.clip(dev * 100.0, -50.0, 50.0)) if np.isfinite(dev) else 0.0


# --------------------------------------------------------------------------- the alignment's front end
# Power in semitone bands, in numpy/scipy (no torch: the alignment runs before any network),
# with a symmetric Hann window: the features bench/ALIGN.md measured.

def semitone_filterbank(sr: int, n_fft: int, tuning_cents: float = 0.0, lo: int = 21,
                        n_bins: int = 100):
    """Sparse ``(n_bins, n_fft // 2 + 1)``: triangular weights summing power into semitone bands
    centred on the equal-tempered pitches lo .. lo + n_bins - 1, shifted by ``tuning_cents``;
    each band at least about two FFT bins wide."""
    import scipy.sparse

    f = np.arange(n_fft // 2 + 1) * sr / n_fft
    df = sr / n_fft
    rows, cols, vals = [], [], []
    for k in range(n_bins):
        fc = float(midi_to_hz(lo + k, tuning_cents))
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


def semitone_power(y: np.ndarray, sr: int, hop: int, n_fft: int, tuning_cents: float = 0.0, lo: int = 21,
                   n_bins: int = 100, chunk_s: float = 60.0) -> np.ndarray:
    """Power in semitone bands (semitone_filterbank) of centred frames every ``hop`` samples of the
    mono ``y`` ``(n_samples,)`` at ``sr``: float32 ``(n_frames, n_bins)``, ``n_frames = 1 + n // hop``,
    computed ``chunk_s`` seconds at a time."""
    import scipy.fft

    fb = semitone_filterbank(sr, n_fft, tuning_cents, lo, n_bins)
    win = np.hanning(n_fft).astype(np.float32)
    n_frames = 1 + len(y) // hop
    E = np.empty((n_frames, n_bins), np.float32)
    pad = np.pad(y, (n_fft // 2, n_fft // 2 + hop))
    per = max(int(chunk_s * sr / hop), 1)
    for f0 in range(0, n_frames, per):
        f1 = min(n_frames, f0 + per)
        seg = pad[f0 * hop: (f1 - 1) * hop + n_fft]
        fr = np.lib.stride_tricks.sliding_window_view(seg, n_fft)[::hop][: f1 - f0]
        Y = scipy.fft.rfft(fr * win, axis=1)
        P = (Y.real ** 2 + Y.imag ** 2).astype(np.float32)
        E[f0:f1] = (fb @ P.T).T
    return E
