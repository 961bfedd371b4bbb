"""The small network: a score-conditioned U-Net on a log-frequency spectrogram that outputs a
soft mask for the target part.

Input  ``(batch, in_channels, n_log, n_frames)``: mixture log-magnitude, the target's harmonic
and onset templates, the other parts' template (zeros when the MIDI has only the target).
Output ``(batch, n_log, n_frames)`` mask in [0, 1].

The model saves its constructor arguments with its weights (``save``/``load``), so a saved
file is all one needs to rebuild it.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

IN_CHANNELS = 4


def _block(cin: int, cout: int, dil_t: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=(1, dil_t), dilation=(1, dil_t)),
        nn.GroupNorm(1 if cout < 8 else 4, cout),
        nn.GELU(),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.GroupNorm(1 if cout < 8 else 4, cout),
        nn.GELU(),
    )


class MaskNet(nn.Module):
    """U-Net with ``len(channels)`` levels; each level halves frequency and time."""

    def __init__(self, in_channels: int = IN_CHANNELS, channels: Sequence[int] = (16, 24, 32, 48),
                 n_context: int = 2):
        super().__init__()
        self.config = {"in_channels": int(in_channels), "channels": [int(c) for c in channels],
                       "n_context": int(n_context)}
        ch = list(channels)
        self.inorm = nn.InstanceNorm2d(1, affine=False)
        self.enc = nn.ModuleList()
        cin = in_channels
        for c in ch:
            self.enc.append(_block(cin, c))
            cin = c
        # temporal context at the bottom: dilated convolutions along time
        self.context = nn.ModuleList([_block(ch[-1], ch[-1], dil_t=2 ** (i + 1)) for i in range(n_context)])
        self.dec = nn.ModuleList()
        for i in range(len(ch) - 2, -1, -1):
            self.dec.append(_block(ch[i + 1] + ch[i], ch[i]))
        self.head = nn.Conv2d(ch[0], 1, 1)
        self.levels = len(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.inorm(x[:, :1])
        x = torch.cat([spec, x[:, 1:]], dim=1)
        F0, T0 = x.shape[-2:]
        m = 2 ** (self.levels - 1)
        pf, pt = (-F0) % m, (-T0) % m
        if pf or pt:
            x = F.pad(x, (0, pt, 0, pf))
        skips = []
        for i, blk in enumerate(self.enc):
            x = blk(x)
            if i < self.levels - 1:
                skips.append(x)
                x = F.avg_pool2d(x, 2)
        for blk in self.context:
            x = x + blk(x)
        for blk in self.dec:
            s = skips.pop()
            x = F.interpolate(x, size=s.shape[-2:], mode="nearest")
            x = blk(torch.cat([x, s], dim=1))
        out = torch.sigmoid(self.head(x))[:, 0]
        return out[:, :F0, :T0]

    def save(self, path, extra: dict = None) -> None:
        torch.save({"config": self.config, "state": self.state_dict(), "extra": extra or {}}, path)

    @classmethod
    def load(cls, path, map_location="cpu") -> "MaskNet":
        blob = torch.load(path, map_location=map_location, weights_only=False)
        net = cls(**blob["config"])
        net.load_state_dict(blob["state"])
        return net


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
