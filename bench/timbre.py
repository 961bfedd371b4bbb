"""How much the synthetic songs' soundfont shares with the tool's own.

MuseScore_General is partly built from the same Fluid R3 samples as FluidR3_GM (the tool's
default on Debian), so for some instruments the benchmark's "foreign" timbre is in fact the
tool's own. ``timbre_overlap`` measures it per GM program: one note (G4, 1 s) rendered with
both soundfonts, the peak of their normalised cross-correlation (1.0: the same sample).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

from .perform import MUSESCORE_SF, spec_key
from .songs import CACHE


def _note(program: int, pitch: int = 67):
    import pretty_midi

    inst = pretty_midi.Instrument(program=int(program))
    inst.notes.append(pretty_midi.Note(90, pitch, 0.1, 1.1))
    return inst


def timbre_overlap(programs: Sequence[int], tool_soundfont, synth_soundfont=MUSESCORE_SF,
                   sr: int = 22050) -> Dict[int, float]:
    """{program: peak normalised cross-correlation of a note in the two soundfonts}. Cached."""
    from scipy.signal import fftconvolve

    from bespoke.synth import Renderer

    a, b = Path(synth_soundfont).resolve(), Path(tool_soundfont).resolve()
    cache = CACHE / f"timbre-{spec_key(a.name, a.stat().st_size, b.name, b.stat().st_size)}.json"
    known = {int(k): v for k, v in json.loads(cache.read_text()).items()} if cache.exists() else {}
    todo = [int(p) for p in programs if int(p) not in known]
    if todo:
        with Renderer(sr=sr, soundfont=a) as ra, Renderer(sr=sr, soundfont=b) as rb:
            for p in todo:
                x = ra.render([_note(p)], duration=1.5).astype(np.float64)
                y = rb.render([_note(p)], duration=1.5).astype(np.float64)
                den = np.sqrt(np.dot(x, x) * np.dot(y, y))
                xc = fftconvolve(x, y[::-1], mode="full")
                known[p] = float(np.max(np.abs(xc)) / den) if den > 0 else 0.0
        CACHE.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known))
    return {int(p): round(known[int(p)], 3) for p in programs}
