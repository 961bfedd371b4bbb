"""The CLI end to end on a tiny song, with a small training budget."""
import numpy as np
import pytest
import soundfile as sf

from bespoke.cli import main
from bespoke.evaluate import si_sdr

pytestmark = pytest.mark.slow  # whole CLI runs (make test-fast leaves them out)


def test_separate_mono_from_unaligned_single_part(tiny_song, tmp_path):
    out = tmp_path / "melody.wav"
    rest = tmp_path / "rest.wav"
    aligned = tmp_path / "aligned.mid"
    rc = main([
        "separate", str(tiny_song / "mix.wav"), str(tiny_song / "melody.mid"), "-o", str(out),
        "--residual", str(rest), "--save-aligned", str(aligned), "--steps", "40", "--seed", "0", "-q",
        "--device", "cpu"])
    assert rc == 0
    mix, sr = sf.read(tiny_song / "mix.wav")
    ref, _ = sf.read(tiny_song / "melody.wav")
    est, sr_out = sf.read(out)
    res, _ = sf.read(rest)
    assert sr_out == sr and est.shape == mix.shape and res.shape == mix.shape
    assert sf.info(str(out)).subtype == "PCM_16"
    # the stem is measurably closer to the true part than the mixture is
    assert si_sdr(est, ref) > si_sdr(mix, ref) + 3.0
    # stem + residual give the mixture back (up to 16-bit rounding)
    assert np.max(np.abs(est + res - mix)) < 1e-3
    assert aligned.exists()


def test_separate_stereo_flac_keeps_format(tiny_song, tmp_path):
    out = tmp_path / "melody.flac"
    rc = main(["separate", str(tiny_song / "mix_stereo.flac"), str(tiny_song / "score.mid"), "--target", "melody",
               "-o", str(out), "--steps", "30", "--seed", "1", "-q", "--device", "cpu"])
    assert rc == 0
    info_in, info_out = sf.info(str(tiny_song / "mix_stereo.flac")), sf.info(str(out))
    assert (info_out.format, info_out.channels, info_out.samplerate, info_out.frames, info_out.subtype) == \
        (info_in.format, info_in.channels, info_in.samplerate, info_in.frames, info_in.subtype)
    est, _ = sf.read(out)
    ref, _ = sf.read(tiny_song / "melody_stereo.wav")
    mix, _ = sf.read(tiny_song / "mix_stereo.flac")
    assert si_sdr(est.mean(1), ref.mean(1)) > si_sdr(mix.mean(1), ref.mean(1)) + 2.0
    # the mask applies to each channel: the melody stays panned left as in the truth
    assert np.sqrt(np.mean(est[:, 0] ** 2)) > 1.5 * np.sqrt(np.mean(est[:, 1] ** 2))


def test_missing_input_is_one_line_and_nonzero(tmp_path, capsys):
    out = tmp_path / "x.wav"
    rc = main(["separate", str(tmp_path / "nope.wav"), str(tmp_path / "nope.mid"), "-o", str(out), "-q"])
    assert rc != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.wav" in err[0] and "Traceback" not in err[0]
    assert not out.exists()


def test_seed_makes_a_budgeted_run_repeatable(tiny_song, tmp_path):
    """With --seed and a time budget, training stops on a step count, not the clock: two runs
    write the same stem; another seed writes another one."""
    outs = []
    for k, seed in enumerate(["3", "3", "4"]):
        out = tmp_path / f"run{k}.wav"
        rc = main(["separate", str(tiny_song / "mix.wav"), str(tiny_song / "melody.mid"), "-o", str(out),
                   "--budget", "4", "--seed", seed, "-q", "--device", "cpu"])
        assert rc == 0
        outs.append(sf.read(out, dtype="int16")[0])
    assert np.array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])
