"""Alignment benchmark: how close the aligned MIDI's onsets land to the truth.

    PYTHONPATH=. python bench/align_eval.py            # the whole table (several minutes on 2 cores)
    PYTHONPATH=. python bench/align_eval.py --quick    # a subset
    PYTHONPATH=. python bench/align_eval.py --long 10  # speed and peak memory on a 10-minute input

Sets:
  trios  the TRIOS recordings (brahms, lussier; read from $BESPOKE_TRIOS, default
         /work/shared/data/trios, never copied). The hand-aligned MIDI is the truth; the
         aligner gets it de-aligned by evaluate.random_warp (max_dev 0.2 and 0.3, several seeds).
  synth  music21 corpus scores performed with expressive timing and rendered with
         MuseScore_General.sf3 (bench/align_songs.py); the aligner gets the plain score.
  band   the Slakh excerpts of bench/songs.py (BAND; read from $BESPOKE_SLAKH, default
         ../shared/data/slakh; Slakh2100-redux, CC BY 4.0, drums rendered with the AVL Drumkits
         "Red Zeppelin" kit): the full score.mid, de-aligned exactly as `python -m bench.run` gives
         it, and each pitched part alone (not a drum part, which cannot be aligned alone).
         Not in the default --sets: ask for it with --sets trios,synth,band.
  Each set is aligned with single-part MIDI (each part alone, with its real GM program) and
  with the full score (all parts, real programs; the figures are over every part's notes).
  Songs marked "dev" were used while tuning the aligner; "test" songs were not.

Also: confidence on right pairs against wrong pairs (the MIDI of another piece).
Every figure goes through stages.align.align_score, as `bespoke separate` and `bespoke align` do.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TRIOS = Path(os.environ.get("BESPOKE_TRIOS", "/work/shared/data/trios"))
TRIOS_PARTS = {"brahms": {"violin": 40, "horn": 60, "piano": 0},
               "lussier": {"trumpet": 56, "bassoon": 70, "piano": 0}}

# (corpus path, measures or None, split)
SYNTH = [
    ("bach/bwv10.7.mxl", None, "dev"), ("bach/bwv101.7.mxl", None, "dev"), ("bach/bwv102.7.mxl", None, "dev"),
    ("bach/bwv103.6.mxl", None, "dev"), ("bach/bwv114.7.mxl", None, "dev"), ("bach/bwv115.6.mxl", None, "dev"),
    ("bach/bwv116.6.mxl", None, "dev"), ("bach/bwv117.4.mxl", None, "dev"),
    ("haydn/opus74no1/movement1.mxl", (1, 30), "dev"),
    ("bach/bwv104.6.mxl", None, "test"), ("bach/bwv108.6.mxl", None, "test"), ("bach/bwv11.6.mxl", None, "test"),
    ("bach/bwv110.7.mxl", None, "test"), ("bach/bwv111.6.mxl", None, "test"), ("bach/bwv113.8.mxl", None, "test"),
    ("bach/bwv119.9.mxl", None, "test"), ("bach/bwv120.6.mxl", None, "test"), ("bach/bwv121.6.mxl", None, "test"),
    ("haydn/opus74no1/movement3.mxl", (1, 40), "test"), ("mozart/k458/movement3.mxl", (1, 24), "test"),
    ("beethoven/opus18no1/movement2.mxl", (1, 20), "test"),
]
QUICK_SYNTH = [SYNTH[0], SYNTH[8], SYNTH[9], SYNTH[19]]


@dataclass
class Case:
    set: str
    split: str
    song: str
    mode: str            # "single" or "full"
    mix: np.ndarray      # mono float32 at sr
    sr: int
    score: object        # PrettyMIDI given to the aligner
    truth: List[np.ndarray]   # per part of `score`, the true onsets (s), note for note
    parts: List[str]     # part names evaluated (one per instrument of score)
    seed: int = 0
    shift: int = 0       # semitones the score was transposed by (the aligner should move it back)


# MIDI as users find it (issue 22): each full-score and single-part case again, the score
# transposed (shifts taken in turn, one per case) or at half or double tempo.
SHIFTS = (-6, 3, -1, 5, -4, 2, 6, -3, 1, -5, 4, -2)
DERIVED = ("transposed", "tempo", "excerpt")
EXCERPT = (0.3, 0.75)   # the recording cut to this share of its length (from, to): the MIDI has bars before and after


def derived_cases(cases: List[Case], kinds) -> List[Case]:
    """Cases made from ``cases`` (their "single" and "full" ones): "transposed", the score moved by
    SHIFTS (in turn); "tempo", the full score written at half and at double the tempo."""
    out = []
    k = 0
    for c in cases:
        if "transposed" in kinds:
            shift = SHIFTS[k % len(SHIFTS)]
            k += 1
            pm = copy.deepcopy(c.score)
            for inst in pm.instruments:
                if not inst.is_drum:
                    for n in inst.notes:
                        n.pitch = int(np.clip(n.pitch + shift, 0, 127))
            out.append(dataclasses.replace(c, mode=f"{c.mode}, transposed", score=pm, shift=shift))
        if "tempo" in kinds and c.mode == "full":
            for factor, name in ((2.0, "half tempo"), (0.5, "double tempo")):
                pm = copy.deepcopy(c.score)
                for inst in pm.instruments:
                    for n in inst.notes:
                        n.start, n.end = n.start * factor, n.end * factor
                out.append(dataclasses.replace(c, mode=f"full, {name}", score=pm))
        if "excerpt" in kinds:
            # the recording cut to EXCERPT of its length, the whole score given: only the notes whose
            # true onsets fall inside the excerpt are scored (the others have no truth: NaN)
            n = len(c.mix)
            a, b = int(EXCERPT[0] * n), int(EXCERPT[1] * n)
            t0, t1 = a / c.sr, b / c.sr
            truth = [np.where((t >= t0) & (t < t1 - 0.05), t - t0, np.nan) for t in c.truth]
            out.append(dataclasses.replace(c, mode=f"{c.mode}, excerpt", mix=c.mix[a:b], truth=truth))
    return out


def _onsets(inst) -> np.ndarray:
    return np.array([n.start for n in inst.notes])


def trios_cases(seeds, devs, modes) -> List[Case]:
    import pretty_midi

    from bespoke import audio as au
    from bespoke import midi
    from bespoke.evaluate import random_warp

    out = []
    for song, parts in TRIOS_PARTS.items():
        d = TRIOS / song
        if not (d / "mix.wav").exists():
            print(f"(skipping TRIOS {song}: {d} not found)", file=sys.stderr)
            continue
        a = au.load_audio(d / "mix.wav")
        mix = au.resample(a.mono(), a.sr, 22050)
        true = {}
        for p, prog in parts.items():
            inst = midi.load_midi(d / f"{p}.mid").instruments[0]
            inst.program, inst.name = prog, p
            true[p] = inst
        full_true = pretty_midi.PrettyMIDI(initial_tempo=120)
        full_true.instruments = [true[p] for p in parts]
        for dev in devs:
            for seed in seeds:
                rng = np.random.default_rng(1000 * seed + int(dev * 100))
                wmap = random_warp(a.duration, rng, max_dev=dev)
                warped = midi.warp(full_true, wmap)
                tag = f"{song} dev{dev:.1f}"
                if "single" in modes:
                    for k, p in enumerate(parts):
                        pm = pretty_midi.PrettyMIDI(initial_tempo=120)
                        pm.instruments = [warped.instruments[k]]
                        out.append(Case("trios", "dev" if seed < 2 else "test", tag, "single", mix, 22050, pm,
                                        [_onsets(true[p])], [p], seed))
                if "full" in modes:
                    out.append(Case("trios", "dev" if seed < 2 else "test", tag, "full", mix, 22050, warped,
                                    [_onsets(true[p]) for p in parts], list(parts), seed))
    return out


def synth_cases(songs, modes, seed=0) -> List[Case]:
    import pretty_midi
    from align_songs import make_song

    out = []
    for path, measures, split in songs:
        s = make_song(path, seed, measures=measures)
        names = [i.name for i in s.score.instruments]
        if "single" in modes:
            for k, inst in enumerate(s.score.instruments):
                pm = pretty_midi.PrettyMIDI(initial_tempo=120)
                pm.instruments = [copy.deepcopy(inst)]
                out.append(Case("synth", split, s.name, "single", s.mix, s.sr, pm, [_onsets(s.truth.instruments[k])],
                                [names[k]], seed))
        if "full" in modes:
            out.append(Case("synth", split, s.name, "full", s.mix, s.sr, copy.deepcopy(s.score),
                            [_onsets(i) for i in s.truth.instruments], names, seed))
    return out


def band_cases(modes) -> List[Case]:
    """The bench's band songs: the de-aligned score.mid it gives bespoke, and each pitched part alone
    (every one, not only the bench's targets)."""
    import pretty_midi

    from bespoke import audio as au
    from bespoke import midi
    from bespoke.config import Settings
    from bespoke.errors import InputError

    out = []
    for song, mix in _band_songs():
        score, truth = midi.load_midi(song.score), midi.load_midi(song.truth)
        if "single" in modes:
            span = au.active_span(mix, 22050)
            for k in range(len(song.part_names)):
                if song.drums[k]:
                    continue
                pm = pretty_midi.PrettyMIDI(initial_tempo=120)
                pm.instruments = [copy.deepcopy(score.instruments[k])]
                try:  # a part that plays a few seconds of the minute is refused by the tool (without force)
                    midi.check_duration(pm, span, (SETTINGS or Settings()).align.max_duration_ratio)
                except InputError as e:
                    print(f"(skipping band {song.name} {song.part_names[k]} alone: {e})", file=sys.stderr)
                    continue
                out.append(Case("band", "test", song.name, "single", mix, 22050, pm,
                                [_onsets(truth.instruments[k])], [song.part_names[k]]))
        if "full" in modes:
            out.append(Case("band", "test", song.name, "full", mix, 22050, score,
                            [_onsets(i) for i in truth.instruments], list(song.part_names)))
    return out


def run_aligner(mix, sr, pm, settings=None):
    """stages.align.align_score as the tool runs it: (aligned PrettyMIDI, Alignment, seconds)."""
    settings = settings or SETTINGS
    from bespoke.config import Settings
    from bespoke.spectral import estimate_tuning
    from bespoke.stages.align import align_score

    s = settings or Settings()
    t = time.perf_counter()
    tuning = estimate_tuning(mix, sr)
    aligned, al = align_score(mix, sr, pm, 0, s, tuning)
    el = time.perf_counter() - t
    return aligned, al, el


SETTINGS = None  # the Settings every alignment runs with (main() fills it from the options)


def _no_duration_check():
    from bespoke.config import Settings

    s = SETTINGS if SETTINGS is not None else Settings()
    return dataclasses.replace(s, align=dataclasses.replace(s.align, max_duration_ratio=0.0))


def evaluate_case(c: Case) -> List[dict]:
    from bespoke.errors import AlignmentError, InputError

    try:
        aligned, al, el = run_aligner(c.mix, c.sr, c.score, SETTINGS)
    except (InputError, AlignmentError) as e:   # refused before aligning (a length check): no onset placed
        print(f"  refused: {e}", file=sys.stderr)
        return [dict(set=c.set, split=c.split, song=c.song, mode=c.mode, part=name, seed=c.seed,
                     err=np.full(int(np.sum(~np.isnan(t))), np.inf), signed=np.zeros(0), seconds=0.0,
                     minutes=len(c.mix) / c.sr / 60.0, confidence=0.0, key_ok=False, shift=c.shift)
                for name, t in zip(c.parts, c.truth)]
    rows = []
    n_in = sum(len(i.notes) for i in c.score.instruments)
    n_out = sum(len(i.notes) for i in aligned.instruments)
    assert n_in == n_out, "the aligner dropped notes"
    # the key: every pitched note back where the untransposed score has it
    key_ok = all(a.pitch == b.pitch - c.shift for ia, ib in zip(aligned.instruments, c.score.instruments)
                 if not ib.is_drum for a, b in zip(sorted(ia.notes, key=lambda n: (n.start, n.pitch)),
                                                    sorted(ib.notes, key=lambda n: (n.start, n.pitch - c.shift))))
    key_ok = key_ok and int(al.info.get("transpose", 0)) == -c.shift
    for k, name in enumerate(c.parts):
        est = _onsets(aligned.instruments[k])
        scored = ~np.isnan(c.truth[k])           # an excerpt scores only the notes it holds
        err = np.abs(est - c.truth[k])[scored]
        rows.append(dict(set=c.set, split=c.split, song=c.song, mode=c.mode, part=name, seed=c.seed,
                         err=err, signed=(est - c.truth[k])[scored], seconds=el, minutes=len(c.mix) / c.sr / 60.0,
                         confidence=float(al.confidence), key_ok=bool(key_ok), shift=c.shift))
    return rows


def summary(errs, signed=None) -> dict:
    e = np.concatenate(errs) if isinstance(errs, list) else errs
    if e.size == 0:      # an excerpt may hold none of a part's notes
        return {"n": 0, "median_ms": np.nan, "w50": np.nan, "w100": np.nan, "signed_ms": np.nan}
    out = {"n": int(e.size), "median_ms": float(np.median(e) * 1000), "w50": float(np.mean(e <= 0.05) * 100),
           "w100": float(np.mean(e <= 0.1) * 100)}
    if signed is not None:
        sg = np.concatenate(signed)
        out["signed_ms"] = float(np.median(sg) * 1000) if sg.size else np.nan
    return out


def table(rows: List[dict], title: str) -> str:
    out = [f"### {title}", "",
           "| set | split | mode | song | part | notes | median ms | <=50 ms % | <=100 ms % | signed median ms | s per min audio | confidence |",
           "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    keys = []
    for r in rows:
        k = (r["set"], r["split"], r["mode"], r["song"], r["part"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        rs = [r for r in rows if (r["set"], r["split"], r["mode"], r["song"], r["part"]) == k]
        s = summary([r["err"] for r in rs], [r["signed"] for r in rs])
        spm = np.mean([r["seconds"] / r["minutes"] for r in rs])
        out.append(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {k[4]} | {s['n']} | {s['median_ms']:.0f} | "
                   f"{s['w50']:.1f} | {s['w100']:.1f} | {s['signed_ms']:+.0f} | {spm:.2f} | "
                   f"{np.min([r['confidence'] for r in rs]):.2f} |")
    out += ["", "Pooled (every note of every target); accepted: the alignments whose confidence reaches "
            "min_confidence (the tool goes on without --force), of all:", "",
            "| set | split | mode | notes | median ms | <=50 ms % | <=100 ms % | s per min audio | accepted | key right |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    groups = []
    for r in rows:
        for g in [(r["set"], r["split"], r["mode"]), (r["set"], "all", r["mode"]), ("all", "all", r["mode"]),
                  ("all", r["split"], r["mode"])]:
            if g not in groups:
                groups.append(g)
    groups.sort(key=lambda g: (g[2], g[0] == "all", g[0], g[1] == "all", g[1]))
    for g in groups:
        rs = [r for r in rows if (g[0] in ("all", r["set"])) and (g[1] in ("all", r["split"])) and r["mode"] == g[2]]
        s = summary([r["err"] for r in rs])
        # time per minute: once per alignment (full-score rows share one alignment)
        al = {(r["set"], r["song"], r["mode"], r["seed"], r["part"] if r["mode"].startswith("single") else ""): r
              for r in rs}
        spm = sum(r["seconds"] for r in al.values()) / sum(r["minutes"] for r in al.values())
        ok = sum(r["confidence"] >= _min_confidence() for r in al.values())
        key = sum(r.get("key_ok", True) for r in al.values())
        out.append(f"| {g[0]} | {g[1]} | {g[2]} | {s['n']} | {s['median_ms']:.0f} | {s['w50']:.1f} | {s['w100']:.1f} | "
                   f"{spm:.2f} | {ok} / {len(al)} | {key} / {len(al)} |")
    return "\n".join(out)


def _min_confidence() -> float:
    from bespoke.config import Settings

    return (SETTINGS or Settings()).align.min_confidence


def _band_songs() -> list:
    """The bench's band songs that are there, as (bench.songs.Song, its mono mix at 22050 Hz)."""
    from bench import songs as songmod
    from bespoke import audio as au

    out = []
    for spec in songmod.BAND:
        song = songmod.load_song(spec.name, log=lambda m: print(f"({m})", file=sys.stderr))
        if song is not None:
            a = au.load_audio(song.mix)
            out.append((song, au.resample(a.mono(), a.sr, 22050)))
    return out


def confidence_pairs(quick: bool, band: bool = False) -> str:
    """Confidence of right pairs against wrong pairs (audio of one piece, MIDI of another); with
    ``band``, also the band songs against each other's scores, the full score and each pitched
    part alone (right pairs too)."""
    from align_songs import make_song

    from bespoke import audio as au
    from bespoke import midi

    songs = []
    for path, measures, split in (QUICK_SYNTH if quick else SYNTH):
        s = make_song(path, 0, measures=measures)
        songs.append((s.name, s.mix, s.sr, s.score))
    for song, parts in TRIOS_PARTS.items():
        d = TRIOS / song
        if (d / "mix.wav").exists():
            a = au.load_audio(d / "mix.wav")
            import pretty_midi

            pm = pretty_midi.PrettyMIDI(initial_tempo=120)
            for p, prog in parts.items():
                inst = midi.load_midi(d / f"{p}.mid").instruments[0]
                inst.program = prog
                pm.instruments.append(inst)
            songs.append((song, au.resample(a.mono(), a.sr, 22050), 22050, pm))
    band_songs = [(s.name, mix, 22050, midi.load_midi(s.score)) for s, mix in _band_songs()] if band else []
    groups = [songs] + ([band_songs] if band_songs else [])
    right, wrong = [], []
    lines = ["### Confidence: right MIDI against wrong MIDI", "",
             "| audio | MIDI | parts | confidence |", "|---|---|---|---:|"]
    for group in groups:
        for i, (name, mix, sr, pm) in enumerate(group):
            j = (i + 1) % len(group)
            for which, (mname, mpm) in (("right", (name, pm)), ("wrong", (group[j][0], group[j][3]))):
                for sub, x in _pair_midis(mpm, len(mix) / sr, every_part=group is not songs):
                    _, al, _ = run_aligner(mix, sr, x, _no_duration_check())
                    (right if which == "right" else wrong).append(al.confidence)
                    lines.append(f"| {name} | {mname} ({which}) | {sub} | {al.confidence:.3f} |")
    lines += ["", f"right pairs: min {min(right):.3f}, median {np.median(right):.3f}; "
              f"wrong pairs: max {max(wrong):.3f}, median {np.median(wrong):.3f}"]
    return "\n".join(lines)


def _pair_midis(pm, dur: float, every_part: bool) -> list:
    """[(label, MIDI)] of a confidence pair: the full score and its first part alone (``every_part``:
    each pitched part alone), cut to the recording's length ``dur`` (the duration check is off:
    this measures the confidence figure alone, on pieces of similar length)."""
    out = []
    pitched = [k for k, inst in enumerate(pm.instruments) if not inst.is_drum and inst.notes]
    for sub, k in [("full", None)] + [("single" if not every_part else f"single {pm.instruments[k].name.strip()}", k)
                                     for k in (pitched if every_part else pitched[:1])]:
        x = copy.deepcopy(pm)
        if k is not None:
            x.instruments = [x.instruments[k]]
        for inst in x.instruments:
            inst.notes = [n for n in inst.notes if n.start < dur]
        if any(inst.notes for inst in x.instruments if not inst.is_drum):
            out.append((sub, x))
    return out


def long_input(minutes: float) -> str:
    """Speed and peak memory on a long input: songs concatenated to ``minutes``, full score.
    Runs in a child process so its peak memory is its own."""
    import subprocess

    code = f"""
import resource, sys, time, copy
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
import numpy as np, pretty_midi
from align_songs import make_song
from align_eval import SYNTH, run_aligner
songs = [make_song(p, 0, measures=m) for p, m, _ in SYNTH]
mixes, score, t0, ts = [], pretty_midi.PrettyMIDI(initial_tempo=120), 0.0, 0.0
score.instruments = [pretty_midi.Instrument(program=p) for p in (40, 71, 66, 70)]
truth = [[], [], [], []]
k = 0
while t0 < {minutes} * 60:
    s = songs[k % len(songs)]; k += 1
    for i, (inst, tinst) in enumerate(zip(s.score.instruments[:4], s.truth.instruments[:4])):
        for n, tn in zip(inst.notes, tinst.notes):
            score.instruments[i].notes.append(pretty_midi.Note(n.velocity, n.pitch, n.start + ts, n.end + ts))
            truth[i].append(tn.start + t0)
    mixes.append(s.mix); t0 += s.duration; ts += s.score.get_end_time() + 2.0
mix = np.concatenate(mixes)
del mixes, songs
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
aligned, al, el = run_aligner(mix, 22050, score)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
err = np.concatenate([np.abs(np.array([n.start for n in a.notes]) - np.array(t)) for a, t in zip(aligned.instruments, truth)])
minutes = len(mix) / 22050 / 60
print(f"{{minutes:.1f}} min of audio (full score, {{len(err)}} notes): {{el:.1f}} s ({{el / minutes:.2f}} s per minute), "
      f"peak RSS {{peak / 1024:.0f}} MiB (before aligning {{base / 1024:.0f}} MiB); "
      f"{{np.mean(err <= 0.05) * 100:.1f}} % of onsets within 50 ms, {{np.mean(err <= 0.1) * 100:.1f}} % within 100 ms; "
      f"confidence {{al.confidence:.2f}}; levels {{[(lv['factor'], lv.get('cells', lv.get('largest_block'))) for lv in al.info['levels']]}}")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return (r.stdout + r.stderr).strip()


def _align_overrides(items) -> dict:
    """The aligner's knobs (fields of bespoke.config.align.AlignSettings) every alignment runs with
    changed: NAME=VALUE, VALUE a Python literal or a bare string."""
    import ast

    over = {}
    for it in items:
        k, _, v = it.partition("=")
        try:
            over[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            over[k] = v
    return over


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a subset: fewer songs and seeds")
    ap.add_argument("--sets", default="trios,synth", help="comma-separated: trios, synth, band")
    ap.add_argument("--modes", default="single,full",
                    help="single, full, and MIDI as found: transposed (each single and full case transposed), "
                         "tempo (each full case at half and double tempo), excerpt (each case's recording cut "
                         "to its middle, the whole MIDI given); e.g. 'transposed,tempo,excerpt' alone")
    ap.add_argument("--seeds", type=int, default=3, help="TRIOS de-alignment seeds (0-1 dev, 2+ test)")
    ap.add_argument("--split", default="all", help="dev, test or all")
    ap.add_argument("--no-confidence", action="store_true")
    ap.add_argument("--long", type=float, default=0.0, help="also time a LONG-minute input")
    ap.add_argument("--json", default=None, help="write the per-note errors summary here")
    ap.add_argument("--title", default="alignment")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override an aligner knob, a field of config.align.AlignSettings (repeatable; for experiments)")
    ap.add_argument("--no-attack-comp", action="store_true",
                    help="place note-ons at the heard onsets (settings.align.compensate_attack off)")
    args = ap.parse_args(argv)
    global SETTINGS
    from bespoke.config import Settings

    over = _align_overrides(args.set)
    over.setdefault("compensate_attack", not args.no_attack_comp)
    base = Settings()
    SETTINGS = dataclasses.replace(base, align=dataclasses.replace(base.align, **over))
    asked = args.modes.split(",")
    kinds = [m for m in asked if m in DERIVED]
    modes = [m for m in asked if m not in DERIVED] or ["single", "full"]
    cases: List[Case] = []
    sets = args.sets.split(",")
    if "trios" in sets:
        cases += trios_cases(range(1 if args.quick else args.seeds), (0.2, 0.3), modes)
    if "synth" in sets:
        cases += synth_cases(QUICK_SYNTH if args.quick else SYNTH, modes)
    if "band" in sets:
        cases += band_cases(modes)
    if args.split != "all":
        cases = [c for c in cases if c.split == args.split]
    if kinds:
        derived = derived_cases(cases, kinds)
        cases = [c for c in cases if c.mode in asked] + derived
    rows = []
    for c in cases:
        rs = evaluate_case(c)
        rows += rs
        s = summary([r["err"] for r in rs])
        print(f"{c.set:5s} {c.split:4s} {c.mode:6s} {c.song:24s} {','.join(c.parts)[:30]:30s} seed {c.seed}  "
              f"median {s['median_ms']:6.0f} ms  <=50 {s['w50']:5.1f}%  <=100 {s['w100']:5.1f}%  "
              f"{rs[0]['seconds']:.1f} s  conf {rs[0]['confidence']:.2f}", file=sys.stderr, flush=True)
    print(table(rows, args.title))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()} for r in rows], f)
    if not args.no_confidence:
        print()
        print(confidence_pairs(args.quick, band="band" in sets))
    if args.long:
        print()
        print(long_input(args.long))


if __name__ == "__main__":
    main()
