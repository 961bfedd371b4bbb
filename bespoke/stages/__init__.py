"""The pipeline's stages, each a typed unit: its inputs and its output are the plain values
below, its settings one section of config.Settings. pipeline.run chains them.

    load      Audio                                 -> Recording    (no settings of its own: grid)
    align     Recording, Score                      -> Aligned      settings.align
    nmf       Recording, Aligned                    -> FirstPass, Estimates   settings.nmf
    synth     Recording, Aligned, Estimates         -> Material     settings.synth, settings.train
    train     Recording, Aligned, FirstPass, Material -> Trained    settings.model, settings.train
    separate  Recording, Aligned, FirstPass, Trained -> Separated   settings.separate

Every stage is ``fn(ctx, *inputs) -> output`` (or a tuple of outputs), with ``ctx`` a
Context (the settings, the device, the seed, a progress callback and a warning sink).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..audio import Audio
from ..config import Settings
from ..spectral import Grid


@dataclass
class Context:
    """What every stage may read besides its inputs."""

    settings: Settings
    device: object = "cpu"                   # a torch.device (train.resolve_device)
    seed: int = 0
    update: Callable[..., None] = lambda value, **postfix: None   # progress, 0..1
    warn: Callable[[str], None] = lambda msg: None
    keep_masks: bool = False                 # keep the network's mask in Separated (reports, plots)


@dataclass
class Score:
    """The MIDI as given (pretty_midi.PrettyMIDI, score time) and the part to separate; with
    several parts separated at once, ``targets`` lists them (target_index is the first)."""

    midi: object
    target_index: int
    targets: Tuple[int, ...] = ()

    @property
    def requested(self) -> Tuple[int, ...]:
        """The parts to separate: ``targets``, or the target alone."""
        return tuple(self.targets) or (self.target_index,)


@dataclass
class Recording:
    """The recording: ``audio`` as loaded, ``(n_channels, n_samples)`` at audio.sr, and what the
    analysis works on: ``mix``, mono float32 ``(n_samples,)`` at ``sr`` (the grid's rate), and its
    tuning in cents from A440."""

    audio: Audio
    mix: np.ndarray
    sr: int
    tuning: float


@dataclass
class Aligned:
    """The MIDI on the recording's timeline (every part, its notes as written) and how it got there.

    programs: each part's GM program (the target's from settings.program when given).
    alignment: align.Alignment, or None when the MIDI came aligned.
    octave_shifts: {part index: semitones} for parts that sound an octave from their notes
    (align/octave.py); the later stages take the parts as they sound (``sounding``).
    targets: the parts separated at once when there are several (Score.targets), else ()."""

    midi: object
    target_index: int
    programs: List[int]
    alignment: Optional[object] = None
    octave_shifts: Dict[int, int] = field(default_factory=dict)
    targets: Tuple[int, ...] = ()
    _sounding: object = field(default=None, repr=False)

    @property
    def several(self) -> bool:
        """Whether several parts are separated at once (one network, one stem each)."""
        return len(self.targets) > 1

    @property
    def sounding(self):
        """The aligned MIDI with the octave_shifts applied (the MIDI itself when there are none)."""
        if not self.octave_shifts:
            return self.midi
        if self._sounding is None:
            import copy

            self._sounding = copy.deepcopy(self.midi)
            for i, k in self.octave_shifts.items():
                for note in self._sounding.instruments[i].notes:
                    note.pitch = int(np.clip(note.pitch + k, 0, 127))
        return self._sounding

    @property
    def target(self):
        return self.sounding.instruments[self.target_index]

    @property
    def others(self) -> list:
        return [inst for i, inst in enumerate(self.sounding.instruments) if i != self.target_index]

    def parts_notes(self) -> List[np.ndarray]:
        """Each part's notes ``(n, 4)`` as they sound: start, end (audio seconds), pitch, velocity."""
        from ..midi import notes_array

        return [notes_array(inst) for inst in self.sounding.instruments]

    def target_notes(self) -> np.ndarray:
        from ..midi import notes_array

        return notes_array(self.target)

    def other_notes(self) -> np.ndarray:
        from ..midi import notes_array

        others = self.others
        return np.concatenate([notes_array(i) for i in others]) if others else np.zeros((0, 4))

    def part_notes(self, index: int) -> np.ndarray:
        """Part ``index``'s notes ``(n, 4)`` as they sound."""
        from ..midi import notes_array

        return notes_array(self.sounding.instruments[index])

    def notes_except(self, index: int) -> np.ndarray:
        """Every other part's notes ``(n, 4)``, as other_notes is for the target."""
        from ..midi import notes_array

        others = [inst for i, inst in enumerate(self.sounding.instruments) if i != index]
        return np.concatenate([notes_array(i) for i in others]) if others else np.zeros((0, 4))


@dataclass
class FirstPass:
    """The score-informed NMF's mask of the target, ``(grid.n_log, n_frames)`` on its own ``grid``,
    whether the score held one part only and whether it has a drum part with notes (both change
    how the masks are pooled: config.SeparateSettings)."""

    mask: np.ndarray
    grid: Grid
    one_part: bool
    drums: bool = False
    part_masks: Dict[int, np.ndarray] = field(default_factory=dict)  # several targets: each one's, by index
    # one target in stereo (SeparateSettings.spatial): the other parts' masks, by index, for the spatial filter
    others: Dict[int, np.ndarray] = field(default_factory=dict)

    def mask_of(self, index: Optional[int] = None) -> np.ndarray:
        """Part ``index``'s mask (None: the target's)."""
        return self.mask if index is None else self.part_masks[index]


@dataclass
class Estimates:
    """The target and the rest as the NMF hears them, each mono ``(n_samples,)`` at Recording.sr;
    with several targets, ``parts`` holds each one as the NMF hears it, by index (its rest is the
    mixture less it)."""

    target: np.ndarray
    rest: np.ndarray
    parts: Dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class Material:
    """What the network trains on: sources of the target and of the rest (data.Source), the
    song (data.Song) on the training timeline, and the excerpts that timeline is made of. With
    several targets, ``parts`` holds each one's Material by index (the network is trained on
    them all, data.PartsTrainingSet), and the fields above are the first target's."""

    song: object
    targets: list
    backgrounds: list
    excerpts: object
    parts: Dict[int, "Material"] = field(default_factory=dict)


@dataclass
class Trained:
    """The trained network (model.MaskNet) and how its training went (train.TrainResult)."""

    model: object
    result: object


@dataclass
class Separated:
    """The stem, ``(n_channels, n_samples)`` at the input's rate, and the network's mask
    ``(grid.n_log, n_frames)`` (kept for reports and plots when asked). With several targets,
    ``stems`` holds each one's stem by index (their masks normalised to sum to at most 1 in
    every bin), and ``stem`` is the first's."""

    stem: np.ndarray
    net_mask: Optional[np.ndarray] = None
    extra: dict = field(default_factory=dict)
    stems: Dict[int, np.ndarray] = field(default_factory=dict)
