"""The benchmark: methods x songs x targets -> bench/RESULTS.md and a JSON beside it.

    python -m bench.run                         # the full run (make bench)
    python -m bench.run --quick                 # a subset, a few minutes (make bench-quick)
    python -m bench.run --songs brahms,lussier:trumpet --methods bespoke,nmf --out /tmp/r.md
    python -m bench.run --songs lussier --methods bespoke --budget 15,30,60,120 --out /tmp/budget.md
    python -m bench.run --extra-settings '{"synth": {"n_programs": 1}}' --label one-timbre --out /tmp/a.md

Methods (rows): mixture (lower bound), oracle (ideal ratio mask from the true sources, upper
bound), score-mask and nmf (with bespoke's own alignment), score-mask@true and nmf@true (with
the true alignment), bespoke (default settings, own alignment), bespoke@true (true alignment,
only for each song's ``true_align`` targets unless --true-align all).

Each bespoke run is its own process (bench.worker): peak memory and stage times are clean.
The baselines run in this process. Stems go to bench/work/ (git-ignored), deleted after
scoring unless --keep-stems.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from . import songs as songmod
from .report import write_report

REPO = songmod.REPO
# bespoke-one-part: bespoke given the target's part alone (the MIDI a user most often has), on demand
METHODS = ["mixture", "oracle", "score-mask", "score-mask@true", "nmf", "nmf@true", "bespoke", "bespoke@true",
           "bespoke-one-part"]
DEFAULT_METHODS = [m for m in METHODS if m != "bespoke-one-part"]
QUICK_BUDGET = 30.0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- context

def machine_info() -> dict:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "platform": platform.platform()}


def git_info() -> dict:
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return {"commit": git("rev-parse", "--short=10", "HEAD"), "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": dirty}


def loadavg() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# --------------------------------------------------------------------------- scoring

def independent_si_sdr(est: np.ndarray, ref: np.ndarray):
    """SI-SDR from a second, independent implementation: fast_bss_eval when installed (the
    bench extra), else a least-squares projection with numpy.linalg.lstsq. (value, name)."""
    n = min(len(est), len(ref))
    est, ref = np.asarray(est[:n], np.float64), np.asarray(ref[:n], np.float64)
    try:
        import fast_bss_eval

        return float(fast_bss_eval.si_sdr(ref[None], est[None], zero_mean=False)[0]), \
            f"fast_bss_eval {getattr(fast_bss_eval, '__version__', '')}".strip()
    except ImportError:
        a, *_ = np.linalg.lstsq(ref[:, None], est, rcond=None)
        t = ref * a[0]
        return float(10 * np.log10(np.sum(t ** 2) / np.sum((est - t) ** 2))), "numpy lstsq projection"


def score(est: np.ndarray, ref: np.ndarray, mix: np.ndarray) -> dict:
    from bespoke.evaluate import scores

    s = scores(est, ref, mix)
    ind, name = independent_si_sdr(est, ref)
    s["si_sdr_independent"] = ind
    s["independent_impl"] = name
    return s


def alignment_errors(aligned_pm, truth_pm, idx: Optional[int]) -> dict:
    """Onset errors of the aligned MIDI against the truth: part ``idx``, or all parts (None)."""
    from bespoke.evaluate import alignment_summary, onset_errors
    from bespoke.midi import notes_array

    parts = range(len(truth_pm.instruments)) if idx is None else [idx]
    errs = [onset_errors(notes_array(aligned_pm.instruments[i]), notes_array(truth_pm.instruments[i]))
            for i in parts]
    return alignment_summary(np.concatenate(errs) if errs else np.zeros(0))


def cli_eval(est_path: Path, ref_path: Path, mix_path: Path) -> dict:
    """``bespoke eval EST REF --mix MIX --json`` as a user runs it (in process)."""
    from bespoke.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["eval", str(est_path), str(ref_path), "--mix", str(mix_path), "--json"])
    if rc != 0:
        raise RuntimeError(f"bespoke eval exited {rc}")
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def only_part(pm, i: int):
    """A copy of the PrettyMIDI ``pm`` holding its part ``i`` alone."""
    import copy

    one = copy.deepcopy(pm)
    one.instruments = [one.instruments[i]]
    return one


def read_mono(path: Path) -> np.ndarray:
    import soundfile as sf

    x, _ = sf.read(str(path), dtype="float64", always_2d=True)
    return x.mean(axis=1)


# --------------------------------------------------------------------------- bespoke in a subprocess

def run_worker(mix: Path, midi: Path, target: int, out: Path, align: bool, budget: Optional[float],
               steps: Optional[int], extra: str, seed: int = 0, timeout: float = 1800.0) -> dict:
    cmd = [sys.executable, "-m", "bench.worker", "--mix", str(mix), "--midi", str(midi), "--target", str(target),
           "--out", str(out), "--seed", str(seed), "--device", "cpu", "--extra-settings", extra]
    if not align:
        cmd.append("--no-align")
    if budget is not None:
        cmd += ["--budget", str(budget)]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    if (out / "info.json").exists():
        (out / "info.json").unlink()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t
    if p.returncode != 0 or not (out / "info.json").exists():
        lines = [ln for ln in (p.stderr or "").strip().splitlines() if ln.strip()]
        raise RuntimeError(f"worker exited {p.returncode}: {lines[-1] if lines else 'no message'}")
    info = json.loads((out / "info.json").read_text())
    info["process_wall"] = wall
    return info


# --------------------------------------------------------------------------- the run

def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a subset (lussier:trumpet, chorale-mixed:clarinet; "
                    f"bespoke@true on the first only) at a {QUICK_BUDGET:.0f} s budget, a few minutes")
    ap.add_argument("--songs", default=None, help="comma-separated songs, each optionally with targets: "
                    "'brahms,lussier:trumpet+piano,haydn-op74-1-iii:1'. Songs: " + ", ".join(songmod.ALL))
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated, from: "
                    + ", ".join(METHODS) + " (default: all but bespoke-one-part)")
    ap.add_argument("--budget", default=None, help="bespoke's training budget in s (default: its own, 60); "
                    "several, comma-separated, give one bespoke row each (a budget curve)")
    ap.add_argument("--steps", type=int, default=None, help="train bespoke exactly this many steps instead")
    ap.add_argument("--true-align", choices=["listed", "all", "none"], default="listed",
                    help="where bespoke@true runs: each song's listed targets (default), every target, none")
    ap.add_argument("--extra-settings", default="{}", help="JSON of bespoke Settings overrides, e.g. "
                    "'{\"synth\": {\"n_programs\": 1}, \"separate\": {\"mask_power\": 2}}'")
    ap.add_argument("--label", default=None, help="a name for this run (report title, work folder)")
    ap.add_argument("--out", default="bench/RESULTS.md", help="the report; the JSON goes beside it")
    ap.add_argument("--json", default=None, help="where the JSON goes (default: beside --out, lower-case name)")
    ap.add_argument("--work", default="bench/work", help="scratch folder for stems")
    ap.add_argument("--keep-stems", action="store_true", help="keep every estimate as a WAV in the work folder")
    a = ap.parse_args(argv)
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad:
        ap.error(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(METHODS)}")
    a.methods = methods
    try:
        json.loads(a.extra_settings)
    except ValueError as e:
        ap.error(f"--extra-settings is not JSON: {e}")
    if a.budget:
        a.budgets = [float(b) for b in a.budget.split(",")]
    else:
        a.budgets = [QUICK_BUDGET] if a.quick and a.steps is None else [None]
    return a


def worker_fields(info: dict, budget: Optional[float]) -> dict:
    """The fields of a result row that come from a bespoke worker's info.json."""
    keys = ("timings", "peak_mb", "steps", "train_seconds", "final_loss", "warnings", "soundfont")
    return {**{k: info[k] for k in keys}, "budget": budget}


def bespoke_name(base: str, budget: Optional[float], several: bool) -> str:
    return f"{base} b={budget:g}s" if several else base


def main(argv=None) -> int:
    a = parse_args(argv)
    t_start = time.perf_counter()
    from bespoke.audio import resample
    from bespoke.config import Settings
    from bespoke.midi import load_midi

    from . import baselines as B
    from .timbre import timbre_overlap
    from .worker import apply_overrides

    settings = apply_overrides(Settings(), json.loads(a.extra_settings))
    grid = settings.grid
    label = a.label or ("quick" if a.quick else "full")
    work = (REPO / a.work / label) if not Path(a.work).is_absolute() else Path(a.work) / label
    work.mkdir(parents=True, exist_ok=True)
    out_md = Path(a.out) if Path(a.out).is_absolute() else REPO / a.out
    out_json = Path(a.json) if a.json else out_md.with_name(out_md.stem.lower() + ".json")
    several = len(a.budgets) > 1
    from bespoke.synth import resolve_soundfont

    meta = {"label": label, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "argv": sys.argv[1:] if argv is None else list(argv), "git": git_info(), "machine": machine_info(),
            "load_start": loadavg(), "methods": a.methods, "budgets": a.budgets, "steps": a.steps,
            "extra_settings": json.loads(a.extra_settings), "settings": settings.to_dict(),
            "tool_soundfont": str(resolve_soundfont(settings.synth.soundfont)), "synth_soundfont": str(songmod.MUSESCORE_SF),
            "quick": a.quick, "true_align": a.true_align}
    results: List[dict] = []
    song_meta: List[dict] = []
    cli_checks: List[dict] = []
    skipped: List[str] = []

    selection = songmod.parse_selection(a.songs, a.quick)
    for name, targets in selection:
        t_song = time.perf_counter()
        song = songmod.load_song(name, targets, log=log)
        if song is None:
            skipped.append(name)
            continue
        log(f"{song.name}: {song.duration:.0f} s, targets {', '.join(song.label(i) for i in song.targets)}")
        mix, parts, sr = songmod.load_parts(song)
        truth = load_midi(song.truth)
        tuning = None
        sm = {"name": song.name, "category": song.category, "duration": song.duration, "sr": sr,
              "parts": song.part_names, "programs": song.programs, "source": song.source,
              "targets": song.targets, "true_align": song.true_align, "drums": song.drums}
        song_meta.append(sm)
        rows: Dict[int, List[dict]] = {i: [] for i in song.targets}

        def add(ti, method, est, seconds=None, **extra):
            ref = parts[ti]
            r = {"song": song.name, "category": song.category, "target": ti, "part": song.part_names[ti],
                 "program": song.programs[ti], "same_instrument": song.same_instrument(ti), "method": method,
                 "duration": song.duration, **score(est, ref, mix)}
            if seconds is not None:
                r["seconds"] = seconds
                r["rtf"] = seconds / song.duration
            r.update(extra)
            rows[ti].append(r)
            results.append(r)
            log(f"  {song.part_names[ti]:<12} {method:<18} SI-SDR {r['si_sdr']:6.2f} dB  "
                f"(+{r['si_sdr_improvement']:.2f})" + (f"  {seconds:.1f} s" if seconds is not None else ""))

        def fail(ti, method, err):
            r = {"song": song.name, "category": song.category, "target": ti, "part": song.part_names[ti],
                 "program": song.programs[ti], "same_instrument": song.same_instrument(ti), "method": method,
                 "duration": song.duration, "error": str(err)}
            results.append(r)
            log(f"  {song.part_names[ti]:<12} {method:<18} FAILED: {err}")

        def bespoke_run(ti, mname, midi, align, budget, target=None):
            """One bespoke worker on target ti (part ``target`` of ``midi``, default ti): (its folder,
            info, the stem), or None if it failed."""
            d = work / song.name / f"t{ti}" / mname.replace(" ", "_").replace("=", "").replace("@", "_")
            try:
                info = run_worker(song.mix, midi, ti if target is None else target, d, align, budget, a.steps,
                                  a.extra_settings)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                fail(ti, mname, e)
                return None
            return d, info, read_mono(d / "stem.wav")

        # ---- bespoke (its own alignment) first: its aligned MIDI feeds the baselines
        aligned_pm = None
        align_seconds = None
        for b in a.budgets:
            if "bespoke" not in a.methods:
                break
            mname = bespoke_name("bespoke", b, several)
            for ti in song.targets:
                run = bespoke_run(ti, mname, song.score, True, b)
                if run is None:
                    continue
                d, info, est = run
                apm = load_midi(d / "aligned.mid")
                if aligned_pm is None:
                    aligned_pm, align_seconds = apm, info["timings"].get("align")
                al = alignment_errors(apm, truth, ti)
                al_all = alignment_errors(apm, truth, None)
                add(ti, mname, est, info["wall"], **worker_fields(info, b), confidence=info["confidence"],
                    alignment=al, alignment_all=al_all)
                try:
                    c = cli_eval(d / "stem.wav", song.parts[ti], song.mix)
                    ind, impl = independent_si_sdr(est, read_mono(song.parts[ti]))
                    cli_checks.append({"song": song.name, "target": ti, "method": mname, "cli_si_sdr": c["si_sdr"],
                                       "independent": ind, "impl": impl, "diff": abs(c["si_sdr"] - ind)})
                except Exception as e:  # the check itself must not end the run
                    cli_checks.append({"song": song.name, "target": ti, "method": mname, "error": str(e)})
                if not a.keep_stems:
                    (d / "stem.wav").unlink(missing_ok=True)

        # ---- bespoke with the true alignment
        tat = {"listed": song.true_align, "all": song.targets, "none": []}[a.true_align]
        if a.quick and not a.songs and song_meta[0]["name"] != song.name:
            tat = []  # the quick run pays for one bespoke@true only
        for b in a.budgets:
            if "bespoke@true" not in a.methods:
                break
            mname = bespoke_name("bespoke@true", b, several)
            for ti in [t for t in song.targets if t in tat]:
                run = bespoke_run(ti, mname, song.truth, False, b)
                if run is None:
                    continue
                d, info, est = run
                add(ti, mname, est, info["wall"], **worker_fields(info, b))
                if not a.keep_stems:
                    (d / "stem.wav").unlink(missing_ok=True)

        # ---- bespoke given the target's part alone, de-aligned as the score is
        for b in a.budgets:
            if "bespoke-one-part" not in a.methods:
                break
            mname = bespoke_name("bespoke-one-part", b, several)
            score_pm = load_midi(song.score)
            for ti in song.targets:
                one = work / song.name / f"t{ti}" / "one_part.mid"
                one.parent.mkdir(parents=True, exist_ok=True)
                only_part(score_pm, ti).write(str(one))
                run = bespoke_run(ti, mname, one, True, b, target=0)
                if run is None:
                    continue
                d, info, est = run
                al = alignment_errors(load_midi(d / "aligned.mid"), only_part(truth, ti), 0)
                add(ti, mname, est, info["wall"], **worker_fields(info, b), confidence=info["confidence"],
                    alignment=al)
                if not a.keep_stems:
                    (d / "stem.wav").unlink(missing_ok=True)

        # ---- the alignment for the baselines when bespoke did not run
        needs_align = any(m in a.methods for m in ("score-mask", "nmf"))
        if needs_align and aligned_pm is None:
            from bespoke import api

            t = time.perf_counter()
            aligned_pm, _al = api.align(str(song.mix), str(song.score), settings=Settings())
            align_seconds = time.perf_counter() - t
        if aligned_pm is not None:
            sm["alignment"] = {song.part_names[i]: alignment_errors(aligned_pm, truth, i)
                               for i in range(len(song.part_names))}
            sm["alignment_all"] = alignment_errors(aligned_pm, truth, None)
            sm["align_seconds"] = align_seconds

        # ---- the baselines
        if any(m in a.methods for m in ("score-mask", "score-mask@true", "nmf", "nmf@true")):
            from bespoke.spectral import estimate_tuning

            tuning = estimate_tuning(resample(mix.astype(np.float32), sr, grid.sr), grid.sr)
        # a baseline that fails on a target (a drum part, say) is recorded as failed; the run goes on
        for ti in song.targets:
            if "mixture" in a.methods:
                add(ti, "mixture", mix, 0.0)
            if "oracle" in a.methods:
                t = time.perf_counter()
                est = B.oracle_irm(mix, parts[ti], sr, grid)
                add(ti, "oracle", est, time.perf_counter() - t)
            for mname, pm in (("score-mask", aligned_pm), ("score-mask@true", truth)):
                if mname in a.methods and pm is not None:
                    t = time.perf_counter()
                    try:
                        est = B.score_mask(mix, sr, pm, ti, grid, tuning)
                    except Exception as e:
                        fail(ti, mname, f"{type(e).__name__}: {e}")
                        continue
                    add(ti, mname, est, time.perf_counter() - t)
        for mname, pm in (("nmf", aligned_pm), ("nmf@true", truth)):
            if mname in a.methods and pm is not None:
                t = time.perf_counter()
                try:
                    ests = B.score_nmf(mix, sr, pm, song.targets, grid, tuning)
                except Exception as e:
                    for ti in song.targets:
                        fail(ti, mname, f"{type(e).__name__}: {e}")
                    continue
                dt = time.perf_counter() - t
                for ti in song.targets:  # one factorisation for all targets: its time is shared
                    add(ti, mname, ests[ti], dt / len(song.targets), nmf_seconds_song=dt)
        sm["seconds"] = time.perf_counter() - t_song
        log(f"{song.name}: done in {sm['seconds']:.0f} s")
        # partial results after every song
        (work / "partial.json").write_text(json.dumps({"meta": meta, "songs": song_meta, "results": results},
                                                      default=str))

    meta["load_end"] = loadavg()
    meta["total_seconds"] = time.perf_counter() - t_start
    meta["skipped"] = skipped
    programs = sorted({r["program"] for r in results if r["category"] == "synthetic"})
    try:
        meta["timbre_overlap"] = timbre_overlap(programs, meta["tool_soundfont"]) if programs else {}
    except Exception as e:  # informative only
        meta["timbre_overlap"] = {"error": str(e)}
    doc = {"meta": meta, "songs": song_meta, "results": results, "cli_checks": cli_checks}
    out_json.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_json.with_name(out_json.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, out_json)
    write_report(doc, out_md, json_name=os.path.relpath(out_json, out_md.parent))
    log(f"wrote {out_md} and {out_json} in {meta['total_seconds']:.0f} s")
    if not a.keep_stems:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
