"""Stage align: the MIDI onto the recording's timeline, and the rules that refuse a MIDI that
does not seem to belong to the recording, cannot be aligned (drums only), or whose target the
recording cannot hold (every note above its Nyquist frequency)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..config import AlignSettings, Settings
from ..errors import AlignmentError, InputError
from . import Aligned, Context, Recording, Score


def check_pitched(pm) -> None:
    """An InputError when every part is a drum part: the alignment goes by pitched notes."""
    if pm.instruments and all(inst.is_drum for inst in pm.instruments):
        raise InputError("the MIDI holds only drum parts, and bespoke aligns by pitched notes: give the MIDI "
                         "with its pitched parts too, or «no_align» if it is aligned to the recording already")


def check_audible(pm, index: int, top_hz: float, where: str) -> Optional[str]:
    """Whether the target's notes can be heard below ``top_hz``, the highest frequency the analysed
    recording holds (its Nyquist frequency; ``where`` says whose, e.g. "the analysis (at 22050 Hz)
    holds"). An InputError when no note's fundamental lies below it (the stem would be silence);
    a warning (returned) when some do not; None when all do. Drum parts pass."""
    import pretty_midi

    from ..midi import quoted
    from ..spectral import midi_to_hz

    inst = pm.instruments[index]
    if inst.is_drum or not inst.notes:
        return None
    pitches = np.array([n.pitch for n in inst.notes])
    hz = midi_to_hz(pitches)
    above = hz >= top_hz
    label = f"#{index}" + (f" {quoted(inst.name)}" if str(inst.name or "").strip() else "")
    if above.all():
        low = pretty_midi.note_number_to_name(int(pitches.min()))
        raise InputError(f"the target part {label} lies wholly above {top_hz:.0f} Hz, the highest frequency {where}: "
                         f"its lowest note is {low} ({hz.min():.0f} Hz), so its stem would be silence; "
                         "is the part written octaves too high?")
    if above.any():
        return (f"{int(above.sum())} of {len(hz)} notes of the target part {label} lie above {top_hz:.0f} Hz, the "
                f"highest frequency {where}: they cannot be separated and stay in the residual")
    return None


def part_programs(pm, target_index: int, program: Optional[int]) -> list:
    """Each part's GM program, the target's replaced by ``program`` when given."""
    return [program if (i == target_index and program is not None) else inst.program
            for i, inst in enumerate(pm.instruments)]


def align_score(mix, sr: int, pm, target_index: int, settings: Settings, tuning: float, features=None):
    """Align every part of ``pm`` to ``mix`` (mono ``(n_samples,)`` at ``sr``): the whole score places
    the target. Returns (aligned PrettyMIDI, align.Alignment).

    The alignment is symbolic (align.align_pm: are the score's notes present in the recording?),
    so no soundfont is involved. The programs (the target's from settings.program) only set how
    early note-ons go before the heard onsets (the instruments' attack, settings.align.compensate_attack).
    features: the recording's (align.mixture_features), when already computed."""
    from .. import midi as midimod
    from ..align import align_pm
    from ..audio import active_span

    midimod.check_duration(pm, active_span(mix, sr), settings.align.max_duration_ratio)
    programs = {target_index: settings.program} if settings.program is not None else {}
    al = align_pm(mix, sr, pm, tuning_cents=tuning, settings=settings.align, programs=programs, features=features)
    return midimod.warp(pm, al.time_map, transpose=al.info.get("transpose", 0)), al


def transposition_warning(alignment) -> Optional[str]:
    """What to tell the user when the alignment moved the MIDI to another key (None: it did not)."""
    shift = int((alignment.info or {}).get("transpose", 0)) if alignment is not None else 0
    if not shift:
        return None
    where = "below" if shift > 0 else "above"
    n = abs(shift)
    return (f"the MIDI is written {n} semitone{'s' if n > 1 else ''} {where} the pitch the recording sounds (another "
            f"key): its notes were moved {'up' if shift > 0 else 'down'} {n} to match")


def _octave_shifts(ctx: Context, pm, feats) -> dict:
    """align.octave.octave_shifts of the aligned ``pm``, each said in a warning."""
    from ..align.octave import octave_shifts
    from ..midi import quoted

    shifts = octave_shifts(pm, feats, ctx.settings.align) if feats is not None else {}
    for i, k in shifts.items():
        name = pm.instruments[i].name
        label = f"#{i}" + (f" {quoted(name)}" if str(name or "").strip() else "")
        ctx.warn(f"part {label} sounds an octave below its MIDI notes (as bass parts are often written): "
                 "it is separated at the pitch it sounds")
    return shifts


def check_confidence(alignment, settings: AlignSettings) -> Optional[str]:
    """Raise AlignmentError when the alignment's confidence is below settings.min_confidence (0:
    never); return a warning when it is below settings.warn_confidence, else None."""
    conf = alignment.confidence
    if settings.min_confidence > 0 and conf < settings.min_confidence:
        raise AlignmentError(f"alignment confidence {conf:.2f} is below {settings.min_confidence:.2f}: "
                             "the MIDI may not belong to this recording («force» to go on anyway)")
    if conf < settings.warn_confidence:
        return f"low alignment confidence ({conf:.2f}): check that the MIDI matches the recording"
    return None


def align(ctx: Context, rec: Recording, score: Score) -> Aligned:
    """Recording + Score -> Aligned (settings.align; settings.align.enabled False: taken as aligned)."""
    s = ctx.settings
    pm, idx = score.midi, score.target_index
    if s.align.enabled:
        check_pitched(pm)
    _check_targets(ctx, rec, pm, score.requested)
    alignment, feats = None, None
    if s.align.enabled or s.align.octave_check:
        from ..align import mixture_features

        feats = mixture_features(rec.mix, rec.sr, rec.tuning, s.align)
    if s.align.enabled:
        pm, alignment = align_score(rec.mix, rec.sr, pm, idx, s, rec.tuning, features=feats)
        for warning in (check_confidence(alignment, s.align), transposition_warning(alignment)):
            if warning:
                ctx.warn(warning)
    shifts = _octave_shifts(ctx, pm, feats)
    out = Aligned(midi=pm, target_index=idx, programs=part_programs(pm, idx, s.program), alignment=alignment,
                  octave_shifts=shifts, targets=tuple(score.targets) if len(score.requested) > 1 else ())
    for i in score.requested:
        if out.part_notes(i)[:, 0].min() > rec.audio.duration:
            which = "the target's" if len(score.requested) == 1 else f"part #{i}'s"
            raise InputError(f"after alignment {which} notes all lie past the end of the recording")
    if s.rest.enabled and sum(1 for n in out.parts_notes() if len(n)) <= 1:
        out = with_rest(ctx, rec, out)
    return out


def _check_targets(ctx: Context, rec: Recording, pm, requested) -> None:
    """check_audible for each part to separate (its warnings passed on), and a warning for a drum part."""
    where = (f"a recording sampled at {rec.audio.sr} Hz holds" if rec.audio.sr < rec.sr
             else f"the analysis (at {rec.sr} Hz) holds")
    for i in requested:
        warning = check_audible(pm, i, min(rec.sr, rec.audio.sr) / 2.0, where)
        if warning:
            ctx.warn(warning)
        if pm.instruments[i].is_drum:
            which = "the target is" if len(requested) == 1 else f"part #{i} is"
            ctx.warn(f"{which} a drum part: bespoke is tuned for pitched parts; expect a rough stem")


def with_rest(ctx: Context, rec: Recording, aligned: Aligned) -> Aligned:
    """``aligned`` with one more part: the recording's notes (bespoke.transcribe) that the target's
    do not explain (settings.rest). Unchanged, with a warning, when the transcriber is not installed."""
    import copy

    import pretty_midi

    from .. import transcribe

    cfg = ctx.settings.rest
    if not transcribe.available():
        ctx.warn("the MIDI holds one part and the transcriber of the rest of the recording is not installed "
                 "(pip install onnxruntime; pip install --no-deps basic-pitch): going on with the part alone")
        return aligned
    post = transcribe.posteriorgrams(rec.mix, rec.sr)
    notes = post.notes(cfg.frame_threshold, cfg.onset_threshold, cfg.min_note_s)
    rest = transcribe.rest_notes(notes, aligned.target_notes(), cfg.margin_s, cfg.cover, tuple(cfg.intervals))
    pm = copy.deepcopy(aligned.midi)
    inst = pretty_midi.Instrument(program=int(cfg.program), name="rest (transcribed)")
    inst.notes = [pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(a), end=float(b))
                  for a, b, p, v in rest]
    pm.instruments.append(inst)
    return Aligned(midi=pm, target_index=aligned.target_index, programs=list(aligned.programs) + [int(cfg.program)],
                   alignment=aligned.alignment, octave_shifts=dict(aligned.octave_shifts), targets=aligned.targets)
