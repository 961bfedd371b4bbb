"""The rest of the recording, transcribed: when the MIDI holds the target's part alone, a
multi-pitch transcriber (Spotify's Basic Pitch, its ONNX weights shipped inside the basic-pitch
package, run by onnxruntime) turns the mixture into notes, and the notes the target's aligned part
does not explain become one more part, "the rest". A one-part run then goes on as a whole-score run.

Optional: without basic-pitch and onnxruntime installed the run goes on with the MIDI as given
(``available()`` says which; the Makefile installs both).

    post = posteriorgrams(mix, sr)            # Posteriorgrams: note / onset (n_frames, 88), times
    notes = post.notes(settings)              # (n_notes, 4): onset s, offset s, pitch, velocity
    rest = rest_notes(notes, target_notes, settings)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

SR = 22050                 # Basic Pitch's sample rate
HOP = 256                  # its frame hop
WINDOW = 2 * SR - HOP      # samples per model window (43844)
OVERLAP_FRAMES = 30        # frames dropped between windows, half from each side, as basic_pitch.inference does
LOWEST_PITCH = 21          # its 88 note bins start at A0


def _model_path() -> Optional[str]:
    try:
        import importlib.util

        spec = importlib.util.find_spec("basic_pitch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "saved_models", "icassp_2022", "nmp.onnx")
    return path if os.path.isfile(path) else None


def available() -> bool:
    """Whether the transcriber can run (basic-pitch's weights and onnxruntime are installed)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return _model_path() is not None


_SESSION = {}


def _session():
    import onnxruntime as ort

    path = _model_path()
    if path is None:
        raise ImportError("the transcriber needs basic-pitch's weights: pip install --no-deps basic-pitch")
    if path not in _SESSION:
        import torch

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # the run's thread budget (torch's, from --threads or OMP_NUM_THREADS), and no threads left
        # spinning after each call (onnxruntime's default), which would take CPU from the rest
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        _SESSION.clear()
        _SESSION[path] = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    return _SESSION[path]


@dataclass
class Posteriorgrams:
    """Basic Pitch's output: ``note`` and ``onset`` posteriors ``(n_frames, 88)`` (A0 upwards),
    each frame at ``times`` seconds ``(n_frames,)``."""

    note: np.ndarray
    onset: np.ndarray
    times: np.ndarray

    def notes(self, frame_threshold: float = 0.3, onset_threshold: float = 0.5, min_note_s: float = 0.12):
        """The notes: per pitch, each run of frames above ``frame_threshold``, split where the onset
        posterior peaks above ``onset_threshold``, kept when at least ``min_note_s`` long.
        Returns ``(n_notes, 4)``: onset s, offset s, MIDI pitch, velocity (1..127)."""
        out = []
        hop = float(np.median(np.diff(self.times))) if len(self.times) > 1 else HOP / SR
        for k in range(self.note.shape[1]):
            active = self.note[:, k] > frame_threshold
            if not active.any():
                continue
            o = self.onset[:, k]
            peak = (o > onset_threshold) & (o >= np.roll(o, 1)) & (o >= np.roll(o, -1))
            start = None
            for t in range(len(active) + 1):
                on = t < len(active) and active[t]
                split = on and start is not None and peak[t] and t - start >= 2
                if start is not None and (not on or split):
                    if self.times[t - 1] + hop - self.times[start] >= min_note_s:
                        vel = float(np.clip(np.mean(self.note[start:t, k]) * 127, 1, 127))
                        out.append((self.times[start], self.times[t - 1] + hop, k + LOWEST_PITCH, vel))
                    start = None
                if on and start is None:
                    start = t
        arr = np.array(out, dtype=np.float64).reshape(-1, 4)
        return arr[np.argsort(arr[:, 0], kind="stable")] if len(arr) else arr


def posteriorgrams(mix: np.ndarray, sr: int, batch: int = 8) -> Posteriorgrams:
    """Run the transcriber on ``mix`` (mono ``(n_samples,)`` at ``sr``)."""
    import librosa

    x = mix.astype(np.float32)
    if sr != SR:
        x = librosa.resample(x, orig_sr=sr, target_sr=SR, res_type="soxr_hq")
    n = len(x)
    overlap = OVERLAP_FRAMES * HOP
    hop = WINDOW - overlap
    padded = np.concatenate([np.zeros(overlap // 2, np.float32), x])
    starts = list(range(0, len(padded), hop))
    sess = _session()
    notes, onsets = [], []
    for b in range(0, len(starts), batch):
        wins = np.zeros((len(starts[b:b + batch]), WINDOW, 1), np.float32)
        for j, s in enumerate(starts[b:b + batch]):
            w = padded[s:s + WINDOW]
            wins[j, :len(w), 0] = w
        note, onset = sess.run(["StatefulPartitionedCall:1", "StatefulPartitionedCall:2"],
                               {"serving_default_input_2:0": wins})
        notes.append(note)
        onsets.append(onset)
    h = OVERLAP_FRAMES // 2
    note = np.concatenate(notes)[:, h:-h]
    onset = np.concatenate(onsets)[:, h:-h]
    per = note.shape[1]
    # frame j of window w (after the trim) sits at (w * hop + (j + h) * HOP - overlap / 2) samples
    # of the unpadded audio, i.e. (w * hop + j * HOP) / SR seconds
    times = ((np.arange(len(starts))[:, None] * hop + np.arange(per)[None] * HOP) / SR).reshape(-1)
    keep = times < n / SR
    return Posteriorgrams(note=note.reshape(-1, 88)[keep], onset=onset.reshape(-1, 88)[keep], times=times[keep])


def rest_notes(notes: np.ndarray, target: np.ndarray, margin_s: float = 0.1, cover: float = 0.5,
               intervals=(0,)) -> np.ndarray:
    """The transcribed ``notes`` ``(n, 4)`` that the ``target``'s notes ``(m, 4+)`` (onset, offset,
    pitch, ...) do not explain: a note goes when target notes at its pitch less one of ``intervals``
    semitones (0: its own pitch; 12, 19, 24: the target's overtones heard as notes), widened by
    ``margin_s`` either side, cover at least ``cover`` of it."""
    if not len(notes) or not len(target):
        return notes
    keep = np.ones(len(notes), bool)
    for i, (on, off, p, _) in enumerate(notes):
        same = target[np.isin(p - target[:, 2], intervals)]
        if not len(same):
            continue
        lo = np.maximum(same[:, 0] - margin_s, on)
        hi = np.minimum(same[:, 1] + margin_s, off)
        covered = np.clip(hi - lo, 0, None).sum()
        keep[i] = covered < cover * (off - on)
    return notes[keep]
