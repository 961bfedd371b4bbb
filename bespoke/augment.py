"""Pure augmentation transforms. Every random choice comes from an explicit
``numpy.random.Generator``; nothing here keeps state.

Waveforms are float32 ``(n_samples,)``; note arrays are ``(n_notes, 4)`` (start, end, pitch, velocity).
"""
from __future__ import annotations

import numpy as np


def db_to_gain(db):
    return 10.0 ** (np.asarray(db) / 20.0)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def segment(x: np.ndarray, start: int, length: int) -> np.ndarray:
    """``x[start:start+length]``, zero-padded where it runs past either end."""
    out = np.zeros(length, dtype=np.float32)
    a, b = max(start, 0), min(start + length, len(x))
    if b > a:
        out[a - start:b - start] = x[a:b]
    return out


def pitch_shift_resample(x: np.ndarray, semitones: float, length: int) -> np.ndarray:
    """Shift pitch by resampling (tempo changes with it); returns ``length`` samples.
    Cheap, and for a background the changed speed does no harm."""
    if abs(semitones) < 1e-6:
        return segment(x, 0, length)
    import soxr

    ratio = 2.0 ** (semitones / 12.0)
    # play `ratio` times faster: resample from sr*ratio to sr
    y = soxr.resample(x.astype(np.float32), 1000.0 * ratio, 1000.0, quality="LQ")
    return segment(y.astype(np.float32), 0, length)


def shift_notes(notes: np.ndarray, dt: float = 0.0, semitones: float = 0.0, time_scale: float = 1.0) -> np.ndarray:
    """Move notes in time (``t -> (t + dt) * time_scale``) and pitch."""
    out = notes.copy()
    out[:, 0:2] = (out[:, 0:2] + dt) * time_scale
    out[:, 2] = out[:, 2] + semitones
    return out


def jitter_notes(notes: np.ndarray, rng: np.random.Generator, onset_ms: float, offset_ms: float,
                 global_ms: float) -> np.ndarray:
    """Score noise, so the network tolerates alignment error: a common shift (+-global_ms),
    and per-note onset/offset jitter (Gaussian, std in ms)."""
    if len(notes) == 0:
        return notes
    out = notes.copy()
    g = rng.uniform(-global_ms, global_ms) / 1000.0
    out[:, 0] += g + rng.normal(0.0, onset_ms / 1000.0, len(out))
    out[:, 1] += g + rng.normal(0.0, offset_ms / 1000.0, len(out))
    out[:, 1] = np.maximum(out[:, 1], out[:, 0] + 0.03)
    return out


def notes_in(notes: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Notes sounding in [t0, t1), with times relative to t0."""
    if len(notes) == 0:
        return notes
    keep = (notes[:, 1] > t0) & (notes[:, 0] < t1)
    out = notes[keep].copy()
    out[:, 0:2] -= t0
    return out


def smooth_eq(n_bins: int, rng: np.random.Generator, max_db: float = 6.0, n_knots: int = 6) -> np.ndarray:
    """A random smooth gain curve over ``n_bins`` linear frequency bins (log-spaced knots),
    as linear gains ``(n_bins,)``."""
    knots_x = np.linspace(0.0, 1.0, n_knots)
    knots_y = rng.uniform(-max_db, max_db, n_knots)
    x = np.log1p(np.arange(n_bins) / 4.0)
    x /= x[-1]
    return db_to_gain(np.interp(x, knots_x, knots_y)).astype(np.float32)


def activity(notes: np.ndarray, n: int, sr: float, margin: float = 0.15) -> np.ndarray:
    """Boolean ``(n,)``: where any note sounds (with ``margin`` s around it), at rate ``sr``."""
    act = np.zeros(n, dtype=bool)
    for s, e, _p, _v in notes:
        a = max(int((s - margin) * sr), 0)
        b = min(int((e + margin) * sr) + 1, n)
        if b > a:
            act[a:b] = True
    return act


def vary_performance(inst, rng: np.random.Generator, cfg, detune_cents: float = 0.0):
    """Another performance of the same part, for rendering training targets, as ``cfg``
    (config.SynthSettings) says: note ends held longer (pedal, legato) or cut short, velocities
    jittered, the whole part detuned by ``detune_cents``, and (monophonic parts, with
    probability cfg.vary_p_vibrato) a vibrato. The score the network sees stays the original;
    only the sound changes. Returns a new pretty_midi.Instrument."""
    import pretty_midi

    p_hold, p_short, vel_std = cfg.vary_p_hold, cfg.vary_p_short, cfg.vary_velocity_std

    out = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum, name=inst.name)
    notes = sorted(inst.notes, key=lambda n: (n.start, n.pitch))
    for i, n in enumerate(notes):
        s, e = n.start, n.end
        u = rng.random()
        if u < p_hold:
            e = e + rng.uniform(0.0, cfg.vary_max_hold_s)
            same = [m.start for m in notes[i + 1:] if m.pitch == n.pitch and m.start > s]
            if same:
                e = min(e, same[0] - 0.005)
        elif u < p_hold + p_short:
            e = s + (e - s) * rng.uniform(0.5, 1.0)
        v = int(np.clip(n.velocity + rng.normal(0.0, vel_std), 20, 127))
        out.notes.append(pretty_midi.Note(velocity=v, pitch=n.pitch, start=s, end=max(e, s + 0.02)))
    if inst.is_drum:
        return out
    # pitch: a constant detune plus, for parts that rarely overlap themselves, a vibrato
    units = 8192.0 / (cfg.bend_range * 100.0)  # pitch-bend units per cent
    end = max((n.end for n in out.notes), default=0.0) + 1.0
    mono = _max_polyphony(out.notes) <= 1
    if mono and rng.random() < cfg.vary_p_vibrato:
        depth = rng.uniform(*cfg.vibrato_cents)
        rate = rng.uniform(*cfg.vibrato_hz)
        t = np.arange(0.0, end, 0.02)
        cents = detune_cents + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    else:
        t = np.array([0.0])
        cents = np.array([detune_cents])
    if np.any(np.abs(cents) > 0.5):
        vals = np.clip(np.round(cents * units), -8192, 8191).astype(int)
        out.pitch_bends = [pretty_midi.PitchBend(int(v), float(tt)) for v, tt in zip(vals, t)]
    return out


def _max_polyphony(notes) -> int:
    ev = sorted([(n.start, 1) for n in notes] + [(n.end, -1) for n in notes])
    cur = best = 0
    for _t, d in ev:
        cur += d
        best = max(best, cur)
    return best
