"""The rest of the recording, transcribed for a one-part MIDI (bespoke.transcribe, stages.align)."""
import numpy as np
import pretty_midi
import soundfile as sf

from bespoke import transcribe as T
from bespoke.config import Settings


def test_rest_notes_drops_what_the_target_explains():
    target = np.array([[1.0, 2.0, 60, 90], [3.0, 4.0, 64, 90]])
    notes = np.array([
        [1.05, 1.9, 60, 80],   # the target's own note: explained
        [1.0, 2.0, 48, 80],    # another part's note at the same time: kept
        [3.0, 4.0, 76, 80],    # the target's octave above: kept unless 12 is among the intervals
        [2.0, 3.2, 64, 80],    # the target's pitch, mostly before its note (+ margin): kept
        [5.0, 6.0, 60, 80],    # the target's pitch long after its note: kept
    ])
    kept = T.rest_notes(notes, target, margin_s=0.1, cover=0.5)
    assert kept[:, 2].tolist() == [48, 76, 64, 60]
    kept = T.rest_notes(notes, target, margin_s=0.1, cover=0.5, intervals=(0, 12))
    assert kept[:, 2].tolist() == [48, 64, 60]
    assert len(T.rest_notes(notes, target[:0])) == len(notes)


def test_notes_from_posteriorgrams_split_at_onsets_and_drop_short_ones():
    n = 200
    times = np.arange(n) * T.HOP / T.SR
    note = np.zeros((n, 88), np.float32)
    onset = np.zeros((n, 88), np.float32)
    k = 60 - T.LOWEST_PITCH
    note[10:90, k] = 0.8            # one sounding stretch ...
    onset[10, k], onset[50, k] = 0.9, 0.9   # ... struck twice: two notes
    note[120:124, k + 4] = 0.9      # 4 frames (46 ms): too short
    post = T.Posteriorgrams(note=note, onset=onset, times=times)
    got = post.notes(frame_threshold=0.3, onset_threshold=0.5, min_note_s=0.12)
    assert got[:, 2].tolist() == [60, 60]
    assert np.allclose(got[:, 0], [times[10], times[50]])
    assert np.allclose(got[:, 1], [times[50], times[89] + T.HOP / T.SR])


def test_transcriber_hears_the_accompaniment_of_the_tiny_song(tiny_song):
    """Basic Pitch on the tiny song (a violin melody over piano chords): most of the chord notes
    it finds are the chords' pitches, at their times."""
    assert T.available(), "make install puts basic-pitch's weights and onnxruntime in the venv"
    mix, sr = sf.read(tiny_song / "mix.wav", dtype="float32")
    post = T.posteriorgrams(mix, sr)
    assert post.note.shape == (len(post.times), 88)
    assert abs(post.times[-1] - len(mix) / sr) < 0.1
    notes = post.notes()
    chords = pretty_midi.PrettyMIDI(str(tiny_song / "true.mid")).instruments[1].notes
    heard = sum(any(abs(n[0] - c.start) < 0.1 and n[2] == c.pitch for n in notes) for c in chords)
    assert heard >= 0.6 * len(chords), (heard, len(chords))


def test_one_part_midi_gets_the_transcribed_rest_as_a_part(tiny_song):
    from bespoke import pipeline
    from bespoke.audio import load_audio
    from bespoke.midi import load_midi

    audio = load_audio(str(tiny_song / "mix.wav"))
    state = pipeline.run(audio, load_midi(tiny_song / "melody.mid"), 0, Settings(), until="align")
    aligned = state.values["aligned"]
    assert [i.name for i in aligned.midi.instruments] == ["melody", "rest (transcribed)"]
    assert aligned.target_index == 0 and len(aligned.programs) == 2
    rest = aligned.midi.instruments[1].notes
    chord_pitches = {48, 52, 53, 55, 57, 59, 60, 62, 64, 65}
    assert len(rest) >= 10
    assert np.mean([n.pitch in chord_pitches for n in rest]) >= 0.7
    # the melody's notes are the target's, not the rest's
    melody = aligned.midi.instruments[0].notes
    doubled = sum(any(n.pitch == m.pitch and abs(n.start - m.start) < 0.1 for m in melody) for n in rest)
    assert doubled <= 0.1 * len(rest)
    # switched off: the part alone
    off = Settings().replace({"rest": {"enabled": False}})
    state = pipeline.run(audio, load_midi(tiny_song / "melody.mid"), 0, off, until="align")
    assert len(state.values["aligned"].midi.instruments) == 1
