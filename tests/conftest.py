"""Tiny songs built in code: two parts (a melody and chords), rendered with fluidsynth."""
from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from bespoke.synth import bundled_soundfont, render

SR = 22050


def make_score(seconds: float = 8.0, tempo_scale: float = 1.0, offset: float = 0.0, seed: int = 0):
    """A two-part score: #0 melody (violin, program 40), #1 chords (piano, program 0).

    tempo_scale / offset warp the timing (t -> t * tempo_scale + offset), to make an
    unaligned version of the same music."""
    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    mel = pretty_midi.Instrument(program=40, name="melody")
    acc = pretty_midi.Instrument(program=0, name="chords")
    t = 0.5
    scale = [72, 74, 76, 77, 79, 81, 83, 84]
    while t < seconds - 1.0:
        d = float(rng.choice([0.25, 0.5, 0.75]))
        p = int(rng.choice(scale))
        mel.notes.append(pretty_midi.Note(90, p, t * tempo_scale + offset, (t + d * 0.95) * tempo_scale + offset))
        t += d
    t = 0.5
    chords = [[48, 55, 64], [53, 57, 65], [55, 59, 62], [48, 52, 60]]
    k = 0
    while t < seconds - 1.0:
        for p in chords[k % 4]:
            acc.notes.append(pretty_midi.Note(70, p, t * tempo_scale + offset, (t + 0.95) * tempo_scale + offset))
        t += 1.0
        k += 1
    pm.instruments = [mel, acc]
    return pm


@pytest.fixture(scope="session")
def tiny_song(tmp_path_factory):
    """Files of a tiny song: mix.wav (mono 22.05 kHz), mix_stereo.flac, melody.wav (the truth),
    score.mid (both parts, de-aligned), melody.mid (the melody alone, de-aligned)."""
    d = tmp_path_factory.mktemp("song")
    true = make_score()
    sf2 = bundled_soundfont()
    mel = render([true.instruments[0]], SR, soundfont=sf2, duration=8.5)
    acc = render([true.instruments[1]], SR, soundfont=sf2, duration=8.5)
    mel *= 0.15 / (np.abs(mel).max() + 1e-9)
    acc *= 0.45 / (np.abs(acc).max() + 1e-9)
    mix = mel + acc
    sf.write(d / "mix.wav", mix, SR, subtype="PCM_16")
    sf.write(d / "melody.wav", mel, SR, subtype="PCM_16")
    stereo = np.stack([0.7 * mel + 0.3 * acc, 0.3 * mel + 0.7 * acc], axis=1)
    sf.write(d / "mix_stereo.flac", stereo, SR, subtype="PCM_24")
    sf.write(d / "melody_stereo.wav", np.stack([0.7 * mel, 0.3 * mel], axis=1), SR, subtype="PCM_24")
    warped = make_score(tempo_scale=1.12, offset=0.4)
    warped.write(str(d / "score.mid"))
    solo = pretty_midi.PrettyMIDI(initial_tempo=120)
    solo.instruments = [warped.instruments[0]]
    solo.write(str(d / "melody.mid"))
    true.write(str(d / "true.mid"))
    return d
