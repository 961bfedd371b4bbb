"""Stage synth: the training material, the target rendered (several timbres and performances)
and the NMF's estimates, on the song's timeline or on excerpts of a long song."""
from __future__ import annotations

import numpy as np

from . import Aligned, Context, Estimates, Material, Recording


def _targets(ctx: Context, rec: Recording, aligned: Aligned, exc, n_samples: int, rng, est_target,
             index=None, synth_settings=None) -> list:
    """The target's sources (part ``index``'s; None: the target's): renderings (settings.synth, or
    ``synth_settings``) and the NMF's estimate, weighted."""
    from ..data import Source
    from ..errors import InputError
    from ..synth import render_targets, timbre_programs, training_soundfonts

    s, tr = ctx.settings, ctx.settings.train
    syn = synth_settings or s.synth
    index = aligned.target_index if index is None else index
    target = aligned.sounding.instruments[index]
    timbres = timbre_programs(int(aligned.programs[index]), syn.n_programs) if not target.is_drum else [0]
    sfs = training_soundfonts(syn.soundfont, syn.extra_soundfonts)
    targets = render_targets(exc.instrument(target), timbres, n_samples, rec.sr, sfs, rng, syn, tuning=rec.tuning)
    if not targets:
        which = "the target part" if not aligned.several else f"part #{index}"
        raise InputError(f"{which} renders to silence with this soundfont; try «soundfont» or «program»")
    for src in targets:
        src.weight = tr.synth_weight / len(targets)
    targets.append(Source(est_target, weight=tr.pseudo_weight, name="target as NMF hears it"))
    return [src for src in targets if src.weight > 0]


def _backgrounds(ctx: Context, rec: Recording, aligned: Aligned, exc, n_samples: int, other_notes, est_rest):
    """The rest's sources: the NMF's estimate, and the other parts rendered."""
    from ..audio import fit_length
    from ..data import Source
    from ..synth import Renderer

    backgrounds = [Source(est_rest, other_notes, name="rest as NMF hears it")]
    if aligned.others:
        with Renderer(sr=rec.sr, soundfont=ctx.settings.synth.soundfont) as renderer:
            rendered = renderer.render([exc.instrument(i) for i in aligned.others], duration=n_samples / rec.sr)
        backgrounds.append(Source(fit_length(rendered, n_samples), other_notes, name="other parts rendered"))
    return backgrounds


def synth(ctx: Context, rec: Recording, aligned: Aligned, est: Estimates) -> Material:
    """Recording + Aligned + Estimates -> Material (settings.synth; settings.train's excerpts)."""
    from ..data import Song
    from ..excerpts import Excerpts

    if aligned.several:
        return _synth_parts(ctx, rec, aligned, est)
    tr = ctx.settings.train
    rng = np.random.default_rng(ctx.seed)
    tnotes, onotes = aligned.target_notes(), aligned.other_notes()
    # the training material: the whole song, or excerpts of a long one (memory and time stay bounded)
    exc = Excerpts.choose(len(rec.mix), rec.sr, tnotes, tr.max_song_s, tr.excerpt_s,
                          np.random.default_rng(ctx.seed + 7))
    train_mix = exc.cut(rec.mix)
    train_tnotes, train_onotes = exc.notes(tnotes), exc.notes(onotes)
    targets = _targets(ctx, rec, aligned, exc, len(train_mix), rng, exc.cut(est.target))
    ctx.update(0.5)
    backgrounds = _backgrounds(ctx, rec, aligned, exc, len(train_mix), train_onotes, exc.cut(est.rest))
    song = Song(mix=train_mix, sr=rec.sr, target_notes=train_tnotes, other_notes=train_onotes, tuning=rec.tuning)
    return Material(song=song, targets=targets, backgrounds=backgrounds, excerpts=exc)


def _rendered_parts(ctx: Context, rec: Recording, aligned: Aligned, exc, n_samples: int) -> dict:
    """Each part with notes rendered once as written (the main soundfont), by index: the other parts'
    sum is a background of each target."""
    from ..audio import fit_length
    from ..synth import Renderer

    out = {}
    with Renderer(sr=rec.sr, soundfont=ctx.settings.synth.soundfont) as renderer:
        for i, inst in enumerate(aligned.sounding.instruments):
            if inst.notes:
                out[i] = fit_length(renderer.render([exc.instrument(inst)], duration=n_samples / rec.sr), n_samples)
    return out


def _synth_parts(ctx: Context, rec: Recording, aligned: Aligned, est: Estimates) -> Material:
    """Material for several targets at once: each one's (its renderings, settings.synth.renders_per_part
    of them, and the NMF's estimate as targets; the NMF's rest and the other parts rendered as
    backgrounds), on one training timeline (excerpts chosen by every target's notes)."""
    import dataclasses

    from ..data import Song, Source
    from ..excerpts import Excerpts

    s, tr = ctx.settings, ctx.settings.train
    rng = np.random.default_rng(ctx.seed)
    idxs = aligned.targets
    exc = Excerpts.choose(len(rec.mix), rec.sr, np.concatenate([aligned.part_notes(i) for i in idxs]), tr.max_song_s,
                          tr.excerpt_s, np.random.default_rng(ctx.seed + 7))
    train_mix = exc.cut(rec.mix)
    n = len(train_mix)
    rendered = _rendered_parts(ctx, rec, aligned, exc, n)
    syn = dataclasses.replace(s.synth, n_renders=s.synth.renders_per_part(len(idxs)))
    parts = {}
    for k, i in enumerate(idxs):
        est_i = exc.cut(est.parts[i])
        onotes = exc.notes(aligned.notes_except(i))
        backgrounds = [Source((train_mix - est_i).astype(np.float32), onotes, name="rest as NMF hears it")]
        others = [w for j, w in rendered.items() if j != i]
        if others:
            backgrounds.append(Source(np.sum(others, axis=0), onotes, name="other parts rendered"))
        song = Song(mix=train_mix, sr=rec.sr, target_notes=exc.notes(aligned.part_notes(i)), other_notes=onotes,
                    tuning=rec.tuning)
        parts[i] = Material(song=song, targets=_targets(ctx, rec, aligned, exc, n, rng, est_i, i, syn),
                            backgrounds=backgrounds, excerpts=exc)
        ctx.update((k + 1) / len(idxs))
    first = parts[idxs[0]]
    return Material(song=first.song, targets=first.targets, backgrounds=first.backgrounds, excerpts=exc, parts=parts)
