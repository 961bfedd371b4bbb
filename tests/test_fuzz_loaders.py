"""Fuzzing the loaders with broken files: they load something sane or raise InputError, never
anything else (no other exception, no crash, no hang)."""
import io
import itertools

import mido
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bespoke.audio import load_audio
from bespoke.errors import InputError
from bespoke.midi import load_midi

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_names = itertools.count()


def _valid_audio(fmt, subtype):
    buf = io.BytesIO()
    t = np.arange(4000) / 8000.0
    x = 0.5 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 330 * t)], axis=1)
    sf.write(buf, x, 8000, format=fmt, subtype=subtype)
    return buf.getvalue()


def _valid_midi():
    mf = mido.MidiFile(type=1, ticks_per_beat=96)
    conductor = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=400000)])
    t = mido.MidiTrack([mido.MetaMessage("track_name", name="lead"),
                        mido.Message("program_change", program=40)])
    for p in (60, 62, 64, 65, 67):
        t += [mido.Message("note_on", note=p, velocity=90), mido.Message("note_off", note=p, time=96)]
    drums = mido.MidiTrack([mido.Message("note_on", note=36, velocity=90, channel=9),
                            mido.Message("note_off", note=36, channel=9, time=48)])
    mf.tracks += [conductor, t, drums]
    buf = io.BytesIO()
    mf.save(file=buf)
    return buf.getvalue()


SEEDS = {
    ".wav": [_valid_audio("WAV", "PCM_16"), _valid_audio("WAV", "FLOAT")],
    ".flac": [_valid_audio("FLAC", "PCM_24")],
    ".ogg": [_valid_audio("OGG", "VORBIS")],
    ".mp3": [_valid_audio("MP3", "MPEG_LAYER_III")],
}
MIDI_SEED = _valid_midi()


def mutated(seed: bytes):
    """Strategies for broken versions of ``seed``: bytes flipped, a cut, a chunk inserted."""
    n = len(seed)
    flips = st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=8)
    return st.one_of(
        flips.map(lambda fs: _flip(seed, fs)),
        st.integers(0, n - 1).map(lambda k: seed[:k]),
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=64))
        .map(lambda a: seed[:a[0]] + a[1] + seed[a[0]:]),
    )


def _flip(seed, fs):
    b = bytearray(seed)
    for i, v in fs:
        b[i] = v
    return bytes(b)


def _write(folder, suffix, data):
    p = folder / f"f{next(_names)}{suffix}"
    p.write_bytes(data)
    return p


def _check_audio(path):
    try:
        a = load_audio(path)
    except InputError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert a.samples.ndim == 2 and a.samples.shape[0] >= 1 and a.samples.shape[1] >= 1
    assert np.all(np.isfinite(a.samples)) and 8000 <= a.sr <= 192000


def _check_midi(path):
    try:
        pm = load_midi(path)
    except InputError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert pm.instruments and all(len(i.notes) > 0 for i in pm.instruments)
    assert all(n.end > n.start >= 0 for i in pm.instruments for n in i.notes)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3"]))
def test_random_bytes_as_audio(fuzz_dir, data, suffix):
    _check_audio(_write(fuzz_dir, suffix, data))


@FUZZ
@given(data=st.sampled_from(sorted(SEEDS)).flatmap(
    lambda ext: st.tuples(st.just(ext), st.sampled_from(SEEDS[ext]).flatmap(mutated))))
def test_broken_audio_files(fuzz_dir, data):
    suffix, blob = data
    _check_audio(_write(fuzz_dir, suffix, blob))


@FUZZ
@given(data=st.one_of(st.binary(max_size=1024), st.binary(max_size=512).map(lambda b: b"MThd" + b)))
def test_random_bytes_as_midi(fuzz_dir, data):
    _check_midi(_write(fuzz_dir, ".mid", data))


@FUZZ
@given(data=mutated(MIDI_SEED))
def test_broken_midi_files(fuzz_dir, data):
    _check_midi(_write(fuzz_dir, ".mid", data))


def test_the_fuzz_seeds_load(fuzz_dir):
    """The unbroken files load, so the fuzzing starts from real files."""
    for ext, blobs in SEEDS.items():
        for blob in blobs:
            assert load_audio(_write(fuzz_dir, ext, blob)).n_channels == 2
    assert len(load_midi(_write(fuzz_dir, ".mid", MIDI_SEED)).instruments) == 2
