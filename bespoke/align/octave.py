"""Does a part sound at the pitches its MIDI writes? Bass parts are often written an octave
above where they sound (as bass guitar and double bass are notated), some patches and
transcriptions sit an octave off the other way. A template an octave off separates nothing, so
the aligned notes of each part are compared with the recording's pitch salience as written and an
octave either way (settings.octave_*)."""
from __future__ import annotations

from typing import Dict

import numpy as np

from ..config.align import AlignSettings
from .features import N_PITCH, PITCH_LO, MixFeatures

SHIFTS = (-12, 12)


def note_salience(notes: np.ndarray, feats: MixFeatures, shift: int = 0) -> float:
    """The mean pitch salience ``feats.sal`` over the frames of ``notes`` ``(n, 4)`` (audio
    seconds), each at its pitch + ``shift``; NaN when a shifted pitch leaves the 88 keys."""
    total, count = 0.0, 0
    for start, end, pitch, _vel in notes:
        k = int(round(pitch)) + shift - PITCH_LO
        if not 0 <= k < N_PITCH:
            return float("nan")
        a = int(start * feats.rate)
        b = max(int(end * feats.rate), a + 1)
        column = feats.sal[a:b, k].astype(np.float32)
        total += float(column.sum())
        count += len(column)
    return total / count if count else float("nan")


def octave_shifts(pm, feats: MixFeatures, settings: AlignSettings) -> Dict[int, int]:
    """{part index: semitones (-12 or +12)} for the pitched parts of the aligned ``pm`` (audio
    time) that sound an octave from their notes: at least settings.octave_min_notes notes, whose
    salience an octave away exceeds that as written by the factor settings.octave_margin (on the
    bench's chamber and band songs, parts written where they sound reach at most 1.03 an octave
    down and 1.10 up; basses written an octave up 1.19 and 1.34)."""
    from ..midi import notes_array

    out: Dict[int, int] = {}
    if not settings.octave_check:
        return out
    for i, inst in enumerate(pm.instruments):
        if inst.is_drum or len(inst.notes) < settings.octave_min_notes:
            continue
        notes = notes_array(inst)
        written = note_salience(notes, feats, 0)
        best = max(SHIFTS, key=lambda s: np.nan_to_num(note_salience(notes, feats, s), nan=-1.0))
        moved = note_salience(notes, feats, best)
        if written > 0 and np.isfinite(moved) and moved > settings.octave_margin * written:
            out[i] = best
    return out
