"""The multichannel Wiener filter (bespoke.spatial) and its use by masks.apply_masks."""
import numpy as np
import torch

from bespoke.evaluate import si_sdr
from bespoke.masks import apply_masks
from bespoke.spatial import wiener
from bespoke.spectral import Grid


def _two_panned_sources(F=64, T=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = [torch.randn(F, T, dtype=torch.complex64, generator=g) * (torch.rand(F, T, generator=g) < 0.5)
         for _ in range(2)]
    gains = [torch.tensor([0.9, 0.3]), torch.tensor([0.35, 0.95])]
    images = [gn[:, None, None] * si[None] for gn, si in zip(gains, s)]
    return images, images[0] + images[1]


def _sdr(ref, est):
    return float(10 * torch.log10((ref.abs() ** 2).sum() / ((ref - est).abs() ** 2).sum()))


def test_no_iterations_is_the_mask_itself():
    images, X = _two_panned_sources()
    m = torch.rand(X.shape[1:])
    Y = wiener(X, torch.stack([m, 1 - m]), iterations=0)
    assert torch.allclose(Y[0], m[None] * X)


def test_stereo_image_sharpens_a_vague_mask_and_the_images_add_up():
    images, X = _two_panned_sources()
    p = [(im.abs() ** 2).sum(0) for im in images]
    vague = 0.4 * p[0] / (p[0] + p[1] + 1e-9) + 0.3          # right in direction, far from sure
    masks = torch.stack([vague, 1 - vague])
    before = [_sdr(images[j], masks[j][None] * X) for j in range(2)]
    Y = wiener(X, masks, iterations=3)
    after = [_sdr(images[j], Y[j]) for j in range(2)]
    assert all(a > b + 3.0 for a, b in zip(after, before)), (before, after)
    assert _sdr(X, Y.sum(0)) > 40.0                         # the sources' images add up to the mixture


def test_apply_masks_mono_input_ignores_the_spatial_filter():
    grid = Grid(sr=8000, n_fft=256, hop=64, fmin=60.0, bins_per_octave=12)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 8000)).astype(np.float32)
    mask = rng.uniform(0, 1, (grid.n_log, grid.n_frames(8000))).astype(np.float32)
    a = apply_masks(x, 8000, [(mask, grid, 1.0)], spatial=0)
    b = apply_masks(x, 8000, [(mask, grid, 1.0)], spatial=3)
    assert np.array_equal(a, b)


def test_apply_masks_stereo_uses_where_the_part_sits():
    """Two tones of the same notes, one panned left, one right: a mask that cannot tell them apart
    (0.5 everywhere) gives half of each on every channel; the spatial filter finds the left one."""
    sr = 8000
    grid = Grid(sr=sr, n_fft=256, hop=64, fmin=60.0, bins_per_octave=12)
    rng = np.random.default_rng(1)
    n = 4 * sr
    env_l, env_r = rng.uniform(0, 1, n // 400), rng.uniform(0, 1, n // 400)
    left = rng.standard_normal(n).astype(np.float32) * np.repeat(env_l, 400)
    right = rng.standard_normal(n).astype(np.float32) * np.repeat(env_r, 400)
    target = np.stack([0.95 * left, 0.2 * left])
    mix = target + np.stack([0.25 * right, 0.9 * right])
    n_frames = grid.n_frames(n)
    block = np.minimum(np.arange(n_frames) * grid.hop // 400, len(env_l) - 1)
    # mostly undecided, leaning a little towards the target where it is the louder, as a real mask would
    lean = 0.1 * np.sign(env_l[block] - env_r[block])
    mask = np.repeat((0.5 + lean)[None], grid.n_log, axis=0).astype(np.float32)
    mono = apply_masks(mix, sr, [(mask, grid, 1.0)], spatial=0)
    stereo = apply_masks(mix, sr, [(mask, grid, 1.0)], spatial=3)
    assert stereo.shape == mix.shape and stereo.dtype == np.float32
    assert si_sdr(stereo.reshape(-1), target.reshape(-1)) > si_sdr(mono.reshape(-1), target.reshape(-1)) + 3.0


def _panned_duo():
    """A two-part song (melody, chords) mixed in stereo, melody left and chords right: the mixture
    ``(2, n)``, each part's stereo image, and the score de-aligned."""
    from conftest import SR, make_score

    from bespoke.synth import bundled_soundfont, render

    true = make_score()
    sf2 = bundled_soundfont()
    images = []
    for i, (gl, gr) in enumerate(((0.95, 0.25), (0.3, 0.9))):
        y = render([true.instruments[i]], SR, soundfont=sf2, duration=8.5)
        y = 0.3 * y / (np.abs(y).max() + 1e-9)
        images.append(np.stack([gl * y, gr * y]).astype(np.float32))
    return np.sum(images, axis=0), images, make_score(tempo_scale=1.1, offset=0.3), SR


def test_stereo_stems_use_the_image_and_still_add_up_to_the_mix():
    """--all on a stereo song: with the spatial filter the stems are closer to each part's image
    than with one mask on both channels, and stems + residual are the mixture."""
    import dataclasses

    import bespoke
    from bespoke.config import Settings

    mix, images, score, sr = _panned_duo()
    base = Settings()
    got = {}
    for k in (0, 3):
        s = dataclasses.replace(base, separate=dataclasses.replace(base.separate, spatial=k))
        r = bespoke.separate(mix, score, sr=sr, targets="all", steps=4, seed=0, settings=s)
        assert set(r.stems) == {0, 1} and all(st.shape == mix.shape for st in r.stems.values())
        total = np.sum(list(r.stems.values()), axis=0) + r.residual
        assert np.abs(total - mix).max() < 1e-5
        got[k] = [si_sdr(r.stems[i].reshape(-1), images[i].reshape(-1)) for i in (0, 1)]
    assert np.mean(got[3]) > np.mean(got[0]) + 1.0, got


def test_one_target_in_stereo_models_the_rest_as_the_other_parts():
    """One target of a stereo song: the NMF keeps the other parts' masks for the spatial filter
    (FirstPass.others), and not for a mono song or with the filter off."""
    import dataclasses

    from bespoke.audio import Audio
    from bespoke.config import Settings
    from bespoke.pipeline import run

    mix, _images, score, sr = _panned_duo()
    on = Settings(seed=0)
    on = dataclasses.replace(on, separate=dataclasses.replace(on.separate, spatial=2))
    off = dataclasses.replace(on, separate=dataclasses.replace(on.separate, spatial=0))
    for audio, s, kept in ((mix, on, {1}), (mix[:1], on, set()), (mix, off, set())):
        st = run(Audio.from_array(audio, sr), score, 0, s, until="nmf")
        assert set(st.values["first_pass"].others) == kept
