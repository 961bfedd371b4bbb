"""Audio in and out: containers, channel counts, rates, bit depths, mirroring, atomic writes.

Small generated files, no training (the end-to-end format runs are in test_robust_end_to_end.py).
"""
import os

import numpy as np
import pytest
import soundfile as sf

from bespoke.audio import Audio, atomic_paths, choose_subtype, load_audio, plan_output, save_audio
from bespoke.errors import InputError, OutputError


def tone(sr, channels, seconds=0.5, amp=0.5):
    """``(n_samples, channels)``: a different sine per channel."""
    t = np.arange(int(sr * seconds)) / sr
    return np.stack([amp * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)], axis=1)


CASES = [  # ext, container, subtype, rate, channels
    (".wav", "WAV", "PCM_16", 8000, 1),
    (".wav", "WAV", "PCM_24", 44100, 2),
    (".wav", "WAV", "PCM_32", 48000, 2),
    (".wav", "WAV", "FLOAT", 96000, 6),
    (".wav", "WAV", "DOUBLE", 22050, 3),
    (".wav", "WAV", "PCM_U8", 11025, 1),
    (".flac", "FLAC", "PCM_16", 16000, 2),
    (".flac", "FLAC", "PCM_24", 96000, 2),
    (".flac", "FLAC", "PCM_24", 44100, 8),
    (".ogg", "OGG", "VORBIS", 44100, 2),
    (".mp3", "MP3", "MPEG_LAYER_III", 22050, 1),
    (".mp3", "MP3", "MPEG_LAYER_III", 48000, 2),
    (".aiff", "AIFF", "PCM_16", 32000, 2),
]


@pytest.mark.parametrize("ext,container,subtype,sr,channels", CASES)
def test_load_then_save_mirrors_the_input(tmp_path, ext, container, subtype, sr, channels):
    src = tmp_path / f"in{ext}"
    x = tone(sr, channels)
    sf.write(src, x, sr, format=container, subtype=subtype)
    a = load_audio(src)
    assert a.samples.dtype == np.float32 and a.samples.shape[0] == channels
    assert a.sr == sr and (a.format, a.subtype) == (container, subtype)
    if subtype not in ("VORBIS", "MPEG_LAYER_III"):  # lossless: the samples come back
        assert a.n_samples == len(x)
        assert np.max(np.abs(a.samples.T - x)) < (0.01 if subtype == "PCM_U8" else 1e-3)
    out = tmp_path / f"out{ext}"
    info = save_audio(out, a.samples, a.sr, like=a.subtype)
    got = sf.info(str(out))
    assert (got.format, got.subtype, got.samplerate, got.channels) == (container, subtype, sr, channels)
    assert info["subtype"] == subtype and info["clipped"] == 0
    if subtype not in ("VORBIS", "MPEG_LAYER_III"):
        assert got.frames == a.n_samples


@pytest.mark.parametrize("like,fmt,expected", [
    ("FLOAT", "FLAC", "PCM_24"),        # FLAC holds no float: the deepest integer
    ("DOUBLE", "FLAC", "PCM_24"),
    ("PCM_32", "FLAC", "PCM_24"),       # FLAC stops at 24 bit
    ("PCM_16", "FLAC", "PCM_16"),
    ("PCM_24", "WAV", "PCM_24"),
    ("FLOAT", "WAV", "FLOAT"),
    ("PCM_24", "OGG", "VORBIS"),        # lossy containers take their codec
    ("PCM_16", "MP3", "MPEG_LAYER_III"),
    ("VORBIS", "WAV", "PCM_16"),        # lossy sources: 16 bit
    ("MPEG_LAYER_III", "FLAC", "PCM_16"),
    ("PCM_U8", "FLAC", "PCM_S8"),
    (None, "WAV", "PCM_16"),
])
def test_subtype_where_the_container_cannot_hold_the_input(like, fmt, expected):
    assert choose_subtype(fmt, like) == expected


def test_explicit_format_and_subtype_win(tmp_path):
    x = tone(22050, 2).T
    info = save_audio(tmp_path / "a.wav", x, 22050, like="PCM_16", subtype="FLOAT")
    assert sf.info(str(tmp_path / "a.wav")).subtype == "FLOAT" and info["subtype"] == "FLOAT"
    save_audio(tmp_path / "b.out", x, 22050, fmt="flac")
    assert sf.info(str(tmp_path / "b.out")).format == "FLAC"
    with pytest.raises(OutputError, match="cannot hold subtype FLOAT"):
        save_audio(tmp_path / "c.flac", x, 22050, subtype="FLOAT")
    with pytest.raises(OutputError, match="extension"):
        save_audio(tmp_path / "d.xyz", x, 22050)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.wav", "b.out"]


@pytest.mark.parametrize("path,sr,channels,match", [
    ("o.mp3", 44100, 3, "at most 2 channels"),
    ("o.mp3", 96000, 2, "cannot be written at 96000 Hz"),
    ("o.opus", 44100, 2, "Opus cannot be written at 44100 Hz"),
])
def test_containers_that_cannot_take_the_input_fail_before_any_work(tmp_path, path, sr, channels, match):
    with pytest.raises(OutputError, match=match):
        plan_output(tmp_path / path, sr, channels, like="PCM_16")


def test_opus_and_mp3_at_their_rates(tmp_path):
    assert plan_output(tmp_path / "o.opus", 48000, 2) == ("OGG", "OPUS")
    assert plan_output(tmp_path / "o.mp3", 44100, 2) == ("MP3", "MPEG_LAYER_III")


def test_integer_outputs_clip_and_count_float_outputs_keep(tmp_path):
    x = np.array([[0.5, 1.5, -2.0, 0.1]], dtype=np.float32)
    info = save_audio(tmp_path / "a.wav", x, 8000, like="PCM_16")
    assert info["clipped"] == 2 and info["peak"] == pytest.approx(2.0)
    y, _ = sf.read(tmp_path / "a.wav")
    assert np.max(np.abs(y)) <= 1.0
    info = save_audio(tmp_path / "b.wav", x, 8000, like="FLOAT")
    assert info["clipped"] == 0
    assert sf.read(tmp_path / "b.wav")[0].min() == pytest.approx(-2.0)


def test_outputs_get_ordinary_permissions(tmp_path):
    save_audio(tmp_path / "a.wav", tone(8000, 1).T, 8000)
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / "a.wav").stat().st_mode & 0o777 == 0o666 & ~mask


def test_interrupted_write_keeps_the_old_file_and_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "a.flac"
    save_audio(out, tone(8000, 1).T, 8000)
    before = out.read_bytes()
    real_write = sf.write

    def write_then_interrupt(file, data, *a, **k):
        real_write(file, data[: len(data) // 2], *a, **k)  # half the file is on disk...
        raise KeyboardInterrupt                              # ...when Ctrl-C comes

    monkeypatch.setattr(sf, "write", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_audio(out, tone(8000, 1, amp=0.1).T, 8000)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.flac"]


def test_a_group_of_outputs_appears_whole_or_not_at_all(tmp_path):
    paths = [tmp_path / "rest.wav", tmp_path / "report.json", tmp_path / "stem.wav"]
    with pytest.raises(RuntimeError):
        with atomic_paths(paths) as tmps:
            tmps[0].write_bytes(b"x")
            tmps[1].write_bytes(b"y")
            raise RuntimeError("the plot failed")
    assert list(tmp_path.iterdir()) == []
    with atomic_paths(paths) as tmps:
        for t in tmps:
            t.write_bytes(b"ok")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "rest.wav", "stem.wav"]


def test_writing_into_a_missing_folder_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        save_audio(tmp_path / "no" / "a.wav", tone(8000, 1).T, 8000)


@pytest.mark.parametrize("make,match", [
    (lambda: np.zeros((1, 0)), "empty"),
    (lambda: np.zeros((2, 800)), "silent"),
    (lambda: np.array([[0.1, np.nan, 0.2]]), "NaN or infinite"),
    (lambda: np.array([[0.1, np.inf, 0.2]]), "NaN or infinite"),
    (lambda: np.zeros((800, 2)) + 0.1, "more channels than samples"),
])
def test_arrays_are_checked_like_files(make, match):
    with pytest.raises(InputError, match=match):
        Audio.from_array(make(), 8000)


def test_array_rate_is_checked():
    with pytest.raises(InputError, match="sample rate"):
        Audio.from_array(np.ones(100) * 0.1, 4000)
    a = Audio.from_array(np.ones(100) * 0.1, 8000)
    assert a.samples.shape == (1, 100)
