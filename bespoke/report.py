"""The run report (``--report out.json``): what ran, where, how long, and how well it aligned.

Everything in it is plain JSON (numbers, strings, lists, dicts), written atomically.
Top-level keys: bespoke, created, command, versions, node, process (CPU seconds and peak memory
so far), device, seed, inputs, target, outputs, timings (seconds per stage, and total),
alignment, training, warnings, settings.
"""
from __future__ import annotations

import json
import math
import os
import platform
import socket
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence

from .errors import OutputError

# distributions whose versions a report records (what shapes the result)
PACKAGES = ("torch", "numpy", "librosa", "soundfile", "pretty_midi", "mido", "dtw-python", "pyfluidsynth",
            "scipy", "click")


def jsonable(x):
    """``x`` with numpy scalars and arrays, tuples, paths and dataclasses made plain JSON values
    (non-finite floats become None)."""
    if is_dataclass(x) and not isinstance(x, type):
        return jsonable(asdict(x))
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "tolist") and callable(x.tolist):  # numpy arrays and scalars
        return jsonable(x.tolist())
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if x is None or isinstance(x, (bool, int, str)):
        return x
    return str(x)


def versions() -> Dict[str, Optional[str]]:
    """Versions of Python, bespoke, the libraries it runs on, libsndfile and libfluidsynth."""
    from importlib import metadata

    from . import __version__

    out: Dict[str, Optional[str]] = {"bespoke": __version__, "python": platform.python_version(),
                                     "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        import soundfile

        out["libsndfile"] = soundfile.__libsndfile_version__
    except (ImportError, OSError, AttributeError):
        out["libsndfile"] = None
    try:
        import ctypes

        import fluidsynth

        v = [ctypes.c_int(), ctypes.c_int(), ctypes.c_int()]
        fluidsynth.fluid_version(*(ctypes.byref(x) for x in v))
        out["libfluidsynth"] = ".".join(str(x.value) for x in v)
    except Exception:  # pyfluidsynth raises odd things without the C library
        out["libfluidsynth"] = None
    return out


NODE_ENV = "BESPOKE_NODE"  # set by a cluster's task (bespoke.cluster): the node that runs the row, as JSON


def node_info() -> dict:
    """The machine the run ran on: its host name and, for a row of a cluster batch, the cluster's
    own names for the node and task (engine, node_id, node_ip, task_id)."""
    info = {"host": socket.gethostname()}
    try:
        extra = json.loads(os.environ.get(NODE_ENV) or "{}")
        if isinstance(extra, dict):
            info.update({str(k): v for k, v in extra.items() if k != "host"})
    except ValueError:
        pass
    return info


def process_info() -> dict:
    """This process's CPU time so far (user + system, every thread) and peak memory (MB)."""
    info: dict = {"cpu_seconds": None, "peak_memory_mb": None}
    try:
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF)
        info["cpu_seconds"] = ru.ru_utime + ru.ru_stime
    except (ImportError, OSError):
        pass
    try:  # VmHWM starts afresh at exec (ru_maxrss carries the parent's peak from the fork)
        with open("/proc/self/status") as f:
            hwm = [ln.split()[1] for ln in f if ln.startswith("VmHWM:")]
        info["peak_memory_mb"] = int(hwm[0]) / 1024.0 if hwm else None
    except (OSError, ValueError, IndexError):
        pass
    return info


def device_info(device: Optional[str]) -> dict:
    """The device the network ran on, with its name and, on CPU, the thread count."""
    info = {"device": device, "machine": platform.machine(), "processor": platform.processor() or None}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if device and device.startswith("cuda") and torch.cuda.is_available():
            idx = torch.device(device).index or 0
            info["gpu"] = torch.cuda.get_device_name(idx)
    except Exception:  # a report never fails a finished run over a device query
        pass
    return info


def build_report(result, inputs: dict, outputs: dict, command: Optional[Sequence[str]] = None,
                 target: Optional[dict] = None, targets: Optional[list] = None) -> dict:
    """A JSON-ready dict describing one separation.

    result: pipeline.Result. inputs: {"mix": {...}, "midi": {...}} as the caller knows them.
    outputs: {name: {"path": ..., ...}} (with several stems, "stems": a list of {index, name,
    path, ...}). command: the argument list, for repeating the run. targets: with several
    targets, each one's part (the report then has a "targets" list, and "target" is None).
    """
    s = result.settings
    al = result.alignment
    tr = result.train
    alignment = None
    if al is not None:
        alignment = {
            "confidence": al.confidence,
            "frame_rate": al.frame_rate,
            "time_map": al.time_map.to_dict(),
            "tempo_ratio": al.time_map.slope,
            "info": al.info,
        }
    training = None
    if tr is not None:
        losses = list(getattr(tr, "losses", []) or [])
        training = {
            "steps": tr.steps,
            "seconds": tr.seconds,
            "device": tr.device,
            "precision": getattr(tr, "precision", None),
            "final_loss": (sum(losses[-10:]) / len(losses[-10:])) if losses else None,
            "loss_curve": tr.curve(100) if hasattr(tr, "curve") else [],
        }
    device = tr.device if tr is not None else (s.device if s is not None else None)
    seed = (s.seed if s is not None else None)
    doc = {
        "bespoke": "separate",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": list(command) if command is not None else None,
        "versions": versions(),
        "node": node_info(),
        "process": process_info(),
        "device": device_info(device),
        "seed": seed,
        "seed_used": 0 if seed is None else seed,
        "inputs": inputs,
        "target": target,
        "outputs": outputs,
        "timings": dict(result.timings, total=sum(result.timings.values())),
        "alignment": alignment,
        "training": training,
        "warnings": list(result.warnings),
        "settings": s.to_dict() if s is not None else None,
    }
    if targets is not None:
        doc["targets"] = targets
    return jsonable(doc)


def summary_line(result) -> str:
    """What the CLI says after the files: ' (2 ch, 44100 Hz, 43.0 s) in 60 s: align 1.0 s, ..., alignment
    confidence 0.99'."""
    t = result.timings
    conf = f", alignment confidence {result.alignment.confidence:.2f}" if result.alignment is not None else ""
    return (f" ({result.stem.shape[0]} ch, {result.sr} Hz, {result.stem.shape[1] / result.sr:.1f} s) in "
            f"{sum(t.values()):.0f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()) + conf)


def write_json(data: dict, path) -> None:
    """Write ``data`` as indented JSON, atomically."""
    from .audio import atomic_path

    text = json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n"
    try:
        with atomic_path(path, suffix=".json") as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    except OutputError:
        raise
    except OSError as e:
        raise OutputError(f"{path}: could not write the report ({e.strerror or e})") from None
