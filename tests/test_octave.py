"""align.octave: a part written an octave from where it sounds (a bass written an octave up) is
found, and separated at the pitch it sounds; a part written where it sounds is left alone."""
import copy

import numpy as np
import pretty_midi

from bespoke.align import mixture_features
from bespoke.align.octave import octave_shifts
from bespoke.config import AlignSettings
from bespoke.stages import Aligned
from bespoke.synth import bundled_soundfont, render

SR = 22050


def _song():
    """A bass line (GM 33) under piano chords, aligned, and its mixture."""
    pm = pretty_midi.PrettyMIDI()
    bass = pretty_midi.Instrument(program=33, name="Bass")
    keys = pretty_midi.Instrument(program=0, name="Keys")
    line = [36, 38, 40, 41, 43, 45, 43, 41, 40, 38, 36, 43]
    for k, p in enumerate(line):
        bass.notes.append(pretty_midi.Note(100, p, k * 0.5, k * 0.5 + 0.45))
    for k in range(6):
        for p in (60, 64, 67):
            keys.notes.append(pretty_midi.Note(70, p + (k % 2) * 2, k * 1.0, k * 1.0 + 0.9))
    pm.instruments = [bass, keys]
    mix = render(pm.instruments, SR, soundfont=bundled_soundfont(), duration=6.5)
    return pm, mix


def test_a_bass_written_an_octave_up_is_heard_an_octave_down():
    pm, mix = _song()
    feats = mixture_features(mix, SR, 0.0, AlignSettings())
    assert octave_shifts(pm, feats, AlignSettings()) == {}
    written_up = copy.deepcopy(pm)
    for note in written_up.instruments[0].notes:
        note.pitch += 12
    assert octave_shifts(written_up, feats, AlignSettings()) == {0: -12}
    assert octave_shifts(written_up, feats, AlignSettings(octave_check=False)) == {}

    aligned = Aligned(midi=written_up, target_index=0, programs=[33, 0], octave_shifts={0: -12})
    assert aligned.target_notes()[:, 2].tolist() == [n.pitch for n in pm.instruments[0].notes]
    assert [n.pitch for n in aligned.midi.instruments[0].notes] == [n.pitch for n in written_up.instruments[0].notes]
    assert np.array_equal(aligned.parts_notes()[1], Aligned(pm, 0, [33, 0]).parts_notes()[1])


def test_a_part_is_never_moved_up_an_octave():
    """An octave up cannot be told from a low part's second harmonic: written down, it stays."""
    pm, mix = _song()
    feats = mixture_features(mix, SR, 0.0, AlignSettings())
    written_down = copy.deepcopy(pm)
    for note in written_down.instruments[0].notes:
        note.pitch -= 12
    assert octave_shifts(written_down, feats, AlignSettings()) == {}
    assert 12 not in octave_shifts(written_down, feats, AlignSettings(octave_margin=0.1)).values()
