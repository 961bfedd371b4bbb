"""Pictures of a run (``--plot out.png``), drawn with matplotlib (the ``[plot]`` extra).

Each panel is a function that draws into a given matplotlib Axes, so figures can combine
them: ``draw_alignment`` (the DTW cost matrix and path), ``draw_spectrogram`` (a
semitone-spaced spectrogram with notes drawn over it), ``draw_loss`` (the training loss).
``separation_figure`` puts them together for ``bespoke separate --plot``.

matplotlib is imported inside the functions, without pyplot, so nothing here touches a display.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from .errors import DependencyError, OutputError

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
PITCH_RANGE = (24, 108)  # C1..C8


def require_matplotlib():
    """matplotlib, or a DependencyError saying how to install it."""
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401  (fails early on a broken install)
    except ImportError as e:
        raise DependencyError(f"«plot» needs matplotlib, which is not installed ({e}): "
                              "pip install 'bespoke[plot]' (or pip install matplotlib)") from None
    return matplotlib


def check_figure_path(path) -> None:
    if Path(path).suffix.lower() not in FIGURE_SUFFIXES:
        raise OutputError(f"{path}: a picture is written as {', '.join(FIGURE_SUFFIXES)}")


def pitch_spectrogram(y: np.ndarray, sr: int, hop_s: float = 0.02,
                      pitches: Tuple[int, int] = PITCH_RANGE) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A spectrogram in dB with one row per semitone: spectral.log_magnitude on a semitone grid
    (bins at ``spectral.midi_to_hz`` of each pitch, about 10 Hz per linear bin).

    y: ``(n_samples,)`` or ``(n_channels, n_samples)`` (channels averaged).
    Returns (S_db ``(n_pitches, n_frames)``, frame times ``(n_frames,)`` in s, MIDI pitches ``(n_pitches,)``).
    Pitches at or above the Nyquist frequency get empty rows.
    """
    from .audio import resample, to_mono
    from .spectral import Grid, log_magnitude, midi_to_hz

    y = to_mono(y)
    if sr > 22050:
        y, sr = resample(y, sr, 22050), 22050
    midi = np.arange(pitches[0], pitches[1] + 1)
    grid = Grid(sr=int(sr), n_fft=int(2 ** np.ceil(np.log2(sr / 10.0))), hop=max(int(hop_s * sr), 1),
                fmin=float(midi_to_hz(midi[0])), bins_per_octave=12)
    M = log_magnitude(np.asarray(y, dtype=np.float32), grid)       # (n_log, n_frames)
    S = np.zeros((len(midi), M.shape[1]), dtype=np.float32)         # (n_pitches, n_frames)
    k = min(len(midi), M.shape[0])
    S[:k] = M[:k]
    S_db = 10.0 * np.log10(S.astype(np.float64) ** 2 + 1e-12)
    return S_db.astype(np.float32), grid.frame_times(M.shape[1]), midi


def _note_boxes(notes: np.ndarray, color, alpha: float, lw: float):
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    boxes = [Rectangle((s, p - 0.5), max(e - s, 1e-3), 1.0) for s, e, p in np.asarray(notes)[:, :3]]
    return PatchCollection(boxes, facecolor="none", edgecolor=color, alpha=alpha, linewidth=lw)


def draw_spectrogram(ax, y: np.ndarray, sr: int, notes: Optional[np.ndarray] = None,
                     other_notes: Optional[np.ndarray] = None, title: str = "", range_db: float = 80.0,
                     top_db: Optional[float] = None) -> float:
    """A semitone spectrogram of ``y`` with ``notes`` ``(n, >=3)`` (start, end, pitch) drawn as
    cyan boxes and ``other_notes`` as faint white ones. The colour scale spans ``range_db``
    below ``top_db`` (default: the loudest cell); returns the top used, so that a second
    spectrogram can share the scale."""
    S, t, midi = pitch_spectrogram(y, sr)
    top = float(S.max()) if top_db is None else float(top_db)
    end = float(t[-1]) if len(t) else 0.0
    ax.imshow(S, origin="lower", aspect="auto", cmap="magma", vmin=top - range_db, vmax=top,
              extent=[0.0, max(end, 1e-3), midi[0] - 0.5, midi[-1] + 0.5], interpolation="nearest")
    if other_notes is not None and len(other_notes):
        ax.add_collection(_note_boxes(other_notes, "white", 0.6, 0.6))
    if notes is not None and len(notes):
        ax.add_collection(_note_boxes(notes, "cyan", 0.9, 0.8))
    octaves = [p for p in midi if p % 12 == 0]
    ax.set_yticks(octaves)
    ax.set_yticklabels([f"C{p // 12 - 1}" for p in octaves])
    ax.set_ylim(midi[0] - 0.5, midi[-1] + 0.5)
    ax.set_xlim(0.0, max(end, 1e-3))
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title, fontsize=10, loc="left")
    return top


def draw_alignment(ax, alignment, max_pixels: int = 1200) -> None:
    """The alignment: the global DTW's cost matrix (when kept) with its path, and the fine path
    and time map over it; x recording seconds, y score seconds."""
    C = alignment.cost
    ext = alignment.cost_extent
    if C is not None and ext is not None:
        s0, s1, a0, a1 = ext
        sq = max(1, int(np.ceil(C.shape[0] / max_pixels)))
        sa = max(1, int(np.ceil(C.shape[1] / max_pixels)))
        lo, hi = np.percentile(C, [2, 98]) if C.size else (0.0, 1.0)
        ax.imshow(C[::sq, ::sa], origin="lower", aspect="auto", cmap="viridis_r", interpolation="nearest",
                  extent=[a0, a1, s0, s1], vmin=lo, vmax=hi)
    if alignment.coarse_path is not None and len(alignment.coarse_path):
        cp = np.asarray(alignment.coarse_path)
        ax.plot(cp[:, 1], cp[:, 0], color="orange", linewidth=1.0, label="coarse path")
    path = np.asarray(alignment.path)
    if len(path):
        ax.plot(path[:, 1], path[:, 0], color="red", linewidth=0.8, label="DTW path")
    tm = alignment.time_map
    ax.plot(tm.audio_times, tm.score_times, color="white", linewidth=0.6, linestyle="--", label="time map")
    if C is not None and ext is not None:
        ax.set_xlim(ext[2], ext[3])
        ax.set_ylim(ext[0], ext[1])
    ax.set_xlabel("recording (s)")
    ax.set_ylabel("score (s)")
    ax.set_title(f"alignment: confidence {alignment.confidence:.2f}"
                 + ("" if C is not None else " (cost matrix not kept)"), fontsize=10, loc="left")
    ax.legend(loc="upper left", fontsize=8, framealpha=0.6)


def alignment_figure(alignment, aligned_pm, mix: np.ndarray, sr: int, target_index: Optional[int] = None,
                     title: str = ""):
    """The figure for ``bespoke align --plot``: the cost matrix with the path, then the aligned
    notes over the recording's spectrogram (the target's cyan, the other parts' white; with no
    target, every part cyan).

    mix: the recording ``(n_samples,)`` or ``(n_channels, n_samples)`` at ``sr``.
    Returns a matplotlib Figure."""
    require_matplotlib()
    from matplotlib.figure import Figure

    from . import midi as midimod

    insts = [inst for inst in aligned_pm.instruments if inst.notes]
    if target_index is None or len(aligned_pm.instruments) == 1:
        target = np.concatenate([midimod.notes_array(i) for i in insts]) if insts else np.zeros((0, 4))
        others = np.zeros((0, 4))
    else:
        target = midimod.notes_array(aligned_pm.instruments[target_index])
        rest = [midimod.notes_array(inst) for i, inst in enumerate(aligned_pm.instruments)
                if i != target_index and inst.notes]
        others = np.concatenate(rest) if rest else np.zeros((0, 4))
    fig = Figure(figsize=(13, 10), layout="constrained")
    gs = fig.add_gridspec(2, 1, height_ratios=[1.2, 1.0])
    draw_alignment(fig.add_subplot(gs[0]), alignment)
    ax = fig.add_subplot(gs[1])
    draw_spectrogram(ax, mix, sr, target, others,
                     title="the recording, with the aligned notes" +
                     (": target (cyan), other parts (white)" if len(others) else ""))
    ax.set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def draw_loss(ax, train) -> None:
    """The training loss per step (faint) and smoothed."""
    losses = np.asarray(getattr(train, "losses", []) or [], dtype=np.float64)
    if len(losses) == 0:
        ax.text(0.5, 0.5, "no training", ha="center", va="center", transform=ax.transAxes)
        return
    ax.plot(np.arange(1, len(losses) + 1), losses, color="0.7", linewidth=0.6)
    curve = np.asarray(train.curve(50)) if hasattr(train, "curve") else np.zeros((0, 2))
    if len(curve):
        ax.plot(curve[:, 0], curve[:, 1], color="C0", linewidth=1.5)
    if np.all(losses > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title(f"training loss ({len(losses)} steps)", fontsize=10, loc="left")


def separation_figure(result, mix: np.ndarray, title: str = ""):
    """The figure for ``bespoke separate --plot``: alignment and loss on top, then the mixture
    and the estimated stem as spectrograms with the aligned target notes (cyan) and the other
    parts' notes (white) drawn over them.

    result: pipeline.Result. mix: the input recording ``(n_channels, n_samples)`` at ``result.sr``.
    Returns a matplotlib Figure.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    from . import midi as midimod

    insts = result.aligned_midi.instruments
    target = midimod.notes_array(insts[result.target_index])
    others = [midimod.notes_array(inst) for i, inst in enumerate(insts) if i != result.target_index]
    others = np.concatenate(others) if others else np.zeros((0, 4))
    fig = Figure(figsize=(13, 11), layout="constrained")
    gs = fig.add_gridspec(3, 3, height_ratios=[1.1, 1.0, 1.0])
    ax_al = fig.add_subplot(gs[0, :2])
    ax_loss = fig.add_subplot(gs[0, 2])
    ax_mix = fig.add_subplot(gs[1, :])
    ax_est = fig.add_subplot(gs[2, :], sharex=ax_mix, sharey=ax_mix)
    if result.alignment is not None:
        draw_alignment(ax_al, result.alignment)
    else:
        ax_al.text(0.5, 0.5, "alignment skipped (--no-align)", ha="center", va="center", transform=ax_al.transAxes)
        ax_al.set_axis_off()
    draw_loss(ax_loss, result.train)
    top = draw_spectrogram(ax_mix, mix, result.sr, target, others,
                           title="mixture, with the aligned notes: target (cyan), other parts (white)")
    draw_spectrogram(ax_est, result.stem, result.sr, target, None, top_db=top,
                     title="estimated stem (same colour scale), with the aligned target notes")
    ax_est.set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def save_figure(fig, path, dpi: int = 100) -> None:
    """Write a matplotlib Figure atomically; the extension (.png, .pdf, .svg) picks the format."""
    from .files import atomic_path, output_name

    shown = output_name(path)  # a temporary of an enclosing atomic_paths: the output it becomes
    check_figure_path(shown)
    fmt = Path(shown).suffix.lower().lstrip(".")
    try:
        with atomic_path(path) as tmp:
            fig.savefig(str(tmp), format=fmt, dpi=dpi)
    except OutputError:
        raise
    except (OSError, ValueError, RuntimeError) as e:
        raise OutputError(f"{shown}: could not write the picture ({e})") from None
