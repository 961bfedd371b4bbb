"""Stereo versions of the benchmark songs, and the mono mask against stereo-aware separation on them.

    python -m bench.stereo --songs brahms,lussier,track00001 --out bench/STEREO.md

Each song's parts are mixed in stereo as an engineer would: drums and bass in the middle, the
other parts spread left and right (two parts of one instrument on opposite sides), each with a
little stereo reverb of its own (a decaying noise tail, different in each channel). A target's
reference is its own stereo image (panned, with its reverb). bespoke runs once per target (seed 0,
the default budget's seeded step count) on the stereo mixture; its network and NMF masks are kept
and applied to the stereo mixture two ways: the same mask on both channels (what bespoke did
before) and the multichannel Wiener filter (bespoke.spatial) at several EM iteration counts.
SI-SDR is measured over both channels together. Songs come from bench.songs (../shared data).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import List

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SIDES = [-0.5, 0.5, -0.25, 0.25, -0.75, 0.75, 0.0]


def log(msg: str) -> None:
    print(f"[stereo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def positions(song) -> List[float]:
    """Each part's pan position in [-1, 1], as an engineer might mix it: drums and bass (GM 32-39)
    centred; parts of one instrument spread wide (two: hard left and right, +-0.8); the others
    from SIDES in turn."""
    pos: List[float] = [None] * len(song.programs)
    groups = {}
    for i, prog in enumerate(song.programs):
        inst = song.instrument(i)
        if inst == "drums" or 32 <= int(prog) <= 39:
            pos[i] = 0.0
        else:
            groups.setdefault(inst, []).append(i)
    for members in groups.values():
        if len(members) > 1:
            for i, p in zip(members, np.linspace(-0.8, 0.8, len(members))):
                pos[i] = float(p)
    free = [p for p in SIDES if p not in pos]
    for i in range(len(pos)):
        if pos[i] is None:
            pos[i] = free.pop(0) if free else 0.0
    return pos


def reverb_ir(rng: np.random.Generator, sr: int, rt60: float = 0.5, pre_s: float = 0.012) -> np.ndarray:
    """A stereo tail ``(2, n)``: independent decaying noise per channel after a short pre-delay."""
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    env = np.exp(-6.9 * t / rt60)
    ir = rng.standard_normal((2, n)) * env
    ir[:, : int(pre_s * sr)] = 0.0
    return ir / np.sqrt((ir ** 2).sum(axis=1, keepdims=True))


def image(part: np.ndarray, pan: float, ir: np.ndarray, wet_db: float = -12.0) -> np.ndarray:
    """A mono part ``(n,)`` -> its stereo image ``(2, n)``: constant-power pan plus reverb."""
    from scipy.signal import fftconvolve

    theta = (pan + 1.0) * np.pi / 4.0
    dry = np.stack([np.cos(theta) * part, np.sin(theta) * part])
    wet = np.stack([fftconvolve(part, ir[c])[: len(part)] for c in range(2)])
    g = 10 ** (wet_db / 20.0) * np.sqrt((part ** 2).sum() / max((wet ** 2).sum() / 2, 1e-12))
    return dry + g * wet


def stereo_song(song, folder: Path, seed: int = 0):
    """Write the stereo mixture; return (its path, the parts' images ``[(2, n)]``, sr, positions)."""
    import soundfile as sf

    from bench.songs import load_parts

    mix, parts, sr = load_parts(song)
    rng = np.random.default_rng(seed)
    pos = positions(song)
    images = [image(p, pan, reverb_ir(rng, sr)) for p, pan in zip(parts, pos)]
    smix = np.sum(images, axis=0)
    peak = np.abs(smix).max()
    scale = 0.9 / peak if peak > 0.9 else 1.0
    images = [im * scale for im in images]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{song.name}-stereo.wav"
    sf.write(str(path), (smix * scale).T.astype(np.float32), sr, subtype="FLOAT")
    return path, images, sr, pos


def si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    from bespoke.evaluate import si_sdr as f

    return float(f(est.reshape(-1), ref.reshape(-1)))


def separate_ways(result, mix: np.ndarray, sr: int, iterations: List[str]) -> dict:
    """The kept masks applied to the stereo ``mix`` ``(2, n)``: {'mono': stem, 'spatial k': stem}."""
    from bespoke.config import Settings
    from bespoke.masks import apply_masks
    from bespoke.stages import FirstPass
    from bespoke.stages.nmf import nmf_setup
    from bespoke.stages.separate import ensemble_masks

    s = result.settings or Settings()
    pm = result.aligned_midi
    n_parts = sum(1 for inst in pm.instruments if inst.notes)
    grid, _ = nmf_setup(s, n_parts)
    drums = any(inst.is_drum and inst.notes for inst in pm.instruments)
    first = FirstPass(mask=result.masks["nmf"], grid=grid, one_part=n_parts <= 1, drums=drums)
    spec = ensemble_masks(result.masks["net"], s.grid, first, s.separate)
    out = {}
    # the other parts' NMF masks, as the run kept them for its spatial filter (stereo input, spatial > 0)
    others = [(m, grid) for m in result.masks.get("others", {}).values()]
    for k in ["0"] + list(iterations):
        out["mono" if k == "0" else f"spatial {k}"] = apply_masks(
            mix.astype(np.float32), sr, **spec, block_s=s.separate.block_s, spatial=int(k.rstrip("+")),
            others=others if "+" in k else ())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stereo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--songs", default="brahms,lussier,chorale-clarinets,track00001,track01501")
    ap.add_argument("--iterations", default="3,5,5+,8+")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--out", default="bench/STEREO.md")
    ap.add_argument("--work", default="bench/work/stereo")
    a = ap.parse_args(argv)
    import soundfile as sf

    import bespoke
    from bench.songs import load_song, parse_selection

    # "3": 3 EM iterations; "3+": the rest as the other parts (their NMF masks, kept by the run)
    iters = [x for x in a.iterations.split(",") if x]
    work = Path(a.work) if Path(a.work).is_absolute() else REPO / a.work
    rows = []
    t_all = time.time()
    out = Path(a.out) if Path(a.out).is_absolute() else REPO / a.out
    for name, targets in parse_selection(a.songs):
        song = load_song(name, targets, log=log)
        if song is None:
            continue
        path, images, sr, pos = stereo_song(song, work)
        mix = sf.read(str(path), dtype="float32", always_2d=True)[0].T
        for t in song.targets:
            t0 = time.time()
            r = bespoke.separate(str(path), str(song.score), target=t, seed=0, steps=a.steps, keep_model=True)
            ref = images[t][:, : mix.shape[1]]
            ways = separate_ways(r, mix, sr, iters)
            row = {"song": name, "category": song.category, "target": song.part_names[t], "pan": pos[t],
                   "same_instrument": song.same_instrument(t), "mixture": si_sdr(mix, ref),
                   "stem": si_sdr(r.stem, ref), "seconds": time.time() - t0}
            row.update({k: si_sdr(v, ref) for k, v in ways.items()})
            rows.append(row)
            log(f"{name} {song.part_names[t]} (pan {pos[t]:+.2f}): " +
                ", ".join(f"{k} {row[k]:.2f}" for k in ["mixture", "mono"] + [f"spatial {k}" for k in iters]))
            write(rows, iters, out, time.time() - t_all, a)  # after every target: a stopped run keeps its rows
    return 0


def write(rows: List[dict], iters: List[int], out: Path, seconds: float, a) -> None:
    ways = ["mono"] + [f"spatial {k}" for k in iters]

    def mean(sel, key):
        xs = [r[key] for r in rows if sel(r)]
        return f"{np.mean(xs):.2f} [{len(xs)}]" if xs else "—"

    cats = [("chamber", lambda r: r["category"] in ("real", "synthetic")),
            ("chamber, same instrument", lambda r: r["category"] in ("real", "synthetic") and r["same_instrument"]),
            ("band", lambda r: r["category"] == "band"),
            ("band, same instrument", lambda r: r["category"] == "band" and r["same_instrument"]),
            ("all", lambda r: True)]
    lines = ["# bespoke benchmark: stereo", "",
             f"Made by `python -m bench.stereo --songs {a.songs} --iterations {a.iterations}` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {seconds / 60:.1f} min. "
             "Stereo versions of the benchmark songs (bench/stereo.py: drums and bass centred, the other parts "
             "spread left and right, two parts of one instrument on opposite sides, each with its own stereo "
             "reverb at -12 dB). One bespoke run per target (seed 0, default settings); its masks applied to the "
             "stereo mixture as one mask on both channels (`mono`, bespoke before) and as the multichannel Wiener "
             "filter (`spatial k`: k EM iterations of the spatial covariances). SI-SDR in dB over both channels.",
             "", "| category | mixture | " + " | ".join(ways) + " |", "|---|---:|" + "---:|" * len(ways)]
    for cname, sel in cats:
        lines.append(f"| {cname} | {mean(sel, 'mixture')} | " + " | ".join(mean(sel, w) for w in ways) + " |")
    lines += ["", "| song | target | pan | mixture | " + " | ".join(ways) + " | s |",
              "|---|---|---:|---:|" + "---:|" * len(ways) + "---:|"]
    for r in rows:
        lines.append(f"| {r['song']} | {r['target']} | {r['pan']:+.2f} | {r['mixture']:.2f} | "
                     + " | ".join(f"{r[w]:.2f}" for w in ways) + f" | {r['seconds']:.0f} |")
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1, default=float))
    log(f"wrote {out}")


if __name__ == "__main__":
    raise SystemExit(main())
