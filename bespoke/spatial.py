"""Stereo and multichannel separation: a multichannel Wiener filter whose sources' spectral power
comes from bespoke's masks and whose spatial covariance is learnt from the recording itself.

A mono mask shares each time-frequency bin of every channel out in the same proportion, so a
guitar panned left and another panned right are only told apart by their notes. Here each source
j (a part, or the rest) is modelled, per STFT bin, as a zero-mean complex Gaussian of covariance
``v_j(f, t) R_j(f)``: its power ``v_j`` (the mask's share of the mixture's power) times a spatial
covariance ``R_j`` (``(C, C)`` per frequency: where the source sits in the stereo image, how wide
it is). The stems are the posterior means ``y_j = v_j R_j (sum_k v_k R_k)^-1 x`` (Duong, Vincent
& Gribonval 2010; the filter of Open-Unmix's norbert), with ``R_j`` (and optionally ``v_j``) fitted
by expectation-maximisation. Started from identity covariances, the filter is the mono mask
itself; each iteration lets the stereo image move energy between the sources.

Shapes: ``X`` ``(C, F, T)`` complex, ``masks`` ``(J, F, T)`` real, summing to 1 in each bin.
"""
from __future__ import annotations

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


def _spatial_covariance(y: torch.Tensor, v: torch.Tensor, post: torch.Tensor) -> torch.Tensor:
    """R ``(F, C, C)`` from the posterior mean ``y`` ``(C, F, T)``, power ``v`` ``(F, T)`` and the
    posterior covariance's remainder ``post`` ``(F, T, C, C)``: sum_t (y y^H + post) / sum_t v."""
    yy = torch.einsum("aft,bft->ftab", y, y.conj()) + post
    return yy.sum(1) / (v.sum(1)[:, None, None] + EPS)


def wiener(X: torch.Tensor, masks: torch.Tensor, iterations: int = 1, update_power: bool = False,
           regularisation: float = 1e-3) -> torch.Tensor:
    """Multichannel Wiener filter (see the module's docstring).

    X: the mixture's STFT ``(C, F, T)`` complex. masks: ``(J, F, T)`` in [0, 1], one per source,
    every source of the mixture among them (a part, the rest, a residual) so that they sum to 1.
    iterations: EM iterations of the spatial covariances (0: the masks as they are).
    update_power: also re-estimate each source's power from its posterior (norbert's EM); else the
    masks' share of the mixture's power is kept and only the stereo image is learnt.
    regularisation: added to the mixture covariance's diagonal, relative to its mean power.

    Returns the sources' images ``(J, C, F, T)`` complex; they add up to X (up to the regularisation).
    """
    C, F, T = X.shape
    J = masks.shape[0]
    masks = masks.to(X.real.dtype)
    if iterations <= 0 or C == 1:
        return masks[:, None] * X[None]
    power = (X.abs() ** 2).mean(0)                                      # (F, T)
    v = masks * power[None]                                             # (J, F, T)
    eye = torch.eye(C, dtype=X.dtype, device=X.device)
    load = regularisation * power.mean() + EPS
    R = eye.expand(J, F, C, C).clone()
    Y = masks[:, None] * X[None]
    for _ in range(iterations):
        Cxx = torch.einsum("jft,jfab->ftab", v.to(X.dtype), R) + load * eye   # (F, T, C, C)
        inv = _inv(Cxx)
        newR = []
        for j in range(J):
            vR = v[j].to(X.dtype)[..., None, None] * R[j][:, None]           # (F, T, C, C)
            W = vR @ inv
            y = torch.einsum("ftab,bft->aft", W, X)
            post = vR - W @ vR                                                # (I - W) v R
            Rj = _spatial_covariance(y, v[j], post)
            if update_power:
                tr = torch.einsum("faa->f", Rj).real / C
                Rj = Rj / (tr[:, None, None] + EPS)
                v[j] = torch.einsum("aft,aft->ft", y, y.conj()).real / C + torch.einsum(
                    "ftaa->ft", post).real / C
            newR.append(Rj)
        R = torch.stack(newR)
    Cxx = torch.einsum("jft,jfab->ftab", v.to(X.dtype), R) + load * eye
    inv = _inv(Cxx)
    for j in range(J):
        W = (v[j].to(X.dtype)[..., None, None] * R[j][:, None]) @ inv
        Y[j] = torch.einsum("ftab,bft->aft", W, X)
    return Y
