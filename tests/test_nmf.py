"""Score-informed NMF (bespoke.nmf) on tones built in code."""
import numpy as np
import pytest
import torch

from bespoke.data import log_magnitude
from bespoke.evaluate import si_sdr
from bespoke.masks import apply_mask
from bespoke.midi import is_percussive
from bespoke.nmf import NMFSettings, build_model, score_nmf
from bespoke.spectral import Grid, midi_to_hz

SR = 22050


def tone(pitch, start, end, seconds, decay=0.0):
    t = np.arange(int(seconds * SR)) / SR
    f0 = midi_to_hz(pitch, 0.0)
    y = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 8) if h * f0 < SR / 2)
    env = ((t >= start) & (t < end)).astype(float) * np.exp(-decay * np.clip(t - start, 0, None))
    return (y * env).astype(np.float32)


def two_tones_on_two_grids():
    """Two tones a major third apart, overlapping in time, and their NMF masks on a 24- and a
    36-bin-per-octave grid: (a, b, mix ``(1, n)``, g24, m24, g36, m36)."""
    import dataclasses

    g24 = Grid(sr=SR, bins_per_octave=24)
    g36 = dataclasses.replace(g24, bins_per_octave=36)
    a = tone(60, 0.2, 2.0, 3.0)
    b = 0.8 * tone(64, 1.0, 2.8, 3.0)
    mix = (a + b)[None]
    parts = [np.array([[0.2, 2.0, 60, 90]]), np.array([[1.0, 2.8, 64, 90]])]
    m24 = score_nmf(torch.from_numpy(log_magnitude(mix[0], g24)), parts, g24, 0.0, NMFSettings()).masks
    m36 = score_nmf(torch.from_numpy(log_magnitude(mix[0], g36)), parts, g36, 0.0, NMFSettings()).masks
    return a, b, mix, g24, m24, g36, m36


def test_onset_templates_only_for_percussive_parts():
    grid = Grid(sr=SR, hop=256, bins_per_octave=36)
    parts = [np.array([[0.5, 1.0, 60, 90]]), np.array([[0.5, 1.0, 64, 90]])]
    # the struck part: one harmonic template; the sustained one: one per shape (NMFSettings.shapes)
    for onsets, expected in (("percussive", 1 + 1 + 3), ("all", 2 + 3 + 1), ("none", 1 + 3)):
        W, Hmask, owner = build_model(parts, grid, 100, 0.0, NMFSettings(onsets=onsets, shapes=(1.0, 0.7, 1.4)),
                                      percussive=[True, False])
        assert W.shape[1] == len(owner) == Hmask.shape[0] == expected
    with pytest.raises(ValueError):
        build_model(parts, grid, 100, 0.0, NMFSettings(onsets="sometimes"))
    assert is_percussive(0) and is_percussive(25) and not is_percussive(40) and not is_percussive(73)
    assert is_percussive(40, is_drum=True)


@pytest.mark.parametrize("onsets", ["percussive", "all"])
def test_two_parts_are_told_apart_by_the_score(onsets):
    """Two sustained tones a major third apart, overlapping in time: each part's mask gives its
    own tone back far better than the mixture is."""
    grid = Grid(sr=SR, hop=256, bins_per_octave=36)
    a = tone(60, 0.2, 2.0, 3.0)
    b = 0.8 * tone(64, 1.0, 2.8, 3.0)
    mix = a + b
    parts = [np.array([[0.2, 2.0, 60, 90]]), np.array([[1.0, 2.8, 64, 90]])]
    V = torch.from_numpy(log_magnitude(mix, grid))
    res = score_nmf(V, parts, grid, 0.0, NMFSettings(onsets=onsets), percussive=[False, False])
    assert res.masks.shape == (3, V.shape[0], V.shape[1])  # both parts, then the (empty) free ones
    for k, ref in enumerate((a, b)):
        est = apply_mask(mix[None], SR, res.masks[k], grid)[0]
        assert si_sdr(est, ref) > si_sdr(mix, ref) + 10.0


def test_masks_on_two_grids_combine_on_the_output_bins():
    """apply_masks: one factor is apply_mask; an all-ones factor on a finer grid changes nothing;
    the geometric mean of the two parts' NMF masks (each on its own grid) keeps far less of
    either tone than one mask alone; a mask that fits no grid is refused."""
    from bespoke.masks import apply_masks

    a, b, mix, g24, m24, g36, m36 = two_tones_on_two_grids()
    one = apply_mask(mix, SR, m24[0], g24)
    np.testing.assert_allclose(apply_masks(mix, SR, [(m24[0], g24, 1.0)]), one, atol=1e-6)
    ones = np.ones_like(m36[0])
    np.testing.assert_allclose(apply_masks(mix, SR, [(m24[0], g24, 1.0), (ones, g36, 0.5)]), one, atol=1e-5)
    assert si_sdr(apply_masks(mix, SR, [(m36[0], g36, 1.0)])[0], a) > si_sdr(mix[0], a) + 10.0
    cross = apply_masks(mix, SR, [(m24[0], g24, 0.5), (m36[1], g36, 0.5)])[0]
    assert np.sum(cross ** 2) < 0.2 * min(np.sum(a ** 2), np.sum(b ** 2))
    with pytest.raises(ValueError):
        apply_masks(mix, SR, [(m24[0], g36, 1.0)])


def test_logit_pooling_leaves_the_vote_to_the_informed_mask():
    """apply_masks(pool="logit"): a mask of 0.5 everywhere (no opinion) changes nothing: with
    weights 1/2 and sharpness 2 the pooled mask is the informed one itself, where the product
    would scale it down; the sharpness sharpens; an unknown pool is refused."""
    from bespoke.masks import apply_masks

    a, _b, mix, g24, m24, g36, _m36 = two_tones_on_two_grids()
    m24 = np.clip(m24[0], 1e-3, 1 - 1e-3)
    half = np.full((g36.n_log, m24.shape[1]), 0.5, dtype=np.float32)
    one = apply_masks(mix, SR, [(m24, g24, 1.0)])
    pooled = apply_masks(mix, SR, [(m24, g24, 0.5), (half, g36, 0.5)], pool="logit", sharpness=2.0)
    np.testing.assert_allclose(pooled, one, atol=1e-4)
    product = apply_masks(mix, SR, [(m24, g24, 0.5), (half, g36, 0.5)])
    assert np.sum(product ** 2) < 0.6 * np.sum(one ** 2)
    sharp = apply_masks(mix, SR, [(m24, g24, 1.0)], pool="logit", sharpness=3.0)[0]
    assert si_sdr(sharp, a) > si_sdr(one[0], a)
    with pytest.raises(ValueError):
        apply_masks(mix, SR, [(m24, g24, 1.0)], pool="mean")


def test_first_pass_setup_depends_on_how_many_parts_the_score_has():
    """A full score gets the NMF's own (finer) grid, wide bands and several template shapes; a
    single part the network's grid, narrow bands and one shape, since free components alone
    model the rest."""
    from bespoke.config import Settings
    from bespoke.stages.nmf import nmf_setup

    s = Settings()
    g_full, c_full = nmf_setup(s, 3)
    g_one, c_one = nmf_setup(s, 1)
    assert g_full.bins_per_octave == s.nmf.bins_per_octave and c_full.partial_cents == s.nmf.partial_cents
    assert g_one.bins_per_octave == s.nmf.single_bins_per_octave
    assert c_one.partial_cents == s.nmf.single_partial_cents
    assert c_full.shapes == tuple(s.nmf.shapes) and c_one.shapes == tuple(s.nmf.single_shapes)
    assert len(c_full.shapes) > len(c_one.shapes) == 1
    assert (c_full.n_iter, c_full.tol_on) == (s.nmf.n_iter, s.nmf.tol_on)
    assert (c_one.n_iter, c_one.tol_on) == (s.nmf.single_n_iter, s.nmf.single_tol_on)
    assert (g_full.sr, g_full.hop, g_full.n_fft) == (s.grid.sr, s.grid.hop, s.grid.n_fft)


def test_a_single_part_pools_the_masks_its_own_way():
    """The stem's mask: a full score's masks vote in log-odds with the default weight; a single
    part's are pooled by its own rule and weight; weights of 0 and 1 give one mask as it is."""
    import dataclasses

    from bespoke.config import SeparateSettings
    from bespoke.stages import FirstPass
    from bespoke.stages.separate import ensemble_masks

    s = SeparateSettings()
    g24 = Grid(sr=SR, bins_per_octave=24)
    g36 = dataclasses.replace(g24, bins_per_octave=36)
    net, nmf = np.full((g24.n_log, 5), 0.7, np.float32), np.full((g36.n_log, 5), 0.2, np.float32)
    full_score, one_part = FirstPass(nmf, g36, one_part=False), FirstPass(nmf, g36, one_part=True)
    full = ensemble_masks(net, g24, full_score, s)
    assert full["pool"] == s.ensemble_pool and [f[2] for f in full["factors"]] == [s.ensemble, 1 - s.ensemble]
    one = ensemble_masks(net, g24, one_part, s)
    assert one["pool"] == s.ensemble_pool_one_part
    assert [f[2] for f in one["factors"]] == [s.ensemble_one_part, 1 - s.ensemble_one_part]
    band = ensemble_masks(net, g24, FirstPass(nmf, g36, one_part=False, drums=True), s)
    assert [f[2] for f in band["factors"]] == [s.ensemble_drums, 1 - s.ensemble_drums]
    assert s.ensemble_drums > s.ensemble      # the NMF has no model of drums: the network weighs more
    s = dataclasses.replace(s, ensemble=1.0, ensemble_one_part=0.0)
    assert ensemble_masks(net, g24, full_score, s)["factors"][0][0] is net
    assert ensemble_masks(net, g24, one_part, s)["factors"][0][0] is nmf


def _partials(pitch, amps, seconds=3.0):
    t = np.arange(int(seconds * SR)) / SR
    f0 = midi_to_hz(pitch, 0.0)
    return sum(a * np.sin(2 * np.pi * (h + 1) * f0 * t) for h, a in enumerate(amps) if (h + 1) * f0 < SR / 2
               ).astype(np.float32)


def test_templates_start_from_the_instruments_timbre():
    """A clarinet-like part (odd partials only) and a part an octave above it, sounding together
    all along: the score cannot tell them apart in time, and templates that start at 1/h give the
    upper part's partials (the lower one's even partials) to the lower part. Started from each
    part's rendered note (``timbres``), the lower part comes back clean; 1/h stays the default."""
    grid = Grid(sr=SR, bins_per_octave=36)
    odd = [1.0 / (h + 1) if h % 2 == 0 else 0.0 for h in range(12)]
    full = [1.0 / (h + 1) for h in range(6)]
    low, high = _partials(57, odd), 0.7 * _partials(69, full)
    mix = low + high
    parts = [np.array([[0.0, 3.0, 57, 90]]), np.array([[0.0, 3.0, 69, 90]])]
    timbres = [{57: log_magnitude(_partials(57, odd, 1.0), grid).mean(axis=1)},
               {69: log_magnitude(_partials(69, full, 1.0), grid).mean(axis=1)}]
    V = torch.from_numpy(log_magnitude(mix, grid))
    cfg = NMFSettings(partial_cents=80.0)
    W0 = build_model(parts, grid, V.shape[1], 0.0, cfg)[0]
    W1 = build_model(parts, grid, V.shape[1], 0.0, cfg, timbres=timbres)[0]
    band = lambda p, h: np.abs(np.log2(grid.log_freqs / (h * midi_to_hz(p, 0.0)))) < 0.01
    assert W0[band(57, 2), 0].max() > 0.4 * W0[band(57, 1), 0].max()              # 1/h
    assert W1[band(57, 2), 0].max() < 0.05 * W1[band(57, 1), 0].max()             # the timbre's
    assert np.allclose(build_model(parts, grid, 10, 0.0, cfg, timbres=[None, {}])[0], W0)
    scores = []
    for tim in (None, timbres):
        res = score_nmf(V, parts, grid, 0.0, cfg, timbres=tim)
        scores.append(si_sdr(apply_mask(mix[None], SR, res.masks[0], grid)[0], low))
    assert scores[1] > scores[0] + 6.0 and scores[1] > 15.0, scores


def test_sustained_parts_get_several_template_shapes():
    """A sustained note that turns from bright to dark halfway, under a part an octave above it
    (whose partials are its even ones): one template per pitch cannot follow the change and
    misjudges the shared partials; with a brighter and a darker template beside it (the
    default ``shapes``) both parts come back far cleaner. Struck parts keep one template."""
    grid = Grid(sr=SR, bins_per_octave=36)
    bright = [1.0 / (h + 1) ** 0.5 for h in range(12)]
    dark = [1.0 / (h + 1) ** 2.5 for h in range(12)]
    low = np.concatenate([_partials(57, bright, 1.5), _partials(57, dark, 1.5)])
    high = 0.5 * _partials(69, [1.0 / (h + 1) for h in range(6)])
    mix = low + high
    parts = [np.array([[0.0, 3.0, 57, 90]]), np.array([[0.0, 3.0, 69, 90]])]
    V = torch.from_numpy(log_magnitude(mix, grid))
    scores = {}
    for shapes in ((1.0,), NMFSettings().shapes):
        cfg = NMFSettings(partial_cents=80.0, shapes=shapes)
        W, _, owner = build_model(parts, grid, V.shape[1], 0.0, cfg, percussive=[False, False])
        assert list(owner) == [0] * len(shapes) + [1] * len(shapes)
        res = score_nmf(V, parts, grid, 0.0, cfg, percussive=[False, False])
        scores[len(shapes)] = [si_sdr(apply_mask(mix[None], SR, res.masks[k], grid)[0], ref)
                               for k, ref in enumerate((low, high))]
    assert len(NMFSettings().shapes) > 1
    many = scores[len(NMFSettings().shapes)]
    assert many[0] > scores[1][0] + 4.0 and many[1] > scores[1][1] + 4.0, scores
    W, _, owner = build_model(parts, grid, 10, 0.0, NMFSettings(onsets="none"), percussive=[True, True])
    assert list(owner) == [0, 1]


def test_parts_of_one_instrument_share_their_templates():
    """``tie``: two parts with the same label learn one template per pitch (from both parts'
    notes) while their activations stay apart; a part with another label keeps its own."""
    grid = Grid(sr=SR, bins_per_octave=36)
    a = tone(60, 0.2, 1.2, 3.0)
    b = 0.7 * tone(60, 1.6, 2.6, 3.0) + 0.3 * _partials(60, [0.0, 1.0, 0.0, 0.5])  # a brighter player
    c = 0.5 * tone(67, 0.2, 2.6, 3.0)
    mix = a + b + c
    parts = [np.array([[0.2, 1.2, 60, 90]]), np.array([[1.6, 2.6, 60, 90]]), np.array([[0.2, 2.6, 67, 90]])]
    V = torch.from_numpy(log_magnitude(mix, grid))
    cfg = NMFSettings(partial_cents=80.0, shapes=(1.0,))
    free = score_nmf(V, parts, grid, 0.0, cfg, percussive=[False] * 3)
    tied = score_nmf(V, parts, grid, 0.0, cfg, percussive=[False] * 3, tie=[71, 71, 40])
    col = lambda res, j: res.W[:, list(res.owner).index(j)]
    assert not np.allclose(col(free, 0), col(free, 1), atol=1e-4)
    np.testing.assert_allclose(col(tied, 0), col(tied, 1), atol=1e-6)
    assert not np.allclose(col(tied, 0), col(tied, 2), atol=1e-4)
    frames = lambda t0, t1: slice(int(t0 * grid.frame_rate), int(t1 * grid.frame_rate))
    for res in (free, tied):
        assert res.masks[0][:, frames(0.4, 1.0)].max() > 0.9 > 0.05 > res.masks[0][:, frames(1.8, 2.4)].max()
        assert res.masks[1][:, frames(1.8, 2.4)].max() > 0.9 > 0.05 > res.masks[1][:, frames(0.4, 1.0)].max()
    assert score_nmf(V, parts, grid, 0.0, cfg, percussive=[False] * 3, tie=[1, 2, 3]).W.shape == free.W.shape


def test_note_spectra_render_each_parts_pitches():
    """nmf.note_spectra: one spectrum per pitch a part plays, with energy at its partials,
    rendered with the part's program; nothing for drums or empty parts."""
    from bespoke.config import NMFSettings
    from bespoke.nmf import note_spectra
    from bespoke.synth import bundled_soundfont

    grid = Grid(sr=SR, bins_per_octave=36)
    parts = [np.array([[0.0, 1.0, 60, 90], [1.0, 2.0, 67, 90]]), np.array([[0.0, 1.0, 45, 80]]),
             np.zeros((0, 4)), np.array([[0.0, 0.5, 38, 100]])]
    spectra = note_spectra([71, 40, 0, 0], parts, [False, False, False, True], grid, NMFSettings(),
                           bundled_soundfont())
    assert sorted(spectra[0]) == [60, 67] and sorted(spectra[1]) == [45]
    assert spectra[2] is None and spectra[3] is None
    for part, pitch in ((0, 60), (0, 67), (1, 45)):
        s = spectra[part][pitch]
        assert s.shape == (grid.n_log,) and np.all(np.isfinite(s))
        f0 = int(np.argmin(np.abs(grid.log_freqs - midi_to_hz(pitch, 0.0))))
        assert s[f0 - 1:f0 + 2].max() > 10 * np.median(s)
    assert not np.allclose(spectra[0][60], spectra[1][45])


def _parts_that_come_and_go():
    """Three parts over 6 s whose notes come and go (so blocks hold different components), with
    a tied pair: (V, parts, grid, tie)."""
    grid = Grid(sr=SR, bins_per_octave=36)
    spans = [[(0.1, 1.5, 60), (3.0, 4.0, 62)], [(1.0, 2.5, 67), (4.5, 5.8, 65)], [(2.0, 5.0, 55)]]
    mix = sum(tone(p, s, e, 6.0) for part in spans for s, e, p in part)
    parts = [np.array([[s, e, p, 90] for s, e, p in part], dtype=float) for part in spans]
    return torch.from_numpy(log_magnitude(mix, grid)), parts, grid, [71, 71, 42]


def test_block_updates_are_the_dense_factorisation():
    """The updates over short blocks (each with only the components that sound in it) give the
    factorisation a single block over the whole song gives."""
    V, parts, grid, tie = _parts_that_come_and_go()
    whole = score_nmf(V, parts, grid, 0.0, NMFSettings(block_frames=10 ** 6), tie=tie)
    blocks = score_nmf(V, parts, grid, 0.0, NMFSettings(block_frames=16), tie=tie)
    assert V.shape[1] > 8 * 16
    assert np.allclose(whole.masks, blocks.masks, atol=1e-4)
    assert np.allclose(whole.W, blocks.W, rtol=1e-3, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
def test_the_factorisation_runs_on_a_gpu():
    V, parts, grid, tie = _parts_that_come_and_go()
    cpu = score_nmf(V, parts, grid, 0.0, NMFSettings(), tie=tie)
    gpu = score_nmf(V, parts, grid, 0.0, NMFSettings(), tie=tie, device="cuda")
    assert isinstance(gpu.masks, np.ndarray) and gpu.masks.shape == cpu.masks.shape
    assert np.abs(gpu.masks - cpu.masks).max() < 1e-2


def test_the_first_pass_says_whether_the_score_has_drums(tiny_song):
    """The nmf stage records whether the score holds a drum part with notes (it changes the pool)."""
    import pretty_midi
    import soundfile as sf
    from conftest import make_score

    from bespoke.audio import Audio
    from bespoke.config import Settings
    from bespoke.pipeline import run

    audio = Audio.from_array(sf.read(tiny_song / "mix.wav", dtype="float32")[0], SR)
    seen = {}
    for with_drums in (False, True):
        pm = make_score()
        if with_drums:
            kit = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
            kit.notes = [pretty_midi.Note(100, 36, t, t + 0.1) for t in np.arange(0.5, 7.5, 0.5)]
            pm.instruments.append(kit)
        state = run(audio, pm, 0, Settings(seed=0).replace(align={"enabled": False}), until="nmf")
        seen[with_drums] = state.values["first_pass"].drums
    assert seen == {False: False, True: True}
