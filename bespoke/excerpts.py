"""Excerpts of a long song: what the network trains on when the song is longer than
TrainSettings.max_song_s (the renderings and training signals then cost memory and time for
those minutes only)."""
from __future__ import annotations

from typing import Optional

import numpy as np


class Excerpts:
    """Where a long song's training material comes from: ``spans`` ``(n, 2)`` sample ranges of
    the song, put end to end on a shorter timeline. The network only ever sees short crops, so
    a few minutes of the song (spread over all of it) train it as well as the whole, and the
    renderings and other training signals then cost memory and time for those minutes only.
    ``None`` spans: the whole song (nothing cut)."""

    def __init__(self, spans: Optional[np.ndarray], sr: int):
        self.spans, self.sr = spans, sr

    @classmethod
    def choose(cls, n_samples: int, sr: int, target_notes: np.ndarray, max_s: float, excerpt_s: float,
               rng: np.random.Generator) -> "Excerpts":
        """All of a song up to ``max_s`` seconds long; beyond, ``ceil(max_s / excerpt_s)``
        excerpts of ``excerpt_s``, one in each equal stretch of the song, centred on a random
        note onset of the target there when it has one (else anywhere in the stretch)."""
        if max_s <= 0 or n_samples <= max_s * sr:
            return cls(None, sr)
        n = int(np.ceil(max_s / excerpt_s))
        L = int(round(excerpt_s * sr))
        edges = np.linspace(0, n_samples, n + 1).astype(int)
        onsets = (target_notes[:, 0] * sr).astype(int) if len(target_notes) else np.zeros(0, int)
        spans = []
        for a, b in zip(edges[:-1], edges[1:]):
            inside = onsets[(onsets >= a) & (onsets < b)]
            c = int(rng.choice(inside)) if len(inside) else int(rng.integers(a, max(b, a + 1)))
            s0 = int(np.clip(c - L // 2, a, max(b - L, a)))
            spans.append((s0, min(s0 + L, b)))
        return cls(np.array(spans, dtype=np.int64), sr)

    @property
    def whole(self) -> bool:
        return self.spans is None

    def cut(self, x: np.ndarray) -> np.ndarray:
        """A signal ``(n_samples,)`` on the song's timeline -> the excerpts end to end."""
        if self.whole:
            return x
        return np.concatenate([x[a:b] for a, b in self.spans])

    def _pieces(self):
        off = 0
        for a, b in self.spans:
            yield a / self.sr, b / self.sr, off / self.sr
            off += b - a

    def notes(self, notes: np.ndarray) -> np.ndarray:
        """Notes ``(n, 4)`` (song seconds) -> the notes sounding in the excerpts, on their timeline
        (a note crossing an excerpt's edge is cut there)."""
        if self.whole or len(notes) == 0:
            return notes
        out = []
        for a, b, off in self._pieces():
            sel = notes[(notes[:, 1] > a) & (notes[:, 0] < b)].copy()
            sel[:, 0] = np.clip(sel[:, 0], a, b) - a + off
            sel[:, 1] = np.clip(sel[:, 1], a, b) - a + off
            out.append(sel)
        out = np.concatenate(out)
        return out[out[:, 1] > out[:, 0]]

    def instrument(self, inst):
        """A pretty_midi Instrument -> a copy on the excerpts' timeline (notes as in ``notes``;
        control changes and pitch bends inside the excerpts)."""
        if self.whole:
            return inst
        import pretty_midi

        new = pretty_midi.Instrument(program=inst.program, is_drum=inst.is_drum, name=inst.name)
        for a, b, off in self._pieces():
            for n in inst.notes:
                if n.end > a and n.start < b:
                    s_, e_ = min(max(n.start, a), b) - a + off, min(max(n.end, a), b) - a + off
                    if e_ > s_:
                        new.notes.append(pretty_midi.Note(n.velocity, n.pitch, s_, e_))
            new.control_changes += [pretty_midi.ControlChange(c.number, c.value, c.time - a + off)
                                    for c in inst.control_changes if a <= c.time < b]
            new.pitch_bends += [pretty_midi.PitchBend(p.pitch, p.time - a + off)
                                for p in inst.pitch_bends if a <= p.time < b]
        return new
