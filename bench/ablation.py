"""The ablation: what each ingredient of bespoke's recipe gives, on the same songs and steps.

    python -m bench.ablation                       # real songs, the default budget's seeded step count
    python -m bench.ablation --songs brahms,chorale-mixed --steps 180 --out bench/ABLATION.md

Each variant is one ``python -m bench.run --methods bespoke --extra-settings ...`` run (every
bespoke run in its own process, seed 0, a fixed step count so that the machine's load cannot
change the result). The NMF baseline is in the table as the reference the network must beat.
Writes a markdown table to --out and, with --into, puts it in that report as its "Ablation"
section (replacing an earlier one).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

REPO = Path(__file__).resolve().parent.parent

# name, what it is, settings overrides. Each row adds one ingredient to the one above it,
# except the last ones, which take one away from the default.
# the NMF's settings before the finer grid and the tie (the rows that show what came before pin them)
_EARLIER = {"n_iter": 30, "tol_on": 0.15, "tie": False}
VARIANTS = [
    ("NMF stage alone, narrow bands", "the first pass alone as it was: the classic NMF (24 bins per octave, "
     "partials +-50 cents) with onset templates for struck and plucked parts only (the network is not used; "
     "1 training step)",
     {"separate": {"ensemble": 0.0}, "nmf": {"bins_per_octave": 24, "partial_cents": 40.0, "timbre_init": False, "shapes": [1.0],
                               **_EARLIER}}),
    ("NMF stage alone, wide bands", "36 bins per octave, each partial's template free within +-80 cents "
     "(vibrato, intonation, stretched partials)",
     {"separate": {"ensemble": 0.0}, "nmf": {"timbre_init": False, "shapes": [1.0], "bins_per_octave": 36, **_EARLIER}}),
    ("+ templates from the soundfont", "each template starts from the partial amplitudes of one rendered "
     "note of the part's instrument instead of 1/h",
     {"separate": {"ensemble": 0.0}, "nmf": {"shapes": [1.0], "bins_per_octave": 36, **_EARLIER}}),
    ("+ three shapes per sustained pitch", "a bowed or blown part's pitch gets three templates (those "
     "amplitudes raised to 1, 0.7 and 1.4), so its spectrum may change as the note is played",
     {"separate": {"ensemble": 0.0}, "nmf": {"bins_per_octave": 36, **_EARLIER}}),
    ("+ finer grid, tied instruments", "48 bins per octave, 45 iterations, activations from 0.08 s "
     "before each onset, and parts of one instrument sharing their templates",
     {"separate": {"ensemble": 0.0}, "nmf": {"n_iter": 45}}),
    ("+ 70 iterations (default)", "the first pass alone as bespoke runs it: 70 iterations instead of 45",
     {"separate": {"ensemble": 0.0}}),
    ("net: renderings only", "the network alone (no NMF in the mask), trained on the target's renderings "
     "over the NMF's estimate of the rest and the other parts rendered",
     {"separate": {"ensemble": 1.0}, "train": {"pseudo_weight": 0.0}}),
    ("+ NMF target as a source", "also trained on the NMF's estimate of the real target",
     {"separate": {"ensemble": 1.0}}),
    ("+ mask ensemble, geometric mean", "the stem's mask is the weighted geometric mean of the network's "
     "and the NMF's, net ** 0.4 * nmf ** 0.6 (the default before the log-odds vote)",
     {"separate": {"ensemble": 0.4, "ensemble_pool": "product"}}),
    ("log-odds vote instead (default)", "the two masks vote in log-odds, sigmoid(1.5 (0.15 logit(net) + "
     "0.85 logit(nmf))): the product of experts on the target's side and the rest's, so a confident mask "
     "outvotes an unsure one",
     {}),
    ("+ self-training", "after half the steps, the pseudo-sources are replaced by the ensemble's estimates",
     {"train": {"self_train": 0.5}}),
    ("default, one timbre", "the default without timbre variety: one program, one soundfont, plain performance",
     {"synth": {"n_programs": 1, "extra_soundfonts": 0, "vary": False}}),
]
BEGIN, END = "<!-- ablation:begin -->", "<!-- ablation:end -->"


def log(msg: str) -> None:
    print(f"[ablation {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_variant(k: int, overrides: dict, songs: str, steps: int, work: Path, reuse: bool = False) -> List[dict]:
    out = work / f"variant{k}.md"
    done = out.with_name(out.stem.lower() + ".json")
    if reuse and done.exists():
        log(f"variant {k}: reusing {done}")
        return json.loads(done.read_text())["results"]
    methods = "mixture,nmf,bespoke" if k == 0 else "bespoke"
    if overrides.get("separate", {}).get("ensemble") == 0.0:
        steps = 1  # the network's mask is not used
    cmd = [sys.executable, "-m", "bench.run", "--songs", songs, "--methods", methods, "--steps", str(steps),
           "--true-align", "none", "--extra-settings", json.dumps(overrides), "--label", f"ablation{k}",
           "--out", str(out)]
    log(" ".join(cmd[1:]))
    subprocess.run(cmd, cwd=REPO, check=True)
    return json.loads(out.with_name(out.stem.lower() + ".json").read_text())["results"]


def table(rows: Dict[str, List[dict]], steps: int, songs: str) -> str:
    names = list(rows)
    keys = sorted({(r["song"], r["part"]) for r in next(iter(rows.values()))}, key=lambda x: x)
    cats = {(r["song"], r["part"]): r["category"] for rs in rows.values() for r in rs}

    def val(name, key):
        for r in rows[name]:
            if (r["song"], r["part"]) == key:
                return r["si_sdr"]
        return float("nan")

    lines = ["## Ablation", "",
             f"SI-SDR (dB) per target, with the tool's own alignment of the de-aligned MIDI, {steps} training steps "
             f"(seed 0) for every variant, on `{songs}`. Made by `python -m bench.ablation`. Each row adds one "
             "ingredient to the row above, except that the network's rows start again from the network alone, "
             "and rows after the default change one thing in it. nmf is the classic baseline (onset templates for "
             "every part, 24 bins per octave, partials +-50 cents).", "",
             "| variant | " + " | ".join(f"{s}/{p}" for s, p in keys) + " | mean | Δ vs row above |",
             "|---|" + "---:|" * (len(keys) + 2)]
    prev = None
    for name in names:
        v = [val(name, k) for k in keys]
        m = float(np.nanmean(v))
        d = "" if prev is None or name in ("mixture", "nmf") else f"{m - prev:+.2f}"
        lines.append(f"| {name} | " + " | ".join(f"{x:.2f}" for x in v) + f" | {m:.2f} | {d} |")
        if name not in ("mixture", "nmf"):
            prev = m
    lines.append("")
    for name, what, ov in VARIANTS:
        if name in rows:
            lines.append(f"- **{name}**: {what}. Settings: `{json.dumps(ov)}`.")
    cs = sorted(set(cats.values()))
    lines += ["", f"Categories: {', '.join(cs)}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.ablation", description=__doc__.split("\n\n")[0])
    ap.add_argument("--songs", default="brahms,lussier")
    ap.add_argument("--steps", type=int, default=None, help="training steps of every variant (default: the "
                    "default budget's seeded count, as make bench runs it)")
    ap.add_argument("--variants", default="0,1,2,3,4,5,6,7,8,9", help="comma-separated indices into VARIANTS "
                    "(default 0-9; 10 and 11, self-training and one timbre, on demand)")
    ap.add_argument("--reuse", action="store_true", help="reuse the variants already run in bench/work/ablation")
    ap.add_argument("--default-from", default=None, help="take the default variant's rows from this bench JSON "
                    "(e.g. bench/results.json: the same seed and steps) instead of running it again")
    ap.add_argument("--out", default="bench/ABLATION.md")
    ap.add_argument("--into", default=None, help="also put the table into this report (e.g. bench/RESULTS.md)")
    a = ap.parse_args(argv)
    if a.steps is None:
        from bespoke.config import TrainSettings

        a.steps = TrainSettings().total_steps(seeded=True)
    work = REPO / "bench" / "work" / "ablation"
    work.mkdir(parents=True, exist_ok=True)
    idx = [int(i) for i in a.variants.split(",")]
    rows: Dict[str, List[dict]] = {}
    for k in idx:
        name, _, ov = VARIANTS[k]
        if not ov and a.default_from:
            wanted = {x.split(":")[0] for x in a.songs.split(",")}
            doc = json.loads(Path(a.default_from).read_text())
            if doc["meta"].get("steps") is not None or doc["meta"].get("extra_settings"):
                raise SystemExit(f"{a.default_from}: not a default-settings run")
            res = [r for r in doc["results"] if r["song"] in wanted and r["method"] == "bespoke"]
            log(f"variant {k}: {len(res)} rows from {a.default_from}")
        else:
            res = run_variant(k, ov, a.songs, a.steps, work, a.reuse)
        for method in ("mixture", "nmf"):
            got = [r for r in res if r["method"] == method]
            if got and method not in rows:
                rows[method] = got
        rows[name] = [r for r in res if r["method"] == "bespoke"]
    order = [n for n in ("mixture", "nmf") if n in rows] + [n for n in rows if n not in ("mixture", "nmf")]
    text = table({n: rows[n] for n in order}, a.steps, a.songs)
    out = REPO / a.out if not Path(a.out).is_absolute() else Path(a.out)
    out.write_text("# bespoke benchmark: ablation\n\n" + text)
    (out.with_suffix(".json")).write_text(json.dumps(rows, indent=1, default=float))
    if a.into:
        insert(Path(a.into) if Path(a.into).is_absolute() else REPO / a.into, text)
    log(f"wrote {out}")
    return 0


def insert(report: Path, text: str) -> None:
    """Put ``text`` into ``report`` between the ablation markers (replacing what was there), or
    at the end."""
    s = report.read_text() if report.exists() else ""
    block = f"{BEGIN}\n{text}\n{END}\n"
    if BEGIN in s and END in s:
        a, rest = s.split(BEGIN, 1)
        _, b = rest.split(END, 1)
        s = a + block + b.lstrip("\n")
    else:
        s = s.rstrip("\n") + "\n\n" + block
    report.write_text(s)


if __name__ == "__main__":
    sys.exit(main())
