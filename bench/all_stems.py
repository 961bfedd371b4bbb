"""Every part at once (``bespoke separate --all``) against one run per part: per-part SI-SDR, wall
time and how exactly the stems and the residual add up to the mixture -> bench/ALL-STEMS.md.

    python -m bench.all_stems                                  # brahms, lussier, chorale-mixed
    python -m bench.all_stems --songs lussier --single lussier:0 --out /tmp/all.md

The one-run-per-part figures are read from a results JSON of bench.run (default bench/results.json,
method "bespoke", seed 0, 60 s budget = 180 steps); the --all run uses the same seed and steps.
``--single SONG:TARGET`` also runs one single-part separation here and now, so that the time ratio
is measured on the same machine under the same load. ``--cache`` reads songs from another
checkout's bench/cache (the songs are keyed by what makes them, so any checkout's will do).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from . import songs as songmod
from .run import REPO, git_info, loadavg, log, machine_info, score


def _sum_error_db(parts, mix) -> float:
    err = np.sum(parts, axis=0, dtype=np.float64) - mix
    return float(10 * np.log10(np.sum(err ** 2) / np.sum(np.asarray(mix, np.float64) ** 2)))


def _written_error_db(res, mix_path: Path) -> float:
    """The same, on the files as bespoke writes them (the input's format): stems + residual vs the mix file."""
    import soundfile as sf

    with tempfile.TemporaryDirectory() as d:
        ext = Path(mix_path).suffix
        paths = res.save_stems(os.path.join(d, "{index}-{name}" + ext))
        written = [sf.read(w["path"], dtype="float64", always_2d=True)[0] for w in paths.values()]
    mix = sf.read(str(mix_path), dtype="float64", always_2d=True)[0]
    return _sum_error_db(written, mix)


def cpu_seconds() -> float:
    """This process's CPU time so far (user + system, every thread)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run_song(name: str, steps: int, seed: int) -> dict:
    import bespoke

    song = songmod.load_song(name, log=log)
    mix, parts, sr = songmod.load_parts(song)
    t, c = time.perf_counter(), cpu_seconds()
    res = bespoke.separate(str(song.mix), str(song.score), targets="all", steps=steps, seed=seed, device="cpu")
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    n = len(mix)
    rows = {}
    for i, stem in res.stems.items():
        rows[i] = {"part": song.part_names[i], **score(stem.mean(axis=0)[:n].astype(np.float64), parts[i], mix)}
    samples = bespoke.api._audio(str(song.mix)).samples
    err = _sum_error_db(list(res.stems.values()) + [res.residual], samples)
    return {"song": name, "parts": song.part_names, "duration": song.duration, "wall": wall, "cpu": cpu,
            "timings": res.timings, "rows": rows, "sum_error_db": err,
            "written_error_db": _written_error_db(res, song.mix), "load": loadavg()}


def run_single(spec: str, steps: int, seed: int) -> dict:
    import bespoke

    name, target = spec.split(":")
    song = songmod.load_song(name, log=log)
    t, c = time.perf_counter(), cpu_seconds()
    res = bespoke.separate(str(song.mix), str(song.score), target=int(target), steps=steps, seed=seed, device="cpu")
    return {"song": name, "target": int(target), "wall": time.perf_counter() - t, "cpu": cpu_seconds() - c,
            "timings": res.timings, "load": loadavg()}


def singles_from(path: Path) -> dict:
    """{(song, target): row} of method "bespoke" in a bench.run results JSON."""
    d = json.loads(path.read_text())
    return {(r["song"], r["target"]): r for r in d["results"] if r.get("method") == "bespoke" and "si_sdr" in r}


def report(runs, singles, here, args) -> str:
    from bespoke.synth import resolve_soundfont

    lines = ["# Every part at once (`--all`) against one run per part", "",
             f"`python -m bench.all_stems {' '.join(args)}` at {git_info().get('commit')}, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {json.dumps(machine_info())}; "
             f"soundfont {resolve_soundfont(None)}.",
             "One run per part: `bench/results.json` (method bespoke, seed 0, 180 steps, each part its own "
             "process). `--all`: `bespoke.separate(..., targets=\"all\")` at the same seed and steps, in one "
             "process, every part of the song. SI-SDR by bench.run's score (mono, against the true part).", "",
             "| song | part | one run per part (dB) | --all (dB) | difference |", "|---|---|---:|---:|---:|"]
    diffs = []
    for r in runs:
        for i, row in r["rows"].items():
            one = singles.get((r["song"], i))
            d = row["si_sdr"] - one["si_sdr"] if one else None
            if d is not None:
                diffs.append(d)
            lines.append(f"| {r['song']} | {row['part']} | {one['si_sdr']:.2f} |" if one else
                         f"| {r['song']} | {row['part']} | - |")
            lines[-1] += f" {row['si_sdr']:.2f} | " + (f"{d:+.2f} |" if d is not None else "- |")
    if diffs:
        lines.append(f"| **mean** | {len(diffs)} parts | | | **{np.mean(diffs):+.2f}** |")
    lines += ["", "| song | parts | --all wall (s) | one single run (s, median of results.json) | ratio | "
              "stems + residual - mix (dB): in memory / as written | load at end |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for r in runs:
        walls = [v["seconds"] for (s, _i), v in singles.items() if s == r["song"]]
        one = float(np.median(walls)) if walls else None
        ratio = f"{r['wall'] / one:.2f}" if one else "-"
        lines.append(f"| {r['song']} | {len(r['parts'])} | {r['wall']:.1f} | {one if one is None else round(one, 1)} | "
                     f"{ratio} | {r['sum_error_db']:.1f} / {r['written_error_db']:.1f} | {r['load']} |")
    lines += ["", "Stage times (s) of the `--all` runs and of the single runs made here, one after the other, "
              "with the process's CPU time (user + system, both threads):", ""]
    for r in runs:
        lines.append(f"- {r['song']} --all: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU (" +
                     ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items()) + f"), load {r['load']}")
    for h in here:
        lines.append(f"- {h['song']} part {h['target']} alone: {h['wall']:.1f} s wall, {h['cpu']:.1f} s CPU ("
                     + ", ".join(f"{k} {v:.1f}" for k, v in h["timings"].items()) + f"), load {h['load']}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.all_stems", description=__doc__.split("\n\n")[0])
    ap.add_argument("--songs", default="brahms,lussier,chorale-mixed")
    ap.add_argument("--single", default="", help="SONG:TARGET single runs to time here too (comma-separated)")
    ap.add_argument("--steps", type=int, default=180)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", default=str(REPO / "bench" / "results.json"))
    ap.add_argument("--cache", default=None, help="a bench/cache folder to read the songs from")
    ap.add_argument("--out", default=str(REPO / "bench" / "ALL-STEMS.md"))
    a = ap.parse_args(argv)
    if a.cache:
        songmod.CACHE = Path(a.cache)
    runs = []
    for name in [s for s in a.songs.split(",") if s]:
        runs.append(run_song(name, a.steps, a.seed))
        log(f"{name}: {runs[-1]['wall']:.1f} s, " + ", ".join(f"{r['part']} {r['si_sdr']:.2f}"
                                                                for r in runs[-1]["rows"].values())
            + f", sum error {runs[-1]['sum_error_db']:.1f} dB")
    here = [run_single(s, a.steps, a.seed) for s in a.single.split(",") if s]
    text = report(runs, singles_from(Path(a.results)), here, argv if argv is not None else __import__("sys").argv[1:])
    Path(a.out).write_text(text)
    Path(a.out).with_suffix(".json").write_text(json.dumps({"runs": runs, "single_here": here}, indent=1,
                                                           default=str))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
