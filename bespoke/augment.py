"""Pure augmentation transforms. Every random choice comes from an explicit
``numpy.random.Generator``; nothing here keeps state.

Waveforms are float32 ``(n_samples,)``; note arrays are ``(n_notes, 4)`` (start, end, pitch, velocity).
"""
from __future__ import annotations

import numpy as np


def db_to_gain(db):
    return 10.0 ** (np.asarray(db) / 20.0)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def segment(x: np.ndarray, start: int, length: int) -> np.ndarray:
    """``x[start:start+length]``, zero-padded where it runs past either end."""
    out = np.zeros(length, dtype=np.float32)
    a, b = max(start, 0), min(start + length, len(x))
    if b > a:
        out[a - start:b - start] = x[a:b]
    return out


def pitch_shift_resample(x: np.ndarray, semitones: float, length: int) -> np.ndarray:
    """Shift pitch by resampling (tempo changes with it); returns ``length`` samples.
    Cheap, and for a background the changed speed does no harm."""
    if abs(semitones) < 1e-6:
        return segment(x, 0, length)
    import soxr

    ratio = 2.0 ** (semitones / 12.0)
    # play `ratio` times faster: resample from sr*ratio to sr
    y = soxr.resample(x.astype(np.float32), 1000.0 * ratio, 1000.0, quality="LQ")
    return segment(y.astype(np.float32), 0, length)


def shift_notes(notes: np.ndarray, dt: float = 0.0, semitones: float = 0.0, time_scale: float = 1.0) -> np.ndarray:
    """Move notes in time (``t -> (t + dt) * time_scale``) and pitch."""
    out = notes.copy()
    out[:, 0:2] = (out[:, 0:2] + dt) * time_scale
    out[:, 2] = out[:, 2] + semitones
    return out


def jitter_notes(notes: np.ndarray, rng: np.random.Generator, onset_ms: float = 20.0,
                 offset_ms: float = 60.0, global_ms: float = 25.0) -> np.ndarray:
    """Score noise, so the network tolerates alignment error: a common shift (+-global_ms),
    and per-note onset/offset jitter (Gaussian, std in ms)."""
    if len(notes) == 0:
        return notes
    out = notes.copy()
    g = rng.uniform(-global_ms, global_ms) / 1000.0
    out[:, 0] += g + rng.normal(0.0, onset_ms / 1000.0, len(out))
    out[:, 1] += g + rng.normal(0.0, offset_ms / 1000.0, len(out))
    out[:, 1] = np.maximum(out[:, 1], out[:, 0] + 0.03)
    return out


def notes_in(notes: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Notes sounding in [t0, t1), with times relative to t0."""
    if len(notes) == 0:
        return notes
    keep = (notes[:, 1] > t0) & (notes[:, 0] < t1)
    out = notes[keep].copy()
    out[:, 0:2] -= t0
    return out


def smooth_eq(n_bins: int, rng: np.random.Generator, max_db: float = 6.0, n_knots: int = 6) -> np.ndarray:
    """A random smooth gain curve over ``n_bins`` linear frequency bins (log-spaced knots),
    as linear gains ``(n_bins,)``."""
    knots_x = np.linspace(0.0, 1.0, n_knots)
    knots_y = rng.uniform(-max_db, max_db, n_knots)
    x = np.log1p(np.arange(n_bins) / 4.0)
    x /= x[-1]
    return db_to_gain(np.interp(x, knots_x, knots_y)).astype(np.float32)


def activity(notes: np.ndarray, n: int, sr: float, margin: float = 0.15) -> np.ndarray:
    """Boolean ``(n,)``: where any note sounds (with ``margin`` s around it), at rate ``sr``."""
    act = np.zeros(n, dtype=bool)
    for s, e, _p, _v in notes:
        a = max(int((s - margin) * sr), 0)
        b = min(int((e + margin) * sr) + 1, n)
        if b > a:
            act[a:b] = True
    return act
