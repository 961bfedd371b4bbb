"""Stage separate: the network's mask on the whole recording, pooled with the NMF's, applied
to every channel of the input at its own rate."""
from __future__ import annotations

import numpy as np

from ..config import SeparateSettings
from . import Aligned, Context, FirstPass, Recording, Separated, Trained


def ensemble_masks(net_mask: np.ndarray, grid, first: FirstPass, settings: SeparateSettings, part=None) -> dict:
    """The stem's mask as separate.apply_masks arguments (``factors``, ``pool``, ``sharpness``):
    the network's mask ``(grid.n_log, n_frames)`` and the NMF's (``first.mask``,
    ``(first.grid.n_log, n_frames)``) pooled by settings.ensemble_pool with the network's weight
    settings.ensemble (settings.ensemble_drums where the score has a drum part), or for a score of
    one part (``first.one_part``) by settings.ensemble_pool_one_part with weight
    settings.ensemble_one_part (see config.SeparateSettings), on the output's STFT bins (each mask
    keeps its own grid's detail). A weight of 1 or 0 gives one method's mask as it is. ``part``: whose
    NMF mask (first.mask_of; None: the target's)."""
    nmf_mask = first.mask_of(part)
    weight = float(settings.ensemble_one_part if first.one_part
                   else settings.ensemble_drums if first.drums else settings.ensemble)
    pool = settings.ensemble_pool_one_part if first.one_part else settings.ensemble_pool
    if weight >= 1.0:
        return dict(factors=[(net_mask, grid, 1.0)])
    if weight <= 0.0:
        return dict(factors=[(nmf_mask, first.grid, 1.0)])
    return dict(factors=[(np.clip(net_mask, 1e-6, 1.0), grid, weight),
                         (np.clip(nmf_mask, 1e-6, 1.0), first.grid, 1.0 - weight)],
                pool=pool, sharpness=float(settings.ensemble_sharpness))


def separate(ctx: Context, rec: Recording, aligned: Aligned, first: FirstPass, trained: Trained) -> Separated:
    """Recording + Aligned + FirstPass + Trained -> Separated: the stem ``(n_channels, n_samples)``
    (with several targets, each one's: see separate_parts)."""
    from ..masks import apply_masks, predict_mask

    if aligned.several:
        return separate_parts(ctx, rec, aligned, first, trained)
    s = ctx.settings
    net_mask = predict_mask(trained.model, rec.mix, s.grid, aligned.target_notes(), aligned.other_notes(),
                            rec.tuning, device=ctx.device, settings=s.separate,
                            on_progress=lambda f: ctx.update(0.5 * f))
    stem = apply_masks(rec.audio.samples, rec.audio.sr, **ensemble_masks(net_mask, s.grid, first, s.separate),
                       power=s.separate.mask_power, block_s=s.separate.block_s, spatial=s.separate.spatial,
                       others=[(m, first.grid) for m in first.others.values()],
                       on_progress=lambda f: ctx.update(0.5 + 0.5 * f))
    return Separated(stem=stem, net_mask=net_mask if ctx.keep_masks else None)


def separate_parts(ctx: Context, rec: Recording, aligned: Aligned, first: FirstPass, trained: Trained) -> Separated:
    """Several targets at once: the network runs once per part with that part's score channels, each
    part's mask is pooled with its NMF mask as for one (ensemble_masks), and the masks are made a
    consistent set (masks.apply_mask_set: where they add up to more than 1 they are divided by their
    sum) before each stem is resynthesised. ``stem`` and ``net_mask`` are the first target's."""
    from ..masks import apply_mask_set, predict_mask

    s, idxs = ctx.settings, aligned.targets
    specs, first_net = [], None
    for k, i in enumerate(idxs):
        net_mask = predict_mask(trained.model, rec.mix, s.grid, aligned.part_notes(i), aligned.notes_except(i),
                                rec.tuning, device=ctx.device, settings=s.separate,
                                on_progress=lambda f, k=k: ctx.update(0.5 * (k + f) / len(idxs)))
        first_net = net_mask if first_net is None else first_net
        specs.append(ensemble_masks(net_mask, s.grid, first, s.separate, part=i))
    stems = apply_mask_set(rec.audio.samples, rec.audio.sr, specs, power=s.separate.mask_power,
                           block_s=s.separate.block_s, spatial=s.separate.spatial,
                           on_progress=lambda f: ctx.update(0.5 + 0.5 * f))
    by_part = dict(zip(idxs, stems))
    return Separated(stem=by_part[idxs[0]], net_mask=first_net if ctx.keep_masks else None, stems=by_part)
