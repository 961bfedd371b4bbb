"""Measure, per GM program, how late bespoke's aligner places a note's start behind its note-on
when the instrument is rendered by the default soundfont (its attack: a bowed string takes tens
of milliseconds to speak, a piano none). Prints the table kept in bespoke/align/attack.py
(ATTACK_LAG_MS); rerun it when the aligner's features change.

    PYTHONPATH=. python bench/attack_lag.py [--soundfont SF2]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def measure(program: int, renderer, seconds: float = 24.0) -> float:
    import pretty_midi

    from bespoke import align as A
    from bespoke import midi
    from bespoke.config.align import AlignSettings

    rng = np.random.default_rng(program)
    low = program in range(32, 40) or program in (42, 43, 57, 58, 67, 70, 87)
    lo, hi = (40, 60) if low else (55, 79)
    inst = pretty_midi.Instrument(program=program)
    t = 0.8
    while t < seconds - 1.5:
        d = float(rng.choice([0.3, 0.5, 0.8]))
        inst.notes.append(pretty_midi.Note(90, int(rng.integers(lo, hi)), t, t + 0.95 * d))
        t += d
    y = renderer.render([inst], duration=seconds)
    if np.max(np.abs(y)) < 1e-4:
        return float("nan")
    notes = midi.notes_array(inst)
    score = notes.copy()
    score[:, :2] = score[:, :2] * 1.1 + 0.3
    al = A.align_notes(y, renderer.sr, score, 0.0, AlignSettings())
    err = al.time_map(score[:, 0]) - notes[:, 0]
    return float(np.median(err)) if np.mean(np.abs(err - np.median(err)) < 0.05) > 0.7 else float("nan")


def main(argv=None):
    from bespoke.synth import Renderer

    ap = argparse.ArgumentParser()
    ap.add_argument("--soundfont", default=None)
    args = ap.parse_args(argv)
    lags = []
    with Renderer(sr=22050, soundfont=args.soundfont) as r:
        print(f"# soundfont: {r.soundfont}", file=sys.stderr)
        for prog in range(128):
            lag = measure(prog, r)
            lags.append(lag)
            print(f"{prog:3d} {lag * 1000:+6.1f} ms", file=sys.stderr, flush=True)
    ms = np.array(lags) * 1000
    # unmeasurable programs (no clear line): their family's median, else 0
    for i in range(128):
        if not np.isfinite(ms[i]):
            fam = ms[(i // 8) * 8:(i // 8) * 8 + 8]
            fam = fam[np.isfinite(fam)]
            ms[i] = np.median(fam) if len(fam) else 0.0
    ms = np.clip(np.round(ms / 5) * 5, -30, 80).astype(int)
    print("ATTACK_LAG_MS = (")
    for k in range(0, 128, 16):
        print("    " + ", ".join(f"{v:d}" for v in ms[k:k + 16]) + ",")
    print(")")


if __name__ == "__main__":
    main()
