"""The recording's features, one frame every ``hop`` samples at FEAT_SR (10 ms):

  * pitch salience ``(n, 88)``: a semitone log-spectrum (spectral.semitone_power, tuned to the
    recording) summed over each pitch's first harmonics (harmonic_sum_matrix), each frame scaled
    to its own strongest pitch;
  * onset salience ``(n, 88)``: the same harmonic sum of the log-spectral flux (rises only),
    scaled by its local maximum over a few seconds and given a decaying tail (decaying locally
    adaptive normalised onsets, per pitch);
  * flux ``(n,)``: the onsets at any pitch (the log-spectral flux summed over the bands).

MixFeatures holds them, and pools them to the coarser levels with their means and covariances."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np

from ..config.align import AlignSettings
from ..spectral import semitone_power

FEAT_SR = 22050
PITCH_LO, N_PITCH = 21, 88          # A0 .. C8: the notes
BIN_LO, N_BIN = 21, 100             # semitone bins of the spectrum: A0 .. C9 (harmonics)


def harmonic_sum_matrix(n_harm: int, decay: float, lo_pitch: int = PITCH_LO, n_pitch: int = N_PITCH,
                        lo_bin: int = BIN_LO, n_bins: int = N_BIN) -> np.ndarray:
    """``(n_pitch, n_bins)``: pitch p gathers bins p + 12 log2(h), h = 1..n_harm (linear
    interpolation between semitones), weighted decay ** (h - 1), rows summing to 1."""
    H = np.zeros((n_pitch, n_bins), np.float32)
    for i in range(n_pitch):
        for h in range(1, n_harm + 1):
            b = lo_pitch + i + 12.0 * math.log2(h) - lo_bin
            k = int(math.floor(b))
            t = b - k
            w = decay ** (h - 1)
            for kk, ww in ((k, 1.0 - t), (k + 1, t)):
                if 0 <= kk < n_bins and ww > 0:
                    H[i, kk] += w * ww
        H[i] /= max(H[i].sum(), 1e-9)
    return H


@dataclass
class MixFeatures:
    """Mixture features at the finest rate: ``sal`` and ``ons`` float16 ``(n_frames, 88)``, and
    ``flux``, the onsets at any pitch."""

    sal: np.ndarray
    ons: np.ndarray
    rate: float
    tuning_cents: float
    flux: Optional[np.ndarray] = None   # float32 ``(n_frames,)``: onsets at any pitch (None: not used)
    _pooled: dict = field(default_factory=dict, repr=False)
    _flux_z: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return self.sal.shape[0]

    def flux_z(self) -> Optional[np.ndarray]:
        """``flux`` as z-scores over the recording, float32 ``(n_frames,)`` (None without flux);
        computed once."""
        if self._flux_z is None and self.flux is not None:
            f = self.flux
            self._flux_z = ((f - f.mean()) / (f.std() + 1e-9)).astype(np.float32)
        return self._flux_z

    def pooled(self, factor: int):
        """Features pooled by ``factor`` frames (salience: mean, onsets: max) with their means and
        covariances over time: (sal ``(m, 88)``, mean ``(88,)``, cov ``(88, 88)``, ons, mean, cov).
        Cached (the coarser levels)."""
        if factor not in self._pooled:
            if factor <= 1:   # the stored float16 arrays, no copy
                sal, ons = self.sal, self.ons
            else:
                sal, ons = pool(self.sal, factor, "mean"), pool(self.ons, factor, "max")
            mu_s, cov_s = _moments(sal)
            mu_o, cov_o = _moments(ons)
            self._pooled = {k: v for k, v in self._pooled.items() if k > factor}  # finer levels come last
            self._pooled[factor] = (sal, mu_s, cov_s, ons, mu_o, cov_o)
        return self._pooled[factor]


def mixture_features(y: np.ndarray, sr: int, tuning_cents: float = 0.0, settings: Optional[AlignSettings] = None,
                     chunk_s: float = 60.0) -> MixFeatures:
    """Pitch and onset salience of the mono recording ``y`` ``(n_samples,)``, computed in chunks
    (memory grows with the number of frames, never with the STFT)."""
    settings = settings or AlignSettings()
    if sr != FEAT_SR:
        from ..audio import resample

        y = resample(np.asarray(y, np.float32), sr, FEAT_SR)
    y = np.asarray(y, np.float32)
    hop = settings.hop
    H = harmonic_sum_matrix(settings.harmonics, settings.harmonic_decay).T  # (bins, pitch)
    L = _log_semitone_spectrum(y, hop, settings.n_fft, tuning_cents, settings.compress, chunk_s)
    sal = L @ H
    if settings.onset_n_fft != settings.n_fft:
        del L
        L = _log_semitone_spectrum(y, hop, settings.onset_n_fft, tuning_cents, settings.compress, chunk_s)
    # onsets: rises of the log-spectrum, harmonic-summed, over a local maximum, with a tail
    np.subtract(L[1:], L[:-1], out=L[1:])
    L[0] = 0.0
    np.maximum(L, 0.0, out=L)
    flux = L.sum(axis=1)
    ons = L @ H
    del L
    # pitch salience relative to the frame's strongest pitch (floor: quiet frames stay low)
    peak = sal.max(axis=1)
    floor = settings.salience_floor * float(np.percentile(peak, 90)) + 1e-9
    sal /= np.maximum(peak, floor)[:, None]
    rate = FEAT_SR / hop
    flux = _normalise_onsets(ons, flux, rate, settings)
    return MixFeatures(sal=sal.astype(np.float16), ons=ons.astype(np.float16), rate=rate, tuning_cents=tuning_cents,
                       flux=flux[:, 0].astype(np.float32))


def _normalise_onsets(ons: np.ndarray, flux: np.ndarray, rate: float, settings: AlignSettings) -> np.ndarray:
    """Scale the onsets ``ons`` ``(n, 88)`` (in place) and ``flux`` ``(n,)`` by their local maxima
    over ``onset_norm_s`` and give them a decaying tail; returns the flux as ``(n, 1)``."""
    import scipy.ndimage

    w = max(int(round(settings.onset_norm_s * rate)), 1)
    opeak = scipy.ndimage.maximum_filter1d(ons.max(axis=1), size=w, mode="nearest")
    ofloor = settings.onset_floor * float(np.percentile(opeak, 90)) + 1e-9
    ons /= np.maximum(opeak, ofloor)[:, None]
    fpeak = scipy.ndimage.maximum_filter1d(flux, size=w, mode="nearest")
    flux /= np.maximum(fpeak, settings.onset_floor * float(np.percentile(fpeak, 90)) + 1e-9)
    flux = flux[:, None]
    if settings.onset_decay_s > 0:
        a = math.exp(-1.0 / (settings.onset_decay_s * rate))
        _decay_inplace(ons, a)
        _decay_inplace(flux, a)
    return flux


def _log_semitone_spectrum(y: np.ndarray, hop: int, n_fft: int, tuning_cents: float, compress: float,
                           chunk_s: float) -> np.ndarray:
    """log(1 + compress * E / ref): E the power in semitone bands ``(n_frames, N_BIN)`` of
    centred frames every ``hop`` samples (FEAT_SR), ref a high percentile of the frames' peaks."""
    E = semitone_power(y, FEAT_SR, hop, n_fft, tuning_cents, BIN_LO, N_BIN, chunk_s)
    ref = float(np.percentile(E.max(axis=1), 99)) + 1e-12
    return np.log1p(compress * E / ref, out=E)


def _decay_inplace(X: np.ndarray, a: float) -> None:
    """X[t] = max(X[t], a * X[t-1]) along axis 0 (a peak-hold with exponential decay)."""
    import scipy.signal

    # max-decay has no closed linear form; a linear IIR tail then a max with the input is close
    tail = scipy.signal.lfilter([1.0 - a], [1.0, -a], X, axis=0).astype(np.float32)
    np.maximum(X, tail / max(1.0 - a, 1e-6) * (1.0 - a), out=X)


def pool(X: np.ndarray, factor: int, how: str = "mean") -> np.ndarray:
    """Pool ``(n, d)`` rows by ``factor`` (the last group may be shorter): mean or max."""
    if factor <= 1:
        return X.astype(np.float32)
    n = X.shape[0]
    m = -(-n // factor)
    pad = m * factor - n
    Z = np.concatenate([X, np.repeat(X[-1:], pad, axis=0)]) if pad else X
    Z = Z.reshape(m, factor, -1).astype(np.float32)
    return Z.max(axis=1) if how == "max" else Z.mean(axis=1)


def _moments(X: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and covariance ``(d, d)`` of the rows of X (subsampled when long)."""
    step = max(1, X.shape[0] // 20000)
    Z = X[::step].astype(np.float64)
    mu = Z.mean(axis=0)
    Zc = Z - mu
    return mu.astype(np.float32), (Zc.T @ Zc / max(len(Z) - 1, 1)).astype(np.float64)
