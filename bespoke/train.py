"""Fitting the network to one song: fit(model, data, budget, device, on_progress)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch

from .data import Features, TrainingSet, make_batch


@dataclass
class TrainResult:
    steps: int
    seconds: float
    device: str
    losses: List[float] = field(default_factory=list)  # one per step

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
        raise BespokeError("--device cuda: no CUDA GPU is available here (use --device cpu or auto)")
    if d == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise BespokeError("--device mps: Apple's MPS backend is not available here")
    try:
        return torch.device(d)
    except RuntimeError as e:
        raise BespokeError(f"--device {device}: not a device torch knows ({e})") from e


def masked_loss(mask_log: torch.Tensor, mag_x: torch.Tensor, mag_t: torch.Tensor, feat: Features) -> torch.Tensor:
    """L1 between the masked mixture and the target magnitude on linear bins, relative to the
    mixture's mean magnitude (per example, so loud and quiet examples weigh alike)."""
    est = feat.to_lin(mask_log) * mag_x
    num = (est - mag_t).abs().mean(dim=(1, 2))
    den = mag_x.mean(dim=(1, 2)) + 1e-6
    return (num / den).mean()


def fit(model: torch.nn.Module, data: TrainingSet, budget: float = 60.0, device="cpu",
        on_progress: Optional[Callable[[float, float], None]] = None, seed: int = 0,
        steps: Optional[int] = None, batch_size: int = 8, lr: float = 2e-3) -> TrainResult:
    """Train ``model`` on examples from ``data`` for ``budget`` seconds (or exactly ``steps`` steps).

    The learning rate follows a cosine over the run (time-based when only a budget is given).
    ``on_progress(fraction_done, loss)`` is called after every step.
    """
    dev = torch.device(device)
    model.to(dev).train()
    feat = Features(data.grid, dev)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    t_start = time.perf_counter()
    losses: List[float] = []
    step = 0
    warm = 20
    while True:
        elapsed = time.perf_counter() - t_start
        frac = (step / steps) if steps else (elapsed / max(budget, 1e-9))
        if frac >= 1.0:
            break
        lr_now = lr * min(1.0, (step + 1) / warm) * (0.5 * (1 + math.cos(math.pi * min(frac, 1.0))) * 0.95 + 0.05)
        for gp in opt.param_groups:
            gp["lr"] = lr_now
        x, mag_x, mag_t = make_batch(feat, data.sample(rng, batch_size))
        mask = model(x)
        loss = masked_loss(mask, mag_x, mag_t, feat)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if on_progress is not None:
            done = step / steps if steps else (time.perf_counter() - t_start) / max(budget, 1e-9)
            on_progress(min(done, 1.0), losses[-1])
    model.eval()
    return TrainResult(steps=step, seconds=time.perf_counter() - t_start, device=str(dev), losses=losses)
