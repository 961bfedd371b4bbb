"""Speed and scale (issue 6): time and peak memory of ``bespoke separate`` against the song's length.

    PYTHONPATH=. python -m bench.scale --out bench/SCALE.md                 # 1, 3, 10, 60 minutes
    PYTHONPATH=. python -m bench.scale --minutes 1,3 --budget 10 --out /tmp/scale.md
    PYTHONPATH=. python -m bench.scale --minutes 1 --no-profile --out /tmp/scale.md

The long songs are made without any download: the bundled example (examples/mix.flac, a
25-second four-part chorale, and its unaligned score examples/score.mid) tiled end to end, the
recording's copies back to back and the score's copies shifted by the score's own length, so
the full score still has to be aligned to the recording (constant tempo score against a
performance with fermatas). The target is the violin.

Each length runs ``bespoke separate`` at default settings but a fixed ``--budget`` in its own
process; the stage times come from its ``--report`` JSON and its peak memory (max RSS) from
``os.wait4`` on that process alone. One more run of the ``--profile`` length happens under
pyinstrument; its summary lists, per stage, the functions where the time goes (self time,
including the functions they call that are not Python). The machine is shared and has 2 cores:
the timings are indicative; the memory figures are reliable.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Dict, List

import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / "work" / "scale"
STAGES = ["load", "align", "nmf", "synth", "train", "separate"]

# the functions under which a stage's time is spent (pipeline.run calls them: bespoke/stages/), for the profile
STAGE_ROOTS = {
    "read": ["load_audio", "load_midi"],
    "load": ["load@load.py"],
    "align": ["align@align.py"],
    "nmf": ["nmf@nmf.py"],
    "synth": ["synth@synth.py"],
    "train": ["train@train.py"],
    "separate": ["separate@separate.py"],
    "write": ["save", "save_audio", "build_report", "write_json"],
}


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- songs

def make_song(minutes: float, folder: Path) -> Dict[str, Path]:
    """Tile examples/mix.flac and examples/score.mid to ``minutes``: returns {mix, midi}."""
    import pretty_midi
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    mix_path, midi_path = folder / f"mix-{minutes:g}min.flac", folder / f"score-{minutes:g}min.mid"
    if mix_path.exists() and midi_path.exists():
        return {"mix": mix_path, "midi": midi_path}
    y, sr = sf.read(REPO / "examples" / "mix.flac", dtype="float32", always_2d=True)
    n_total = int(round(minutes * 60 * sr))
    n_copies = int(np.ceil(n_total / len(y)))
    tmp = mix_path.with_suffix(".tmp.flac")
    with sf.SoundFile(tmp, "w", samplerate=sr, channels=y.shape[1], subtype="PCM_16", format="FLAC") as f:
        left = n_total
        for _ in range(n_copies):
            f.write(y[:min(left, len(y))])
            left -= min(left, len(y))
    os.replace(tmp, mix_path)

    score = pretty_midi.PrettyMIDI(str(REPO / "examples" / "score.mid"))
    period = score.get_end_time()
    out = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    for inst in score.instruments:
        new = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum, name=inst.name)
        for k in range(n_copies):
            for n in inst.notes:
                s = n.start + k * period
                # the recording's last copy is cut at n_total: keep the score's notes in proportion
                if s >= (n_total / sr) * period / (len(y) / sr):
                    continue
                new.notes.append(pretty_midi.Note(n.velocity, n.pitch, s, n.end + k * period))
        out.instruments.append(new)
    tmp = midi_path.with_suffix(".tmp.mid")
    out.write(str(tmp))
    os.replace(tmp, midi_path)
    return {"mix": mix_path, "midi": midi_path}


# --------------------------------------------------------------------------- runs

def separate_cmd(song: Dict[str, Path], folder: Path, tag: str, budget: float) -> List[str]:
    return ["separate", str(song["mix"]), str(song["midi"]), "--target", "violin",
            "-o", str(folder / f"violin-{tag}.wav"), "--report", str(folder / f"report-{tag}.json"),
            "--budget", f"{budget:g}", "--overwrite", "-q"]


def run_child(argv: List[str], env: dict) -> dict:
    """Run a python child to the end; returns wall seconds, peak RSS (MB), cpu seconds, rc, stderr."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would be a max over every child so far)
    out_chunks, err_chunks = [], []
    import threading

    def drain(stream, into):
        for chunk in iter(lambda: stream.read(65536), b""):
            into.append(chunk)

    threads = [threading.Thread(target=drain, args=(p.stdout, out_chunks)),
               threading.Thread(target=drain, args=(p.stderr, err_chunks))]
    for th in threads:
        th.start()
    _pid, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    return {"wall": wall, "peak_mb": ru.ru_maxrss / 1024.0, "cpu": ru.ru_utime + ru.ru_stime,
            "rc": p.returncode, "stderr": b"".join(err_chunks).decode(errors="replace")}


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def measure(minutes: float, budget: float) -> dict:
    song = make_song(minutes, WORK)
    tag = f"{minutes:g}min"
    argv = [sys.executable, "-c", "import sys; from bespoke.cli import main; sys.exit(main())"]
    r = run_child(argv + separate_cmd(song, WORK, tag, budget), child_env())
    row = {"minutes": minutes, "budget": budget, **{k: r[k] for k in ("wall", "peak_mb", "cpu", "rc")}}
    if r["rc"] != 0:
        row["error"] = r["stderr"].strip().splitlines()[-1:] or ["?"]
        return row
    rep = json.loads((WORK / f"report-{tag}.json").read_text())
    row["timings"] = {k: float(v) for k, v in rep.get("timings", {}).items()}
    with_steps = rep.get("training") or rep.get("train") or {}
    if isinstance(with_steps, dict) and "steps" in with_steps:
        row["steps"] = with_steps["steps"]
    (WORK / f"violin-{tag}.wav").unlink(missing_ok=True)
    return row


# --------------------------------------------------------------------------- profile

PROFILE_SCRIPT = r"""
import sys, json
from pyinstrument import Profiler
from bespoke.cli import main
prof = Profiler(interval=0.005)
prof.start()
try:
    rc = main(sys.argv[2:])
except SystemExit as e:
    rc = e.code
prof.stop()
sess = prof.last_session
sess.save(sys.argv[1])
sys.exit(rc or 0)
"""


def _frame_key(frame) -> str:
    fp = Path(frame.file_path or "?")
    parts = fp.parts
    short = "/".join(parts[parts.index("bespoke"):]) if "bespoke" in parts and "site-packages" not in parts else fp.name
    if "site-packages" in parts:
        i = parts.index("site-packages")
        short = "/".join(parts[i + 1:i + 3])
    return f"{frame.function} ({short}:{frame.line_no})" if frame.line_no else f"{frame.function} ({short})"


def _stage_of(frame):
    name, file = frame.function, Path(frame.file_path or "").name
    for stage, roots in STAGE_ROOTS.items():
        for r in roots:
            fn, _, f = r.partition("@")
            if name == fn and (not f or file == f):
                return stage
    return None


def summarise_profile(session_path: Path, top: int = 8) -> dict:
    """Per stage: total seconds and the ``top`` functions by self time (pyinstrument's
    'self' includes time in C code the function calls)."""
    from pyinstrument.session import Session

    sess = Session.load(str(session_path))
    root = sess.root_frame()
    per_stage: Dict[str, Dict[str, float]] = defaultdict(lambda: defaultdict(float))
    totals: Dict[str, float] = defaultdict(float)

    def walk(frame, stage, parent_key):
        s = _stage_of(frame) if stage is None else stage
        if s is not None and stage is None:
            totals[s] += frame.time
        # pyinstrument 5 puts a frame's own time in a synthetic '[self]' child
        key = parent_key if (frame.function or "").startswith("[") else _frame_key(frame)
        if parent_key == "(imports)" or frame.function == "_find_and_load":
            key = "(imports)"  # modules loaded lazily on first use: a fixed cost
        if s is not None:
            self_t = frame.time - sum(c.time for c in frame.children)
            if self_t > 0:
                per_stage[s][key] += self_t
        for c in frame.children:
            walk(c, s, key)

    walk(root, None, "?")
    out = {"duration": sess.duration, "stages": {}}
    for s in STAGE_ROOTS:
        if s not in totals:
            continue
        funcs = sorted(per_stage[s].items(), key=lambda kv: -kv[1])[:top]
        out["stages"][s] = {"seconds": totals[s], "top": funcs}
    return out


def profile(minutes: float, budget: float) -> dict:
    song = make_song(minutes, WORK)
    tag = f"{minutes:g}min-profile"
    sess_path = WORK / f"profile-{tag}.pyisession"
    argv = [sys.executable, "-c", PROFILE_SCRIPT, str(sess_path)]
    r = run_child(argv + separate_cmd(song, WORK, tag, budget), child_env())
    if r["rc"] != 0:
        return {"error": r["stderr"].strip().splitlines()[-1:] or ["?"]}
    summ = summarise_profile(sess_path)
    summ["minutes"] = minutes
    summ["wall"] = r["wall"]
    (WORK / f"violin-{tag}.wav").unlink(missing_ok=True)
    return summ


# --------------------------------------------------------------------------- report

def growth(rows: List[dict], key) -> str:
    """Per-doubling growth exponent between the shortest and the longest good run."""
    ok = [r for r in rows if r.get("rc") == 0 and key(r) is not None]
    if len(ok) < 2:
        return "n/a"
    a, b = ok[0], ok[-1]
    ya, yb = key(a), key(b)
    if ya <= 0 or yb <= 0:
        return "n/a"
    return f"{np.log(yb / ya) / np.log(b['minutes'] / a['minutes']):.2f}"


def write_md(path: Path, rows: List[dict], prof: dict, args) -> None:
    import torch

    lines = ["# Speed and scale", "",
             f"Made by `python -m bench.scale` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
             f"torch threads {torch.get_num_threads()}; the machine was shared with other work, so the "
             "times are indicative (memory is not affected).", "",
             "Songs: the bundled example (25 s, four parts) tiled to each length, its unaligned score tiled "
             f"alongside; target violin; default settings but `--budget {args.budget:g}` (training stops on "
             "the clock, so `train` is the budget plus the last step and set-up). Peak MB: the child "
             "process's max RSS (os.wait4). RTF: total wall seconds / song seconds.", "",
             "| minutes | " + " | ".join(STAGES) + " | stages total | process wall | RTF | RTF without train | peak MB |",
             "|" + "---|" * (len(STAGES) + 6)]
    for r in rows:
        if r.get("rc") != 0:
            lines.append(f"| {r['minutes']:g} | " + " | ".join("" for _ in STAGES) +
                         f" | failed: {' '.join(r.get('error', []))} | {r['wall']:.0f} | | | {r['peak_mb']:.0f} |")
            continue
        t = r["timings"]
        tot = sum(t.get(s, 0.0) for s in STAGES)
        secs = r["minutes"] * 60
        lines.append(f"| {r['minutes']:g} | " + " | ".join(f"{t.get(s, 0.0):.1f}" for s in STAGES) +
                     f" | {tot:.1f} | {r['wall']:.1f} | {r['wall'] / secs:.2f} | "
                     f"{(r['wall'] - t.get('train', 0.0)) / secs:.2f} | {r['peak_mb']:.0f} |")
    lines += ["", "Growth exponents between the shortest and the longest run (1.00 = linear): "
              f"peak memory {growth(rows, lambda r: r['peak_mb'])} (includes the ~constant libraries and "
              f"soundfonts), time without training {growth(rows, lambda r: r['wall'] - r['timings']['train'])}; "
              "per stage: " + ", ".join(
                  f"{s} {growth(rows, lambda r, s=s: r['timings'].get(s))}" for s in STAGES if s != "train") + ".", ""]
    if prof and "stages" in prof:
        lines += [f"## Where the time goes: profile of the {prof['minutes']:g}-minute run", "",
                  f"pyinstrument (5 ms sampling), the whole process {prof['duration']:.1f} s under the profiler. "
                  "Per stage: its seconds, then the functions with the most self time (time in the "
                  "function itself and in the non-Python code it calls).", ""]
        for s, d in prof["stages"].items():
            lines.append(f"**{s}** ({d['seconds']:.1f} s)")
            lines.append("")
            lines.append("```")
            for name, sec in d["top"]:
                lines.append(f"{sec:7.2f} s  {name}")
            lines.append("```")
            lines.append("")
    elif prof:
        lines += ["## Profile", "", f"failed: {prof.get('error')}", ""]
    if args.notes and Path(args.notes).exists():
        lines += [Path(args.notes).read_text().rstrip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    (path.with_suffix(".json")).write_text(json.dumps({"rows": rows, "profile": prof}, indent=1, default=str))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="1,3,10,60", help="song lengths, comma-separated")
    ap.add_argument("--budget", type=float, default=60.0, help="--budget of every run (seconds of training)")
    ap.add_argument("--profile", type=float, default=3.0, help="length (minutes) profiled with pyinstrument")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--notes", default=str(REPO / "bench" / "scale-notes.md"),
                    help="markdown appended to the report (the findings), if it exists")
    ap.add_argument("--out", default=str(REPO / "bench" / "SCALE.md"))
    ap.add_argument("--from-json", default=None, help="re-write the markdown from a run's JSON (no runs)")
    args = ap.parse_args(argv)
    if args.from_json:
        d = json.loads(Path(args.from_json).read_text())
        args.budget = d["rows"][0]["budget"] if d["rows"] else args.budget
        write_md(Path(args.out), d["rows"], d["profile"], args)
        return 0
    rows = []
    for m in [float(x) for x in args.minutes.split(",") if x.strip()]:
        log(f"{m:g} minutes, budget {args.budget:g}")
        rows.append(measure(m, args.budget))
        r = rows[-1]
        log(f"  rc {r['rc']}, wall {r['wall']:.1f} s, peak {r['peak_mb']:.0f} MB, {r.get('timings', r.get('error'))}")
    prof = {}
    if not args.no_profile:
        log(f"profiling the {args.profile:g}-minute run")
        prof = profile(args.profile, args.budget)
    write_md(Path(args.out), rows, prof, args)
    log(f"wrote {args.out}")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
