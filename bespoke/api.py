"""The Python interface. The CLI is a thin layer over these functions.

    >>> from bespoke.api import separate
    >>> res = separate("mix.wav", "score.mid", target="violin", budget=60)
    >>> res.save("violin.wav"); res.save_residual("rest.wav")

No function here changes the objects it is given: a Settings passed in is copied with the
options applied (``options.apply``), never modified.
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Sequence, Union

import numpy as np

from . import midi as midimod
from . import options
from .audio import Audio, load_audio
from .config import Settings
from .errors import InputError
from .pipeline import Progress, Result, as_set, run

PathLike = Union[str, os.PathLike]


def _audio(mix, sr: Optional[int] = None) -> Audio:
    if isinstance(mix, Audio):
        return mix
    if isinstance(mix, (str, os.PathLike)):
        return load_audio(mix)
    if sr is None:
        raise ValueError("pass sr= with an array mixture")
    return Audio.from_array(mix, sr, name="the mixture")


def _midi(m):
    if isinstance(m, (str, os.PathLike)):
        return midimod.load_midi(m)
    return m


def _source(midi) -> str:
    return str(midi) if isinstance(midi, (str, os.PathLike)) else "the MIDI"


def separate(mix, midi, target: Optional[Union[int, str]] = None, program: Optional[Union[int, str]] = None,
             soundfont: Optional[PathLike] = None, budget: Optional[float] = None, steps: Optional[int] = None,
             device: Optional[str] = None, seed: Optional[int] = None, precision: Optional[str] = None,
             align: bool = True, min_confidence: Optional[float] = None, force: bool = False,
             settings: Optional[Settings] = None, progress: Union[bool, Progress] = False,
             sr: Optional[int] = None, on_warning: Optional[Callable[[str], None]] = None,
             keep_model: bool = False, targets: Optional[Union[str, Sequence[Union[int, str]]]] = None) -> Result:
    """Separate one part of a recording, guided by an (unaligned) MIDI file, or several at once.

    mix: a path, an Audio, or an array ``(n_channels, n_samples)`` / ``(n_samples,)`` with ``sr``
    (float, full scale 1.0; an integer PCM array such as int16 is scaled to [-1, 1), and its
    stem and residual come back float32 in that scale: Audio.from_array).
    midi: a path or a pretty_midi.PrettyMIDI. target: which part (index, track name, instrument;
    None when the MIDI has one part). program: the target's real instrument (GM number or name),
    when the MIDI's program is wrong. budget: seconds of training (steps: an exact step count
    instead). device: auto, cpu, cuda (None: the settings', auto by default). align=False: the
    MIDI is already aligned. force: go on even when the alignment confidence is low or the
    MIDI's length is far from the recording's. settings: a config.Settings to start from (not
    modified). The options are those of ``bespoke separate`` (options.SEPARATE). Returns a Result.

    targets: "all" (every part with notes) or a list of parts (as ``target`` takes them), instead
    of ``target``: one alignment, one NMF and one network trained (in the same budget) for them
    all, and a stem for each, ``Result.stems`` by part index, with ``Result.residual`` what none
    of them explains; stems and residual add up to the mixture. ``Result.save_stems(template)``
    writes them all. ``program`` names one part's instrument and is refused with several.
    """
    if targets is not None and target is not None:
        raise InputError("give «target» (one part) or targets (several), not both")
    s = options.apply(settings or Settings(), program=program, soundfont=soundfont, budget=budget, steps=steps,
                      device=device, seed=seed, precision=precision, no_align=not align,
                      min_confidence=min_confidence, force=force)
    audio = _audio(mix, sr)
    pm = _midi(midi)
    prog = progress if isinstance(progress, Progress) else Progress(bool(progress))
    if targets is None:
        idx = midimod.select_part(pm, target, source=_source(midi))
        return run(audio, pm, idx, s, progress=prog, keep_model=keep_model, on_warning=on_warning)
    idxs = midimod.select_parts(pm, targets, source=_source(midi))
    if program is not None and len(idxs) > 1:
        raise InputError("«program» names the target's instrument: give it with one target, not several")
    res = run(audio, pm, idxs[0], s, progress=prog, keep_model=keep_model, on_warning=on_warning, targets=idxs)
    return as_set(res)


def align(mix, midi, program: Optional[Union[int, str]] = None, target: Optional[Union[int, str]] = None,
          settings: Optional[Settings] = None, sr: Optional[int] = None, keep_cost: bool = False,
          min_confidence: Optional[float] = None, force: bool = False,
          on_warning: Optional[Callable[[str], None]] = None):
    """Align a MIDI file to a recording. Returns (aligned PrettyMIDI, Alignment).

    Refuses a MIDI that does not seem to belong to the recording (AlignmentError, as
    ``separate`` does; ``force`` goes on). The alignment is symbolic (are the score's notes
    present in the recording?), so no soundfont is involved; ``program`` (for ``target``) only
    sets the attack-time compensation."""
    from .spectral import estimate_tuning
    from .stages.align import align_score, check_confidence, transposition_warning
    from .stages.load import mono_at

    pm = _midi(midi)
    one = target is not None or len(pm.instruments) == 1
    idx = midimod.select_part(pm, target, source=_source(midi)) if one else 0
    # a program override only makes sense for a chosen part
    s = options.apply(settings or Settings(), program=program if one else None, min_confidence=min_confidence,
                      force=force, plot=keep_cost)
    audio = _audio(mix, sr)
    for w in audio.warnings if on_warning else ():
        on_warning(w)
    mono = mono_at(audio, s.grid.sr)
    aligned, al = align_score(mono, s.grid.sr, pm, idx, s, estimate_tuning(mono, s.grid.sr))
    for warning in (check_confidence(al, s.align), transposition_warning(al)):
        if warning and on_warning:
            on_warning(warning)
    return aligned, al


def synth(midi, sr: int = 44100, program: Optional[Union[int, str]] = None, target: Optional[Union[int, str]] = None,
          soundfont: Optional[PathLike] = None) -> np.ndarray:
    """Render a MIDI file (or one part of it) with fluidsynth: float32 ``(n_samples,)``."""
    from .synth import render

    pm = _midi(midi)
    insts = pm.instruments
    if target is not None:
        insts = [pm.instruments[midimod.select_part(pm, target)]]
    prog = midimod.parse_program(program) if program is not None else None
    return render(insts, sr, soundfont=soundfont, program=prog)
