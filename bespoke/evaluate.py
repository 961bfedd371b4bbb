"""Quality measures: SI-SDR and SDR of estimates, alignment onset errors, and de-alignment
(random tempo warps) for testing alignment.

Signals are mono ``(n_samples,)`` or ``(n_channels, n_samples)``; multichannel figures are
computed on the channel average.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

EPS = 1e-10


def _pair(est, ref):
    est = np.asarray(est, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if est.ndim == 2:
        est = est.mean(axis=0)
    if ref.ndim == 2:
        ref = ref.mean(axis=0)
    n = min(len(est), len(ref))
    return est[:n], ref[:n]


def si_sdr(est, ref) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019): project est on ref,
    10 log10(|a ref|^2 / |a ref - est|^2). Zero-mean is not imposed."""
    est, ref = _pair(est, ref)
    a = np.dot(est, ref) / (np.dot(ref, ref) + EPS)
    target = a * ref
    noise = est - target
    return float(10.0 * np.log10((np.dot(target, target) + EPS) / (np.dot(noise, noise) + EPS)))


def sdr(est, ref) -> float:
    """Plain SDR in dB: 10 log10(|ref|^2 / |ref - est|^2) (no scaling, no filter)."""
    est, ref = _pair(est, ref)
    return float(10.0 * np.log10((np.dot(ref, ref) + EPS) / (np.dot(ref - est, ref - est) + EPS)))


def scores(est, ref, mix=None) -> dict:
    """SI-SDR and SDR of ``est`` against ``ref``; with ``mix``, also the mixture's own scores
    and the improvements over it."""
    out = {"si_sdr": si_sdr(est, ref), "sdr": sdr(est, ref)}
    if mix is not None:
        out["mix_si_sdr"] = si_sdr(mix, ref)
        out["mix_sdr"] = sdr(mix, ref)
        out["si_sdr_improvement"] = out["si_sdr"] - out["mix_si_sdr"]
        out["sdr_improvement"] = out["sdr"] - out["mix_sdr"]
    return out


def onset_errors(aligned_notes: np.ndarray, true_notes: np.ndarray) -> np.ndarray:
    """Absolute onset errors (s) between the same notes in two versions of a part.

    Both ``(n, 4)`` arrays (start, end, pitch, velocity) hold the same notes (warping keeps
    every note, in order of (start, pitch)); notes are matched by order after sorting.
    """
    a = aligned_notes[np.lexsort((aligned_notes[:, 2], aligned_notes[:, 0]))]
    t = true_notes[np.lexsort((true_notes[:, 2], true_notes[:, 0]))]
    if len(a) != len(t):
        raise ValueError(f"note counts differ ({len(a)} vs {len(t)}): not two versions of one part")
    return np.abs(a[:, 0] - t[:, 0])


def alignment_summary(errors: np.ndarray) -> dict:
    e = np.asarray(errors, dtype=np.float64)
    if e.size == 0:
        return {"median_ms": float("nan"), "within_50ms": float("nan"), "within_100ms": float("nan"), "n": 0}
    return {"median_ms": float(np.median(e) * 1000.0), "mean_ms": float(np.mean(e) * 1000.0),
            "within_50ms": float(np.mean(e <= 0.05)), "within_100ms": float(np.mean(e <= 0.1)),
            "n": int(e.size)}


def random_warp(duration: float, rng: np.random.Generator, max_dev: float = 0.2,
                offset: Optional[float] = None, n_knots: Optional[int] = None):
    """A smooth random tempo warp of a score of ``duration`` s: returns a TimeMap that maps the
    true (performed) time to a de-aligned score time. Local tempo varies within +-max_dev;
    the start moves by ``offset`` s (default: 1-2 s, either sign, kept >= 0)."""
    from .align import TimeMap

    n_knots = n_knots or max(4, int(duration / 8.0))
    t = np.linspace(0.0, duration + 1.0, 512)
    knots = np.linspace(0.0, duration + 1.0, n_knots)
    rates = 1.0 + rng.uniform(-max_dev, max_dev, size=n_knots)
    rate = np.interp(t, knots, rates)
    # smooth the piecewise-linear tempo curve a little more
    k = np.hanning(31)
    k /= k.sum()
    rate = np.convolve(np.pad(rate, 15, mode="edge"), k, mode="valid")
    warped = np.concatenate([[0.0], np.cumsum(rate[1:] * np.diff(t))])
    if offset is None:
        offset = float(rng.uniform(1.0, 2.0) * rng.choice([-1.0, 1.0]))
    warped = warped + offset
    warped -= min(0.0, warped.min())
    return TimeMap(t, warped)
