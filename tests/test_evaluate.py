"""The quality measures on signals whose answers are known in closed form."""
import json

import numpy as np
import pytest
import soundfile as sf

from bespoke.evaluate import alignment_summary, onset_errors, random_warp, scores, sdr, si_sdr


def _orthogonal_noise(ref, rng, ratio_db):
    """Noise orthogonal to ``ref`` with |ref|^2 / |noise|^2 = ratio_db."""
    n = rng.standard_normal(len(ref))
    n -= np.dot(n, ref) / np.dot(ref, ref) * ref
    n *= np.sqrt(np.dot(ref, ref) / np.dot(n, n) / 10 ** (ratio_db / 10))
    return n


@pytest.mark.parametrize("ratio_db", [-10.0, 0.0, 7.5, 20.0])
def test_si_sdr_and_sdr_of_orthogonal_noise_equal_the_power_ratio(ratio_db):
    rng = np.random.default_rng(0)
    ref = np.sin(np.linspace(0, 200, 8000)) + 0.3 * rng.standard_normal(8000)
    est = ref + _orthogonal_noise(ref, rng, ratio_db)
    assert si_sdr(est, ref) == pytest.approx(ratio_db, abs=1e-6)
    # est = ref + n with n orthogonal to ref: the projection is ref itself, so SDR agrees
    assert sdr(est, ref) == pytest.approx(ratio_db, abs=1e-6)


def test_si_sdr_is_scale_invariant_and_sdr_is_not():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal(4000)
    est = ref + _orthogonal_noise(ref, rng, 5.0)
    base = si_sdr(est, ref)
    for c in (0.01, 0.5, 3.0, -2.0):
        assert si_sdr(c * est, ref) == pytest.approx(base, abs=1e-6)
        assert si_sdr(est, c * ref) == pytest.approx(base, abs=1e-6)
    # a scaled copy of the reference: perfect up to scale, but SDR = -20 log10|1 - c|
    for c in (0.5, 0.9, 2.0):
        assert si_sdr(c * ref, ref) > 80.0
        assert sdr(c * ref, ref) == pytest.approx(-20 * np.log10(abs(1 - c)), abs=1e-6)


def test_si_sdr_is_the_projection_formula():
    """An independent check: least-squares scale by numpy.linalg.lstsq, then the energy ratio."""
    rng = np.random.default_rng(2)
    ref = rng.standard_normal(3000)
    est = 0.7 * ref + 0.4 * rng.standard_normal(3000) + 0.1
    a = np.linalg.lstsq(ref[:, None], est, rcond=None)[0][0]
    want = 10 * np.log10(np.sum((a * ref) ** 2) / np.sum((est - a * ref) ** 2))
    assert si_sdr(est, ref) == pytest.approx(want, abs=1e-9)


def test_channels_are_averaged_and_lengths_cut():
    rng = np.random.default_rng(3)
    ref = rng.standard_normal(2000)
    est = ref + _orthogonal_noise(ref, rng, 10.0)
    stereo_est = np.stack([est + 0.2, est - 0.2])     # averages back to est
    stereo_ref = np.stack([ref, ref])
    assert si_sdr(stereo_est, stereo_ref) == pytest.approx(10.0, abs=1e-6)
    longer = np.concatenate([est, rng.standard_normal(500)])
    assert si_sdr(longer, ref) == pytest.approx(10.0, abs=1e-6)


def test_scores_report_the_improvement_over_the_mixture():
    rng = np.random.default_rng(4)
    ref = rng.standard_normal(4000)
    mix = ref + _orthogonal_noise(ref, rng, 0.0)
    est = ref + _orthogonal_noise(ref, rng, 12.0)
    s = scores(est, ref, mix)
    assert s["mix_si_sdr"] == pytest.approx(0.0, abs=1e-6)
    assert s["si_sdr_improvement"] == pytest.approx(12.0, abs=1e-6)
    assert s["sdr_improvement"] == pytest.approx(s["sdr"] - s["mix_sdr"])
    assert set(scores(est, ref)) == {"si_sdr", "sdr"}


def test_eval_command_prints_the_scores(tmp_path, capsys):
    from bespoke.cli import main

    rng = np.random.default_rng(5)
    sr = 16000
    ref = 0.3 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)
    est = ref + _orthogonal_noise(ref, rng, 15.0)
    mix = ref + _orthogonal_noise(ref, rng, -3.0)
    for name, x in (("est", est), ("ref", ref), ("mix", mix)):
        sf.write(tmp_path / f"{name}.wav", x, sr, subtype="FLOAT")
    rc = main(["eval", str(tmp_path / "est.wav"), str(tmp_path / "ref.wav"), "--mix", str(tmp_path / "mix.wav"),
               "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert out["si_sdr"] == pytest.approx(15.0, abs=0.01)
    assert out["si_sdr_improvement"] == pytest.approx(18.0, abs=0.01)
    rc = main(["eval", str(tmp_path / "est.wav"), str(tmp_path / "ref.wav")])
    assert rc == 0 and "SI-SDR" in capsys.readouterr().out


def test_eval_command_refuses_different_rates(tmp_path, capsys):
    from bespoke.cli import main

    x = np.sin(np.arange(8000) / 5.0)
    sf.write(tmp_path / "a.wav", x, 16000)
    sf.write(tmp_path / "b.wav", x, 22050)
    rc = main(["eval", str(tmp_path / "a.wav"), str(tmp_path / "b.wav")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "sample rate" in err[0]


def _notes(starts, pitches, dur=0.4):
    return np.array([[s, s + dur, p, 80] for s, p in zip(starts, pitches)], dtype=float)


def test_onset_errors_of_known_shifts():
    true = _notes([0.0, 0.5, 1.0, 1.5], [60, 62, 64, 65])
    shift = np.array([0.01, -0.03, 0.2, 0.0])
    aligned = true.copy()
    aligned[:, 0] += shift
    np.testing.assert_allclose(onset_errors(aligned, true), np.abs(shift), atol=1e-12)


def test_onset_errors_match_chord_notes_by_pitch():
    # a chord whose notes swap order in the aligned version (asynchrony) still matches note for note
    true = _notes([1.00, 1.01, 1.02, 2.0], [60, 64, 67, 60])
    aligned = _notes([1.05, 1.03, 1.00, 2.1], [60, 64, 67, 60])
    np.testing.assert_allclose(onset_errors(aligned, true), [0.05, 0.02, 0.02, 0.1], atol=1e-12)
    with pytest.raises(ValueError):
        onset_errors(aligned[:3], true)
    with pytest.raises(ValueError):
        onset_errors(_notes([1.0, 1.0, 1.0, 2.0], [60, 64, 67, 61]), true)


def test_alignment_summary_of_known_errors():
    s = alignment_summary(np.array([0.01, 0.04, 0.06, 0.2]))
    assert s["median_ms"] == pytest.approx(50.0)
    assert s["within_50ms"] == pytest.approx(0.5)
    assert s["within_100ms"] == pytest.approx(0.75)
    assert s["n"] == 4
    assert alignment_summary(np.zeros(0))["n"] == 0


@pytest.mark.parametrize("seed", range(5))
def test_random_warp_is_smooth_monotonic_and_within_the_tempo_range(seed):
    rng = np.random.default_rng(seed)
    tm = random_warp(60.0, rng, max_dev=0.2)
    t = np.linspace(0, 60, 6001)
    w = tm(t)
    slope = np.diff(w) / np.diff(t)
    assert np.all(slope > 0)
    assert slope.min() >= 0.8 - 1e-6 and slope.max() <= 1.2 + 1e-6
    assert w.min() >= 0.0


def test_random_warp_offsets():
    rng = np.random.default_rng(0)
    assert random_warp(30.0, rng, offset=1.5)(0.0) == pytest.approx(1.5)
    # a negative offset moves the notes earlier, but never the first note before 0.1 s
    tm = random_warp(30.0, np.random.default_rng(1), offset=-1.5, first_onset=3.0)
    assert tm(3.0) < 3.0 * 1.2 - 1.0
    tm = random_warp(30.0, np.random.default_rng(1), offset=-1.5, first_onset=0.5)
    assert tm(0.5) == pytest.approx(0.1, abs=1e-6)
    # without first_onset the map stays >= 0
    assert random_warp(30.0, np.random.default_rng(1), offset=-1.5)(0.0) >= 0.0
