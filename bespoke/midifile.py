"""MIDI files as they come: the repairs made on a mido.MidiFile before pretty_midi reads it,
and track names (decoded as their bytes meant, and made safe to print)."""
from __future__ import annotations

NAME_CHARS = 60    # track names are cut to this many characters in messages and tables


def decode_name(name) -> str:
    """A track name as its bytes meant it: MIDI text is bytes, which mido reads as latin-1; a name
    that is valid UTF-8 (most of today's files) is decoded as such, any other kept as latin-1."""
    name = str(name or "")
    try:
        return name.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return name


def encode_name(name) -> str:
    """The inverse of decode_name, for writing: the name's UTF-8 bytes as the latin-1 text mido writes."""
    return str(name or "").encode("utf-8").decode("latin-1")


def display_name(name, limit: int = NAME_CHARS) -> str:
    """A track name safe to print: control and other unprintable characters (terminal escape
    codes) shown as ``\\x1b``-style escapes, and cut to ``limit`` characters with '…'."""
    out = []
    for ch in str(name or "").strip():
        if ch.isprintable():
            out.append(ch)
        else:
            o = ord(ch)
            out.append(f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}")
    text = "".join(out)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quoted(name) -> str:
    """``display_name`` in quotes, for messages."""
    return f"'{display_name(name)}'"


def track_name(t: dict) -> str:
    """An entry of ``unplayable_tracks`` as messages name it."""
    return quoted(t["name"]) if t["name"] else f"#{t['track']} (unnamed)"


def fix_tracks(mf) -> dict:
    """Repair the habits of real MIDI files in place, on a mido.MidiFile:

    - tempo changes found on tracks other than the first (a type-1 file must keep them on
      track 0; pretty_midi reads only there) move to track 0, so the tempo map holds;
    - a program change after a track's first note on that channel is dropped, so one track
      stays one part (pretty_midi would split it at every change of instrument).

    Track names are decoded (decode_name). Returns what was done: {"moved_tempos": n,
    "dropped_program_changes": n, "empty_tracks": [names of tracks without notes],
    "unplayable_tracks": [{"track", "name", "n_notes", "reason"} of tracks whose notes all lack a
    length (zero-length, or never switched off), which therefore hold no part]}."""
    report = {"moved_tempos": 0, "dropped_program_changes": 0, "empty_tracks": [], "unplayable_tracks": []}
    abs_tracks = []  # delta -> absolute ticks
    for track in mf.tracks:
        t, events = 0, []
        for msg in track:
            t += msg.time
            events.append([t, msg])
        abs_tracks.append(events)
    if mf.type == 1 and len(abs_tracks) > 1:
        moved = []
        for events in abs_tracks[1:]:
            keep = []
            for ev in events:
                (moved if ev[1].type == "set_tempo" else keep).append(ev)
            events[:] = keep
        if moved:
            report["moved_tempos"] = len(moved)
            abs_tracks[0] = sorted(abs_tracks[0] + moved, key=lambda ev: ev[0])
    for i, events in enumerate(abs_tracks):
        _scan_track(i, events, report, conductor=mf.type == 1 and i == 0)
    # absolute -> delta ticks; end-of-track markers stay last
    for track, events in zip(mf.tracks, abs_tracks):
        track.clear()
        prev = 0
        for t, msg in events:
            track.append(msg.copy(time=max(int(t - prev), 0)))
            prev = max(t, prev)
    return report


def _scan_track(i: int, events: list, report: dict, conductor: bool) -> None:
    """One track's events ([tick, msg], in place): drop program changes inside its parts, note
    its name, and whether its notes have a length (pairing them as pretty_midi will)."""
    sounding, keep, name, has_notes = set(), [], "", False
    held, n_on, played, zero = {}, 0, 0, 0
    for ev in events:
        msg = ev[1]
        if msg.type == "track_name" and not name:
            name = decode_name(msg.name).strip()
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.add(msg.channel)
            has_notes = True
            n_on += 1
            held.setdefault((msg.channel, msg.note), []).append(ev[0])
        elif msg.type in ("note_on", "note_off") and (msg.channel, msg.note) in held:
            starts = held.pop((msg.channel, msg.note))
            ended = [t for t in starts if t != ev[0]]
            same = [t for t in starts if t == ev[0]]
            played += len(ended)
            if ended and same:  # a note-on on this very tick goes on
                held[(msg.channel, msg.note)] = same
            else:
                zero += len(same)
        if msg.type == "program_change" and msg.channel in sounding:
            report["dropped_program_changes"] += 1
            continue
        keep.append(ev)
    events[:] = keep
    if not has_notes and name and not conductor:
        report["empty_tracks"].append(name)
    if n_on and not played:
        report["unplayable_tracks"].append({"track": i, "name": name, "n_notes": n_on,
                                            "reason": _unplayable_reason(n_on, zero)})


def _unplayable_reason(n: int, zero: int) -> str:
    if zero == n:
        return "its only note has zero length" if n == 1 else f"all {n} notes have zero length"
    if zero == 0:
        return "its only note is never switched off" if n == 1 else f"none of its {n} notes is ever switched off"
    return f"none of its {n} notes has a length ({zero} zero-length, {n - zero} never switched off)"
