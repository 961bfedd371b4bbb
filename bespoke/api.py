"""The Python interface. The CLI is a thin layer over these functions.

    >>> from bespoke.api import separate
    >>> res = separate("mix.wav", "score.mid", target="violin", budget=60)
    >>> res.save("violin.wav"); res.save_residual("rest.wav")
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Union

import numpy as np

from . import midi as midimod
from .audio import Audio, load_audio
from .config import Settings
from .pipeline import Progress, Result, run

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


def separate(mix, midi, target: Optional[Union[int, str]] = None, program: Optional[Union[int, str]] = None,
             soundfont: Optional[PathLike] = None, budget: Optional[float] = None, steps: Optional[int] = None,
             device: str = "auto", seed: Optional[int] = None, align: bool = True,
             min_confidence: Optional[float] = None, settings: Optional[Settings] = None,
             progress: Union[bool, Progress] = False, sr: Optional[int] = None,
             on_warning: Optional[Callable[[str], None]] = None, keep_model: bool = False,
             force: bool = False) -> Result:
    """Separate one part of a recording, guided by an (unaligned) MIDI file.

    mix: a path, an Audio, or an array ``(n_channels, n_samples)`` / ``(n_samples,)`` with ``sr``.
    midi: a path or a pretty_midi.PrettyMIDI. target: which part (index, track name, instrument;
    None when the MIDI has one part). program: the target's real instrument (GM number or name),
    when the MIDI's program is wrong. budget: seconds of training (steps: an exact step count
    instead). align=False: the MIDI is already aligned. force: go on even when the alignment
    confidence is low or the MIDI's length is far from the recording's. Returns a Result.
    """
    s = settings or Settings()
    if program is not None:
        s.program = midimod.parse_program(program)
    if soundfont is not None:
        s.soundfont = str(soundfont)
    if budget is not None:
        s.train.budget = float(budget)
    if steps is not None:
        s.train.steps = int(steps)
    s.device = device
    if seed is not None:
        s.seed = int(seed)
    s.align.enabled = bool(align)
    if min_confidence is not None:
        s.align.min_confidence = float(min_confidence)
    if force:
        s.align.min_confidence = 0.0
        s.align.max_duration_ratio = 0.0
    audio = _audio(mix, sr)
    pm = _midi(midi)
    idx = midimod.select_part(pm, target, source=str(midi) if isinstance(midi, (str, os.PathLike)) else "the MIDI")
    prog = progress if isinstance(progress, Progress) else Progress(bool(progress))
    return run(audio, pm, idx, s, progress=prog, keep_model=keep_model, on_warning=on_warning)


def align(mix, midi, program: Optional[Union[int, str]] = None, target: Optional[Union[int, str]] = None,
          settings: Optional[Settings] = None, sr: Optional[int] = None, keep_cost: bool = False):
    """Align a MIDI file to a recording. Returns (aligned PrettyMIDI, Alignment).

    The alignment is symbolic (are the score's notes present in the recording?), so no
    soundfont is involved; ``program`` (for ``target``) only sets the attack-time compensation."""
    from .pipeline import mono_at, stage_align
    from .spectral import estimate_tuning

    s = settings or Settings()
    if keep_cost:
        s.align.keep_cost = True
    if program is not None:
        s.program = midimod.parse_program(program)
    audio = _audio(mix, sr)
    pm = _midi(midi)
    idx = midimod.select_part(pm, target) if (target is not None or len(pm.instruments) == 1) else 0
    if target is None and program is not None and len(pm.instruments) > 1:
        s.program = None  # a program override only makes sense for a chosen part
    mono = mono_at(audio, s.grid.sr)
    tuning = estimate_tuning(mono, s.grid.sr)
    return stage_align(mono, s.grid.sr, pm, idx, s, tuning)


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
