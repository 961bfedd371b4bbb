"""Inputs at the edges: integer arrays given to the API, WAVs that end early, target parts above
what the recording can hold, Opus inputs written as .ogg, and MIDI track names and notes as
real files have them (zero-length notes, drums only, huge names, escape codes, UTF-8)."""
import mido
import numpy as np
import pretty_midi
import pytest
import soundfile as sf

from bespoke import api, options
from bespoke.audio import Audio, load_audio, plan_output, save_audio
from bespoke.cli import main
from bespoke.config import Settings
from bespoke.errors import InputError
from bespoke.midi import load_midi, parts, save_midi, select_part
from bespoke.pipeline import run

TPB = 480
SR = 22050


def track(name, channel, pitches, beats=1.0, zero_length=False, program=None):
    t = mido.MidiTrack()
    if name is not None:
        t.append(mido.MetaMessage("track_name", name=name))
    if program is not None:
        t.append(mido.Message("program_change", program=program, channel=channel))
    for p in pitches:
        t.append(mido.Message("note_on", note=p, velocity=80, channel=channel))
        if zero_length:  # off on the very tick it starts, then a beat of rest
            t.append(mido.Message("note_off", note=p, velocity=0, channel=channel, time=0))
            t.append(mido.MetaMessage("marker", text="rest", time=int(beats * TPB)))
        else:
            t.append(mido.Message("note_off", note=p, velocity=0, channel=channel, time=int(beats * TPB)))
    return t


def midi_file(path, *tracks):
    mf = mido.MidiFile(type=1, ticks_per_beat=TPB)
    mf.tracks += list(tracks)
    mf.save(str(path))
    return path


def tones(seconds=8.0, sr=SR, hz=(440.0, 660.0)):
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.2 * np.sin(2 * np.pi * f * t) for f in hz) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.0 * t) ** 2)
    return y.astype(np.float32)


def one_part(pitches, seconds=8.0, program=73, name="Piccolo", is_drum=False):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=program, name=name, is_drum=is_drum)
    step = (seconds - 1.0) / len(pitches)
    for k, p in enumerate(pitches):
        inst.notes.append(pretty_midi.Note(90, int(p), 0.5 + k * step, 0.5 + (k + 0.9) * step))
    pm.instruments = [inst]
    return pm


# --------------------------------------------------------------------------- integer arrays


@pytest.mark.parametrize("dtype, value, want, subtype", [
    (np.int16, 16384, 0.5, "PCM_16"),
    (np.int16, -32768, -1.0, "PCM_16"),
    (np.int32, 2 ** 30, 0.5, "PCM_32"),
    (np.int8, -64, -0.5, "PCM_S8"),
    (np.uint8, 192, 0.5, "PCM_U8"),
    (np.uint16, 16384, -0.5, "PCM_16"),
])
def test_integer_arrays_are_scaled_like_pcm(dtype, value, want, subtype):
    x = np.zeros(1000, dtype=dtype) + (128 if dtype == np.uint8 else 32768 if dtype == np.uint16 else 0)
    x[::2] = value
    a = Audio.from_array(x, 8000)
    assert a.samples[0, 0] == pytest.approx(want) and a.samples[0, 1] == pytest.approx(0.0, abs=1e-9)
    assert np.abs(a.samples).max() <= 1.0
    assert a.samples.dtype == np.float32 and a.subtype == subtype


def test_arrays_without_an_audio_scale_are_refused():
    for x in (np.arange(1000, dtype=np.int64) - 500, np.ones(1000, dtype=bool)):
        with pytest.raises(InputError, match=f"cannot take an array of {x.dtype}"):
            Audio.from_array(x, 8000)


@pytest.mark.slow
def test_api_separate_of_an_int16_array_gives_a_float_stem_in_full_scale():
    y = tones(4.0)
    x = np.round(y * 32767).astype(np.int16)
    pm = one_part([69, 76, 69, 76, 69, 76], seconds=4.0, program=40, name="violin")
    res = api.separate(x, pm, sr=SR, steps=1, align=False, force=True, seed=0, device="cpu")
    assert res.stem.dtype == np.float32 and res.residual.dtype == np.float32
    assert np.abs(res.stem).max() <= 1.0 and np.abs(res.residual).max() <= 1.5
    np.testing.assert_allclose(res.stem + res.residual, x[None] / 32768.0, atol=1e-4)
    assert res.input_subtype == "PCM_16"


# --------------------------------------------------------------------------- a WAV that ends early


@pytest.fixture
def truncated_wav(tmp_path):
    full = tmp_path / "full.wav"
    sf.write(full, np.tile(tones(5.0), 5), SR, subtype="PCM_16")   # 25 s
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + int(8.4 * SR) * 2])
    return cut


def test_a_wav_that_ends_early_is_read_with_a_warning(truncated_wav, tmp_path):
    a = load_audio(truncated_wav)
    assert a.duration == pytest.approx(8.4, abs=0.01)
    assert len(a.warnings) == 1 and "ends early: 8.4 of 25.0 s read" in a.warnings[0]
    assert str(truncated_wav) in a.warnings[0]
    sf.write(tmp_path / "whole.wav", tones(3.0), SR, subtype="PCM_24")
    assert load_audio(tmp_path / "whole.wav").warnings == []


def test_an_aiff_that_ends_early_is_read_with_a_warning(tmp_path):
    full = tmp_path / "full.aiff"
    sf.write(full, np.stack([tones(6.0)] * 2, axis=1), SR, subtype="PCM_16")
    data = full.read_bytes()
    (tmp_path / "cut.aiff").write_bytes(data[: len(data) // 2])
    w = load_audio(tmp_path / "cut.aiff").warnings
    assert len(w) == 1 and "of 6.0 s read" in w[0]


def test_the_early_end_reaches_the_pipeline_warnings_and_the_cli(truncated_wav, tmp_path, capsys):
    heard = []
    state = run(load_audio(truncated_wav), one_part([69, 76] * 4), 0, Settings(), until="load",
                on_warning=heard.append)
    assert any("ends early" in w for w in heard) and any("ends early" in w for w in state.warnings)
    mid = midi_file(tmp_path / "a.mid", track("lead", 0, [69, 76] * 8, beats=1.0))
    assert main(["align", str(truncated_wav), str(mid), "-o", str(tmp_path / "out.mid"), "--force", "-q"]) == 0
    err = capsys.readouterr().err
    assert "bespoke: warning:" in err and "ends early: 8.4 of 25.0 s read" in err


# --------------------------------------------------------------------------- parts above the Nyquist frequency


def _until_align(audio, pm, **opts):
    heard = []
    s = options.apply(Settings(), no_align=True, **opts)
    run(audio, pm, 0, s, until="align", on_warning=heard.append)
    return heard


def test_a_target_wholly_above_what_the_analysis_holds_is_refused():
    with pytest.raises(InputError, match=r"#0 'Piccolo' lies wholly above 11025 Hz.*lowest note is F9"):
        _until_align(Audio.from_array(tones(), SR), one_part([125, 126, 127, 125]))


def test_a_target_above_a_low_rate_recordings_nyquist_is_refused():
    audio = Audio.from_array(tones(sr=8000), 8000)
    with pytest.raises(InputError, match="above 4000 Hz, the highest frequency a recording sampled at 8000 Hz"):
        _until_align(audio, one_part([108, 110, 112, 109]))


def test_a_target_partly_above_the_nyquist_frequency_is_warned_of():
    heard = _until_align(Audio.from_array(tones(sr=8000), 8000), one_part([81, 110, 84, 88]))
    assert any("1 of 4 notes of the target part #0 'Piccolo' lie above 4000 Hz" in w for w in heard)
    assert not any("above" in w for w in _until_align(Audio.from_array(tones(), SR), one_part([81, 110, 84])))


# --------------------------------------------------------------------------- Opus inputs written as .ogg


def test_an_opus_input_written_as_ogg_is_vorbis(tmp_path):
    sf.write(tmp_path / "in.ogg", tones(2.0, 48000), 48000, format="OGG", subtype="OPUS")
    a = load_audio(tmp_path / "in.ogg")
    assert a.subtype == "OPUS"
    assert plan_output(tmp_path / "out.ogg", a.sr, 1, like=a.subtype) == ("OGG", "VORBIS")
    assert plan_output(tmp_path / "out.opus", a.sr, 1, like=a.subtype) == ("OGG", "OPUS")
    assert plan_output(tmp_path / "out.ogg", a.sr, 1, like=a.subtype, subtype="OPUS") == ("OGG", "OPUS")
    save_audio(tmp_path / "out.ogg", a.samples, a.sr, like=a.subtype)
    assert sf.info(str(tmp_path / "out.ogg")).subtype == "VORBIS"


# --------------------------------------------------------------------------- MIDI: zero-length notes, drums only


def test_a_track_of_zero_length_notes_is_listed_and_named_as_such(tmp_path, capsys):
    path = midi_file(tmp_path / "z.mid", track("Melody", 0, [60, 62, 64, 65] * 2, program=40),
                     track("Pad", 1, [48, 50] * 4, zero_length=True))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "tracks without playable notes: 'Pad' (all 8 notes have zero length)" in out
    pm = load_midi(path)
    assert pm.bespoke_info["unplayable_tracks"] == [{"track": 1, "name": "Pad", "n_notes": 8,
                                                     "reason": "all 8 notes have zero length"}]
    with pytest.raises(InputError, match="«target Pad»|target='Pad'") as e:
        select_part(pm, "Pad")
    assert "holds only zero-length notes" in str(e.value) and "names no part" not in str(e.value)


def test_a_midi_of_zero_length_notes_only_says_so(tmp_path):
    path = midi_file(tmp_path / "z.mid", track("Pad", 1, [48, 50] * 4, zero_length=True))
    with pytest.raises(InputError, match=r"holds no notes with a length.*'Pad': all 8 notes have zero length"):
        load_midi(path)


@pytest.mark.slow
def test_a_drums_only_midi_is_one_clear_error(tmp_path, capsys):
    sf.write(tmp_path / "mix.wav", tones(), SR, subtype="PCM_16")
    mid = midi_file(tmp_path / "d.mid", track("Kit", 9, [36, 38, 42, 38] * 4, beats=0.5))
    code = main(["separate", str(tmp_path / "mix.wav"), str(mid), "-o", str(tmp_path / "out.wav"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("bespoke: error:") and "only drum parts" in err[0] and "--no-align" in err[0]
    assert not (tmp_path / "out.wav").exists()


# --------------------------------------------------------------------------- MIDI: track names


def test_a_huge_track_name_is_cut_in_every_message(tmp_path, capsys):
    path = midi_file(tmp_path / "n.mid", track("A" * 100_000, 0, [60, 62]), track("B", 1, [48, 50]))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) < 200 and "A" * 59 + "…" in out
    with pytest.raises(InputError) as e:
        select_part(load_midi(path), "tuba")
    assert len(str(e.value)) < 500 and "…" in str(e.value)
    with pytest.raises(InputError) as e:
        select_part(load_midi(path), "x" * 100_000)
    assert len(str(e.value)) < 500


def test_a_message_lists_a_dozen_parts_at_most(tmp_path):
    path = midi_file(tmp_path / "many.mid", *[track(f"Voice {k}", k % 9, [48 + k]) for k in range(40)])
    with pytest.raises(InputError) as e:
        select_part(load_midi(path), "tuba")
    assert "#11 'Voice 11'" in str(e.value) and "#12 " not in str(e.value) and "and 28 more" in str(e.value)


def test_control_characters_in_track_names_never_reach_the_terminal(tmp_path, capsys):
    evil = "Lead\x1b[2J\x1b]0;owned\x07\u202e".encode("utf-8").decode("latin-1")  # as mido reads it
    path = midi_file(tmp_path / "e.mid", track(evil, 0, [60, 62]), track("Bass", 1, [36, 38]),
                     track("Pad\x1b[31m", 2, [48], zero_length=True), track("Str\x1b[1m", 3, []))
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "Lead\\x1b[2J\\x1b]0;owned\\x07\\u202e" in out and "Pad\\x1b[31m" in out and "Str\\x1b[1m" in out
    sf.write(tmp_path / "mix.wav", tones(), SR, subtype="PCM_16")
    for target in ("tuba", "Pad\x1b[31m", "\x1b[9q"):
        code = main(["separate", str(tmp_path / "mix.wav"), str(path), "--target", target, "-o",
                     str(tmp_path / "o.wav")])
        assert code == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert main(["info", str(path), "--json"]) == 0  # JSON keeps the name, escaped by JSON itself
    assert "\\u001b[2J" in capsys.readouterr().out


def test_utf8_track_names_are_read_as_utf8(tmp_path, capsys):
    name = "Violín ♪ 小提琴"
    latin = name.encode("utf-8").decode("latin-1")  # the bytes as mido hands them over
    path = midi_file(tmp_path / "u.mid", track(latin, 0, [72, 74], program=40), track("Bajo", 1, [36, 38]),
                     track("Señor", 2, [60]))  # not UTF-8 bytes (latin-1 ñ): kept as latin-1
    pm = load_midi(path)
    assert [p.name for p in parts(pm)] == [name, "Bajo", "Señor"]
    assert select_part(pm, "violín ♪ 小提琴") == 0
    assert main(["info", str(path)]) == 0
    assert name in capsys.readouterr().out
    save_midi(pm, tmp_path / "again.mid")  # written back as UTF-8, read back the same
    assert [p.name for p in parts(load_midi(tmp_path / "again.mid"))] == [name, "Bajo", "Señor"]
