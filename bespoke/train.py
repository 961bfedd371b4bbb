"""Fitting the network to one song: fit(model, data, settings, device, on_progress)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch

from .config.stages import TrainSettings
from .data import Features, TrainingSet, make_batch


@dataclass
class TrainResult:
    steps: int
    seconds: float
    device: str
    losses: List[float] = field(default_factory=list)  # one per step
    precision: str = "fp32"

    def curve(self, points: int = 50) -> List[List[float]]:
        """The loss curve smoothed to at most ``points`` (step, loss) pairs."""
        if not self.losses:
            return []
        n = len(self.losses)
        edges = np.linspace(0, n, min(points, n) + 1).astype(int)
        return [[int(b), float(np.mean(self.losses[a:b]))] for a, b in zip(edges[:-1], edges[1:]) if b > a]


def resolve_device(device: str = "auto") -> torch.device:
    """'auto': CUDA when present, else CPU. Chosen at call time, never at import."""
    from .errors import BespokeError

    d = (device or "auto").lower()
    if d == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise BespokeError("«device cuda»: no CUDA GPU is available here (use «device cpu» or «device auto»)")
    if d == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise BespokeError("«device mps»: Apple's MPS backend is not available here")
    try:
        return torch.device(d)
    except RuntimeError as e:
        raise BespokeError(f"«device {device}»: not a device torch knows ({e})") from e


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX-BF16). oneDNN also
    runs bfloat16 on plain AVX512 by emulation, slower than float32, so its own "bf16 supported"
    check is not the question."""
    try:
        caps = torch.cpu.get_capabilities()
        return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
    except (AttributeError, RuntimeError):
        try:
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except (AttributeError, RuntimeError):
            return False


def training_precision(device: torch.device, precision: str = "auto"):
    """How the network computes while it trains: ``(autocast dtype or None, channels_last)``.

    'auto': bfloat16 autocast where the hardware computes it natively (a CUDA GPU that supports
    it; a CPU with AVX512-BF16 or AMX, see cpu_has_native_bf16), which about halves a CPU step;
    elsewhere float32 in channels-last layout (about 1.4x faster than the default layout on
    CPU). 'fp32': float32, default layout. 'bf16': bfloat16 autocast regardless.
    The weights and the optimizer stay float32 in every case; inference is float32.
    """
    from .errors import BespokeError

    p = (precision or "auto").lower()
    if p not in ("auto", "fp32", "bf16"):
        raise BespokeError(f"precision {precision!r}: use auto, fp32 or bf16")
    if p == "fp32":
        return None, False
    if p == "bf16":
        return torch.bfloat16, False
    if device.type == "cuda":
        return (torch.bfloat16 if torch.cuda.is_bf16_supported() else None), False
    if device.type == "cpu":
        return (torch.bfloat16, False) if cpu_has_native_bf16() else (None, True)
    return None, False


def masked_loss(mask_log: torch.Tensor, mag_x: torch.Tensor, mag_t: torch.Tensor, feat: Features) -> torch.Tensor:
    """L1 between the masked mixture and the target magnitude on linear bins, relative to the
    mixture's mean magnitude (per example, so loud and quiet examples weigh alike)."""
    est = feat.to_lin(mask_log) * mag_x
    num = (est - mag_t).abs().mean(dim=(1, 2))
    den = mag_x.mean(dim=(1, 2)) + 1e-6
    return (num / den).mean()


def _lr_at(cfg: TrainSettings, step: int, frac: float) -> float:
    """The learning rate: a linear warm-up over cfg.warmup_steps, then a cosine to 5 % of cfg.lr."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps)
    return cfg.lr * warm * (0.5 * (1 + math.cos(math.pi * min(frac, 1.0))) * 0.95 + 0.05)


def _average_into(avg: List[torch.Tensor], params: List[torch.Tensor], ema: float, step: int) -> None:
    d = min(ema, step / (step + 10.0))  # a short run averages over what it has
    with torch.no_grad():
        for a, p in zip(avg, params):
            a.mul_(d).add_(p.detach(), alpha=1.0 - d)


def _finish(model, avg, params, channels_last: bool) -> None:
    """The model ends with the averaged weights (when kept), in the default layout, in eval mode."""
    if avg is not None:
        with torch.no_grad():
            for a, p in zip(avg, params):
                p.copy_(a)
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    model.eval()


def fit(model: torch.nn.Module, data: TrainingSet, settings: Optional[TrainSettings] = None, device="cpu",
        on_progress: Optional[Callable[[float, float], None]] = None, seed: int = 0,
        steps: Optional[int] = None, budget: Optional[float] = None) -> TrainResult:
    """Train ``model`` on examples from ``data`` for ``budget`` seconds (default settings.budget),
    or exactly ``steps`` steps, with the batch size, learning rate, precision and weight averaging
    of ``settings`` (config.TrainSettings).

    The learning rate follows a cosine over the run (time-based when only a budget is given).
    ``on_progress(fraction_done, loss)`` is called after every step. ``precision``: see
    training_precision. ``ema`` > 0: the model ends with an exponential moving average of its
    weights over the steps (this decay per step) rather than the last step's: less noise from
    the last few batches.
    """
    cfg = settings or TrainSettings()
    budget = cfg.budget if budget is None else budget
    dev = torch.device(device)
    amp, channels_last = training_precision(dev, cfg.precision)
    model.to(dev).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    feat = Features(data.grid, dev)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    params = list(model.parameters())
    avg = [p.detach().clone() for p in params] if cfg.ema > 0 else None
    t_start = time.perf_counter()
    losses: List[float] = []
    step = 0
    while True:
        elapsed = time.perf_counter() - t_start
        frac = (step / steps) if steps else (elapsed / max(budget, 1e-9))
        if frac >= 1.0:
            break
        for gp in opt.param_groups:
            gp["lr"] = _lr_at(cfg, step, frac)
        x, mag_x, mag_t = make_batch(feat, data.sample(rng, cfg.batch_size))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            mask = model(x)
        loss = masked_loss(mask.float(), mag_x, mag_t, feat)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if avg is not None:
            _average_into(avg, params, cfg.ema, step)
        losses.append(float(loss.detach()))
        step += 1
        if on_progress is not None:
            done = step / steps if steps else (time.perf_counter() - t_start) / max(budget, 1e-9)
            on_progress(min(done, 1.0), losses[-1])
    _finish(model, avg, params, channels_last)
    return TrainResult(steps=step, seconds=time.perf_counter() - t_start, device=str(dev), losses=losses,
                       precision="bf16" if amp is not None else "fp32")
