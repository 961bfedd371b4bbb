"""The benchmark's reference methods, each a function (mixture, score, ...) -> estimate.

- ``oracle_irm``: the ideal ratio mask computed from the true sources (an upper bound for any
  method that masks this STFT).
- ``score_mask``: the simplest score-informed method: a harmonic mask drawn from the aligned
  MIDI (bespoke.spectral.harmonic_template), shared with the other parts where they overlap,
  applied with bespoke.masks.apply_mask (the same output path as bespoke).
- ``score_nmf``: score-informed NMF in the style of Ewert & Mueller (2012), "Using score-informed
  constraints for NMF-based source separation" (ICASSP): harmonic pitch templates per part and
  pitch plus onset templates, activations initialised from the aligned score with a tolerance
  and zero elsewhere (multiplicative updates keep zeros at zero), KL multiplicative updates,
  and a soft-mask (Wiener-like) reconstruction of the target part. The implementation is
  bespoke.nmf, which bespoke also runs as its first pass.

All signals are mono float ``(n_samples,)`` at the song's rate ``sr``; masks are applied to the
same STFT bespoke's apply_mask uses for that rate (2048 points at 22.05 kHz, scaled with sr).
Nothing here is tuned per song; the parameters below are fixed.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch


def stft_params(sr: int, grid) -> Tuple[int, int]:
    """The (n_fft, hop) apply_mask uses at ``sr``: the grid's window and hop in seconds."""
    scale = sr / grid.sr
    return max(int(2 * round(grid.n_fft * scale / 2)), 64), max(int(round(grid.hop * scale)), 1)


def _stft(x: np.ndarray, n_fft: int, hop: int) -> torch.Tensor:
    w = torch.hann_window(n_fft, dtype=torch.float64)
    return torch.stft(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)), n_fft, hop, window=w,
                      center=True, return_complex=True)


def _istft(X: torch.Tensor, n_fft: int, hop: int, length: int) -> np.ndarray:
    w = torch.hann_window(n_fft, dtype=torch.float64)
    return torch.istft(X, n_fft, hop, window=w, center=True, length=length).numpy()


def oracle_irm(mix: np.ndarray, target: np.ndarray, sr: int, grid, power: float = 2.0) -> np.ndarray:
    """Ideal ratio mask |S|^p / (|S|^p + |N|^p) with N = mix - target, on the output STFT.
    power 2 is the ideal Wiener-like mask (the larger of the two usual oracles here)."""
    n_fft, hop = stft_params(sr, grid)
    X = _stft(mix, n_fft, hop)
    S = _stft(target, n_fft, hop)
    N = X - S
    a, b = S.abs() ** power, N.abs() ** power
    m = a / (a + b + 1e-20)
    return _istft(X * m, n_fft, hop, len(mix))


def _notes(pm, idx) -> np.ndarray:
    from bespoke.midi import notes_array

    return notes_array(pm.instruments[idx])


def _others(pm, idx) -> np.ndarray:
    from bespoke.midi import notes_array

    arrs = [notes_array(inst) for i, inst in enumerate(pm.instruments) if i != idx]
    return np.concatenate(arrs) if arrs else np.zeros((0, 4))


def score_mask(mix: np.ndarray, sr: int, aligned_pm, target_index: int, grid, tuning: float = 0.0) -> np.ndarray:
    """The target's harmonic template from the aligned MIDI as a mask: m = T / max(1, T + O),
    with T the target's template and O every other part's (both in [0, 1]) on the grid;
    so the target's harmonics pass, a bin shared with another part is split, the rest is cut."""
    from bespoke.masks import apply_mask
    from bespoke.spectral import harmonic_template

    n_frames = grid.n_frames(int(round(len(mix) * grid.sr / sr)))
    T = harmonic_template(_notes(aligned_pm, target_index), grid, n_frames, tuning_cents=tuning)
    O = harmonic_template(_others(aligned_pm, target_index), grid, n_frames, tuning_cents=tuning)
    m = T / np.maximum(1.0, T + O)
    return apply_mask(mix[None].astype(np.float32), sr, m.astype(np.float32), grid)[0].astype(np.float64)


# --------------------------------------------------------------------------- score-informed NMF


def score_nmf(mix: np.ndarray, sr: int, aligned_pm, targets, grid, tuning: float = 0.0,
              seed: int = 0, return_masks: bool = False, **kw) -> dict:
    """Score-informed NMF separation (bespoke.nmf: Ewert & Mueller 2012 style, on bespoke's
    log-frequency grid); returns {target index: estimate ``(n_samples,)``} for each index in
    ``targets`` (one factorisation serves every part), and with ``return_masks`` also
    ``"masks"``: {index: grid mask}. ``kw`` overrides bespoke.nmf.NMFSettings fields.

    The classic method: broadband onset templates for every part, as Ewert & Mueller have them
    (``onsets="all"``), templates starting at 1/h. bespoke's own first pass is the same code with
    onset templates for struck and plucked parts only, wider bands, and templates starting from
    each instrument's rendered notes; the ablation in bench/RESULTS.md shows what that and the
    network add. Every part of the aligned MIDI is modelled; with a single-part MIDI, free
    components model the rest. The masks are applied with bespoke.masks.apply_mask, like
    the score mask and bespoke itself.
    """
    from bespoke.audio import resample
    from bespoke.data import log_magnitude
    from bespoke.masks import apply_mask
    from bespoke.midi import notes_array
    from bespoke.nmf import NMFSettings
    from bespoke.nmf import score_nmf as _nmf

    # as published: one template per pitch, 30 iterations, activations from 0.15 s before each onset
    # (bespoke's own first pass has moved on from these defaults)
    cfg = NMFSettings(**{"onsets": "all", "partial_cents": 40.0, "shapes": (1.0,), "n_iter": 30, "tol_on": 0.15,
                         **kw})
    y = resample(mix.astype(np.float32), sr, grid.sr)
    V = torch.from_numpy(log_magnitude(y, grid))
    parts = [notes_array(inst) for inst in aligned_pm.instruments]
    targets = list(targets)
    res = _nmf(V, parts, grid, tuning, cfg, seed=seed, keep=targets)
    out = {}
    for t, m in zip(targets, res.masks):
        out[t] = apply_mask(mix[None].astype(np.float32), sr, m, grid)[0].astype(np.float64)
    if return_masks:
        out["masks"] = dict(zip(targets, res.masks))
    return out
