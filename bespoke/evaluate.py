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

    Both ``(n, 4)`` arrays (start, end, pitch, velocity) hold the same notes (a monotonic warp
    keeps every note, and the order of the notes of each pitch). Notes are matched pitch by
    pitch, in order of onset, so chords whose notes swap order (asynchrony) still match.
    Returns ``(n,)`` errors in the order of the true notes' onsets.
    """
    a = np.asarray(aligned_notes, dtype=np.float64).reshape(-1, 4)
    t = np.asarray(true_notes, dtype=np.float64).reshape(-1, 4)
    if len(a) != len(t):
        raise ValueError(f"note counts differ ({len(a)} vs {len(t)}): not two versions of one part")
    err = np.zeros(len(t))
    for p in np.unique(t[:, 2]):
        ia = np.flatnonzero(a[:, 2] == p)
        it = np.flatnonzero(t[:, 2] == p)
        if len(ia) != len(it):
            raise ValueError(f"pitch {int(p)}: {len(ia)} vs {len(it)} notes: not two versions of one part")
        ia = ia[np.argsort(a[ia, 0], kind="stable")]
        it = it[np.argsort(t[it, 0], kind="stable")]
        err[it] = np.abs(a[ia, 0] - t[it, 0])
    return err[np.argsort(t[:, 0], kind="stable")]


def alignment_summary(errors: np.ndarray) -> dict:
    """Median and mean error (ms) and the share of notes within 50 and 100 ms."""
    e = np.asarray(errors, dtype=np.float64)
    if e.size == 0:
        return {"median_ms": float("nan"), "within_50ms": float("nan"), "within_100ms": float("nan"), "n": 0}
    return {"median_ms": float(np.median(e) * 1000.0), "mean_ms": float(np.mean(e) * 1000.0),
            "within_50ms": float(np.mean(e <= 0.05)), "within_100ms": float(np.mean(e <= 0.1)),
            "n": int(e.size)}


def random_warp(duration: float, rng: np.random.Generator, max_dev: float = 0.2,
                offset: Optional[float] = None, n_knots: Optional[int] = None,
                first_onset: Optional[float] = None):
    """A smooth random tempo warp of a score of ``duration`` s: returns a TimeMap that maps the
    true (performed) time to a de-aligned score time. Local tempo varies within +-max_dev.

    ``offset``: how far the start moves (s); default 1-2 s, either sign. With ``first_onset``
    (the earliest note, true time) a negative offset moves the notes earlier but never puts the
    first note before 0.1 s. Without it the map is shifted to stay >= 0 everywhere, so a
    negative offset then leaves the start where it was.
    """
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
    if first_onset is not None:
        lowest = float(np.interp(first_onset, t, warped))
        if lowest < 0.1:
            warped += 0.1 - lowest
    else:
        warped -= min(0.0, warped.min())
    return TimeMap(t, warped)


def score_files(estimate, reference, mix=None) -> dict:
    """``scores`` of audio files (the same sample rate; an InputError names the one that differs)."""
    from .audio import load_audio
    from .errors import InputError

    est = load_audio(estimate, check_silence=False)
    ref = load_audio(reference)
    m = load_audio(mix) if mix else None
    for other, name in ((est, estimate), (m, mix)):
        if other is not None and other.sr != ref.sr:
            raise InputError(f"{name}: sample rate {other.sr} Hz differs from the reference's {ref.sr} Hz")
    return scores(est.samples, ref.samples, m.samples if m is not None else None)


def scores_text(s: dict) -> str:
    """'bespoke eval''s table of ``scores``."""
    lines = [f"SI-SDR {s['si_sdr']:7.2f} dB    SDR {s['sdr']:7.2f} dB"]
    if "mix_si_sdr" in s:
        lines.append(f"mixture SI-SDR {s['mix_si_sdr']:7.2f} dB    SDR {s['mix_sdr']:7.2f} dB")
        lines.append(f"improvement SI-SDR {s['si_sdr_improvement']:+7.2f} dB    SDR {s['sdr_improvement']:+7.2f} dB")
    return "\n".join(lines)
