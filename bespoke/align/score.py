"""The score's features: which pitches sound in each frame (a piano roll) and where notes start
(decaying impulses), at any frame rate, built block by block (ScoreFeatures)."""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from ..config.align import AlignSettings
from .features import N_PITCH, PITCH_LO


class ScoreFeatures:
    """The notes of a score as features at any frame rate, built block by block.

    notes: ``(n_notes, 4)`` start, end, pitch, velocity (seconds)."""

    def __init__(self, notes: np.ndarray, settings: Optional[AlignSettings] = None):
        settings = settings or AlignSettings()
        notes = np.asarray(notes, np.float64)
        notes = notes[(notes[:, 1] > notes[:, 0])]
        order = np.argsort(notes[:, 0], kind="stable")
        self.notes = notes[order]
        self.starts = self.notes[:, 0]
        self.max_dur = float(np.max(self.notes[:, 1] - self.notes[:, 0])) if len(self.notes) else 0.0
        self.pitch = np.clip(np.round(self.notes[:, 2]).astype(int) - PITCH_LO, 0, N_PITCH - 1)
        self.decay_s = settings.onset_decay_s
        self.t0 = float(self.notes[:, 0].min())
        self.t1 = float(self.notes[:, 1].max())

    def block(self, t0: float, period: float, n: int) -> Tuple[np.ndarray, np.ndarray]:
        """Frames ``t0 + i * period`` (i < n), each covering ``period`` s: (act, ons), float32
        ``(n, 88)``: the fraction of the frame each pitch sounds, and the onset strength (1 at a
        note's start, decaying with its tail; the max over the frame)."""
        act = np.zeros((n, N_PITCH), np.float32)
        ons = np.zeros((n, N_PITCH), np.float32)
        t1 = t0 + n * period
        i0 = int(np.searchsorted(self.starts, t0 - self.max_dur - 1.0))
        i1 = int(np.searchsorted(self.starts, t1))
        if i1 <= i0:
            return act, ons
        nt = self.notes[i0:i1]
        pit = self.pitch[i0:i1]
        keep = nt[:, 1] > t0
        nt, pit = nt[keep], pit[keep]
        edges = t0 + np.arange(n + 1) * period
        for (s, e, _p, _v), k in zip(nt, pit):
            # activity: overlap of [s, e) with each frame
            a = int(np.searchsorted(edges, s, "right")) - 1
            b = int(np.searchsorted(edges, e, "left"))
            a, b = max(a, 0), min(b, n)
            if b > a:
                ov = np.minimum(edges[a + 1:b + 1], e) - np.maximum(edges[a:b], s)
                np.maximum(act[a:b, k], np.clip(ov / period, 0.0, 1.0), out=act[a:b, k])
            # onset: 1 in the frame holding s, then exp decay
            f = int(math.floor((s - t0) / period))
            if -1 < f < n:
                m = max(1, int(math.ceil(4 * self.decay_s / period))) if self.decay_s > 0 else 1
                f1 = min(n, f + m)
                if self.decay_s > 0:
                    v = np.exp(-np.maximum(edges[f:f1] - s, 0.0) / self.decay_s)
                else:
                    v = np.ones(f1 - f)
                v[0] = 1.0
                np.maximum(ons[f:f1, k], v, out=ons[f:f1, k])
        return act, ons
