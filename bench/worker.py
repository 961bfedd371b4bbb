"""One bespoke run in a process of its own, so that its peak memory and stage times are clean.

    python -m bench.worker --mix MIX --midi MIDI --target I --out DIR [--no-align] [--budget S]
        [--steps N] [--seed N] [--device cpu] [--extra-settings JSON]

Writes DIR/stem.wav (float, the input's rate and channels), DIR/aligned.mid and DIR/info.json
(stage times, training steps, alignment confidence, peak memory, warnings).
"""
import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402


def apply_overrides(settings, overrides: dict):
    """The Settings with nested fields replaced from a dict (config.override):
    {"train": {"lr": 1e-3}, "separate": {"mask_power": 2}}."""
    from bespoke.config import override

    try:
        return override(settings, overrides)
    except ValueError as e:
        raise SystemExit(f"--extra-settings: {e}") from None


def peak_rss_mb() -> float:
    """This process's own peak resident memory in MB: VmHWM, which starts afresh at exec.
    (ru_maxrss does not: Linux carries the parent's peak, at the fork, into the child.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench.worker")
    ap.add_argument("--mix", required=True)
    ap.add_argument("--midi", required=True)
    ap.add_argument("--target", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-align", action="store_true")
    ap.add_argument("--budget", type=float, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--extra-settings", default="{}")
    a = ap.parse_args(argv)

    import numpy as np

    from bespoke import api
    from bespoke.audio import save_audio
    from bespoke.config import Settings

    t_import = time.perf_counter() - T0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    s = apply_overrides(Settings(), json.loads(a.extra_settings))
    t = time.perf_counter()
    res = api.separate(a.mix, a.midi, target=a.target, budget=a.budget, steps=a.steps, device=a.device,
                       seed=a.seed, align=not a.no_align, settings=s)
    wall = time.perf_counter() - t
    save_audio(out / "stem.wav", res.stem, res.sr, subtype="FLOAT")
    res.save_aligned_midi(out / "aligned.mid")
    tr = res.train
    info = {
        "timings": {"startup": t_import, **res.timings},
        "wall": wall + t_import,
        "steps": int(tr.steps) if tr is not None else None,
        "train_seconds": float(tr.seconds) if tr is not None else None,
        "final_loss": float(np.mean(tr.losses[-20:])) if tr is not None and tr.losses else None,
        "confidence": float(res.alignment.confidence) if res.alignment is not None else None,
        "peak_mb": peak_rss_mb(),
        "warnings": list(res.warnings),
        "settings": s.to_dict(),
        "soundfont": str(__import__("bespoke.synth", fromlist=["x"]).resolve_soundfont(s.synth.soundfont)),
        "torch_threads": __import__("torch").get_num_threads(),
    }
    tmp = out / "info.json.tmp"
    tmp.write_text(json.dumps(info, indent=1, default=str))
    os.replace(tmp, out / "info.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
