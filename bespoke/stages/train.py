"""Stage train: the mask network fitted to this one song's material (optionally re-trained on
its own first estimates, settings.train.self_train)."""
from __future__ import annotations

from . import Aligned, Context, FirstPass, Material, Recording, Trained


def _self_training_sources(ctx: Context, rec: Recording, aligned: Aligned, first: FirstPass, material: Material,
                           model):
    """The target and the rest as the ensemble now hears them, replacing the NMF's estimates."""
    from ..data import Source
    from ..masks import apply_masks, predict_mask
    from .masks import ensemble_masks

    s, exc = ctx.settings, material.excerpts
    mask = predict_mask(model, rec.mix, s.grid, aligned.target_notes(), aligned.other_notes(), rec.tuning,
                        device=ctx.device, settings=s.separate)
    est = apply_masks(rec.mix[None], rec.sr, **ensemble_masks(mask, s.grid, first, s.separate))[0]
    target = Source(exc.cut(est), weight=s.train.pseudo_weight, name="target as the ensemble hears it")
    rest = Source(exc.cut(rec.mix - est), material.song.other_notes, name="rest as the ensemble hears it")
    return target, rest


def _merged(results):
    result = results[0]
    for r in results[1:]:
        result.steps += r.steps
        result.seconds += r.seconds
        result.losses += r.losses
    return result


def train(ctx: Context, rec: Recording, aligned: Aligned, first: FirstPass, material: Material) -> Trained:
    """Recording + Aligned + FirstPass + Material -> Trained (settings.model, settings.train)."""
    from ..data import TrainingSet
    from ..model import MaskNet
    from ..train import fit

    s, tr = ctx.settings, ctx.settings.train
    data = TrainingSet(material.song, material.targets, material.backgrounds, s.grid, s.augment)
    model = MaskNet(channels=s.model.channels, n_context=s.model.n_context)
    total_steps = tr.total_steps(seeded=s.seed is not None)
    phases = [1.0] if tr.self_train <= 0 else [tr.self_train, 1.0 - tr.self_train]
    results, done = [], 0.0
    for k, share in enumerate(phases):
        if k == 1:
            data.targets[-1], data.backgrounds[0] = _self_training_sources(ctx, rec, aligned, first, material, model)
        steps = None if total_steps is None else max(1, int(round(total_steps * share)))
        results.append(fit(model, data, tr, device=ctx.device, seed=ctx.seed + k, steps=steps,
                           budget=tr.budget * share,
                           on_progress=lambda f, loss, d=done, s_=share: ctx.update(d + s_ * f, loss=f"{loss:.3f}")))
        done += share
    return Trained(model=model, result=_merged(results))
