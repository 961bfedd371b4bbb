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
from .midifile import decode_name, display_name, encode_name, fix_tracks, quoted, track_name

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
        name = f" {quoted(self.name)}" if self.name else ""
        return f"#{self.index}{name}: {kind}, {self.n_notes} notes, {self.start:.1f}-{self.end:.1f} s"


def _pm():
    import pretty_midi

    return pretty_midi


def load_midi(path):
    """Load a Standard MIDI File (type 0 or 1) as pretty_midi.PrettyMIDI, keeping only the
    parts that hold notes (see midifile.fix_tracks for the repairs made on the way).

    The result carries ``bespoke_info``: {"type", "n_tracks", "empty_tracks", ...}.
    Raises InputError for a missing, unreadable, truncated or corrupt file, or one with no notes.
    """
    import io

    import mido

    from .audio import _AUDIO_MAGIC, _check_readable, _first_line

    pretty_midi = _pm()
    p = Path(path)
    _check_readable(p, "a MIDI file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"{p}: cannot read the file ({e.strerror or e})") from None
    if not data:
        raise InputError(f"{p}: the file is empty (0 bytes)")
    if not data.startswith(b"MThd"):
        hint = ""
        if data.startswith(_AUDIO_MAGIC) or data[4:8] == b"ftyp":
            hint = "; it looks like an audio file: give the recording first, then the MIDI"
        raise InputError(f"{p}: not a MIDI file (no MThd header){hint}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # odd meta events, type-0 quirks
            mf = mido.MidiFile(file=io.BytesIO(data))
            if not mf.tracks:
                raise InputError(f"{p}: the MIDI file holds no tracks")
            if mf.ticks_per_beat <= 0:
                raise InputError(f"{p}: the MIDI file uses SMPTE time code, which is not supported; "
                                 "export it with ticks per beat")
            fixes = fix_tracks(mf)
            pm = pretty_midi.PrettyMIDI(mido_object=mf)
    except InputError:
        raise
    except EOFError:
        raise InputError(f"{p}: the MIDI file is truncated (it ends in the middle of a track)") from None
    except MemoryError:
        raise InputError(f"{p}: not enough memory to read the MIDI file; is it corrupt?") from None
    except Exception as e:  # mido and pretty_midi raise many kinds on broken data
        raise InputError(f"{p}: not a readable MIDI file ({_first_line(e)})") from None
    for inst in pm.instruments:
        inst.name = decode_name(inst.name)
        inst.notes = [n for n in inst.notes
                      if np.isfinite(n.start) and np.isfinite(n.end) and n.end > n.start and n.start >= 0]
        inst.notes.sort(key=lambda n: (n.start, n.pitch))
    pm.instruments = [inst for inst in pm.instruments if inst.notes]
    pm.bespoke_info = dict(fixes, type=int(mf.type), n_tracks=len(mf.tracks), resolution=int(mf.ticks_per_beat))
    if not pm.instruments:
        raise _no_notes(p, fixes["unplayable_tracks"])
    return pm


def _no_notes(p: Path, unplayable: list) -> InputError:
    if not unplayable:
        return InputError(f"{p}: the MIDI file holds no notes")
    what = "; ".join(f"track {track_name(t)}: {t['reason']}" for t in unplayable[:5])
    more = f"; and {len(unplayable) - 5} more tracks" if len(unplayable) > 5 else ""
    return InputError(f"{p}: the MIDI file holds no notes with a length, nothing to play ({what}{more})")


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
    listing = _listing(ps)
    if target is None or str(target).strip() == "":
        if len(ps) == 1:
            return 0
        raise InputError(f"{source} has {len(ps)} parts; choose one with «target» (index, name or "
                         f"instrument): {listing}")
    spec = str(target).strip()
    shown = display_name(spec)
    m = re.fullmatch(r"#?(\d+)", spec)
    if m:
        i = int(m.group(1))
        if i < len(ps):
            return i
        raise InputError(f"«target {shown}»: {source} has parts #0-#{len(ps) - 1}: {listing}")
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
        raise InputError(f"«target {shown}» matches {len(progs)} parts; pick one by index: "
                         + _listing([ps[i] for i in progs]))
    info = getattr(pm, "bespoke_info", {})
    empty = [n for n in info.get("empty_tracks", []) if _norm(n) == _norm(spec)]
    if empty:
        raise InputError(f"«target {shown}»: that track of {source} holds no notes; parts with notes: {listing}")
    unplayable = [t for t in info.get("unplayable_tracks", []) if t["name"] and _norm(t["name"]) == _norm(spec)]
    if unplayable:
        t = unplayable[0]
        what = ("holds only zero-length notes" if "zero length" in t["reason"]
                else "holds no notes with a length")
        raise InputError(f"«target {shown}»: that track of {source} {what} ({t['reason']}), so nothing to "
                         f"separate; parts with notes: {listing}")
    raise InputError(f"«target {shown}» names no part of {source}: {listing}")


def _listing(ps: Sequence[Part], most: int = 12) -> str:
    """Parts' labels for a message, at most ``most`` of them."""
    text = "; ".join(p.label for p in ps[:most])
    return text + (f"; and {len(ps) - most} more (see 'bespoke info')" if len(ps) > most else "")


def notes_array(inst_or_notes) -> np.ndarray:
    """Notes as an array ``(n_notes, 4)``: start, end, pitch, velocity."""
    notes = getattr(inst_or_notes, "notes", inst_or_notes)
    if len(notes) == 0:
        return np.zeros((0, 4), dtype=np.float64)
    return np.array([[n.start, n.end, n.pitch, n.velocity] for n in notes], dtype=np.float64)


def end_time(pm) -> float:
    return float(max(n.end for inst in pm.instruments for n in inst.notes))


def score_span(pm) -> tuple:
    """(first onset, last offset) in seconds over every part."""
    return (float(min(n.start for inst in pm.instruments for n in inst.notes)), end_time(pm))


def check_duration(pm, audio_span: tuple, max_ratio: float, source: str = "the MIDI") -> None:
    """An InputError when the score's notes and the recording's sound last more than
    ``max_ratio`` times longer one than the other (0 disables): a MIDI of something else, or
    of a whole album for one track. ``audio_span``: (start, end) seconds holding sound.

    A MIDI of one part is never refused as shorter: a part often plays only a section (a solo, a
    verse), and the alignment's confidence judges it. A score shorter than the recording is
    measured from its time 0 (a part keeps its place in the song), a longer one by its notes (a
    silent lead-in, however long, does not count)."""
    if not max_ratio:
        return
    s0, s1 = score_span(pm)
    a0, a1 = audio_span
    la = max(a1 - a0, 1e-3)
    ls = max(s1 - s0, 1e-3) if s1 - s0 > la else max(min(s1, la), 1e-3)
    pitched = [inst for inst in pm.instruments if inst.notes and not inst.is_drum]
    if ls < la and len(pitched) <= 1:
        return
    ratio = max(ls / la, la / ls)
    if ratio > max_ratio:
        longer = "longer" if ls > la else "shorter"
        raise InputError(f"{source} is {ratio:.1f} times {longer} than the recording (notes span {ls:.1f} s, "
                         f"the recording's sound {la:.1f} s; more than a factor {max_ratio:g} apart): "
                         "is it the MIDI of this piece? («force» separates anyway)")


def select_parts(pm, targets, source: str = "MIDI") -> List[int]:
    """The indices of several target parts: ``targets`` "all" (every part with notes) or a list of
    what select_part takes (repeats dropped, the order kept)."""
    if isinstance(targets, str) and targets.strip().lower() == "all":
        found = [i for i, inst in enumerate(pm.instruments) if inst.notes]
    else:
        found = [select_part(pm, t, source=source) for t in ([targets] if isinstance(targets, (str, int)) else targets)]
    if not found:
        raise InputError(f"{source}: no part to separate (none holds notes)")
    return list(dict.fromkeys(found))


def parts_table(pm) -> str:
    """The parts as an aligned text table (index, name, program, notes, time span)."""
    ps = parts(pm)
    rows = [("#", "name", "program", "notes", "start", "end")]
    for q in ps:
        prog = "drums" if q.is_drum else f"{q.program} {program_name(q.program)}"
        rows.append((str(q.index), display_name(q.name) or "-", prog, str(q.n_notes), f"{q.start:.1f}", f"{q.end:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {0, 3, 4, 5}
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    return "\n".join(lines)


def warp(pm, time_map: Callable[[np.ndarray], np.ndarray], transpose: int = 0):
    """A copy of ``pm`` with every note, pitch bend and control change moved by ``time_map``
    (a monotonic function of seconds), and every pitched note by ``transpose`` semitones (kept
    within 0..127; drum keys stay). Every note is kept; none is shorter than 10 ms.

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
            move = 0 if inst.is_drum else int(transpose)
            for n, s_, e_ in zip(inst.notes, s, e):
                pitch = int(np.clip(n.pitch + move, 0, 127))
                new.notes.append(pretty_midi.Note(velocity=n.velocity, pitch=pitch, start=float(s_), end=float(e_)))
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
    """Write atomically. Track names are written as UTF-8 (load_midi reads them back as such)."""
    from .audio import atomic_path
    from .errors import OutputError

    out = copy.copy(pm)
    out.instruments = []
    for inst in pm.instruments:
        inst = copy.copy(inst)
        inst.name = encode_name(inst.name)  # mido writes latin-1
        out.instruments.append(inst)
    try:
        with atomic_path(path, suffix=".mid") as tmp:
            out.write(str(tmp))
    except OutputError:
        raise
    except (OSError, ValueError) as e:
        raise OutputError(f"{path}: could not write MIDI ({e})") from e


# GM programs whose notes start with a broadband strike or pluck: pianos and chromatic
# percussion (0-15), guitars (24-31), basses (32-39), pizzicato strings, harp, timpani (45-47),
# ethnic plucked (104-108) and percussive (112-119).
_PERCUSSIVE = set(range(0, 16)) | set(range(24, 40)) | {45, 46, 47} | set(range(104, 109)) | set(range(112, 120))


def is_percussive(program: int, is_drum: bool = False) -> bool:
    """Whether a GM program (0-127) is struck or plucked rather than bowed, blown or sung."""
    return bool(is_drum) or int(program) in _PERCUSSIVE


def describe(pm, path) -> tuple:
    """What 'bespoke info' shows of a loaded MIDI: (a JSON-ready summary, the text table)."""
    meta = getattr(pm, "bespoke_info", {})
    _, tempi = pm.get_tempo_changes()
    summary = {"file": str(path), **meta, "seconds": round(end_time(pm), 3),
               "tempi": [round(float(t), 3) for t in tempi], "parts": [vars(q) for q in parts(pm)]}
    if len(tempi) <= 1:
        tempo = f"tempo {float(tempi[0]) if len(tempi) else 120.0:.0f} bpm"
    else:
        tempo = f"tempo {float(min(tempi)):.0f}-{float(max(tempi)):.0f} bpm ({len(tempi)} changes)"
    n = len(pm.instruments)
    lines = [f"{path}: type {meta.get('type', '?')}, {meta.get('n_tracks', '?')} tracks, "
             f"{n} part{'s' if n != 1 else ''} with notes, {end_time(pm):.1f} s, {tempo}", parts_table(pm)]
    if meta.get("empty_tracks"):
        lines.append("tracks without notes: " + ", ".join(quoted(t) for t in meta["empty_tracks"]))
    if meta.get("unplayable_tracks"):
        lines.append("tracks without playable notes: " + "; ".join(
            f"{track_name(t)} ({t['reason']})" for t in meta["unplayable_tracks"]))
    if meta.get("dropped_program_changes"):
        lines.append(f"note: {meta['dropped_program_changes']} program change(s) inside parts ignored "
                     "(each part keeps its first instrument; --program sets the target's)")
    return summary, "\n".join(lines)
