"""MIDI: load, list and pick parts, parse GM programs, warp note times, write.

A *part* is one pretty_midi Instrument that holds notes. Times are seconds.
"""
from __future__ import annotations

import copy
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import numpy as np

from .errors import InputError

MIN_NOTE_S = 0.01  # shortest note after warping


@dataclass
class Part:
    index: int
    name: str
    program: int
    is_drum: bool
    n_notes: int
    start: float
    end: float

    @property
    def label(self) -> str:
        kind = "drums" if self.is_drum else f"program {self.program} ({program_name(self.program)})"
        name = f" {self.name!r}" if self.name else ""
        return f"#{self.index}{name}: {kind}, {self.n_notes} notes, {self.start:.1f}-{self.end:.1f} s"


def _pm():
    import pretty_midi

    return pretty_midi


def load_midi(path):
    """Load a MIDI file (type 0 or 1) as pretty_midi.PrettyMIDI with only the parts that hold notes.

    Raises InputError for a missing, unreadable or truncated file, or one with no notes.
    """
    pretty_midi = _pm()
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not a MIDI file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pretty_midi warns about type-0 files and odd meta events
            pm = pretty_midi.PrettyMIDI(str(p))
    except Exception as e:  # mido raises many kinds on broken data
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{p}: not a readable MIDI file ({msg})") from e
    pm.instruments = [inst for inst in pm.instruments if len(inst.notes) > 0]
    for inst in pm.instruments:
        inst.notes = [n for n in inst.notes if n.end > n.start and np.isfinite(n.start) and np.isfinite(n.end)]
        inst.notes.sort(key=lambda n: (n.start, n.pitch))
    pm.instruments = [inst for inst in pm.instruments if inst.notes]
    if not pm.instruments:
        raise InputError(f"{p}: the MIDI file holds no notes")
    return pm


def parts(pm) -> List[Part]:
    """The parts of a loaded MIDI, in file order."""
    out = []
    for i, inst in enumerate(pm.instruments):
        starts = [n.start for n in inst.notes]
        ends = [n.end for n in inst.notes]
        out.append(Part(index=i, name=(inst.name or "").strip(), program=int(inst.program),
                        is_drum=bool(inst.is_drum), n_notes=len(inst.notes),
                        start=float(min(starts)), end=float(max(ends))))
    return out


def program_name(program: int) -> str:
    return _pm().program_to_instrument_name(int(program))


def _norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def parse_program(spec: Union[int, str]) -> int:
    """A GM program from a number (0-127) or a name ("violin", "French Horn", "horn")."""
    if isinstance(spec, (int, np.integer)):
        prog = int(spec)
    elif str(spec).strip().isdigit():
        prog = int(str(spec).strip())
    else:
        want = _norm(str(spec))
        names = [_norm(program_name(i)) for i in range(128)]
        exact = [i for i, n in enumerate(names) if n == want]
        if exact:
            return exact[0]
        partial = [i for i, n in enumerate(names) if want and want in n.split() or (len(want) > 3 and want in n)]
        if not partial:
            raise InputError(f"unknown instrument {spec!r}: give a GM program number 0-127 or a name "
                             f"such as 'violin', 'cello', 'flute', 'acoustic grand piano'")
        return partial[0]
    if not 0 <= prog <= 127:
        raise InputError(f"GM program {prog} is out of range (0-127)")
    return prog


def select_part(pm, target: Optional[Union[int, str]] = None, source: str = "MIDI") -> int:
    """The index of the target part.

    ``target`` None: the only part (an error if there are several).
    An integer or "#2" / "2": that index. Otherwise a track name (case-insensitive), "drums",
    "program:40", or a GM instrument name matched against the parts' programs.
    """
    ps = parts(pm)
    listing = "; ".join(p.label for p in ps)
    if target is None or str(target).strip() == "":
        if len(ps) == 1:
            return 0
        raise InputError(f"{source} has {len(ps)} parts; choose one with --target (index, name or "
                         f"instrument): {listing}")
    spec = str(target).strip()
    m = re.fullmatch(r"#?(\d+)", spec)
    if m:
        i = int(m.group(1))
        if i < len(ps):
            return i
        raise InputError(f"--target {spec}: {source} has parts #0-#{len(ps) - 1}: {listing}")
    named = [p.index for p in ps if p.name and _norm(p.name) == _norm(spec)]
    if len(named) == 1:
        return named[0]
    if _norm(spec) in ("drums", "drum", "percussion"):
        drums = [p.index for p in ps if p.is_drum]
        if len(drums) == 1:
            return drums[0]
    m = re.fullmatch(r"(?:program|prog|p)[:=](\d+)", spec, flags=re.I)
    if m:
        progs = [p.index for p in ps if not p.is_drum and p.program == int(m.group(1))]
    else:
        try:
            prog = parse_program(spec)
        except InputError:
            prog = None
        progs = [p.index for p in ps if not p.is_drum and p.program == prog] if prog is not None else []
        if not progs:  # partial track-name match ("vln" in "Violin I")
            progs = [p.index for p in ps if p.name and _norm(spec) in _norm(p.name)]
    if len(progs) == 1:
        return progs[0]
    if len(progs) > 1:
        raise InputError(f"--target {spec!r} matches {len(progs)} parts; pick one by index: "
                         + "; ".join(ps[i].label for i in progs))
    raise InputError(f"--target {spec!r} names no part of {source}: {listing}")


def notes_array(inst_or_notes) -> np.ndarray:
    """Notes as an array ``(n_notes, 4)``: start, end, pitch, velocity."""
    notes = getattr(inst_or_notes, "notes", inst_or_notes)
    if len(notes) == 0:
        return np.zeros((0, 4), dtype=np.float64)
    return np.array([[n.start, n.end, n.pitch, n.velocity] for n in notes], dtype=np.float64)


def end_time(pm) -> float:
    return float(max(n.end for inst in pm.instruments for n in inst.notes))


def warp(pm, time_map: Callable[[np.ndarray], np.ndarray]):
    """A copy of ``pm`` with every note, pitch bend and control change moved by ``time_map``
    (a monotonic function of seconds). Every note is kept; none is shorter than 10 ms.

    The copy has a plain 120 bpm tempo map: the warped times are what counts.
    """
    pretty_midi = _pm()
    out = pretty_midi.PrettyMIDI(resolution=960, initial_tempo=120.0)
    for inst in pm.instruments:
        new = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum, name=inst.name)
        if inst.notes:
            arr = notes_array(inst)
            s = np.asarray(time_map(arr[:, 0]), dtype=np.float64)
            e = np.asarray(time_map(arr[:, 1]), dtype=np.float64)
            s = np.maximum(s, 0.0)
            e = np.maximum(e, s + MIN_NOTE_S)
            for n, s_, e_ in zip(inst.notes, s, e):
                new.notes.append(pretty_midi.Note(velocity=n.velocity, pitch=n.pitch, start=float(s_), end=float(e_)))
        if inst.pitch_bends:
            t = np.maximum(time_map(np.array([b.time for b in inst.pitch_bends])), 0.0)
            new.pitch_bends = [pretty_midi.PitchBend(b.pitch, float(tt)) for b, tt in zip(inst.pitch_bends, t)]
        if inst.control_changes:
            t = np.maximum(time_map(np.array([c.time for c in inst.control_changes])), 0.0)
            new.control_changes = [pretty_midi.ControlChange(c.number, c.value, float(tt))
                                   for c, tt in zip(inst.control_changes, t)]
        out.instruments.append(new)
    return out


def subset(pm, indices: Sequence[int]):
    """A copy holding only the parts at ``indices``."""
    out = copy.deepcopy(pm)
    out.instruments = [copy.deepcopy(pm.instruments[i]) for i in indices]
    return out


def with_program(pm, program: Optional[int]):
    """A copy with every non-drum part set to ``program`` (None: unchanged)."""
    out = copy.deepcopy(pm)
    if program is not None:
        for inst in out.instruments:
            if not inst.is_drum:
                inst.program = int(program)
    return out


def save_midi(pm, path) -> None:
    """Write atomically."""
    from .audio import atomic_path
    from .errors import OutputError

    try:
        with atomic_path(path, suffix=".mid") as tmp:
            pm.write(str(tmp))
    except OutputError:
        raise
    except (OSError, ValueError) as e:
        raise OutputError(f"{path}: could not write MIDI ({e})") from e
