"""RESULTS.md from the benchmark's JSON: ``write_report(doc, path)``; also
``python -m bench.report results.json RESULTS.md`` to redraw a report from its JSON."""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import List

BASE_ORDER = ["mixture", "oracle", "score-mask", "score-mask@true", "nmf", "nmf@true", "bespoke", "bespoke@true",
              "bespoke-one-part"]
# the chamber categories, computed as before the band songs came (band rows never count in them)
CATEGORIES = [("real", "real"), ("synthetic", "synthetic"), ("same-instrument", "same instrument"), ("all", "all")]
# the band songs (Slakh), their own columns, shown when a run has band rows
BAND_CATEGORIES = [("band", "band"), ("band-same-instrument", "band, same instrument")]
GM_NAMES = {}


def gm(program: int, drum: bool = False) -> str:
    if drum:
        return "drums"
    try:
        import pretty_midi

        return pretty_midi.program_to_instrument_name(int(program))
    except Exception:
        return f"program {program}"


def f(x, nd: int = 2, sign: bool = False, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if pct:
        return f"{100.0 * x:.0f} %"
    return f"{x:+.{nd}f}" if sign else f"{x:.{nd}f}"


def method_order(names) -> List[str]:
    def key(m):
        base = m.split(" ")[0]
        b = m.split("b=")[-1].rstrip("s") if "b=" in m else "0"
        try:
            bv = float(b)
        except ValueError:
            bv = 0.0
        return (BASE_ORDER.index(base) if base in BASE_ORDER else 99, bv, m)
    return sorted(set(names), key=key)


def has_band(rows) -> bool:
    return any(r.get("category") == "band" for r in rows)


def categories(rows) -> List[tuple]:
    """The report's columns (key, label): the chamber ones, and with band rows "all" relabelled
    "all chamber" and the band columns after it."""
    if not has_band(rows):
        return list(CATEGORIES)
    return [c if c[0] != "all" else ("all", "all chamber") for c in CATEGORIES] + BAND_CATEGORIES


def in_category(r: dict, cat: str) -> bool:
    """Chamber categories (real, synthetic, same-instrument, all) never hold band rows; band ones
    hold nothing else."""
    band = r.get("category") == "band"
    if cat == "all":
        return not band
    if cat == "same-instrument":
        return bool(r.get("same_instrument")) and not band
    if cat == "band-same-instrument":
        return bool(r.get("same_instrument")) and band
    return r.get("category") == cat


def mean(xs):
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return sum(xs) / len(xs) if xs else None


def _seeded_rate() -> float:
    """Training steps per second of budget in a seeded run (bespoke's TrainSettings)."""
    from bespoke.config import TrainSettings

    return TrainSettings().seeded_rate


def write_report(doc: dict, path, json_name: str = "results.json") -> None:
    meta, songs, results = doc["meta"], doc["songs"], doc["results"]
    checks = doc.get("cli_checks", [])
    ok = [r for r in results if "error" not in r]
    methods = method_order(r["method"] for r in results)
    cats = categories(results)
    band = has_band(results)
    L: List[str] = []
    w = L.append
    title = "bespoke benchmark" + ("" if meta.get("label") in (None, "full") else f": {meta['label']}")
    w(f"# {title}\n")
    g = meta.get("git", {})
    m = meta.get("machine", {})
    cmd = "python -m bench.run " + " ".join(meta.get("argv", []))
    w(f"Made by `{cmd.strip()}` on {meta['date']} at commit `{g.get('commit', '?')}`"
      + (" (with uncommitted changes)" if g.get("dirty") else "") + f"; the numbers are also in [{json_name}]({json_name}).\n")
    if meta.get("merged"):
        w(f"- Merged rows: {meta['merged']}.")
    w(f"- Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB; "
      f"Python {m.get('python', '?')}, torch {m.get('torch', '?')} on the CPU with {m.get('torch_threads', '?')} threads. "
      f"Load average at the start {meta.get('load_start')}, at the end {meta.get('load_end')}: "
      "**the machine was shared with other work, so times (and the number of training steps a time budget "
      "buys) are rough**.")
    budgets = meta.get("budgets") or [None]
    btxt = ", ".join("default (60 s)" if b is None else f"{b:g} s" for b in budgets)
    w("- bespoke: " + (f"default settings except `{json.dumps(meta['extra_settings'])}`" if meta.get("extra_settings")
                       else "default settings") + f", training budget {btxt}"
      + (f", exactly {meta['steps']} steps" if meta.get("steps") else "")
      + f"; device cpu, seed 0; its soundfont `{os.path.basename(meta.get('tool_soundfont', '?'))}`. "
      f"Synthetic songs rendered with `{os.path.basename(meta.get('synth_soundfont', '?'))}`.")
    st = [r["steps"] for r in results if r.get("steps") is not None and "error" not in r]
    if st:
        w(f"- Training steps a bespoke run got: {min(st)}-{max(st)} (mean {sum(st) / len(st):.0f}); "
          "with a time budget this depends on the machine and its load: compare methods within one run.")
    w(f"- Total time of this run: {meta.get('total_seconds', 0) / 60:.1f} min"
      + (f"; skipped: {', '.join(meta['skipped'])}" if meta.get("skipped") else "") + ".")
    for note in meta.get("notes", []):  # corrections added after the run
        w(f"- Note: {note}")
    fails = [r for r in results if "error" in r]
    if fails:
        w(f"- **{len(fails)} run(s) failed**: " + "; ".join(f"{r['song']}/{r['part']}/{r['method']}: {r['error']}"
                                                         for r in fails))
    w("")

    # ---------------------------------------------------------------- headline
    w("## Means per category\n")
    w("Mean SI-SDR in dB, (mean improvement over the mixture), [number of targets]. "
      "`@true`: given the true alignment instead of the tool's own. "
      "bespoke@true runs on a subset of targets (see the paired table below)."
      + (" **all chamber** = real + synthetic, and same instrument counts chamber targets only, "
         "exactly as before the band songs came, so these columns compare with earlier runs; the band songs "
         "(Slakh, pop / rock) have their own columns. A method that failed on a target is left out of its "
         "means (the [n] shows it)." if band else "") + "\n")
    for metric, delta, label in (("si_sdr", "si_sdr_improvement", "SI-SDR"), ("sdr", "sdr_improvement", "SDR")):
        w(f"**{label}**\n")
        w("| method | " + " | ".join(c[1] for c in cats) + " |")
        w("|---|" + "---:|" * len(cats))
        for meth in methods:
            cells = []
            for cat, _ in cats:
                rs = [r for r in ok if r["method"] == meth and in_category(r, cat)]
                if not rs:
                    cells.append("—")
                    continue
                cells.append(f"{f(mean(r[metric] for r in rs))} ({f(mean(r[delta] for r in rs), sign=True)}) [{len(rs)}]")
            w(f"| {meth} | " + " | ".join(cells) + " |")
        w("")

    # paired: the targets where bespoke@true ran
    true_rows = [r for r in ok if r["method"].startswith("bespoke@true")]
    if true_rows:
        w("**Alignment error versus separation error**: SI-SDR (dB) on the targets where bespoke also ran "
          "with the true alignment.\n")
        cols = [mm for mm in methods if mm != "mixture"]
        w("| song | target | " + " | ".join(cols) + " |")
        w("|---|---|" + "---:|" * len(cols))
        for tr in true_rows:
            cells = []
            for mm in cols:
                r = next((x for x in ok if x["song"] == tr["song"] and x["target"] == tr["target"]
                          and x["method"] == mm), None)
                cells.append(f(r["si_sdr"]) if r else "—")
            w(f"| {tr['song']} | {tr['part']} | " + " | ".join(cells) + " |")
        w("")

    # ---------------------------------------------------------------- alignment
    w("## Alignment\n")
    w("Onset error of bespoke's alignment (DTW) against the true alignment, over every note of every part: "
      "median (ms), share of notes within 50 and 100 ms. The baselines without `@true` use this same aligned MIDI.\n")
    w("| song | category | duration | median ms | ≤ 50 ms | ≤ 100 ms | notes | confidence | align time |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for s in songs:
        al = s.get("alignment_all")
        conf = mean(r.get("confidence") for r in ok if r["song"] == s["name"] and r["method"] == "bespoke")
        if al:
            w(f"| {s['name']} | {s['category']} | {s['duration']:.0f} s | {f(al['median_ms'], 0)} | "
              f"{f(al['within_50ms'], pct=True)} | {f(al['within_100ms'], pct=True)} | {al['n']} | {f(conf)} | "
              f"{f(s.get('align_seconds'), 1)} s |")
        else:
            w(f"| {s['name']} | {s['category']} | {s['duration']:.0f} s | — | — | — | — | — | — |")
    w("")

    # ---------------------------------------------------------------- per song
    w("## Per song and target\n")
    w("SI-SDR and SDR in dB; Δ: improvement over the mixture; alignment: onset error of the target part's "
      "notes (median ms / share within 50 / 100 ms); time: wall seconds of the method (bespoke: its whole "
      "process; nmf: one factorisation serves every target of a song, its time is split among them); "
      "RTF: time / song duration; peak: the bespoke process's peak resident memory.\n")
    for s in songs:
        w(f"### {s['name']} ({s['category']}, {s['duration']:.0f} s)\n")
        drums = s.get("drums") or [False] * len(s["parts"])
        names = [n if s["category"] == "band" else f"{n} ({gm(p, d)})"  # band parts carry the GM name
                 for n, p, d in zip(s["parts"], s["programs"], drums)]
        w(f"{s['source']}. Parts: " + ", ".join(names) + ".\n")
        w("| target | method | SI-SDR | SDR | ΔSI-SDR | ΔSDR | alignment | time s | RTF | peak MB | steps |")
        w("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
        for ti in s["targets"]:
            part = s["parts"][ti]
            inst = ["drums" if d else p for p, d in zip(s["programs"], drums)]
            tag = " ⚭" if any(p == inst[ti] for j, p in enumerate(inst) if j != ti) else ""
            for meth in methods:
                r = next((x for x in results if x["song"] == s["name"] and x["target"] == ti and x["method"] == meth),
                         None)
                if r is None:
                    continue
                if "error" in r:
                    w(f"| {part}{tag} | {meth} | failed: {r['error']} | | | | | | | | |")
                    continue
                al = r.get("alignment")
                if al is None and meth in ("score-mask", "nmf"):
                    al = s.get("alignment", {}).get(part)
                alt = f"{f(al['median_ms'], 0)} / {f(al['within_50ms'], pct=True)} / {f(al['within_100ms'], pct=True)}" \
                    if al else ""
                w(f"| {part}{tag} | {meth} | {f(r['si_sdr'])} | {f(r['sdr'])} | {f(r['si_sdr_improvement'], sign=True)} | "
                  f"{f(r['sdr_improvement'], sign=True)} | {alt} | {f(r.get('seconds'), 1)} | {f(r.get('rtf'))} | "
                  f"{f(r.get('peak_mb'), 0)} | {r.get('steps') if r.get('steps') is not None else ''} |")
        w("")
        runs = [r for r in ok if r["song"] == s["name"] and r["method"].startswith("bespoke")]
        if runs:
            stages = ["startup", "load", "align", "nmf", "synth", "train", "separate"]
            w("bespoke's stages (s): " + "; ".join(
                f"{r['part']} {r['method']}: " + ", ".join(f"{k} {r.get('timings', {}).get(k, 0):.1f}" for k in stages)
                for r in runs) + ".\n")
    w("⚭: another part of the song plays the same instrument (the same-instrument category"
      + ("; band, same instrument for the band songs" if band else "") + ").\n")

    # ---------------------------------------------------------------- checks
    w("## Checks\n")
    diffs = [abs(r["si_sdr"] - r["si_sdr_independent"]) for r in ok if r.get("si_sdr_independent") is not None]
    impl = next((r.get("independent_impl") for r in ok if r.get("independent_impl")), "?")
    if diffs:
        w(f"- SI-SDR of `bespoke.evaluate` against an independent implementation ({impl}, zero_mean=False): "
          f"largest difference {max(diffs):.2e} dB over {len(diffs)} estimates.")
    good = [c for c in checks if "diff" in c]
    bad = [c for c in checks if "error" in c]
    if good or bad:
        worst = max((c["diff"] for c in good), default=float("nan"))
        verdict = "agrees to 0.05 dB" if good and worst <= 0.05 and not bad else "**does not agree to 0.05 dB**"
        w(f"- `bespoke eval STEM REF --mix MIX --json` (the command as users run it, on the stems as written) "
          f"against {impl}: largest difference {worst:.4f} dB over {len(good)} stems: it {verdict}."
          + (f" {len(bad)} check(s) failed to run: " + "; ".join(c["error"] for c in bad) if bad else ""))
    to = meta.get("timbre_overlap") or {}
    if to and "error" not in to:
        same = [f"{gm(int(p))} ({v:.2f})" for p, v in sorted(to.items(), key=lambda kv: int(kv[0])) if v >= 0.95]
        other = [f"{gm(int(p))} ({v:.2f})" for p, v in sorted(to.items(), key=lambda kv: int(kv[0])) if v < 0.95]
        w("- Timbre overlap between the synthetic songs' soundfont and the tool's "
          "(peak normalised cross-correlation of one note; 1 = the same sample): "
          + (f"the same samples for {', '.join(same)}; " if same else "")
          + (f"different for {', '.join(other)}." if other else "")
          + " MuseScore_General reuses Fluid R3 samples for some instruments, so targets on those are "
            "optimistic when the tool uses FluidR3_GM.")
    w("")
    # companion reports made by their own commands, inlined when this is the main report
    if Path(path).name == "RESULTS.md":
        for name, cmd in (("ABLATION.md", "make bench-ablation"), ("BUDGET.md", "make bench-budget"),
                          ("SCALE.md", "make bench-scale")):
            companion = Path(path).with_name(name)
            if companion.exists():
                body = companion.read_text().split("\n", 1)[1].strip()  # without its title
                if name == "BUDGET.md":  # a bench.run report: its means are the curve
                    body = body.split("\n## Alignment", 1)[0].split("\n**SDR**", 1)[0]
                    body = body.replace("## Means per category", "## Budget curve: quality against --budget", 1)
                w(f"<!-- from {name} ({cmd}); it is not rerun by make bench -->")
                w(body)
                w(f"\n(From [{name}]({name}), made by `{cmd}`, not rerun by `make bench`.)\n")
    w("## Definitions\n")
    w("- SI-SDR: scale-invariant SDR (Le Roux et al. 2019), 10 log10(|a s|² / |a s − ŝ|²) with a the "
      "least-squares scale, no mean removed; SDR: 10 log10(|s|² / |s − ŝ|²) (no scaling, no filter; not "
      "BSS Eval's SDR). Both on the mono (channel-averaged) signals at the song's rate, whole song.")
    w("- mixture: the mixture itself as the estimate (lower bound). oracle: the ideal ratio mask "
      "|S|²/(|S|²+|N|²) from the true sources on the STFT bespoke writes its output with (upper bound for "
      "masking). score-mask: the target's harmonic template from the aligned MIDI as a mask, split with the "
      "other parts where they overlap (bench/baselines.py). nmf: score-informed NMF after Ewert & Mueller "
      "(2012): harmonic and onset templates per part and pitch, activations held at zero outside the aligned "
      "notes (±0.15/0.25 s), each partial's band ±50 cents, 30 KL multiplicative updates on bespoke's "
      "log-frequency grid (24 bins per octave), soft-mask reconstruction. bespoke's own first pass is the "
      "same code with wider bands (±80 cents on a 48-bin grid), 70 iterations, activations from 0.08 s before "
      "each onset, onset templates for struck and plucked parts only, templates that start from one note of "
      "each part's instrument rendered with its soundfont instead of 1/h, three of them per pitch (brighter "
      "and darker starts) for bowed and blown parts, shared by parts of one instrument; the Ablation section "
      "has it alone. bespoke: `bespoke.api.separate` at default settings in a process of its own, with seed 0 "
      f"(so a --budget of B seconds trains exactly {_seeded_rate():g} B steps (about what B seconds buy on 2 idle "
      "cores), whatever the machine's load; the time columns show what those steps cost).")
    w("- Real songs (TRIOS, CC BY-NC-SA, read from shared/ and never copied into the repository): the tool gets "
      "the hand-aligned MIDI warped by a smooth random tempo curve (±20 %) and shifted by 1-2 s (fixed seeds). "
      "Synthetic songs: music21 corpus scores performed with a tempo curve, held fermatas, asynchrony and "
      "varied velocities, each part rendered alone (bench/perform.py); the tool gets the plain score at a "
      "constant tempo.")
    if band:
        w("- Band songs: two 60-s excerpts (45-105 s) of Slakh2100-redux tracks (E. Manilow, G. Wichern, "
          "P. Seetharaman, J. Le Roux, \"Cutting Music Source Separation Some Slakh\", WASPAA 2019; CC BY 4.0), "
          "Lakh MIDI songs rendered with professional sample libraries, one stem per part, the mixture their sum; "
          "the drums rendered from the track's drum MIDI with the AVL Drumkits \"Red Zeppelin\" kit "
          "(avldrums.lv2-soundfont). Read from shared/ and never copied into the repository. The tool gets "
          "score.mid (every part, real GM programs) de-aligned as the TRIOS MIDI is (±20 % tempo warp and a "
          "1-2 s shift, fixed seeds); score.mid itself is the truth. Drum targets: score-mask and nmf have no "
          "model of drums: they treat a drum note's key number as a pitch and mask its harmonic series, so "
          "their drum figures mean little (bespoke warns that a drum target gets a rough stem); the oracle is "
          "meaningful there.")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    tmp.write_text("\n".join(L) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m bench.report RESULTS.json RESULTS.md")
    d = json.loads(Path(sys.argv[1]).read_text())
    write_report(d, sys.argv[2], json_name=os.path.relpath(sys.argv[1], Path(sys.argv[2]).parent))

