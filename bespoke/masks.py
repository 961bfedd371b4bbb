"""Masks: the network's mask predicted on the mixture (on the grid), and masks (pooled) applied to
the input at its own sample rate and channel count, in blocks.

Memory stays bounded: only the log-frequency mask ``(n_log, n_frames)`` of the whole song is
held (about 3 MB per minute); spectra exist one block at a time.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

from .config.stages import SeparateSettings
from .data import Features, score_channels
from .spectral import STFT, Grid, log_to_lin


@torch.no_grad()
def predict_mask(model, mix: np.ndarray, grid: Grid, target_notes: np.ndarray, other_notes: np.ndarray,
                 tuning: float = 0.0, device="cpu", settings: Optional[SeparateSettings] = None,
                 on_progress: Optional[Callable[[float], None]] = None) -> np.ndarray:
    """The target's mask on the grid, float32 ``(n_log, n_frames)``, for a mono mixture
    ``(n_samples,)`` at ``grid.sr``, settings.chunk_s at a time. Chunks overlap by
    settings.context_s so the seams are invisible."""
    cfg = settings or SeparateSettings()
    dev = torch.device(device)
    model.to(dev).eval()
    feat = Features(grid, dev)
    n_frames = grid.n_frames(len(mix))
    out = np.zeros((grid.n_log, n_frames), dtype=np.float32)
    chunk = max(int(cfg.chunk_s * grid.frame_rate), 16)
    ctx = int(cfg.context_s * grid.frame_rate)
    starts = list(range(0, n_frames, chunk))
    for k, a in enumerate(starts):
        b = min(a + chunk, n_frames)
        fa, fb = max(a - ctx, 0), min(b + ctx, n_frames)
        s0, s1 = fa * grid.hop, (fb - 1) * grid.hop
        wave = mix[s0:s1]
        X = feat.stft(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None].to(dev))
        T = X.shape[-1]
        sc = score_channels(target_notes, other_notes, grid, T, fa / grid.frame_rate, tuning)
        sc_t = torch.from_numpy(sc).to(dev)[None]
        x = feat.inputs(X.abs(), sc_t[:, 0], sc_t[:, 1], sc_t[:, 2])
        m = model(x)[0].float().cpu().numpy()
        take = slice(a - fa, a - fa + (b - a))
        out[:, a:b] = m[:, take][:, : b - a]
        if on_progress:
            on_progress((k + 1) / len(starts))
    return out


def apply_mask(audio: np.ndarray, sr: int, mask: np.ndarray, grid: Grid, block_s: float = 30.0,
               power: float = 1.0, on_progress: Optional[Callable[[float], None]] = None) -> np.ndarray:
    """Apply a grid mask ``(n_log, n_frames)`` to ``audio`` ``(n_channels, n_samples)`` at ``sr``.

    The input's STFT spans the same time per frame as the grid's (so 4096 points at 44.1 kHz);
    the mask is interpolated in time and log-frequency onto it, the same mask for every channel.
    Blocks overlap by more than a window, so the result equals one whole-signal pass.
    Returns float32 ``(n_channels, n_samples)``.
    """
    return apply_masks(audio, sr, [(mask, grid, 1.0)], block_s=block_s, power=power, on_progress=on_progress)


def _check_factors(factors: Sequence[Tuple[np.ndarray, Grid, float]], pool: str) -> None:
    """A ValueError unless apply_masks can use ``factors`` and ``pool``: at least one mask, a known
    pool, grids that share the sample rate, window and hop, and masks ``(n_log_k, n_frames)`` that
    fit their grids and share the first mask's frame count."""
    if not factors:
        raise ValueError("apply_masks: no mask given")
    if pool not in ("product", "logit"):
        raise ValueError(f"apply_masks: pool {pool!r} is not product or logit")
    grid = factors[0][1]
    for m, g, _w in factors:
        if (g.sr, g.n_fft, g.hop) != (grid.sr, grid.n_fft, grid.hop):
            raise ValueError("apply_masks: the grids differ in sample rate, window or hop")
        if m.shape != (g.n_log, factors[0][0].shape[1]):
            raise ValueError(f"apply_masks: a mask of shape {m.shape} does not fit its grid "
                             f"({g.n_log} bins, {factors[0][0].shape[1]} frames)")


def _pooled_mask(factors: Sequence[Tuple[np.ndarray, Grid, float]], Ps: Sequence[np.ndarray], frames: np.ndarray,
                 n_mask: int, pool: str, sharpness: float, power: float) -> np.ndarray:
    """The pooled mask ``(n_lin_in, T)`` of apply_masks at the (fractional) grid frames ``frames``
    ``(T,)`` of the input's STFT frames: each mask interpolated in time (per log bin), then onto the
    linear bins with its ``Ps`` matrix ``(n_lin_in, n_log_k)``, then pooled and raised to ``power``."""
    idx = np.clip(frames, 0, n_mask - 1)
    i0 = np.floor(idx).astype(int)
    i1 = np.minimum(i0 + 1, n_mask - 1)
    w = (idx - i0).astype(np.float32)
    m_lin = rest = None
    for (mask, _g, e), P in zip(factors, Ps):
        m = P @ (mask[:, i0] * (1 - w) + mask[:, i1] * w)
        if pool == "logit":
            e = e * sharpness
            r = np.power(np.clip(1.0 - m, 1e-6, None), e)
            rest = r if rest is None else rest * r
        if e != 1.0:
            m = np.power(np.clip(m, 1e-6, None), e)
        m_lin = m if m_lin is None else m_lin * m
    if pool == "logit":
        m_lin = m_lin / np.maximum(m_lin + rest, 1e-12)
    if power != 1.0:
        m_lin = m_lin ** power
    return m_lin


def _shares(others, Po, frames: np.ndarray, n_mask: int, rest: torch.Tensor) -> list:
    """``rest`` ``(n_lin, T)`` shared out among the ``others`` masks (``Po``: each one's log_to_lin)
    in proportion to them (where they are all silent, evenly): one ``(n_lin, T)`` tensor each;
    ``[rest]`` without others."""
    if not others:
        return [rest]
    o = torch.from_numpy(np.stack([
        _pooled_mask([(mk, g, 1.0)], [P], frames, n_mask, "product", 1.0, 1.0)
        for (mk, g), P in zip(others, Po)]).astype(np.float32))
    total = o.sum(0, keepdim=True)
    share = torch.where(total > 1e-6, o / total.clamp_min(1e-6), torch.full_like(o, 1.0 / len(others)))
    return list(share * rest[None])


def apply_masks(audio: np.ndarray, sr: int, factors: Sequence[Tuple[np.ndarray, Grid, float]],
                block_s: float = 30.0, power: float = 1.0, pool: str = "product", sharpness: float = 1.0,
                on_progress: Optional[Callable[[float], None]] = None, spatial: int = 0,
                others: Sequence[Tuple[np.ndarray, Grid]] = ()) -> np.ndarray:
    """Apply several masks pooled into one, each on its own log-frequency grid:
    ``factors`` = [(mask ``(n_log_k, n_frames)``, grid_k, exponent_k)], combined on the input's
    own STFT bins (so a fine grid keeps its detail). The grids must share the sample rate,
    window and hop (they may differ in bins per octave).

    pool "product": the weighted geometric mean ``prod_k m_k ** e_k``: a bin passes only where
    every mask lets it. pool "logit": the masks' weighted vote in log-odds,
    ``sigmoid(sharpness * sum_k e_k * logit(m_k))`` (``G / (G + R)`` with ``G = prod m_k ** (s e_k)``,
    ``R = prod (1 - m_k) ** (s e_k)``): the product of experts on both sides, target and rest, so
    a confident mask can outvote an unsure one. ``spatial`` > 0 with two or more channels: the
    pooled mask and its complement become the powers of a multichannel Wiener filter whose spatial
    covariances are fitted in that many EM iterations (bespoke.spatial; 0: the same mask on every
    channel). ``others``: masks
    ``(n_log_k, n_frames)`` of the other parts on their grids (the NMF's): with them the rest is
    not one source but several, each the others' share of the complement, each with its own
    place in the image. Returns float32 ``(n_channels, n_samples)``; see apply_mask."""
    return _apply([dict(factors=factors, pool=pool, sharpness=sharpness)], audio, sr, block_s, power,
                  False, on_progress, spatial, others)[0]


def apply_mask_set(audio: np.ndarray, sr: int, specs: Sequence[dict], block_s: float = 30.0, power: float = 1.0,
                   on_progress: Optional[Callable[[float], None]] = None, spatial: int = 0) -> list:
    """Several stems that form a set: ``specs`` holds one part's apply_masks arguments each
    (``factors``, and ``pool``, ``sharpness`` when not the defaults); each part's pooled mask is
    made as apply_masks makes it, then, in every bin of the input's STFT where they add up to more
    than 1, all of them are divided by their sum (a Wiener-style consistent decomposition: the
    stems never share out more than the mixture holds, and what no part takes, ``1 - sum``, is left
    for the residual). ``spatial``: as apply_masks, each part and the residual a source of the
    multichannel Wiener filter. Returns one float32 ``(n_channels, n_samples)`` stem per spec; the
    mixture less their sum is the residual."""
    return _apply(specs, audio, sr, block_s, power, True, on_progress, spatial, ())


def _apply(specs: Sequence[dict], audio: np.ndarray, sr: int, block_s: float, power: float, normalise: bool,
           on_progress: Optional[Callable[[float], None]], spatial: int = 0,
           others: Sequence[Tuple[np.ndarray, Grid]] = ()) -> list:
    """apply_masks (one spec) or apply_mask_set (``normalise``): one STFT of each block for every spec."""
    specs = [{"pool": "product", "sharpness": 1.0, **sp} for sp in specs]
    for sp in specs:
        _check_factors(sp["factors"], sp["pool"])
    grid = specs[0]["factors"][0][1]
    C, n = audio.shape
    stft = STFT.at_rate(grid, sr)
    n_fft, hop = stft.n_fft, stft.hop
    Ps = [[log_to_lin(g, stft.n_lin, sr) for _m, g, _w in sp["factors"]] for sp in specs]  # (n_lin_in, n_log_k)
    Po = [log_to_lin(g, stft.n_lin, sr) for _m, g in others] if spatial > 0 and C > 1 else []
    n_mask = specs[0]["factors"][0][0].shape[1]
    outs = [np.zeros((C, n), dtype=np.float32) for _ in specs]
    block = max(int(block_s * sr), n_fft * 4)
    ctx = 2 * n_fft
    starts = list(range(0, n, block))
    for k, a in enumerate(starts):
        b = min(a + block, n)
        s0, s1 = max(a - ctx, 0), min(b + ctx, n)
        seg = torch.from_numpy(np.ascontiguousarray(audio[:, s0:s1], dtype=np.float32))
        X = stft.forward(seg)  # (C, n_lin_in, T)
        frames = (s0 + np.arange(X.shape[-1]) * hop) / sr * grid.frame_rate
        m_lins = [_pooled_mask(sp["factors"], P, frames, n_mask, sp["pool"], sp["sharpness"], power)
                  for sp, P in zip(specs, Ps)]
        if normalise:
            total = np.maximum(np.sum(m_lins, axis=0), 1.0)
            m_lins = [m / total for m in m_lins]
        ms = [torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32)) for m in m_lins]
        if spatial > 0 and C > 1:
            from .spatial import wiener

            left = (1.0 - torch.stack(ms).sum(0)).clamp_min(0.0)
            rest = [left] if normalise else _shares(others, Po, frames, n_mask, left)
            Ys = wiener(X, torch.stack(ms + rest), iterations=int(spatial), keep=len(ms))
        else:
            Ys = [X * m[None] for m in ms]
        for out, Y in zip(outs, Ys):
            y = stft.inverse(Y, s1 - s0).numpy()
            out[:, a:b] = y[:, a - s0:a - s0 + (b - a)]
        if on_progress:
            on_progress((k + 1) / len(starts))
    return outs
