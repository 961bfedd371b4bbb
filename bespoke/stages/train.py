"""Stage train: the mask network fitted to this one song's material (optionally re-trained on
its own first estimates, settings.train.self_train)."""
from __future__ import annotations

from . import Aligned, Context, FirstPass, Material, Recording, Trained


def _self_training_sources(ctx: Context, rec: Recording, aligned: Aligned, first: FirstPass, material: Material,
                           model, index=None):
    """The target (part ``index``, None: the target) and the rest as the ensemble now hears them,
    replacing the NMF's estimates."""
    from ..data import Source
    from ..masks import apply_masks, predict_mask
    from .separate import ensemble_masks

    s, exc = ctx.settings, material.excerpts
    i = aligned.target_index if index is None else index
    mask = predict_mask(model, rec.mix, s.grid, aligned.part_notes(i), aligned.notes_except(i), rec.tuning,
                        device=ctx.device, settings=s.separate)
    est = apply_masks(rec.mix[None], rec.sr, **ensemble_masks(mask, s.grid, first, s.separate, part=index))[0]
    target = Source(exc.cut(est), weight=s.train.pseudo_weight, name="target as the ensemble hears it")
    rest = Source(exc.cut(rec.mix - est), material.song.other_notes, name="rest as the ensemble hears it")
    return target, rest


def _training_set(ctx: Context, material: Material):
    """The target's data.TrainingSet, or with several targets their data.PartsTrainingSet (query by score)."""
    from ..data import PartsTrainingSet, TrainingSet

    s = ctx.settings
    if not material.parts:
        return TrainingSet(material.song, material.targets, material.backgrounds, s.grid, s.augment)
    return PartsTrainingSet([TrainingSet(m.song, m.targets, m.backgrounds, s.grid, s.augment)
                             for m in material.parts.values()])


def _self_train(ctx: Context, rec: Recording, aligned: Aligned, first: FirstPass, material: Material, model,
                data) -> None:
    """Swap the NMF's estimates in ``data`` for the ensemble's (each target's, with several)."""
    if not material.parts:
        data.targets[-1], data.backgrounds[0] = _self_training_sources(ctx, rec, aligned, first, material, model)
        return
    for i, part_set in zip(material.parts, data.sets):
        part_set.targets[-1], part_set.backgrounds[0] = _self_training_sources(ctx, rec, aligned, first,
                                                                               material.parts[i], model, i)


def _merged(results):
    result = results[0]
    for r in results[1:]:
        result.steps += r.steps
        result.seconds += r.seconds
        result.losses += r.losses
    return result


def train(ctx: Context, rec: Recording, aligned: Aligned, first: FirstPass, material: Material) -> Trained:
    """Recording + Aligned + FirstPass + Material -> Trained (settings.model, settings.train)."""
    from ..model import MaskNet
    from ..train import fit

    s, tr = ctx.settings, ctx.settings.train
    data = _training_set(ctx, material)
    model = MaskNet(channels=s.model.channels, n_context=s.model.n_context)
    total_steps = tr.total_steps(seeded=s.seed is not None)
    phases = [1.0] if tr.self_train <= 0 else [tr.self_train, 1.0 - tr.self_train]
    results, done = [], 0.0
    for k, share in enumerate(phases):
        if k == 1:
            _self_train(ctx, rec, aligned, first, material, model, data)
        steps = None if total_steps is None else max(1, int(round(total_steps * share)))
        results.append(fit(model, data, tr, device=ctx.device, seed=ctx.seed + k, steps=steps,
                           budget=tr.budget * share,
                           on_progress=lambda f, loss, d=done, s_=share: ctx.update(d + s_ * f, loss=f"{loss:.3f}")))
        done += share
    return Trained(model=model, result=_merged(results))
