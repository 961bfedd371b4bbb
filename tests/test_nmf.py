"""Score-informed NMF (bespoke.nmf) on tones built in code."""
import numpy as np
import pytest
import torch

from bespoke.data import log_magnitude
from bespoke.evaluate import si_sdr
from bespoke.midi import is_percussive
from bespoke.nmf import NMFSettings, build_model, score_nmf
from bespoke.separate import apply_mask
from bespoke.spectral import Grid, midi_to_hz

SR = 22050


def tone(pitch, start, end, seconds, decay=0.0):
    t = np.arange(int(seconds * SR)) / SR
    f0 = midi_to_hz(pitch, 0.0)
    y = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 8) if h * f0 < SR / 2)
    env = ((t >= start) & (t < end)).astype(float) * np.exp(-decay * np.clip(t - start, 0, None))
    return (y * env).astype(np.float32)


def test_onset_templates_only_for_percussive_parts():
    grid = Grid(sr=SR)
    parts = [np.array([[0.5, 1.0, 60, 90]]), np.array([[0.5, 1.0, 64, 90]])]
    for onsets, expected in (("percussive", 3), ("all", 4), ("none", 2)):
        W, Hmask, owner = build_model(parts, grid, 100, 0.0, NMFSettings(onsets=onsets), percussive=[True, False])
        assert W.shape[1] == len(owner) == Hmask.shape[0] == expected
    with pytest.raises(ValueError):
        build_model(parts, grid, 100, 0.0, NMFSettings(onsets="sometimes"))
    assert is_percussive(0) and is_percussive(25) and not is_percussive(40) and not is_percussive(73)
    assert is_percussive(40, is_drum=True)


@pytest.mark.parametrize("onsets", ["percussive", "all"])
def test_two_parts_are_told_apart_by_the_score(onsets):
    """Two sustained tones a major third apart, overlapping in time: each part's mask gives its
    own tone back far better than the mixture is."""
    grid = Grid(sr=SR)
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
