"""Every part at once: ``bespoke separate --all`` / several ``--target`` / ``api.separate(targets=...)``
on a tiny three-part song built in code, and the pieces they are made of (the consistent mask set,
the stems' file names, query-by-score training)."""
import json

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from conftest import SR, make_score

import bespoke
from bespoke.cli import main
from bespoke.errors import OutputError
from bespoke.evaluate import si_sdr


def _error_db(parts, mix) -> float:
    """How far the sum of ``parts`` is from ``mix``, in dB of the mixture's energy."""
    err = np.sum(parts, axis=0) - mix
    return 10 * np.log10((np.sum(err ** 2) + 1e-30) / np.sum(mix ** 2))


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    """Files of a three-part song: mix.flac (stereo, 22.05 kHz, 24 bit), the truth of each part
    (part0.wav ...), score.mid (de-aligned: #0 melody, #1 chords, #2 bass)."""
    from bespoke.synth import bundled_soundfont, render

    d = tmp_path_factory.mktemp("trio")

    def with_bass(pm, scale=1.0, offset=0.0):
        bass = pretty_midi.Instrument(program=32, name="bass")
        for k, t in enumerate(np.arange(0.5, 7.0, 1.0)):
            bass.notes.append(pretty_midi.Note(85, [36, 41, 43, 36][k % 4], t * scale + offset,
                                               (t + 0.9) * scale + offset))
        pm.instruments.append(bass)
        return pm

    true = with_bass(make_score())
    sf2 = bundled_soundfont()
    parts = []
    for i, peak in enumerate((0.15, 0.35, 0.3)):
        y = render([true.instruments[i]], SR, soundfont=sf2, duration=8.5)
        parts.append(y * peak / (np.abs(y).max() + 1e-9))
        sf.write(d / f"part{i}.wav", parts[-1], SR, subtype="FLOAT")
    mix = sum(parts)
    sf.write(d / "mix.flac", np.stack([mix, 0.8 * mix], axis=1), SR, subtype="PCM_24")
    with_bass(make_score(tempo_scale=1.12, offset=0.4), 1.12, 0.4).write(str(d / "score.mid"))
    return d


@pytest.mark.slow
def test_all_writes_a_stem_per_part_and_the_residual_that_add_up_to_the_mix(trio, tmp_path, capsys):
    out = tmp_path / "stems"
    out.mkdir()
    template = str(out / "{index}-{name}.flac")
    args = ["separate", str(trio / "mix.flac"), str(trio / "score.mid"), "--all", "-o", template,
            "--report", str(tmp_path / "run.json"), "--steps", "4", "--seed", "0", "--device", "cpu"]
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 0, err
    names = ["0-melody.flac", "1-chords.flac", "2-bass.flac", "3-residual.flac"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert "wrote 3 stems" in err and "3-residual.flac" in err
    i_in = sf.info(str(trio / "mix.flac"))
    for name in names:
        i = sf.info(str(out / name))
        assert (i.format, i.subtype, i.channels, i.samplerate, i.frames) == \
            (i_in.format, i_in.subtype, i_in.channels, i_in.samplerate, i_in.frames)
    mix = sf.read(trio / "mix.flac", dtype="float64")[0]
    written = [sf.read(out / n, dtype="float64")[0] for n in names]
    assert _error_db(written, mix) < -60.0
    # each stem is its part (the NMF carries the 4-step network): closer to it than the mixture is
    for i in range(3):
        truth = sf.read(trio / f"part{i}.wav")[0]
        assert si_sdr(written[i].mean(1), truth) > si_sdr(mix.mean(1), truth) + 3.0, i
    rep = json.loads((tmp_path / "run.json").read_text())
    assert [(s["index"], s["name"], s["path"]) for s in rep["outputs"]["stems"]] == \
        [(i, n, str(out / f"{i}-{n}.flac")) for i, n in enumerate(["melody", "chords", "bass"])]
    assert rep["outputs"]["residual"]["path"] == str(out / "3-residual.flac")
    assert [t["name"] for t in rep["targets"]] == ["melody", "chords", "bass"]

    # again: every output exists, so nothing is done and nothing changes
    before = {n: (out / n).read_bytes() for n in names}
    assert main(args + ["-q"]) == 1
    assert "exists already" in capsys.readouterr().err
    assert {n: (out / n).read_bytes() for n in names} == before


def test_all_refuses_before_any_work_when_one_stem_exists_or_names_collide(trio, tmp_path, capsys, monkeypatch):
    from bespoke import api

    monkeypatch.setattr(api, "run", lambda *a, **k: pytest.fail("the work started"))
    (tmp_path / "1-chords.wav").write_bytes(b"mine")
    rc = main(["separate", str(trio / "mix.flac"), str(trio / "score.mid"), "--all", "-o",
               str(tmp_path / "{index}-{name}.wav"), "-q"])
    assert rc == 1 and "exists already" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1-chords.wav"]
    # a template without {index} or {name} would write every stem to one file
    rc = main(["separate", str(trio / "mix.flac"), str(trio / "score.mid"), "-t", "0", "-t", "2",
               "-o", str(tmp_path / "stem.wav"), "-q"])
    assert rc == 1 and "{index} or {name}" in capsys.readouterr().err
    assert main(["separate", str(trio / "mix.flac"), str(trio / "score.mid"), "--all", "-t", "0",
                 "-o", str(tmp_path / "{index}.wav"), "-q"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1-chords.wav"]


@pytest.mark.slow
def test_a_target_list_from_python_and_the_cli(trio, tmp_path, capsys):
    res = bespoke.separate(str(trio / "mix.flac"), str(trio / "score.mid"), targets=[2, "melody"], steps=2, seed=0,
                           device="cpu")
    mix = sf.read(trio / "mix.flac", dtype="float32")[0].T
    assert list(res.stems) == [2, 0] and res.names == {2: "bass", 0: "melody"}
    assert all(s.shape == mix.shape and s.dtype == np.float32 for s in res.stems.values())
    assert _error_db(list(res.stems.values()) + [res.residual], mix) < -100.0
    chords = sf.read(trio / "part1.wav")[0]      # not asked for: it stays in the residual
    assert si_sdr(res.residual.mean(0), chords) > si_sdr(mix.mean(0), chords) + 3.0
    written = res.save_stems(str(tmp_path / "{name}.wav"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bass.wav", "melody.wav", "residual.wav"]
    assert written["residual"]["path"] == str(tmp_path / "residual.wav")
    with pytest.raises(OutputError, match="exists already"):
        res.save_stems(str(tmp_path / "{name}.wav"))
    res.save_stems(str(tmp_path / "{name}.wav"), overwrite=True)

    # the CLI's repeated --target: the same stems, the residual where --residual says
    rc = main(["separate", str(trio / "mix.flac"), str(trio / "score.mid"), "-t", "bass", "-t", "0",
               "-o", str(tmp_path / "cli-{name}.flac"), "--residual", str(tmp_path / "rest.wav"),
               "--steps", "2", "--seed", "0", "--device", "cpu", "-q"])
    assert rc == 0, capsys.readouterr().err
    for i, name in ((0, "melody"), (2, "bass")):
        got = sf.read(tmp_path / f"cli-{name}.flac", dtype="float32")[0].T
        assert np.max(np.abs(got - res.stems[i])) < 1e-5          # 24-bit rounding
    assert sf.info(str(tmp_path / "rest.wav")).channels == 2


def test_apply_mask_set_is_consistent_and_one_spec_is_apply_masks():
    from bespoke.masks import apply_mask_set, apply_masks
    from bespoke.spectral import Grid

    rng = np.random.default_rng(0)
    g24, g48 = Grid(sr=SR, bins_per_octave=24), Grid(sr=SR, bins_per_octave=48)
    audio = rng.standard_normal((2, SR * 2)).astype(np.float32) * 0.1
    n = g24.n_frames(audio.shape[1])
    specs = [dict(factors=[(rng.uniform(0.3, 1.0, (g24.n_log, n)).astype(np.float32), g24, 0.3),
                           (rng.uniform(0.3, 1.0, (g48.n_log, n)).astype(np.float32), g48, 0.7)],
                  pool="logit", sharpness=1.5) for _ in range(3)]
    stems = apply_mask_set(audio, SR, specs, block_s=0.5)
    # masks that add up to well over 1 are shared out: the stems add up to the mixture
    assert _error_db(stems, audio) < -60.0
    alone = apply_masks(audio, SR, **specs[0], block_s=0.5)
    assert np.sum(stems[0] ** 2) < 0.8 * np.sum(alone ** 2)
    np.testing.assert_array_equal(apply_mask_set(audio, SR, specs[:1], block_s=0.5)[0], alone)
    # masks that add up to less than 1 are left alone: the rest is the residual's
    small = [dict(factors=[(np.full((g24.n_log, n), 0.3, np.float32), g24, 1.0)]) for _ in range(2)]
    a, b = apply_mask_set(audio, SR, small, block_s=0.5)
    np.testing.assert_allclose(a, apply_masks(audio, SR, small[0]["factors"], block_s=0.5), atol=1e-6)
    assert 10 * np.log10(np.sum((audio - a - b) ** 2) / np.sum(audio ** 2)) == pytest.approx(20 * np.log10(0.4),
                                                                                            abs=0.5)


def test_stem_names_and_paths():
    from bespoke.stems import safe_name, stem_paths

    assert safe_name("Violin I / solo?") == "Violin_I_solo"
    assert safe_name("  ", program=40) == "Violin" and safe_name("", is_drum=True) == "drums"
    assert safe_name("../..") == "part" and len(safe_name("x" * 300)) == 60
    paths = stem_paths("out/{index}-{name}.wav", {0: "a", 2: "c"}, 3)
    assert paths == {0: "out/0-a.wav", 2: "out/2-c.wav", "residual": "out/3-residual.wav"}
    with pytest.raises(OutputError, match=r"\{index\} or \{name\}"):
        stem_paths("out.wav", {0: "a"}, 1)
    with pytest.raises(OutputError, match="two stems"):
        stem_paths("{name}.wav", {0: "violin", 1: "violin"}, 2)


def test_query_by_score_training_draws_every_part():
    """Each example of a PartsTrainingSet is one part's: its target and its notes in the template
    channel (the other parts' notes in the 'other' channel)."""
    from bespoke.config import AugmentSettings
    from bespoke.data import PartsTrainingSet, Song, Source, TrainingSet
    from bespoke.spectral import Grid, midi_to_hz

    grid = Grid(sr=SR, bins_per_octave=12)
    t = np.arange(3 * SR) / SR
    tones = {p: (0.2 * np.sin(2 * np.pi * midi_to_hz(p, 0.0) * t)).astype(np.float32) for p in (48, 72)}
    notes = {p: np.array([[0.0, 3.0, p, 90]]) for p in tones}
    recipe = AugmentSettings(segment_s=1.0, jitter=False, p_silent_target=0.0)
    sets = [TrainingSet(Song(tones[48] + tones[72], SR, notes[p], notes[q]), [Source(tones[p])],
                        [Source(tones[q], notes[q])], grid, recipe) for p, q in ((48, 72), (72, 48))]
    batch = PartsTrainingSet(sets).sample(np.random.default_rng(0), 16)

    def strongest_below_c4(channel):  # each example: does the channel's strongest bin lie below middle C?
        return grid.log_freqs[batch["score"][:, channel].sum(axis=2).argmax(axis=1)] < midi_to_hz(60, 0.0)

    template_low, other_low = strongest_below_c4(0), strongest_below_c4(2)
    assert 0 < template_low.sum() < 16                 # both parts drawn
    assert np.array_equal(template_low, ~other_low)    # the other channel holds the other part


@pytest.mark.slow
@pytest.mark.parametrize("targets", [None, [0, 2]], ids=["one", "several"])
def test_self_training_runs_with_one_target_and_with_several(trio, targets):
    """train.self_train swaps the NMF's estimates for the ensemble's half way: each target's, with several."""
    from bespoke.config import Settings, override

    s = override(Settings(), {"train": {"self_train": 0.5}})
    res = bespoke.separate(str(trio / "mix.flac"), str(trio / "score.mid"), target=None if targets else 0,
                           targets=targets, steps=2, seed=0, device="cpu", settings=s)
    assert res.train.steps == 2
    assert sorted(res.stems) == ([0, 2] if targets else [])
