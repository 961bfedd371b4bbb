"""Training (bespoke.train) and the network (bespoke.model) on a tiny song built in code."""
import numpy as np
import pytest
import torch

from bespoke.config import AugmentSettings, TrainSettings
from bespoke.data import Song, Source, TrainingSet
from bespoke.errors import BespokeError
from bespoke.model import MaskNet
from bespoke.spectral import Grid, midi_to_hz
from bespoke.train import fit, training_precision

SR = 22050


def _tone(pitch, seconds):
    t = np.arange(int(seconds * SR)) / SR
    f0 = midi_to_hz(pitch, 0.0)
    return sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 6)).astype(np.float32) * 0.2


def _data():
    grid = Grid(sr=SR, bins_per_octave=12)
    target, other = _tone(67, 4.0), _tone(60, 4.0)
    song = Song(mix=target + other, sr=SR, target_notes=np.array([[0.0, 4.0, 67, 90]]),
                other_notes=np.array([[0.0, 4.0, 60, 90]]))
    return TrainingSet(song, [Source(target)], [Source(other, song.other_notes)], grid,
                       AugmentSettings(segment_s=1.0))


def test_precision_choice():
    cpu = torch.device("cpu")
    assert training_precision(cpu, "fp32") == (None, False)
    assert training_precision(cpu, "bf16") == (torch.bfloat16, False)
    amp, channels_last = training_precision(cpu, "auto")
    # auto on a CPU: bfloat16 exactly when the CPU has it in hardware, else float32 channels-last
    assert (amp, channels_last) in ((torch.bfloat16, False), (None, True))
    caps = torch.cpu.get_capabilities()
    assert (amp is not None) == bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
    with pytest.raises(BespokeError):
        training_precision(cpu, "fp8")


def test_auto_precision_avoids_emulated_bf16(monkeypatch):
    """A CPU with AVX512 but no bfloat16 instructions (oneDNN would emulate it, slower than
    float32) trains in float32, channels-last; one with AVX512-BF16 or AMX in bfloat16."""
    from bespoke import train

    cpu = torch.device("cpu")
    base = {"avx512_f": True, "avx512_bw": True, "avx512_vl": True, "avx512_dq": True}
    for caps, expected in ((dict(base), (None, True)), (dict(base, avx512_bf16=True), (torch.bfloat16, False)),
                           (dict(base, amx_bf16=True), (torch.bfloat16, False)), ({}, (None, True))):
        monkeypatch.setattr(train.torch.cpu, "get_capabilities", lambda c=caps: c)
        assert train.training_precision(cpu, "auto") == expected, caps


@pytest.mark.parametrize("precision", ["fp32", "bf16", "auto"])
def test_fit_runs_exact_steps_and_leaves_a_float32_model(precision):
    torch.manual_seed(0)
    model = MaskNet(channels=(4, 8), n_context=1)
    res = fit(model, _data(), TrainSettings(batch_size=2, precision=precision, ema=0.0), steps=3, seed=1)
    assert res.steps == len(res.losses) == 3 and all(np.isfinite(res.losses))
    assert res.precision in ("fp32", "bf16") and (precision == "auto" or res.precision == precision)
    assert not model.training
    for p in model.parameters():
        assert p.dtype == torch.float32 and p.is_contiguous()


def test_same_seed_same_training():
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = MaskNet(channels=(4, 8), n_context=1)
        cfg = TrainSettings(batch_size=2, precision="fp32", ema=0.0)
        losses.append(fit(model, _data(), cfg, steps=3, seed=5).losses)
    assert losses[0] == losses[1]


def test_model_saves_its_constructor_args(tmp_path):
    torch.manual_seed(0)
    net = MaskNet(channels=(4, 8), n_context=1).eval()
    x = torch.randn(1, 4, 30, 17)
    path = tmp_path / "net.pt"
    net.save(path)
    back = MaskNet.load(path).eval()
    assert back.config == net.config
    with torch.no_grad():
        y = net(x)
        assert y.shape == (1, 30, 17) and float(y.min()) >= 0.0 and float(y.max()) <= 1.0
        torch.testing.assert_close(back(x), y)


def test_score_templates_mark_every_note():
    """harmonic_template marks each note's harmonics while it sounds; onset_template marks every
    note's attack (whatever the onset's phase against the frame grid) and fades after it."""
    from bespoke.spectral import harmonic_template, onset_template

    grid = Grid(sr=SR, bins_per_octave=24)
    rng = np.random.default_rng(3)
    starts = np.sort(rng.uniform(0.1, 2.5, 12))
    notes = np.c_[starts, starts + 0.4, rng.integers(48, 84, 12), np.full(12, 90)]
    n = grid.n_frames(3 * SR)
    H = harmonic_template(notes, grid, n)
    O = onset_template(notes, grid, n)
    f0_bin = lambda p: int(np.argmin(np.abs(grid.log_freqs - midi_to_hz(p))))
    for s, e, p, _v in notes:
        i = int(np.ceil(s * grid.frame_rate))
        k = f0_bin(p)
        assert H[k, i] > 0.9 and O[k, i] > 0.5
        assert O[k, i + 6] < 0.5 * O[k, i]  # the onset mark fades
    assert H.max() <= 1.0 and O.max() <= 1.0 and H.min() >= 0.0


def test_ema_leaves_the_moving_average_of_the_trajectory():
    """With ema, training follows the same steps and the model ends with the moving average of
    the weights after each step (the decay ramps up from 0, so a short run is not stuck at the
    initial weights)."""
    data, ema, n = _data(), 0.9, 4
    snaps = []

    torch.manual_seed(0)
    model = MaskNet(channels=(4, 8), n_context=1)
    init = [p.detach().clone() for p in model.parameters()]
    fit(model, data, TrainSettings(batch_size=2, precision="fp32", ema=0.0), steps=n, seed=2,
        on_progress=lambda f, loss: snaps.append([p.detach().clone() for p in model.parameters()]))
    last = [p.detach().clone() for p in model.parameters()]
    expected = [a.clone() for a in init]
    for k, snap in enumerate(snaps):
        d = min(ema, k / (k + 10.0))
        expected = [d * a + (1 - d) * p for a, p in zip(expected, snap)]

    torch.manual_seed(0)
    model = MaskNet(channels=(4, 8), n_context=1)
    fit(model, data, TrainSettings(batch_size=2, precision="fp32", ema=ema), steps=n, seed=2)
    got = list(model.parameters())
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.detach(), e, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(g.detach(), l_) for g, l_ in zip(got, last))
