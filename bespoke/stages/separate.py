"""Stage separate: the network's mask on the whole recording, pooled with the NMF's, applied
to every channel of the input at its own rate."""
from __future__ import annotations

import numpy as np

from ..config import SeparateSettings
from . import Aligned, Context, FirstPass, Recording, Separated, Trained


def ensemble_masks(net_mask: np.ndarray, grid, first: FirstPass, settings: SeparateSettings) -> dict:
    """The stem's mask as separate.apply_masks arguments (``factors``, ``pool``, ``sharpness``):
    the network's mask ``(grid.n_log, n_frames)`` and the NMF's (``first.mask``,
    ``(first.grid.n_log, n_frames)``) pooled by settings.ensemble_pool with the network's weight
    settings.ensemble (settings.ensemble_drums where the score has a drum part), or for a score of
    one part (``first.one_part``) by settings.ensemble_pool_one_part with weight
    settings.ensemble_one_part (see config.SeparateSettings), on the output's STFT bins (each mask
    keeps its own grid's detail). A weight of 1 or 0 gives one method's mask as it is."""
    weight = float(settings.ensemble_one_part if first.one_part
                   else settings.ensemble_drums if first.drums else settings.ensemble)
    pool = settings.ensemble_pool_one_part if first.one_part else settings.ensemble_pool
    if weight >= 1.0:
        return dict(factors=[(net_mask, grid, 1.0)])
    if weight <= 0.0:
        return dict(factors=[(first.mask, first.grid, 1.0)])
    return dict(factors=[(np.clip(net_mask, 1e-6, 1.0), grid, weight),
                         (np.clip(first.mask, 1e-6, 1.0), first.grid, 1.0 - weight)],
                pool=pool, sharpness=float(settings.ensemble_sharpness))


def separate(ctx: Context, rec: Recording, aligned: Aligned, first: FirstPass, trained: Trained) -> Separated:
    """Recording + Aligned + FirstPass + Trained -> Separated: the stem ``(n_channels, n_samples)``."""
    from ..masks import apply_masks, predict_mask

    s = ctx.settings
    net_mask = predict_mask(trained.model, rec.mix, s.grid, aligned.target_notes(), aligned.other_notes(),
                            rec.tuning, device=ctx.device, settings=s.separate,
                            on_progress=lambda f: ctx.update(0.5 * f))
    stem = apply_masks(rec.audio.samples, rec.audio.sr, **ensemble_masks(net_mask, s.grid, first, s.separate),
                       power=s.separate.mask_power, block_s=s.separate.block_s, spatial=s.separate.spatial,
                       on_progress=lambda f: ctx.update(0.5 + 0.5 * f))
    return Separated(stem=stem, net_mask=net_mask if ctx.keep_masks else None)
