"""Expressive performances of scores from music21's corpus, rendered part by part.

A score (music21) becomes a list of notes in quarter notes per part; ``perform`` turns it into
two MIDIs with the same notes:

- the *performance* (audio time, the ground truth): a smooth random tempo curve, a slowing
  down into each fermata, held fermatas with a breath after them, a final ritardando, small
  per-note asynchrony (the melody leading a little), legato/detached note lengths, and
  velocities shaped by phrase arches, metric accents and noise;
- the plain *score* at a constant tempo (what the tool is given): every note at its written
  time and full written length, velocity 80.

``render_parts`` renders each part of the performance alone with fluidsynth and a soundfont
(MuseScore_General by default, not the tool's own), so the sum of the parts is the mixture
exactly. Everything is seeded.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

MUSESCORE_SF = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
PERFORM_VERSION = "perform-1"


@dataclass
class ScoreNote:
    onset: float       # quarter notes from the start
    dur: float         # quarter notes
    pitch: int
    fermata: bool
    accent: float      # music21's beatStrength, 0..1


@dataclass
class PartScore:
    name: str
    program: int
    notes: List[ScoreNote]


@dataclass
class Style:
    """How to perform: every random draw comes from ``seed``."""

    bpm: float = 80.0                 # base tempo, quarter notes per minute
    tempo_dev: float = 0.07           # std of the smooth log-tempo curve
    knot_quarters: float = 4.0        # spacing of the tempo curve's random knots
    rit_into_fermata: float = 0.15    # tempo drop over the 2 quarters before a fermata
    final_rit: float = 0.25           # tempo drop over the last 4 quarters
    fermata_hold: Tuple[float, float] = (1.5, 2.1)   # a fermata note lasts this many times longer
    breath: Tuple[float, float] = (0.12, 0.35)       # s of silence after a fermata
    async_ms: float = 12.0            # std of per-note onset asynchrony
    melody_lead_ms: float = 8.0       # part 0 plays this much early on average
    legato: Tuple[float, float] = (0.86, 0.97)       # sounding share of a note's written length
    velocity: float = 78.0
    lead_in: float = 0.6              # s of silence before the first note
    tail: float = 2.0                 # s after the last note end
    seed: int = 0


def load_score(corpus_name: str, programs: Sequence[int], names: Optional[Sequence[str]] = None,
               max_quarters: Optional[float] = None) -> List[PartScore]:
    """Parts of a music21 corpus work as PartScores (ties merged, grace notes dropped, repeats
    not expanded). ``programs``: the GM program of each part, in score order. ``max_quarters``:
    keep only notes starting before it (and cut notes at it)."""
    try:
        from music21 import corpus, expressions
    except ImportError as e:  # pragma: no cover - the bench extra installs it
        raise SystemExit("the benchmark needs music21: pip install -e '.[bench]'") from e

    score = corpus.parse(corpus_name).stripTies()
    parts = list(score.parts)
    if len(programs) != len(parts):
        raise ValueError(f"{corpus_name} has {len(parts)} parts; {len(programs)} programs given")
    out = []
    for k, (p, prog) in enumerate(zip(parts, programs)):
        notes = []
        for n in p.flatten().notes:
            ql = float(n.quarterLength)
            if n.duration.isGrace or ql <= 0:
                continue
            on = float(n.offset)
            if max_quarters is not None:
                if on >= max_quarters:
                    continue
                ql = min(ql, max_quarters - on)
            ferm = any(isinstance(e, expressions.Fermata) for e in n.expressions)
            acc = float(n.beatStrength) if n.beatStrength is not None else 0.25
            for pitch in n.pitches:
                notes.append(ScoreNote(on, ql, int(pitch.midi), ferm, acc))
        notes.sort(key=lambda x: (x.onset, x.pitch))
        name = names[k] if names else (p.partName or f"part {k}")
        out.append(PartScore(name=name, program=int(prog), notes=notes))
    return [p for p in out if p.notes]


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    if n <= 1:
        return x
    k = np.hanning(n + 2)[1:-1]
    k /= k.sum()
    return np.convolve(np.pad(x, n // 2, mode="edge"), k, mode="same")[n // 2: n // 2 + len(x)]


class TimeLine:
    """Score quarters -> performance seconds: the integral of the local seconds-per-quarter,
    held fermatas stretched, breaths inserted after fermatas."""

    RES = 96  # grid steps per quarter

    def __init__(self, parts: List[PartScore], style: Style, rng: np.random.Generator):
        end_q = max(n.onset + n.dur for p in parts for n in p.notes)
        self.end_q = end_q
        q = np.arange(0.0, end_q + 4.0, 1.0 / self.RES)
        # smooth random log-tempo around the base
        n_knots = int(np.ceil(q[-1] / style.knot_quarters)) + 2
        knots = rng.normal(0.0, style.tempo_dev, size=n_knots)
        logt = np.interp(q, np.arange(n_knots) * style.knot_quarters, knots)
        logt = _smooth(logt, int(style.knot_quarters * self.RES))
        factor = np.exp(logt)
        stretch = np.ones_like(q)
        self.breaths: List[Tuple[float, float]] = []
        fermatas = sorted({(n.onset, n.dur) for p in parts for n in p.notes if n.fermata})
        # one fermata per onset: the longest note held there
        by_onset = {}
        for on, d in fermatas:
            by_onset[on] = max(d, by_onset.get(on, 0.0))
        for on, d in sorted(by_onset.items()):
            ramp = np.clip((q - (on - 2.0)) / 2.0, 0.0, 1.0) * (q < on + d)
            factor *= 1.0 - style.rit_into_fermata * ramp
            stretch[(q >= on) & (q < on + d)] = rng.uniform(*style.fermata_hold)
            if on + d < end_q - 1e-6:
                self.breaths.append((on + d, float(rng.uniform(*style.breath))))
        final = np.clip((q - (end_q - 4.0)) / 4.0, 0.0, 1.0)
        factor *= 1.0 - style.final_rit * final
        spq = 60.0 / (style.bpm * factor) * stretch
        self.q = q
        self.t = style.lead_in + np.concatenate([[0.0], np.cumsum(spq[:-1] / self.RES)])
        self.bq = np.array([b[0] for b in self.breaths])
        self.bt = np.cumsum([b[1] for b in self.breaths]) if self.breaths else np.zeros(0)

    def __call__(self, qs, onset: bool = True) -> np.ndarray:
        """Seconds of quarters ``qs``; a breath at exactly ``q`` counts for onsets, not ends."""
        qs = np.asarray(qs, dtype=np.float64)
        t = np.interp(qs, self.q, self.t)
        if len(self.bq):
            if onset:  # breaths at or before q
                k = np.searchsorted(self.bq, qs + 1e-9, side="right")
            else:      # breaths strictly before q
                k = np.searchsorted(self.bq, qs - 1e-9, side="left")
            t = t + np.where(k > 0, self.bt[np.maximum(k - 1, 0)], 0.0)
        return t


def perform(parts: List[PartScore], style: Style):
    """(performance, score): two pretty_midi.PrettyMIDI with the same notes, part by part.

    The performance is in audio time (the ground truth of the alignment); the score is the plain
    quantized score at ``style.bpm`` starting at 0 s.
    """
    import pretty_midi

    rng = np.random.default_rng(style.seed)
    tl = TimeLine(parts, style, rng)
    spq = 60.0 / style.bpm
    perf = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    plain = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    phrase_marks = sorted({n.onset + n.dur for p in parts for n in p.notes if n.fermata})
    for k, part in enumerate(parts):
        a = np.array([[n.onset, n.dur, n.pitch, n.accent, n.fermata] for n in part.notes], dtype=np.float64)
        on_q, dur_q, pitch, accent = a[:, 0], a[:, 1], a[:, 2].astype(int), a[:, 3]
        bias = -style.melody_lead_ms if k == 0 else rng.normal(0.0, 4.0)
        jit = np.clip(rng.normal(bias, style.async_ms, size=len(a)), -40.0, 40.0) / 1000.0
        legato = rng.uniform(*style.legato, size=len(a))
        legato = np.where(dur_q < 0.5, legato - 0.08, legato)
        start = tl(on_q, onset=True) + jit
        end = tl(on_q + dur_q * legato, onset=False) + rng.normal(0.0, 0.01, size=len(a))
        end = np.maximum(end, start + 0.04)
        # phrase arches (phrases end at fermatas, else every 16 quarters), metric accents, noise
        marks = np.array(phrase_marks) if phrase_marks else np.arange(16.0, tl.end_q + 16.0, 16.0)
        i = np.searchsorted(marks, on_q, side="right")
        p0 = np.where(i > 0, marks[np.maximum(i - 1, 0)], 0.0)
        p1 = np.where(i < len(marks), marks[np.minimum(i, len(marks) - 1)], tl.end_q)
        phase = np.clip((on_q - p0) / np.maximum(p1 - p0, 1e-6), 0.0, 1.0)
        vel = style.velocity + (5.0 if k == 0 else 0.0) + 12.0 * np.sin(np.pi * phase) - 6.0 \
            + 8.0 * accent - 3.0 + rng.normal(0.0, 4.0, size=len(a))
        vel = np.clip(np.round(vel), 35, 115).astype(int)
        # same pitch in a row: release before the next attack
        order = np.lexsort((start, pitch))
        for j0, j1 in zip(order[:-1], order[1:]):
            if pitch[j0] == pitch[j1] and end[j0] > start[j1] - 0.015:
                end[j0] = max(start[j0] + 0.02, start[j1] - 0.015)
        pi = pretty_midi.Instrument(program=part.program, name=part.name)
        si = pretty_midi.Instrument(program=part.program, name=part.name)
        for j in range(len(a)):
            pi.notes.append(pretty_midi.Note(int(vel[j]), int(pitch[j]), float(start[j]), float(end[j])))
            si.notes.append(pretty_midi.Note(80, int(pitch[j]), float(on_q[j] * spq), float((on_q[j] + dur_q[j]) * spq)))
        pi.notes.sort(key=lambda n: (n.start, n.pitch))
        si.notes.sort(key=lambda n: (n.start, n.pitch))
        perf.instruments.append(pi)
        plain.instruments.append(si)
    return perf, plain


def render_parts(perf, sr: int = 44100, soundfont: Optional[Path] = None, gains_db: Optional[Sequence[float]] = None,
                 seed: int = 0, tail: float = 2.0, peak: float = 0.8, renderer=None) -> Tuple[List[np.ndarray], np.ndarray]:
    """Render each part of ``perf`` alone (fluidsynth, with reverb), balance them to equal RMS
    over their active spans, apply ``gains_db`` (per part) and a seeded +-1.5 dB spread, and
    scale everything so the mixture peaks at ``peak``. Returns (parts, mix), each float32
    ``(n_samples,)``; the mix is exactly the sum of the parts. ``renderer``: a bespoke.synth.Renderer
    to reuse (loading an .sf3 takes seconds); else one is made with ``soundfont``."""
    import contextlib

    from bespoke.synth import Renderer

    rng = np.random.default_rng(seed + 1000)
    end = max(n.end for inst in perf.instruments for n in inst.notes)
    dur = end + tail
    outs = []
    if renderer is None:
        sf = Path(soundfont) if soundfont else MUSESCORE_SF
        if not sf.is_file():
            raise SystemExit(f"{sf}: soundfont missing (Debian: apt-get install musescore-general-soundfont)")
        ctx = Renderer(sr=sr, soundfont=sf, reverb=True)
    else:
        ctx = contextlib.nullcontext(renderer)
    with ctx as r:
        for k, inst in enumerate(perf.instruments):
            y = r.render([inst], duration=dur).astype(np.float64)
            act = np.zeros(len(y), bool)
            for n in inst.notes:
                act[int(n.start * sr):int(n.end * sr)] = True
            rms = np.sqrt(np.mean(y[act] ** 2)) if act.any() else 1.0
            g = (gains_db[k] if gains_db else 0.0) + rng.uniform(-1.5, 1.5)
            outs.append(y / max(rms, 1e-9) * 10.0 ** (g / 20.0))
    mix = np.sum(outs, axis=0)
    scale = peak / max(np.max(np.abs(mix)), 1e-9)
    parts = [(y * scale).astype(np.float32) for y in outs]
    mix = np.sum(np.stack(parts).astype(np.float64), axis=0).astype(np.float32)
    return parts, mix


def spec_key(*objs) -> str:
    """A short hash of JSON-able objects (dataclasses allowed), for cache keys."""
    def conv(o):
        if hasattr(o, "__dataclass_fields__"):
            return asdict(o)
        if isinstance(o, (list, tuple)):
            return [conv(x) for x in o]
        return o
    blob = json.dumps([conv(o) for o in objs], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]
