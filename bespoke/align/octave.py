"""Does a part sound at the pitches its MIDI writes? Bass parts are often written an octave
above where they sound (as bass guitar and double bass are notated), and a template an octave off
separates nothing: the aligned notes of each part are compared with the recording's pitch
salience as written and an octave down (settings.octave_*). Only down: an octave up is not told
apart from a low instrument's strong second harmonic (the bench's synthetic bassoon, written where
it sounds, reads 1.20 an octave up)."""
from __future__ import annotations

from typing import Dict

import numpy as np

from ..config.align import AlignSettings
from .features import N_PITCH, PITCH_LO, MixFeatures

SHIFTS = (-12,)


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
    """{part index: -12} for the pitched parts of the aligned ``pm`` (audio time) that sound an
    octave below their notes: at least settings.octave_min_notes notes, whose salience an octave
    down exceeds that as written by the factor settings.octave_margin (on the bench's chamber and
    band songs' true MIDI, parts written where they sound reach at most 1.03; basses written an
    octave up 1.19 and 1.34)."""
    from ..midi import notes_array

    out: Dict[int, int] = {}
    if not settings.octave_check:
        return out
    for i, inst in enumerate(pm.instruments):
        if inst.is_drum or len(inst.notes) < settings.octave_min_notes:
            continue
        notes = notes_array(inst)
        written = note_salience(notes, feats, 0)
        shifted = {s: note_salience(notes, feats, s) for s in SHIFTS}
        best = max(SHIFTS, key=lambda s: np.nan_to_num(shifted[s], nan=-1.0))
        moved = shifted[best]
        if written > 0 and np.isfinite(moved) and moved > settings.octave_margin * written:
            out[i] = best
    return out
