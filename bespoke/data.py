"""The song as training data: the mixture, the aligned score, renderings of the target, and a
sampler of augmented (target, background, score) examples around this one mixture.

Also the network's features shared by training and inference (log-frequency projection,
network inputs) on spectral's STFT, so both see exactly the same representation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch

from . import augment
from .config.stages import AugmentSettings
from .spectral import (
    STFT,
    Grid,
    harmonic_template,
    lin_to_log,
    log_magnitude,  # noqa: F401  (re-export: pipeline, nmf, bench import it from here)
    log_to_lin,
    onset_template,
)


@dataclass
class Song:
    """One mixture and its aligned score, at the grid's sample rate.

    mix: ``(n_samples,)`` mono mixture.
    target_notes / other_notes: ``(n, 4)`` aligned notes (audio seconds) of the target part and
    of every other part of the MIDI (empty when the MIDI holds only the target).
    """

    mix: np.ndarray
    sr: int
    target_notes: np.ndarray
    other_notes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    tuning: float = 0.0

    @property
    def duration(self) -> float:
        return len(self.mix) / float(self.sr)


class Features:
    """The network's spectrogram features on a Grid (spectral.STFT of the grid), in torch, on one
    device."""

    def __init__(self, grid: Grid, device="cpu"):
        self.grid = grid
        self.device = torch.device(device)
        self.transform = STFT.of_grid(grid, self.device)
        self.W = torch.from_numpy(lin_to_log(grid)).to(self.device)  # (n_log, n_lin)
        self.P = torch.from_numpy(log_to_lin(grid)).to(self.device)  # (n_lin, n_log)

    def stft(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` waves -> complex ``(B, n_lin, n_frames)``."""
        return self.transform.forward(x)

    def istft(self, X: torch.Tensor, length: int) -> torch.Tensor:
        """Complex ``(B, n_lin, n_frames)`` -> ``(B, length)`` waves."""
        return self.transform.inverse(X, length)

    def to_log(self, mag: torch.Tensor) -> torch.Tensor:
        """``(B, n_lin, T)`` -> ``(B, n_log, T)``."""
        return torch.einsum("fl,blt->bft", self.W, mag)

    def to_lin(self, mask_log: torch.Tensor) -> torch.Tensor:
        """``(B, n_log, T)`` -> ``(B, n_lin, T)``."""
        return torch.einsum("lf,bft->blt", self.P, mask_log)

    def inputs(self, mag_lin: torch.Tensor, templ: torch.Tensor, onset: torch.Tensor,
               other: torch.Tensor) -> torch.Tensor:
        """Network input ``(B, 4, n_log, T)``."""
        logmag = torch.log(self.to_log(mag_lin) + 1e-5)
        return torch.stack([logmag, templ, onset, other], dim=1)


def score_channels(notes: np.ndarray, other: np.ndarray, grid: Grid, n_frames: int, t0: float,
                   tuning: float) -> np.ndarray:
    """The three score channels ``(3, n_log, n_frames)`` for frames starting at ``t0`` s."""
    return np.stack([
        harmonic_template(notes, grid, n_frames, t0=t0, tuning_cents=tuning),
        onset_template(notes, grid, n_frames, t0=t0, tuning_cents=tuning),
        harmonic_template(other, grid, n_frames, t0=t0, tuning_cents=tuning),
    ])


@dataclass
class Source:
    """A training source on the song's timeline: a wave ``(n_samples,)`` at the grid rate, the
    notes it holds (``(n, 4)``, for the 'other parts' channel; empty if unknown), and how often
    it is drawn relative to the other sources of its kind."""

    wave: np.ndarray
    notes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    weight: float = 1.0
    name: str = ""


class TrainingSet:
    """Samples augmented examples around one song.

    targets: Sources that sound like the target part and follow its aligned score (renderings,
    or the target estimated from the real mixture).
    backgrounds: Sources of everything else (parts of the real mixture, other parts rendered).
    """

    def __init__(self, song: Song, targets: List[Source], backgrounds: List[Source], grid: Grid,
                 recipe: Optional[AugmentSettings] = None):
        self.song, self.targets, self.backgrounds, self.grid = song, list(targets), list(backgrounds), grid
        self.recipe = recipe or AugmentSettings()
        self.L = int(round(self.recipe.segment_s * grid.sr))
        self.n_frames = grid.n_frames(self.L)
        n = len(song.mix)
        act = augment.activity(song.target_notes, n // grid.hop + 1, grid.frame_rate, margin=0.0)
        self.active_frames = np.nonzero(act)[0]

    def _start(self, rng) -> int:
        n = len(self.song.mix)
        hi = max(n - self.L, 1)
        if len(self.active_frames) and rng.random() < self.recipe.p_target_active:
            c = int(self.active_frames[rng.integers(len(self.active_frames))]) * self.grid.hop
            return int(np.clip(c - rng.integers(0, self.L), -self.L // 4, hi))
        return int(rng.integers(-self.L // 4, hi))

    def sample(self, rng: np.random.Generator, batch: int) -> dict:
        """A batch: ``target``/``background`` ``(B, L)`` waves and ``score`` ``(B, 3, n_log, T)``."""
        out = _empty_batch(self, batch)
        for b in range(batch):
            self.example_into(out, b, rng)
        return out

    def example_into(self, out: dict, b: int, rng: np.random.Generator) -> None:
        """Draw one example into row ``b`` of the batch ``out`` (see sample)."""
        R, g, sr = self.recipe, self.grid, self.grid.sr
        s0 = self._start(rng)
        t0 = s0 / sr
        tgt = augment.segment(_pick(self.targets, rng).wave, s0, self.L)
        notes = augment.notes_in(self.song.target_notes, t0, t0 + R.segment_s + 1.0)
        if R.jitter:
            notes = augment.jitter_notes(notes, rng, R.jitter_onset_ms, R.jitter_offset_ms, R.jitter_global_ms)
        bg, other = self._background(rng)
        rb, rt = augment.rms(bg), augment.rms(tgt)
        if rt > 1e-5:
            gain_db = rng.uniform(*R.target_gain_db)
            tgt = tgt * (rb / rt if rb > 1e-5 else 1.0) * augment.db_to_gain(gain_db)
        if rng.random() < R.p_silent_target:
            tgt = tgt * 0.0
        level = augment.db_to_gain(rng.uniform(*R.mix_level_db)) * R.mix_rms / max(augment.rms(tgt + bg), 1e-4)
        out["target"][b], out["background"][b] = tgt * level, bg * level
        for k in range(2):
            if rng.random() < R.p_eq:
                out["eq"][b, k] = augment.smooth_eq(g.n_lin, rng, R.eq_db)
        out["score"][b] = score_channels(notes, other, g, self.n_frames, 0.0, self.song.tuning)

    def _background(self, rng: np.random.Generator):
        """A background crop ``(L,)``, pitch-shifted at times, and the notes it holds."""
        R, sr = self.recipe, self.grid.sr
        src = _pick(self.backgrounds, rng)
        bg_wave, bg_notes = src.wave, src.notes
        s1 = int(rng.integers(0, max(len(bg_wave) - self.L, 1)))
        shift = 0
        if rng.random() < R.p_pitch_shift:
            shift = int(rng.integers(-R.max_shift, R.max_shift + 1))
        ratio = 2.0 ** (shift / 12.0)
        need = int(self.L * ratio) + 16
        bg = augment.segment(bg_wave, s1, need)
        bg = augment.pitch_shift_resample(bg, shift, self.L) if shift else bg[:self.L]
        other = augment.notes_in(bg_notes, s1 / sr, s1 / sr + R.segment_s * ratio + 1.0) \
            if len(bg_notes) else bg_notes
        if len(other):
            other = augment.shift_notes(other, semitones=shift, time_scale=1.0 / ratio)
        return bg, other


class PartsTrainingSet:
    """Training "query by score" for several parts at once: each example picks one part at random
    and is drawn from that part's TrainingSet (its sources as target and background, its notes in
    the score channels), so one network learns to separate whichever part the score channels name.
    The sets must share the grid and the crop length."""

    def __init__(self, sets: List[TrainingSet]):
        if not sets:
            raise ValueError("PartsTrainingSet: no part")
        self.sets = list(sets)
        self.grid, self.L, self.n_frames = sets[0].grid, sets[0].L, sets[0].n_frames

    def sample(self, rng: np.random.Generator, batch: int) -> dict:
        out = _empty_batch(self, batch)
        for b in range(batch):
            self.sets[int(rng.integers(len(self.sets)))].example_into(out, b, rng)
        return out


def _empty_batch(data, batch: int) -> dict:
    g = data.grid
    return {"target": np.zeros((batch, data.L), np.float32), "background": np.zeros((batch, data.L), np.float32),
            "score": np.zeros((batch, 3, g.n_log, data.n_frames), np.float32),
            "eq": np.ones((batch, 2, g.n_lin), np.float32)}


def _pick(sources: List[Source], rng: np.random.Generator) -> Source:
    w = np.array([s.weight for s in sources], dtype=np.float64)
    return sources[int(rng.choice(len(sources), p=w / w.sum()))]


def make_batch(feat: Features, batch: dict):
    """Waves -> (network input ``(B, 4, n_log, T)``, mixture magnitude, target magnitude), on
    feat.device. The mixture is the complex sum of the (EQ'd) target and background."""
    dev = feat.device
    T = feat.stft(torch.from_numpy(batch["target"]).to(dev))
    Bg = feat.stft(torch.from_numpy(batch["background"]).to(dev))
    eq = torch.from_numpy(batch["eq"]).to(dev)
    T = T * eq[:, 0, :, None]
    Bg = Bg * eq[:, 1, :, None]
    X = T + Bg
    mag_x, mag_t = X.abs(), T.abs()
    score = torch.from_numpy(batch["score"]).to(dev)
    x = feat.inputs(mag_x, score[:, 0], score[:, 1], score[:, 2])
    return x, mag_x, mag_t
