"""Score-informed NMF (Ewert & Mueller 2012 style) on the log-frequency grid.

For every (part, pitch) of the aligned score: a harmonic template (non-zero only in bands
around the partials, initial amplitude 1/h, or the partials' amplitudes in a rendered note of the
part's instrument when ``timbres`` are given; for sustained parts a few of them, brighter and
darker, see ``NMFSettings.shapes``) and, for struck and plucked parts, a broadband
onset template; their activations
may be non-zero only where the score says the note sounds (within a tolerance) or starts.
With a single-part MIDI, a few free components model everything else. KL-divergence
multiplicative updates learn the templates (the song's real timbres) and activations; each
part's soft mask is its share of the model, ``(W_j H_j)^p / sum_k (W_k H_k)^p``.

bespoke uses it as its first pass: its estimates of the target and of the rest become
training material for the network (stages.nmf, stages.synth), and the benchmark reports it alone as the
classic baseline. Memory stays bounded: the activations are updated in time chunks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from .config.nmf import NMFSettings
from .spectral import Grid, midi_to_hz


@dataclass
class NMFResult:
    """masks: float32 ``(n_kept, n_log, n_frames)``: by default one soft mask per part of the
    score and last the free components' (zeros when there are none); they sum to 1 where the
    model has energy. owner: for each component, its part index (-1: free)."""

    masks: np.ndarray
    W: np.ndarray
    owner: np.ndarray


def _frame_mask(notes: np.ndarray, frame_t: np.ndarray, before: float, after: float, onset_only: bool = False):
    m = np.zeros(len(frame_t), dtype=bool)
    for s, e, _p, _v in notes:
        a = s - before
        b = (s + after) if onset_only else (e + after)
        i0, i1 = np.searchsorted(frame_t, a), np.searchsorted(frame_t, b, side="right")
        m[i0:i1] = True
    return m


def _partial_amplitudes(bands: Sequence[np.ndarray], spectrum: Optional[np.ndarray], floor: float) -> np.ndarray:
    """Initial amplitude of each partial: 1/h, or the largest value of ``spectrum`` ``(n_log,)`` in
    the partial's band relative to the loudest partial, at least ``floor``."""
    h = np.arange(1, len(bands) + 1, dtype=np.float64)
    if spectrum is None or not len(bands):
        return 1.0 / h
    a = np.array([float(spectrum[b].max()) if b.any() else 0.0 for b in bands])
    if not np.isfinite(a).all() or a.max() <= 0:
        return 1.0 / h
    return np.maximum(a / a.max(), floor)


def _harmonic_template(p: int, tuning: float, grid: Grid, lf: np.ndarray, cfg: NMFSettings,
                       spectrum: Optional[np.ndarray]) -> np.ndarray:
    """Unnormalised harmonic template ``(n_log,)`` of MIDI pitch ``p``: each partial below Nyquist
    fills its band (``lf``: log2 of the grid's frequencies) with its initial amplitude."""
    one_bin = 1.0 / grid.bins_per_octave
    f0 = float(midi_to_hz(p, tuning))
    bands = []
    for h in range(1, cfg.n_partials + 1):
        fh = h * f0
        if fh >= grid.sr / 2:
            break
        bands.append(np.abs(lf - np.log2(fh)) <= max(cfg.partial_cents / 1200.0, 1.01 * one_bin))
    amps = _partial_amplitudes(bands, spectrum, cfg.timbre_floor)
    w = np.zeros(len(lf))
    for band, a in zip(bands, amps):
        w[band] = np.maximum(w[band], a)
    return w


def _part_columns(j: int, notes: np.ndarray, grid: Grid, lf: np.ndarray, frame_t: np.ndarray, tuning: float,
                  cfg: NMFSettings, percussive: bool, timbre: Optional[Mapping[int, np.ndarray]]) -> List[tuple]:
    """The columns of part ``j`` (``notes`` ``(n, 4)``, not empty): for each pitch, its harmonic
    templates (one per shape) and its onset template when it has one, as (template ``(n_log,)``,
    activation mask ``(n_frames,)``, owner, key) tuples."""
    F = len(lf)
    cols: List[tuple] = []
    for p in np.unique(np.round(notes[:, 2])).astype(int):
        sel = notes[np.round(notes[:, 2]) == p]
        spectrum = timbre.get(int(p)) if timbre is not None else None
        w = _harmonic_template(p, tuning, grid, lf, cfg, spectrum)
        if w.sum() <= 0:
            continue
        active = _frame_mask(sel, frame_t, cfg.tol_on, cfg.tol_off)
        for k, g in enumerate((cfg.shapes[:1] if percussive else cfg.shapes) or (1.0,)):
            wg = w ** float(g)
            cols.append((wg / wg.sum(), active, j, (j, int(p), k)))
        if cfg.onsets == "all" or (cfg.onsets == "percussive" and percussive):
            onset = _frame_mask(sel, frame_t, cfg.onset_span[0], cfg.onset_span[1], onset_only=True)
            cols.append((np.full(F, 1.0 / F), onset, j, (j, int(p), "onset")))
    return cols


def _free_columns(F: int, n_frames: int, cfg: NMFSettings, seed: int, first: int) -> List[tuple]:
    """``cfg.n_free`` random templates active everywhere, as in _part_columns (owner -1; keys
    numbered from ``first``, the number of columns before them)."""
    rng = np.random.default_rng(seed)
    cols: List[tuple] = []
    for _ in range(cfg.n_free):
        w = rng.uniform(0.1, 1.0, F)
        cols.append((w / w.sum(), np.ones(n_frames, dtype=bool), -1, (-1, first + len(cols), "free")))
    return cols


def build_model(parts_notes: Sequence[np.ndarray], grid: Grid, n_frames: int, tuning: float,
                cfg: NMFSettings, seed: int = 0, percussive: Optional[Sequence[bool]] = None,
                timbres: Optional[Sequence[Optional[Mapping[int, np.ndarray]]]] = None, with_keys: bool = False):
    """Initial templates ``(n_log, K)``, activation masks ``(K, n_frames)`` and owners ``(K,)``
    (with ``with_keys`` also each column's (part, pitch, kind) key, for tying). ``timbres``: see
    score_nmf."""
    if cfg.onsets not in ("percussive", "all", "none"):
        raise ValueError(f"NMFSettings.onsets: {cfg.onsets!r} is not percussive, all or none")
    if percussive is None:
        percussive = [True] * len(parts_notes)
    lf = np.log2(grid.log_freqs)
    frame_t = np.arange(n_frames) / grid.frame_rate
    cols: List[tuple] = []  # (template, activation mask, owner, key)
    for j, notes in enumerate(parts_notes):
        if len(notes) == 0:
            continue
        timbre = timbres[j] if timbres is not None else None
        cols += _part_columns(j, notes, grid, lf, frame_t, tuning, cfg, percussive[j], timbre)
    if len([n for n in parts_notes if len(n)]) <= 1:
        cols += _free_columns(len(lf), n_frames, cfg, seed, len(cols))
    W = np.stack([c[0] for c in cols], axis=1).astype(np.float32)
    Hmask = np.stack([c[1] for c in cols], axis=0)
    owner = np.array([c[2] for c in cols])
    if with_keys:
        return W, Hmask, owner, [c[3] for c in cols]
    return W, Hmask, owner


def _tie_groups(keys: Sequence[tuple], tie: Optional[Sequence[Optional[int]]]) -> Optional[torch.Tensor]:
    """For each column, the index of its group of tied columns: the same pitch and kind in parts
    with the same ``tie`` label (None: a part of its own). None when nothing is tied."""
    if tie is None:
        return None
    ids: dict = {}
    label = lambda j: tie[j] if j >= 0 and tie[j] is not None else ("part", j)  # noqa: E731
    gid = [ids.setdefault((label(j), p, kind), len(ids)) for j, p, kind in keys]  # free ones: p is unique
    return torch.tensor(gid) if len(ids) < len(keys) else None


def _group_sum(x: torch.Tensor, gid: Optional[torch.Tensor]) -> torch.Tensor:
    """Sum ``x`` ``(K, ...)`` over each tied group, back on every member's row."""
    if gid is None:
        return x
    out = torch.zeros((int(gid.max()) + 1,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device).index_add_(0, gid, x)
    return out[gid]


def _init_factors(V: torch.Tensor, parts_notes: Sequence[np.ndarray], grid: Grid, tuning: float,
                  cfg: NMFSettings, seed: int, percussive, timbres, tie, dev: torch.device):
    """The starting point of score_nmf for ``V`` ``(n_log, n_frames)``: templates W ``(n_log, K)``
    (tied columns at their group's mean), activations H ``(K, n_frames)`` (1 where allowed, 0
    elsewhere, before scaling), the activation mask ``(K, n_frames)``, owners ``(K,)`` and the tie
    groups ``(K,)`` (None when nothing is tied)."""
    W_np, Hmask, owner, keys = build_model(parts_notes, grid, V.shape[1], tuning, cfg, seed, percussive, timbres,
                                           with_keys=True)
    gid = _tie_groups(keys, tie)
    gid = None if gid is None else gid.to(dev)
    W = torch.from_numpy(W_np).to(dev)
    if gid is not None:  # tied columns start as their group's mean
        W = (_group_sum(W.T, gid) / _group_sum(torch.ones(len(gid), 1, device=dev), gid)).T.contiguous()
    H = torch.from_numpy(Hmask.astype(np.float32)).to(dev)
    return W, H, Hmask, owner, gid


def _active_blocks(Hmask: np.ndarray, step: int, dev: torch.device) -> list:
    """Time blocks of ``step`` frames: (first frame, end frame, the components active in it), for
    the blocks where any is."""
    N = Hmask.shape[1]
    blocks = []
    for a in range(0, N, step):
        b = min(a + step, N)
        k = np.flatnonzero(Hmask[:, a:b].any(axis=1))
        if len(k):
            blocks.append((a, b, torch.from_numpy(k).to(dev)))
    return blocks


def _kl_updates(V: torch.Tensor, W: torch.Tensor, H: torch.Tensor, blocks: list, gid: Optional[torch.Tensor],
                n_iter: int) -> None:
    """``n_iter`` KL multiplicative updates of W ``(n_log, K)`` and H ``(K, n_frames)``, in place,
    block by block (tied columns: numerators and denominators summed over the group); W's
    columns end normalised to sum 1."""
    F, K = W.shape
    dev = W.device
    for _ in range(n_iter):
        wsum = W.sum(dim=0)[:, None].clamp_min(1e-12)
        numW = torch.zeros(F, K, device=dev)
        hsum = torch.zeros(K, device=dev)
        for a, b, k in blocks:
            Wb, Hb, Vb = W[:, k], H[k, a:b], V[:, a:b]
            R = Vb / (Wb @ Hb).clamp_min(1e-12)
            Hb *= (Wb.T @ R) / wsum[k]
            R = Vb / (Wb @ Hb).clamp_min(1e-12)
            numW[:, k] += R @ Hb.T
            hsum[k] += Hb.sum(dim=1)
            H[k, a:b] = Hb
        numW, hsum = _group_sum(numW.T, gid).T, _group_sum(hsum, gid)
        W *= numW / hsum[None, :].clamp_min(1e-12)
        s = W.sum(dim=0, keepdim=True).clamp_min(1e-12)
        W /= s
        H *= s.T


def _soft_masks(W: torch.Tensor, H: torch.Tensor, owner: np.ndarray, n_parts: int, keep: Optional[Sequence[int]],
                cfg: NMFSettings) -> np.ndarray:
    """Each kept group's share of the model, ``(W_j H_j)^p / sum_k (W_k H_k)^p``: float32
    ``(len(keep), n_log, n_frames)``, ``cfg.chunk_frames`` frames at a time (groups: the parts, then
    -1, the free components)."""
    F, N = W.shape[0], H.shape[1]
    dev = W.device
    chunks = [(a, min(a + cfg.chunk_frames, N)) for a in range(0, N, cfg.chunk_frames)]
    groups = list(range(n_parts)) + [-1]
    keep = list(groups) if keep is None else list(keep)
    masks = np.zeros((len(keep), F, N), dtype=np.float32)
    for a, b in chunks:
        lam = []
        for j in groups:
            k = torch.from_numpy(np.flatnonzero(owner == j)).to(dev)
            lam.append((W[:, k] @ H[k, a:b]) ** cfg.power if len(k) else torch.zeros(F, b - a, device=dev))
        lam = torch.stack(lam)
        share = lam / lam.sum(dim=0, keepdim=True).clamp_min(1e-20)
        for i, j in enumerate(keep):
            masks[i, :, a:b] = share[groups.index(j)].cpu().numpy()
    return masks


def score_nmf(V: torch.Tensor, parts_notes: Sequence[np.ndarray], grid: Grid, tuning: float = 0.0,
              cfg: Optional[NMFSettings] = None, seed: int = 0, keep: Optional[Sequence[int]] = None,
              percussive: Optional[Sequence[bool]] = None,
              timbres: Optional[Sequence[Optional[Mapping[int, np.ndarray]]]] = None,
              tie: Optional[Sequence[Optional[int]]] = None, device=None) -> NMFResult:
    """Factorise the magnitude spectrogram ``V`` ``(n_log, n_frames)`` (on ``grid``) under the
    aligned score ``parts_notes`` (one ``(n, 4)`` note array per part, audio seconds).

    percussive: for each part, whether it is struck or plucked (midi.is_percussive), for
    ``cfg.onsets == "percussive"``; None counts every part as percussive.

    timbres: for each part, None or {MIDI pitch: magnitude spectrum ``(n_log,)`` on ``grid`` of one
    note of its instrument} (note_spectra, below): the templates start from those partial
    amplitudes instead of 1/h (pitches missing from the mapping keep 1/h).

    tie: for each part, a label (e.g. its GM program) or None: parts with the same label share the
    templates of each pitch they both play (multiplicative updates of tied parameters: numerators
    and denominators summed over the group); their activations stay their own.

    keep: the parts whose masks to return (default: all, then the free components'); the
    result's ``masks`` then holds only those, in that order (saves memory on long songs).

    device: where the updates run (default the CPU); the result is on the CPU either way."""
    cfg = cfg or NMFSettings()
    dev = torch.device(device or "cpu")
    V = V.to(dev, torch.float32) + 1e-9
    W, H, Hmask, owner, gid = _init_factors(V, parts_notes, grid, tuning, cfg, seed, percussive, timbres, tie, dev)
    step = cfg.block_frames if dev.type == "cpu" else cfg.chunk_frames  # a GPU prefers few large products
    blocks = _active_blocks(Hmask, step, dev)
    # start the activations at the data's scale
    scale = float(V.sum()) / max(float((W @ H).sum()), 1e-9)
    H *= scale
    _kl_updates(V, W, H, blocks, gid, cfg.n_iter)
    masks = _soft_masks(W, H, owner, len(parts_notes), keep, cfg)
    return NMFResult(masks=masks, W=W.cpu().numpy(), owner=owner)


def note_spectra(programs: Sequence[int], parts_notes: Sequence[np.ndarray], drums: Sequence[bool], grid,
                 cfg: NMFSettings, soundfont=None) -> List[Optional[Dict[int, np.ndarray]]]:
    """What one note of each part's instrument looks like, for the NMF's initial templates: for each
    part, {MIDI pitch: magnitude ``(grid.n_log,)`` of that pitch played by the part's GM program
    with the soundfont (cfg.timbre_velocity, held cfg.timbre_hold_s, averaged over
    cfg.timbre_span)} for every pitch the part
    plays; None for drum parts and parts without notes. One rendering per program."""
    import pretty_midi

    from .spectral import log_magnitude
    from .synth import Renderer

    wanted: Dict[int, set] = {}
    for prog, notes, drum in zip(programs, parts_notes, drums):
        if len(notes) and not drum:
            wanted.setdefault(int(prog), set()).update(int(p) for p in np.round(notes[:, 2]))
    spectra: Dict[int, Dict[int, np.ndarray]] = {}
    period, length = cfg.timbre_period_s, cfg.timbre_hold_s
    with Renderer(sr=grid.sr, soundfont=soundfont) as renderer:
        for prog, pitches in wanted.items():
            pitches = sorted(pitches)
            inst = pretty_midi.Instrument(program=prog)
            inst.notes = [pretty_midi.Note(int(cfg.timbre_velocity), p, k * period, k * period + length)
                          for k, p in enumerate(pitches)]
            M = log_magnitude(renderer.render([inst], duration=len(pitches) * period + 0.5), grid)
            spectra[prog] = {}
            for k, p in enumerate(pitches):
                a, b = (int(round((k * period + t) * grid.frame_rate)) for t in cfg.timbre_span)
                spectra[prog][p] = M[:, a:b].mean(axis=1)
    return [spectra.get(int(prog)) if len(notes) and not drum else None
            for prog, notes, drum in zip(programs, parts_notes, drums)]
