"""Stereo and multichannel separation: a multichannel Wiener filter whose sources' spectral power
comes from bespoke's masks and whose spatial covariance is learnt from the recording itself.

A mono mask shares each time-frequency bin of every channel out in the same proportion, so a
guitar panned left and another panned right are only told apart by their notes. Here each source
j (a part, or the rest) is modelled, per STFT bin, as a zero-mean complex Gaussian of covariance
``v_j(f, t) R_j(f)``: its power ``v_j`` (the mask's share of the mixture's power) times a spatial
covariance ``R_j`` (``(C, C)`` per frequency: where the source sits in the stereo image, how wide
it is). The stems are the posterior means ``y_j = v_j R_j (sum_k v_k R_k)^-1 x`` (Duong, Vincent
& Gribonval 2010; the filter of Open-Unmix's norbert), with ``R_j`` fitted
by expectation-maximisation. Started from identity covariances, the filter is the mono mask
itself; each iteration lets the stereo image move energy between the sources.

Shapes: ``X`` ``(C, F, T)`` complex, ``masks`` ``(J, F, T)`` real, summing to 1 in each bin.
"""
from __future__ import annotations

from typing import Optional

import torch

EPS = 1e-10


def _inv(M: torch.Tensor) -> torch.Tensor:
    """Inverse of ``(..., C, C)`` Hermitian matrices (closed form for 2 x 2)."""
    if M.shape[-1] == 1:
        return 1.0 / M
    if M.shape[-1] == 2:
        a, b, c, d = M[..., 0, 0], M[..., 0, 1], M[..., 1, 0], M[..., 1, 1]
        det = a * d - b * c
        det = torch.where(det.abs() < EPS, torch.full_like(det, EPS), det)
        return torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det[..., None, None]
    return torch.linalg.inv(M)


def wiener(X: torch.Tensor, masks: torch.Tensor, iterations: int = 1, regularisation: float = 1e-3,
           keep: Optional[int] = None) -> torch.Tensor:
    """Multichannel Wiener filter (see the module's docstring).

    X: the mixture's STFT ``(C, F, T)`` complex. masks: ``(J, F, T)`` in [0, 1], one per source,
    every source of the mixture among them (a part, the rest, a residual) so that they sum to 1;
    each source's power is its mask's share of the mixture's. iterations: EM iterations of the
    spatial covariances (0: the masks as they are). regularisation: added to the mixture
    covariance's diagonal, relative to its mean power. keep: return only the first ``keep``
    sources (default all).

    Returns the sources' images ``(keep, C, F, T)`` complex; all J add up to X (up to the
    regularisation).

    Each E-step needs ``z = Cxx^-1 x`` once; a source's posterior mean is ``v_j R_j z`` and the sum
    over time of its posterior covariance ``sum_t (y y^H) + R_j sum_t v_j - R_j (sum_t v_j^2 Cxx^-1) R_j``,
    so no per-bin matrix product is formed per source.
    """
    C, F, T = X.shape
    J = masks.shape[0]
    keep = J if keep is None else int(keep)
    masks = masks.to(X.real.dtype)
    if iterations <= 0 or C == 1:
        return masks[:keep, None] * X[None]
    v = masks * (X.abs() ** 2).mean(0)[None]                            # (J, F, T) powers
    eye = torch.eye(C, dtype=X.dtype, device=X.device)
    load = regularisation * float(v.sum(0).mean()) + EPS
    R = eye.expand(J, F, C, C).clone()                                  # (J, F, C, C)
    xt = X.permute(1, 2, 0)                                             # (F, T, C)
    for it in range(iterations + 1):
        Cxx = torch.einsum("jft,jfab->ftab", v.to(X.dtype), R) + load * eye
        inv = _inv(Cxx)                                                 # (F, T, C, C)
        z = torch.einsum("ftab,ftb->fta", inv, xt)                      # Cxx^-1 x
        if it == iterations:
            break
        newR = torch.empty_like(R)
        for j in range(J):
            vj = v[j]
            y = vj[..., None] * torch.einsum("fab,ftb->fta", R[j], z)  # (F, T, C)
            yy = torch.einsum("fta,ftb->fab", y, y.conj())
            s2 = torch.einsum("ft,ftab->fab", (vj ** 2).to(X.dtype), inv)
            den = vj.sum(1).to(X.dtype)[:, None, None] + EPS
            newR[j] = (yy + R[j] * den - R[j] @ s2 @ R[j]) / den
        R = newR
    out = torch.empty((keep, C, F, T), dtype=X.dtype, device=X.device)
    for j in range(keep):
        out[j] = (v[j][..., None] * torch.einsum("fab,ftb->fta", R[j], z)).permute(2, 0, 1)
    return out
