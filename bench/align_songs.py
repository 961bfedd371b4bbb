"""Synthetic performances for the alignment benchmark (bench/align_eval.py).

A score from music21's corpus (Bach chorales, string-quartet movements) is "performed": a smooth
tempo curve, ritardandi into fermatas, fermatas held longer with a breath after them, small
per-note and per-part asynchrony, legato note ends, dynamics, a tuning that is not A=440,
sometimes reverb, silence and extra material (music not in the score, noise) at either end.
Each part is rendered with MuseScore_General.sf3 (not the soundfont bespoke renders with) and
the parts are summed. The aligner gets the plain score at one constant tempo; the truth is
the performed note times, note for note in the same order.

Renderings are cached under $BESPOKE_BENCH_CACHE (default ~/.cache/bespoke-bench).
"""
from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

VERSION = 4
SR = 22050
MUSESCORE_SF = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")
CACHE = Path(os.environ.get("BESPOKE_BENCH_CACHE", "~/.cache/bespoke-bench")).expanduser() / "align"

ENSEMBLES = {
    "bach10": [40, 71, 66, 70],        # violin, clarinet, tenor sax, bassoon (as in Bach10)
    "winds": [73, 68, 71, 70],         # flute, oboe, clarinet, bassoon
    "strings": [40, 40, 41, 42],       # violin, violin, viola, cello
    "brass": [56, 60, 57, 58],         # trumpet, horn, trombone, tuba
}


@dataclass
class ScoreNote:
    on: float          # beats (quarter notes)
    off: float
    pitch: int
    fermata: bool = False


@dataclass
class ScorePart:
    name: str
    notes: List[ScoreNote]


@dataclass
class Song:
    """mix: float32 ``(n_samples,)`` at ``sr``. score: the plain score (constant tempo, real GM
    programs); truth: the same notes in the same order at their performed times in ``mix``."""

    name: str
    mix: np.ndarray
    sr: int
    score: object
    truth: object
    info: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.mix) / self.sr


def read_score(corpus_path: str, measures: Optional[tuple] = None) -> List[ScorePart]:
    """The parts of a music21 corpus score as beat-timed notes (ties merged, grace notes dropped)."""
    from music21 import corpus, expressions

    s = corpus.parse(corpus_path)
    if measures is not None:
        s = s.measures(*measures)
    s = s.stripTies()
    parts = []
    first = None
    for p in s.parts:
        notes = []
        for n in p.flatten().notes:
            ql = float(n.quarterLength)
            if ql <= 0:
                continue
            ferm = any(isinstance(e, expressions.Fermata) for e in n.expressions)
            on = float(n.offset)
            pitches = [x.midi for x in n.pitches]
            for pit in pitches:
                notes.append(ScoreNote(on, on + ql, int(pit), ferm))
        if notes:
            notes.sort(key=lambda x: (x.on, x.pitch))
            parts.append(ScorePart(p.partName or f"part{len(parts)}", notes))
            first = min(first, notes[0].on) if first is not None else notes[0].on
    for p in parts:  # start at beat 0
        for n in p.notes:
            n.on -= first
            n.off -= first
    return parts


def _smooth_curve(rng, n_beats: float, dev: float, every: float = 4.0) -> callable:
    """A smooth random factor 1 +- dev over beats (cubic-ish interpolation of random knots)."""
    k = max(int(n_beats / every) + 3, 4)
    knots = np.linspace(-every, n_beats + every, k)
    vals = 1.0 + rng.uniform(-dev, dev, size=k)
    fine = np.linspace(knots[0], knots[-1], 50 * k)
    v = np.interp(fine, knots, vals)
    w = np.hanning(41)
    v = np.convolve(np.pad(v, 20, mode="edge"), w / w.sum(), mode="valid")
    return lambda b: np.interp(b, fine, v)


def perform(parts: List[ScorePart], rng: np.random.Generator, bpm: float, tempo_dev: float = 0.2,
            hold=(1.6, 2.6), breath=(0.15, 0.5), async_ms: float = 10.0, part_async_ms: float = 10.0,
            lead: float = 0.0):
    """Performed (onset, offset) seconds for every note of every part, and the beat->time map."""
    n_beats = max(n.off for p in parts for n in p.notes)
    ferm = sorted({(n.on, n.off) for p in parts for n in p.notes if n.fermata})
    # merge fermata spans that overlap (the same fermata in several parts)
    spans = []
    for a, b in ferm:
        if spans and a < spans[-1][1]:
            spans[-1] = (min(spans[-1][0], a), max(spans[-1][1], b))
        else:
            spans.append((a, b))
    curve = _smooth_curve(rng, n_beats, tempo_dev)
    step = 1.0 / 48
    grid = np.arange(0.0, n_beats + 1.0 + step, step)
    beat_dur = 60.0 / bpm / curve(grid)
    extra = np.zeros_like(grid)
    breaths = []
    for a, b in spans:
        rit0 = max(a - 2.0, 0.0)
        ramp = np.clip((grid - rit0) / max(a - rit0, 1e-6), 0.0, 1.0) * (grid < a)
        beat_dur *= 1.0 + 0.25 * ramp
        beat_dur = np.where((grid >= a) & (grid < b), beat_dur * rng.uniform(*hold), beat_dur)
        br = rng.uniform(*breath) if b < n_beats - 1e-6 else 0.0
        extra[np.searchsorted(grid, b)] += br
        breaths.append((b, br))
    t = np.concatenate([[0.0], np.cumsum(beat_dur[:-1] * step)]) + np.cumsum(extra) + lead
    bmap = lambda b: np.interp(b, grid, t)
    breath_at = dict(breaths)
    out = []
    for p in parts:
        pa = rng.normal(0.0, part_async_ms / 1000.0)
        times = []
        for n in p.notes:
            on = float(bmap(n.on)) + pa + float(np.clip(rng.normal(0.0, async_ms / 1000.0), -0.03, 0.03))
            off = float(bmap(n.off)) - breath_at.get(n.off, 0.0) - rng.uniform(0.01, 0.06)
            times.append((max(on, 0.0), max(off, on + 0.06)))
        out.append(times)
    return out, bmap


def _random_chords(rng, programs, seconds: float, lo_hi=((60, 79), (55, 72), (48, 67), (36, 55))):
    """Music that is not in the score: random diatonic notes, one per beat, for each part."""
    import pretty_midi

    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    insts = []
    for prog, (lo, hi) in zip(programs, lo_hi):
        inst = pretty_midi.Instrument(program=prog)
        t = 0.0
        while t < seconds:
            d = float(rng.choice([0.4, 0.6, 0.8]))
            cands = [p for p in range(lo, hi + 1) if (p % 12) in scale]
            inst.notes.append(pretty_midi.Note(80, int(rng.choice(cands)), t, min(t + d * 0.95, seconds)))
            t += d
        insts.append(inst)
    return insts


def _render_part(r, inst, duration: float) -> np.ndarray:
    y = r.render([inst], duration=duration)
    rms = np.sqrt(np.mean(y ** 2)) + 1e-9
    return y / rms


def make_song(corpus_path: str, seed: int, measures: Optional[tuple] = None, ensemble: Optional[str] = None,
              score_bpm: Optional[float] = None, name: Optional[str] = None, use_cache: bool = True) -> Song:
    """Render (or load from the cache) one synthetic performance of a corpus score."""
    key = hashlib.sha1(repr((VERSION, corpus_path, seed, measures, ensemble, score_bpm)).encode()).hexdigest()[:12]
    stem = corpus_path.replace(".mxl", "").replace("/movement", "-").replace("/opus", "").replace("bach/", "").replace("mozart/", "")
    name = name or f"{stem}#{seed}"
    cache = CACHE / f"{key}.pkl"
    if use_cache and cache.exists():
        with open(cache, "rb") as f:
            return pickle.load(f)
    import zlib

    import pretty_midi

    from bespoke.synth import Renderer

    rng = np.random.default_rng([seed, zlib.crc32(corpus_path.encode())])
    parts = read_score(corpus_path, measures)
    n_parts = len(parts)
    chorale = "bach" in corpus_path
    ens = ensemble or str(rng.choice(["bach10", "winds", "strings", "brass"] if chorale else ["strings", "strings", "winds"]))
    programs = (ENSEMBLES[ens] * 2)[:n_parts]
    bpm = rng.uniform(55, 80) if chorale else rng.uniform(90, 120)
    lead = rng.uniform(0.0, 2.0)
    intro = rng.uniform(3.0, 6.0) if rng.random() < 0.35 else 0.0
    times, _ = perform(parts, rng, bpm, tempo_dev=0.2 if chorale else 0.15, lead=lead + intro,
                       hold=(1.6, 2.6) if chorale else (1.3, 2.0))
    tuning = float(rng.choice([0.0, rng.uniform(-45, 45)]))
    bend = int(round(tuning / 200.0 * 8192))
    reverb = bool(rng.random() < 0.5)
    truth = pretty_midi.PrettyMIDI(initial_tempo=120)
    score = pretty_midi.PrettyMIDI(initial_tempo=120)
    sbpm = score_bpm or bpm * rng.uniform(0.75, 1.35)
    sbeat = 60.0 / sbpm
    for p, prog, tt in zip(parts, programs, times):
        perf = pretty_midi.Instrument(program=prog, name=p.name)
        sc = pretty_midi.Instrument(program=prog, name=p.name)
        base = rng.uniform(65, 95)
        swell = _smooth_curve(rng, p.notes[-1].off, 12.0, every=8.0)
        for n, (on, off) in zip(p.notes, tt):
            v = int(np.clip(base + (swell(n.on) - 1.0) + rng.normal(0, 5), 30, 120))
            perf.notes.append(pretty_midi.Note(v, n.pitch, on, off))
            sc.notes.append(pretty_midi.Note(80, n.pitch, n.on * sbeat, n.off * sbeat))
        truth.instruments.append(perf)
        score.instruments.append(sc)
    end = max(n.end for i in truth.instruments for n in i.notes)
    outro = rng.uniform(2.0, 5.0) if rng.random() < 0.35 else 0.0
    dur = end + 1.5 + rng.uniform(0.0, 1.5) + outro
    with Renderer(sr=SR, soundfont=MUSESCORE_SF, reverb=reverb) as r:
        mix = np.zeros(int(dur * SR) + 1, np.float32)
        for inst in truth.instruments:
            x = pretty_midi.Instrument(program=inst.program)
            x.notes = list(inst.notes)
            x.pitch_bends = [pretty_midi.PitchBend(bend, 0.0)]
            y = _render_part(r, x, dur)
            mix[:len(y)] += y[:len(mix)] * 10 ** (rng.uniform(-3, 3) / 20)
        if intro > 0:
            extra = _random_chords(rng, programs, intro - 0.3)
            for inst in extra:
                inst.pitch_bends = [pretty_midi.PitchBend(bend, 0.0)]
                y = _render_part(r, inst, intro)
                mix[:len(y)] += y
    if outro > 0:  # applause-like noise after the music
        n0 = int((end + 1.0) * SR)
        n = len(mix) - n0
        noise = rng.normal(0, 1, n).astype(np.float32)
        env = np.abs(rng.normal(0, 1, n // 400 + 2)).repeat(400)[:n].astype(np.float32)
        mix[n0:] += 0.5 * noise * env * np.sqrt(np.mean(mix[:n0] ** 2))
    mix *= 0.5 / (np.abs(mix).max() + 1e-9)
    song = Song(name=name, mix=mix.astype(np.float32), sr=SR, score=score, truth=truth,
                info={"ensemble": ens, "bpm": bpm, "score_bpm": sbpm, "tuning_cents": tuning, "reverb": reverb,
                      "lead_s": lead, "intro_s": intro, "outro_s": outro})
    if use_cache:
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(song, f)
        os.replace(tmp, cache)
    return song
