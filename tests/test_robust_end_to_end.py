"""End to end with unusual files: multichannel float at 48 kHz with a report and a picture;
MP3, 96 kHz and 8-bit 8 kHz inputs. Short training: these check files, not quality."""
import json

import numpy as np
import pytest
import soundfile as sf

from bespoke.audio import resample
from bespoke.cli import main

pytestmark = pytest.mark.slow  # whole CLI runs (make test-fast leaves them out)


def test_multichannel_float_in_flac_out_with_report_and_plot(tiny_song, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    x, sr = sf.read(tiny_song / "mix.wav", dtype="float32")
    y = resample(x, sr, 48000)
    mix = np.stack([y, 0.6 * y, 0.3 * y], axis=1)               # 3 channels, 48 kHz, 32-bit float
    src = tmp_path / "mix3.wav"
    sf.write(src, mix, 48000, subtype="FLOAT")
    out, rest, rep, pic, al = (tmp_path / n for n in ("stem.flac", "rest.wav", "run.json", "run.png", "al.mid"))
    rc = main(["separate", str(src), str(tiny_song / "score.mid"), "--target", "melody", "-o", str(out),
               "--residual", str(rest), "--save-aligned", str(al), "--report", str(rep), "--plot", str(pic),
               "--steps", "5", "--seed", "0", "--device", "cpu", "-q"])
    assert rc == 0, capsys.readouterr().err
    # FLAC holds no float: 24 bit; the residual stays float WAV like the input
    i_out, i_rest = sf.info(str(out)), sf.info(str(rest))
    assert (i_out.format, i_out.subtype, i_out.channels, i_out.samplerate, i_out.frames) == \
        ("FLAC", "PCM_24", 3, 48000, len(mix))
    assert (i_rest.format, i_rest.subtype, i_rest.channels, i_rest.samplerate, i_rest.frames) == \
        ("WAV", "FLOAT", 3, 48000, len(mix))
    stem, _ = sf.read(out, dtype="float32")
    resid, _ = sf.read(rest, dtype="float32")
    assert np.max(np.abs(stem + resid - mix)) < 1e-4           # up to 24-bit rounding

    r = json.loads(rep.read_text())
    assert r["inputs"]["mix"] == {"path": str(src), "sr": 48000, "channels": 3,
                                  "seconds": pytest.approx(len(mix) / 48000),
                                  "format": "WAV", "subtype": "FLOAT"}
    assert r["target"]["name"] == "melody" and r["seed"] == 0 and r["device"]["device"] == "cpu"
    assert r["versions"]["torch"] and r["versions"]["libsndfile"]
    assert set(r["timings"]) >= {"align", "synth", "train", "separate", "total"}
    assert r["training"]["steps"] == 5 and len(r["training"]["loss_curve"]) == 5
    assert r["training"]["precision"] in ("fp32", "bf16") and r["settings"]["train"]["precision"] == "auto"
    assert r["settings"]["train"]["steps"] == 5 and r["settings"]["align"]["keep_cost"] is True
    assert r["outputs"]["stem"]["subtype"] == "PCM_24" and r["outputs"]["residual"]["subtype"] == "FLOAT"
    assert r["command"][:2] == ["bespoke", "separate"]
    # the time map in the report is the one that moved the notes: the score was played
    # 1.12 times slower and 0.4 s late (conftest), so it maps score onsets back to the truth
    import pretty_midi

    tm = r["alignment"]["time_map"]
    score = pretty_midi.PrettyMIDI(str(tiny_song / "score.mid")).instruments[0].notes
    true = pretty_midi.PrettyMIDI(str(tiny_song / "true.mid")).instruments[0].notes
    mapped = np.interp([n.start for n in score], tm["score_times"], tm["audio_times"])
    assert np.median(np.abs(mapped - [n.start for n in true])) < 0.1
    aligned = pretty_midi.PrettyMIDI(str(al)).instruments[0].notes
    assert np.allclose([n.start for n in aligned], mapped, atol=0.01)
    assert 0.0 <= r["alignment"]["confidence"] <= 1.0
    png = pic.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") >= 800  # width
    assert sorted(p.name for p in tmp_path.iterdir()) == ["al.mid", "mix3.wav", "rest.wav", "run.json", "run.png",
                                                            "stem.flac"]


def _mp3(tiny_song, d):
    x, sr = sf.read(tiny_song / "mix_stereo.flac", dtype="float32")
    sf.write(d / "in.mp3", x, sr)
    return d / "in.mp3", ["out.mp3", "rest.ogg"]


def _hires(tiny_song, d):
    x, sr = sf.read(tiny_song / "mix_stereo.flac", dtype="float32")
    sf.write(d / "in.flac", resample(x.T, sr, 96000).T, 96000, subtype="PCM_24")
    return d / "in.flac", ["out.flac", "rest.flac"]


def _lofi(tiny_song, d):
    x, sr = sf.read(tiny_song / "mix.wav", dtype="float32")
    sf.write(d / "in.wav", resample(x, sr, 8000), 8000, subtype="PCM_U8")
    return d / "in.wav", ["out.wav", "rest.wav"]


@pytest.mark.parametrize("make", [_mp3, _hires, _lofi], ids=["mp3-stereo", "96k-24bit", "8k-8bit"])
def test_output_mirrors_unusual_inputs(tiny_song, tmp_path, make, capsys):
    """--no-align with the true score and one training step: only the file handling is tested."""
    src, (out, rest) = make(tiny_song, tmp_path)
    rc = main(["separate", str(src), str(tiny_song / "true.mid"), "--target", "melody", "--no-align",
               "-o", str(tmp_path / out), "--residual", str(tmp_path / rest), "--steps", "1", "--device", "cpu", "-q"])
    assert rc == 0, capsys.readouterr().err
    i_in = sf.info(str(src))
    for name in (out, rest):
        i = sf.info(str(tmp_path / name))
        assert (i.channels, i.samplerate) == (i_in.channels, i_in.samplerate)
        if name.endswith(src.suffix):                        # same container: same sample format
            assert i.subtype == i_in.subtype
        lossy = i.subtype in ("MPEG_LAYER_III", "VORBIS")
        assert abs(i.frames - i_in.frames) <= (0.05 * i_in.frames if lossy else 0)
    assert sf.info(str(tmp_path / rest)).subtype == {".ogg": "VORBIS", ".flac": "PCM_24", ".wav": "PCM_U8"}[
        "." + rest.split(".")[-1]]
