"""Stage nmf: the first pass, a score-informed NMF of the mixture under the aligned score."""
from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np

from ..config import NMFSettings, Settings
from ..spectral import Grid
from . import Aligned, Context, Estimates, FirstPass, Recording


def nmf_setup(settings: Settings, n_parts: int) -> Tuple[Grid, NMFSettings]:
    """The first pass's grid (the network's, with the NMF's own bins per octave) and settings,
    for a score of ``n_parts`` parts with notes: wide bands on a fine grid and several template
    shapes per sustained pitch for a full score, narrow bands on the network's grid, one shape and
    the single_* iterations and onset tolerance for a single part (see NMFSettings)."""
    cfg = settings.nmf
    if n_parts <= 1:
        bpo = cfg.single_bins_per_octave
        cfg = dataclasses.replace(cfg, partial_cents=float(cfg.single_partial_cents), shapes=cfg.single_shapes,
                                  n_iter=int(cfg.single_n_iter), tol_on=float(cfg.single_tol_on))
    else:
        bpo = cfg.bins_per_octave
    grid = dataclasses.replace(settings.grid, bins_per_octave=int(bpo or settings.grid.bins_per_octave))
    return grid, dataclasses.replace(cfg, shapes=tuple(cfg.shapes))


def factorise(mix: np.ndarray, grid: Grid, parts_notes, target_index: int, tuning: float, cfg: NMFSettings,
              seed: int = 0, percussive=None, timbres=None, tie=None, device=None, also=()):
    """Score-informed NMF of the mixture (mono ``(n_samples,)`` at grid.sr) under the aligned score
    (``percussive``: for each part, whether it is struck or plucked; ``timbres``: each part's
    rendered notes, see nmf.note_spectra; ``tie``: each part's label for shared templates; see
    nmf.score_nmf), on ``grid`` with NMFSettings ``cfg`` (see nmf_setup), on ``device`` (default
    the CPU).

    Returns (the target's NMF mask ``(grid.n_log, n_frames)``, the target as NMF hears it and
    the rest, both ``(n_samples,)``); with ``also`` (more part indices), a fourth item: their
    masks by index (the factorisation models every part anyway)."""
    import torch

    from ..masks import apply_mask
    from ..nmf import score_nmf
    from ..spectral import log_magnitude

    V = torch.from_numpy(log_magnitude(mix, grid))
    res = score_nmf(V, parts_notes, grid, tuning, cfg, seed=seed, keep=[target_index, *also],
                    percussive=percussive, timbres=timbres, tie=tie, device=device)
    mask = res.masks[0]
    est = apply_mask(mix[None], grid.sr, mask, grid)[0]
    if also:
        return mask, est, (mix - est).astype(np.float32), dict(zip(also, res.masks[1:]))
    return mask, est, (mix - est).astype(np.float32)


def nmf(ctx: Context, rec: Recording, aligned: Aligned) -> Tuple[FirstPass, Estimates]:
    """Recording + Aligned -> FirstPass (the target's mask) and Estimates (target and rest)."""
    from .. import midi as midimod
    from ..masks import apply_mask
    from ..nmf import note_spectra

    insts = aligned.sounding.instruments
    parts_notes = aligned.parts_notes()
    percussive = [midimod.is_percussive(p, inst.is_drum) for p, inst in zip(aligned.programs, insts)]
    n_parts = sum(1 for n in parts_notes if len(n))
    grid, cfg = nmf_setup(ctx.settings, n_parts)
    drums = [inst.is_drum for inst in insts]
    timbres = note_spectra(aligned.programs, parts_notes, drums, grid, cfg,
                           ctx.settings.synth.soundfont) if cfg.timbre_init else None
    # parts of one instrument share their templates (drum parts never)
    tie = [None if drum else int(p) for p, drum in zip(aligned.programs, drums)] if cfg.tie else None
    idx = aligned.target_index
    also = tuple(i for i in aligned.targets if i != idx)
    # stereo: the spatial filter models the rest as the other parts, each where it sits (their masks)
    spatial = not also and rec.audio.n_channels > 1 and ctx.settings.separate.spatial > 0 and n_parts > 1
    others = tuple(i for i, n in enumerate(parts_notes) if i != idx and len(n)) if spatial else ()
    out = factorise(rec.mix, grid, parts_notes, idx, rec.tuning, cfg, ctx.seed, percussive, timbres, tie,
                    ctx.device, also=also or others)
    mask, target, rest = out[:3]
    has_drums = any(drum and len(n) for drum, n in zip(drums, parts_notes))
    first = FirstPass(mask=mask, grid=grid, one_part=n_parts <= 1, drums=has_drums)
    est = Estimates(target=target, rest=rest)
    if others:
        first.others = dict(out[3])
    if also:  # several targets: each one's mask, and each one as the NMF hears it
        first.part_masks = {idx: mask, **out[3]}
        est.parts = {i: target if i == idx else apply_mask(rec.mix[None], grid.sr, m, grid)[0]
                     for i, m in first.part_masks.items()}
    return first, est
