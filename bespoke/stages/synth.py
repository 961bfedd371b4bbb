"""Stage synth: the training material, the target rendered (several timbres and performances)
and the NMF's estimates, on the song's timeline or on excerpts of a long song."""
from __future__ import annotations

import numpy as np

from . import Aligned, Context, Estimates, Material, Recording


def _targets(ctx: Context, rec: Recording, aligned: Aligned, exc, n_samples: int, rng, est_target) -> list:
    """The target's sources: renderings (settings.synth) and the NMF's estimate, weighted."""
    from ..data import Source
    from ..errors import InputError
    from ..synth import render_targets, timbre_programs, training_soundfonts

    s, tr = ctx.settings, ctx.settings.train
    target = aligned.target
    timbres = timbre_programs(int(aligned.programs[aligned.target_index]), s.synth.n_programs) \
        if not target.is_drum else [0]
    sfs = training_soundfonts(s.synth.soundfont, s.synth.extra_soundfonts)
    targets = render_targets(exc.instrument(target), timbres, n_samples, rec.sr, sfs, rng, s.synth,
                             tuning=rec.tuning)
    if not targets:
        raise InputError("the target part renders to silence with this soundfont; try «soundfont» or «program»")
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
