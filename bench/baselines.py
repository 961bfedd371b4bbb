"""The benchmark's reference methods, each a function (mixture, score, ...) -> estimate.

- ``oracle_irm``: the ideal ratio mask computed from the true sources (an upper bound for any
  method that masks this STFT).
- ``score_mask``: the simplest score-informed method: a harmonic mask drawn from the aligned
  MIDI (bespoke.spectral.harmonic_template), shared with the other parts where they overlap,
  applied with bespoke.separate.apply_mask (the same output path as bespoke).
- ``score_nmf``: score-informed NMF in the style of Ewert & Mueller (2012), "Using score-informed
  constraints for NMF-based source separation" (ICASSP): harmonic pitch templates per part and
  pitch plus onset templates, activations initialised from the aligned score with a tolerance
  and zero elsewhere (multiplicative updates keep zeros at zero), KL multiplicative updates,
  and a soft-mask (Wiener-like) reconstruction of the target part.

All signals are mono float ``(n_samples,)`` at the song's rate ``sr``; masks are applied to the
same STFT bespoke's apply_mask uses for that rate (2048 points at 22.05 kHz, scaled with sr).
Nothing here is tuned per song; the parameters below are fixed.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

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
    from bespoke.separate import apply_mask
    from bespoke.spectral import harmonic_template

    n_frames = grid.n_frames(int(round(len(mix) * grid.sr / sr)))
    T = harmonic_template(_notes(aligned_pm, target_index), grid, n_frames, tuning_cents=tuning)
    O = harmonic_template(_others(aligned_pm, target_index), grid, n_frames, tuning_cents=tuning)
    m = T / np.maximum(1.0, T + O)
    return apply_mask(mix[None].astype(np.float32), sr, m.astype(np.float32), grid)[0].astype(np.float64)


# --------------------------------------------------------------------------- score-informed NMF

NMF_DEFAULTS = dict(
    n_iter=30,            # KL multiplicative-update iterations (20-80 all within 0.6 dB; fewer a little better)
    n_partials=40,        # harmonics per pitch template (below sr / 2)
    partial_cents=40.0,   # a partial's allowed band: +- this, at least +- 2 bins
    tol_on=0.15,          # s before a note's aligned onset where its activation may be non-zero
    tol_off=0.25,         # s after its aligned end (release, reverb)
    onset_span=(0.1, 0.15),  # s before / after an onset where the onset template may be active
    n_free=8,             # free components for what the MIDI does not cover (only for a single part)
    power=1.0,            # soft mask: (W_t H_t)^p / sum_j (W_j H_j)^p (1 measured a little better than 2)
    domain="log",         # "lin": the output's linear STFT; "log": bespoke's log-frequency grid
)


def _frame_mask(notes: np.ndarray, frame_t: np.ndarray, before: float, after: float, onset_only: bool = False):
    m = np.zeros(len(frame_t), dtype=bool)
    for s, e, _p, _v in notes:
        a = s - before
        b = (s + after) if onset_only else (e + after)
        i0, i1 = np.searchsorted(frame_t, a), np.searchsorted(frame_t, b, side="right")
        m[i0:i1] = True
    return m


def score_nmf(mix: np.ndarray, sr: int, aligned_pm, targets, grid, tuning: float = 0.0,
              seed: int = 0, **kw) -> dict:
    """Score-informed NMF separation; returns {target index: estimate ``(n_samples,)``} for each
    index in ``targets`` (one factorisation serves every part).

    Every part of the aligned MIDI is modelled: for each (part, pitch) a harmonic template
    (non-zero only in bands around the partials, initial amplitude 1/h) and an onset template
    (broadband), with activations non-zero only where the score says the note sounds (within
    ``tol_on`` / ``tol_off``) or starts (``onset_span``). With a single-part MIDI, ``n_free``
    unconstrained components model the rest. KL-divergence multiplicative updates on the
    magnitude STFT, then each target is (W_t H_t)^p / sum_j (W_j H_j)^p times the mixture STFT.
    By default the factorisation runs on bespoke's own log-frequency grid (a magnitude STFT at
    the grid's rate projected to 24 bins per octave, partial bands of +-1 bin) and the mask is
    applied with bespoke.separate.apply_mask, like the score mask and bespoke itself: the same
    mask resolution for all three, and 3-4x faster than ``domain="lin"`` (the output's linear
    STFT, as in the paper), which measured about the same on average (6.8 vs 6.6 dB SI-SDR on
    the 7 targets of lussier, brahms and chorale-mixed with the true alignment).
    """
    from bespoke.spectral import midi_to_hz

    P = dict(NMF_DEFAULTS, **kw)
    log_domain = P["domain"] == "log"
    if log_domain:
        # the magnitude STFT on bespoke's grid, projected onto its log-frequency axis
        from bespoke.audio import resample
        from bespoke.spectral import lin_to_log

        y = resample(mix.astype(np.float32), sr, grid.sr).astype(np.float64)
        Xg = _stft(y, grid.n_fft, grid.hop)
        V = torch.from_numpy(lin_to_log(grid)) @ Xg.abs().to(torch.float32) + 1e-9   # (n_log, N)
        freqs = grid.log_freqs
        frame_t = np.arange(V.shape[1]) * grid.hop / grid.sr
        df = 0.0
        half_bins = np.diff(np.log2(freqs)).mean()  # one log bin, in octaves
    else:
        n_fft, hop = stft_params(sr, grid)
        X = _stft(mix, n_fft, hop)
        V = X.abs().to(torch.float32) + 1e-9            # (F, N)
        freqs = np.arange(V.shape[0]) * sr / n_fft
        frame_t = np.arange(V.shape[1]) * hop / sr
        df = sr / n_fft
    F, N = V.shape

    W_cols: List[np.ndarray] = []
    H_rows: List[np.ndarray] = []
    owner: List[int] = []                           # which part (or -1 free) a component models
    for j, inst in enumerate(aligned_pm.instruments):
        notes = _notes(aligned_pm, j)
        if len(notes) == 0:
            continue
        for p in np.unique(notes[:, 2]).astype(int):
            sel = notes[notes[:, 2] == p]
            f0 = float(midi_to_hz(p, tuning))
            w = np.zeros(F)
            for h in range(1, P["n_partials"] + 1):
                fh = h * f0
                if fh >= min(sr, grid.sr if log_domain else sr) / 2:
                    break
                if log_domain:
                    band = np.abs(np.log2(freqs) - np.log2(fh)) <= max(P["partial_cents"] / 1200.0, 1.01 * half_bins)
                else:
                    half = max(fh * (2 ** (P["partial_cents"] / 1200.0) - 1.0), 2 * df)
                    band = np.abs(freqs - fh) <= half
                w[band] = np.maximum(w[band], 1.0 / h)
            if w.sum() <= 0:
                continue
            W_cols.append(w / w.sum())
            H_rows.append(_frame_mask(sel, frame_t, P["tol_on"], P["tol_off"]).astype(np.float64))
            owner.append(j)
            # onset template: broadband, active only around this pitch's onsets in this part
            W_cols.append(np.full(F, 1.0 / F))
            H_rows.append(_frame_mask(sel, frame_t, P["onset_span"][0], P["onset_span"][1], onset_only=True)
                          .astype(np.float64))
            owner.append(j)
    if len(aligned_pm.instruments) == 1:
        rng = np.random.default_rng(seed)
        for _ in range(P["n_free"]):
            W_cols.append(rng.uniform(0.1, 1.0, F))
            W_cols[-1] /= W_cols[-1].sum()
            H_rows.append(np.ones(N))
            owner.append(-1)
    W = torch.from_numpy(np.stack(W_cols, axis=1)).to(torch.float32)          # (F, K)
    H = torch.from_numpy(np.stack(H_rows, axis=0)).to(torch.float32)          # (K, N)
    # start the activations at the scale of the data
    H *= float(V.sum() / (W @ H).sum().clamp_min(1e-9))
    for _ in range(P["n_iter"]):
        R = V / (W @ H).clamp_min(1e-12)
        H *= (W.T @ R) / W.sum(dim=0)[:, None].clamp_min(1e-12)
        R = V / (W @ H).clamp_min(1e-12)
        W *= (R @ H.T) / H.sum(dim=1)[None, :].clamp_min(1e-12)
        s_ = W.sum(dim=0, keepdim=True).clamp_min(1e-12)
        W /= s_
        H *= s_.T
    own = np.array(owner)
    p = P["power"]
    lam = {}
    for j in sorted(set(owner)):
        k = torch.from_numpy(np.flatnonzero(own == j))
        lam[j] = (W[:, k] @ H[k]) ** p
    den = sum(lam.values()) + 1e-20
    out = {}
    for t in targets:
        mask = (lam[t] / den) if t in lam else torch.zeros(F, N)
        if log_domain:
            from bespoke.separate import apply_mask

            out[t] = apply_mask(mix[None].astype(np.float32), sr, mask.numpy().astype(np.float32), grid)[0] \
                .astype(np.float64)
        else:
            out[t] = _istft(X * mask.to(torch.float64), n_fft, hop, len(mix))
    return out
