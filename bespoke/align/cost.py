"""The cost of pairing a score frame with an audio frame (CostModel): how many standard deviations
the recording's salience of the pitches the score sounds stands above its average there, squashed
to [0, 2] by 1 - tanh(z / z_scale) (_z_cost)."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ..config.align import AlignSettings
from .features import MixFeatures
from .score import ScoreFeatures


class CostModel:
    """Cost blocks between the score (rows) and the recording (columns) at one level.

    Score frame i is at score time ``s0 + i * s_period``; audio frame j at ``j * a_period``
    (the mixture's features pooled by ``factor``).

    For a score frame with pitch weights a (summing to 1), the evidence that audio frame j
    holds it is z = a . (x_j - mean x) / sqrt(a' cov a), mean and covariance over the recording:
    how far, in standard deviations, the pitches sounding now stand above their usual level at
    j. Energy the score does not explain (other instruments, noise) does not lower it. Cost =
    1 - tanh(z / z_scale) for pitch presence and, weighted, for onsets where the score has them,
    divided by 1 + onset_weight. Rows with no notes cost 1 (no evidence either way), as does an
    audio frame matched to nothing (skip_cost)."""

    def __init__(self, score: ScoreFeatures, mix: MixFeatures, factor: int, s0: float, s_period: float,
                 n_rows: int, settings: AlignSettings):
        self.score, self.settings = score, settings
        self.factor = factor
        self.sal, self.mu_s, self.cov_s, self.osal, self.mu_o, self.cov_o = mix.pooled(factor)
        # z-scores of the onsets at any pitch, at the finest level only (the note search uses them)
        self.flux = mix.flux_z() if factor <= 1 else None
        self.a_period = factor / mix.rate
        self.s0, self.s_period, self.n_rows = s0, s_period, n_rows
        self.n_cols = self.sal.shape[0]
        self.largest = 0
        self.last_full: Optional[np.ndarray] = None

    def rows(self, r0: int, r1: int) -> Tuple[np.ndarray, np.ndarray]:
        return self.score.block(self.s0 + r0 * self.s_period, self.s_period, r1 - r0)

    def block(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Cost ``(r1 - r0, c1 - c0)`` (float64, for dtw-python)."""
        act, ons = self.rows(r0, r1)
        settings = self.settings
        xs = self.sal[c0:c1].astype(np.float32) - self.mu_s
        C = _z_cost(act, xs, self.cov_s, settings.z_scale)
        if settings.onset_weight > 0:
            xo = self.osal[c0:c1].astype(np.float32) - self.mu_o
            C += settings.onset_weight * _z_cost(ons, xo, self.cov_o, settings.z_scale)
            C /= 1.0 + settings.onset_weight
        self.largest = max(self.largest, C.size)
        return C.astype(np.float64)


def _z_cost(W: np.ndarray, Xc: np.ndarray, cov: np.ndarray, z_scale: float) -> np.ndarray:
    """``(rows, cols)``: 1 - tanh(z / z_scale) with z = a . x / sqrt(a' cov a): a = w / sum(w) the
    row's pitch weights, x the centred audio features ``(cols, d)``, cov their covariance over
    the recording. Rows without weight cost 1."""
    s = W.sum(axis=1)
    has = s > 1e-6
    C = np.ones((W.shape[0], Xc.shape[0]), np.float32)
    if np.any(has):
        A = W[has] / s[has, None]
        var = ((A.astype(np.float64) @ cov) * A).sum(axis=1)
        sd = np.sqrt(np.maximum(var, 1e-12))
        sd = np.maximum(sd, 0.05 * float(np.median(sd)) + 1e-6)
        z = A @ Xc.T
        z *= (1.0 / (z_scale * sd)).astype(np.float32)[:, None]
        np.tanh(z, out=z)
        z *= -np.minimum(s[has], 1.0).astype(np.float32)[:, None]   # a frame partly covered by notes weighs less
        z += 1.0
        C[has] = z
    return C
