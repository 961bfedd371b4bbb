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
training material for the network (pipeline.py), and the benchmark reports it alone as the
classic baseline. Memory stays bounded: the activations are updated in time chunks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence

import numpy as np
import torch

from .spectral import Grid, midi_to_hz


@dataclass
class NMFSettings:
    # Multiplicative-update iterations (a full score's; see single_n_iter); the stage's time grows
    # with them (make bench-scale, 60 minutes: 39.6 s at 45, 73 s at 70). NMF alone on the bench's
    # 13 targets, 45 -> 70: real 8.36 -> 8.39 dB, synthetic 8.14 -> 8.16, same instrument 7.91 ->
    # 7.95 (100 or 150: no more).
    n_iter: int = 70
    n_partials: int = 40          # harmonics per pitch template
    # A partial's band: +- this (at least +- one log bin), the room its learned template has.
    # Real playing (vibrato, intonation, a piano's stretched partials) needs a wide band; 80
    # cents on a 36-bin-per-octave grid measured best (bench/RESULTS.md, Ablation).
    partial_cents: float = 80.0
    # bespoke's first pass factorises on a grid of its own, finer than the network's: the
    # network's grid with this many bins per octave (the pipeline combines the two masks on
    # the output's STFT bins). score_nmf itself works on whatever grid it is given. 48 against
    # 36, with the shapes below: NMF alone real +0.09 dB, synthetic +0.18, same instrument +0.11.
    bins_per_octave: int = 48
    # With a single-part MIDI nothing models the other instruments but a few free components,
    # and wide bands let the target's templates soak them up: the pipeline then keeps narrow
    # bands on the network's own grid (measured on TRIOS, true alignment: 3.0 dB mean against
    # 2.8 with the wide setting; brahms violin 7.5 against 5.0).
    single_partial_cents: float = 40.0
    single_bins_per_octave: int = 24
    tol_on: float = 0.08          # s before an aligned onset where a note may already sound (full score)
    tol_off: float = 0.25         # s after its aligned end (release, reverb)
    onset_span: tuple = (0.1, 0.15)  # s before / after an onset where the onset template may act
    # Which parts get the broadband onset templates: "percussive" (the parts score_nmf is told
    # are struck or plucked), "all" (Ewert & Mueller's choice for piano, for every part) or
    # "none". On bowed and blown parts a flat template active at each onset soaks up whatever
    # else sounds then, most of all with a single-part MIDI.
    onsets: str = "percussive"
    n_free: int = 8               # free components for what the MIDI leaves out (single part only)
    # The pipeline starts each template from the partial amplitudes of one note of the part's
    # instrument rendered with the soundfont (score_nmf's ``timbres``) instead of 1/h: a clarinet's
    # weak even partials, a horn's few strong ones. Each partial keeps at least this share of the
    # loudest (multiplicative updates never revive a zero). NMF alone on the bench's 13 targets,
    # 30 iterations: real 7.19 -> 7.46 dB, synthetic 7.40 -> 7.56, same instrument 7.16 -> 7.21.
    timbre_init: bool = True
    timbre_floor: float = 0.02
    # A sustained (bowed, blown, sung) part gets several templates per pitch, not one: its partial
    # amplitudes raised to each of these exponents (the first the template as above, then a
    # brighter and a darker one), all free to act wherever the note sounds. One fixed spectrum per
    # pitch cannot follow a note that brightens when played louder, or its attack against its
    # sustain; a few learned shapes can, and the share of a partial two parts have in common is
    # then better told. Struck and plucked parts keep one (their onset template does that work).
    # NMF alone on the bench's 13 targets: real 7.46 -> 8.18 dB, synthetic 7.56 -> 7.83, same
    # instrument 7.21 -> 7.60.
    shapes: tuple = (1.0, 0.7, 1.4)
    # With a single-part MIDI the extra shapes soak up the other instruments instead (the same 13
    # targets, each given its part alone: 2.40 -> 1.44 dB): the pipeline keeps one there.
    single_shapes: tuple = (1.0,)
    # Parts that play the same instrument (GM program) share their templates: a pitch sounds the
    # same whichever part plays it, and each template learns from every part's notes (score_nmf's
    # ``tie``; the activations stay each part's own).
    tie: bool = True
    # A full score's factorisation runs on 48 bins per octave (above), more iterations (n_iter) and
    # activations from 0.08 s before each aligned onset, and ties same-instrument parts; a single
    # part keeps the settings it was measured with (30 iterations, 0.15 s). With the shapes above,
    # 45 iterations (n_iter's value then), NMF alone on
    # the bench's 13 targets: real 8.18 -> 8.36 dB, synthetic 7.83 -> 8.14, same instrument 7.60 ->
    # 7.91 (36 bins per octave, 30 iterations, 0.15 s, untied before; the tie alone +0.04..+0.10 on
    # same instrument, the finer grid alone +0.09 / +0.18 / +0.11).
    single_n_iter: int = 30
    single_tol_on: float = 0.15
    power: float = 1.0            # soft-mask exponent
    chunk_frames: int = 20000     # frames per chunk of the output masks (memory bound)
    # The updates run over blocks of this many frames, each with only the components whose notes
    # sound somewhere in it (a note's activations are zero outside its span and multiplicative
    # updates keep them so): the same factorisation with fewer products. Against the 20000-frame
    # chunks before, the same iterations, 2 shared cores (noisy): a 3.8-minute quartet 6.6 ->
    # 3.3 s, a 2.3-minute one 5.2 -> 2.1 s; a 10-minute four-part chorale, whose notes leave few
    # templates to skip, about the same (5.0 and 6.0 s against 7.1 and 6.3 s in two runs each).
    # 256-frame blocks were faster on the quartets and far slower on the chorale.
    block_frames: int = 1024


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
    freqs = grid.log_freqs
    lf = np.log2(freqs)
    one_bin = 1.0 / grid.bins_per_octave
    frame_t = np.arange(n_frames) / grid.frame_rate
    F = len(freqs)
    W_cols: List[np.ndarray] = []
    H_rows: List[np.ndarray] = []
    owner: List[int] = []
    keys: List[tuple] = []
    for j, notes in enumerate(parts_notes):
        if len(notes) == 0:
            continue
        for p in np.unique(np.round(notes[:, 2])).astype(int):
            sel = notes[np.round(notes[:, 2]) == p]
            f0 = float(midi_to_hz(p, tuning))
            bands = []
            for h in range(1, cfg.n_partials + 1):
                fh = h * f0
                if fh >= grid.sr / 2:
                    break
                bands.append(np.abs(lf - np.log2(fh)) <= max(cfg.partial_cents / 1200.0, 1.01 * one_bin))
            spectrum = timbres[j].get(int(p)) if timbres is not None and timbres[j] is not None else None
            amps = _partial_amplitudes(bands, spectrum, cfg.timbre_floor)
            w = np.zeros(F)
            for band, a in zip(bands, amps):
                w[band] = np.maximum(w[band], a)
            if w.sum() <= 0:
                continue
            active = _frame_mask(sel, frame_t, cfg.tol_on, cfg.tol_off)
            for k, g in enumerate((cfg.shapes[:1] if percussive[j] else cfg.shapes) or (1.0,)):
                wg = w ** float(g)
                W_cols.append(wg / wg.sum())
                H_rows.append(active)
                owner.append(j)
                keys.append((j, int(p), k))
            if cfg.onsets == "all" or (cfg.onsets == "percussive" and percussive[j]):
                W_cols.append(np.full(F, 1.0 / F))
                H_rows.append(_frame_mask(sel, frame_t, cfg.onset_span[0], cfg.onset_span[1], onset_only=True))
                owner.append(j)
                keys.append((j, int(p), "onset"))
    if len([n for n in parts_notes if len(n)]) <= 1:
        rng = np.random.default_rng(seed)
        for _ in range(cfg.n_free):
            w = rng.uniform(0.1, 1.0, F)
            W_cols.append(w / w.sum())
            H_rows.append(np.ones(n_frames, dtype=bool))
            owner.append(-1)
            keys.append((-1, len(keys), "free"))
    W = np.stack(W_cols, axis=1).astype(np.float32)
    Hmask = np.stack(H_rows, axis=0)
    if with_keys:
        return W, Hmask, np.array(owner), keys
    return W, Hmask, np.array(owner)


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
    note of its instrument} (pipeline.note_spectra): the templates start from those partial
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
    F, N = V.shape
    W_np, Hmask, owner, keys = build_model(parts_notes, grid, N, tuning, cfg, seed, percussive, timbres,
                                           with_keys=True)
    gid = _tie_groups(keys, tie)
    gid = None if gid is None else gid.to(dev)
    W = torch.from_numpy(W_np).to(dev)
    if gid is not None:  # tied columns start as their group's mean
        W = (_group_sum(W.T, gid) / _group_sum(torch.ones(len(gid), 1, device=dev), gid)).T.contiguous()
    H = torch.from_numpy(Hmask.astype(np.float32)).to(dev)
    K = W.shape[1]
    chunks = [(a, min(a + cfg.chunk_frames, N)) for a in range(0, N, cfg.chunk_frames)]
    blocks = []  # (first frame, end frame, the components active in it)
    step = cfg.block_frames if dev.type == "cpu" else cfg.chunk_frames  # a GPU prefers few large products
    for a in range(0, N, step):
        b = min(a + step, N)
        k = np.flatnonzero(Hmask[:, a:b].any(axis=1))
        if len(k):
            blocks.append((a, b, torch.from_numpy(k).to(dev)))
    # start the activations at the data's scale
    scale = float(V.sum()) / max(float((W @ H).sum()), 1e-9)
    H *= scale
    for _ in range(cfg.n_iter):
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
    n_parts = len(parts_notes)
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
    return NMFResult(masks=masks, W=W.cpu().numpy(), owner=owner)
