"""Where the stages meet: audio + MIDI -> load -> align -> nmf -> synth -> train -> separate
-> stem. Each stage (bespoke.stages) is a typed unit; ``run`` is the loop over them, and it
alone owns timing, progress bars and memory release. A RunState holds the values between
stages; saved, a run can go on from it, or re-run one stage with other settings::

    state = run(audio, pm, 0, settings, until="nmf")        # stop after the NMF
    state.save("song.bespoke")
    result = run(audio, pm, 0, settings, state=RunState.load("song.bespoke"))
"""
from __future__ import annotations

import contextlib
import logging
import pickle
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import midi as midimod
from .audio import Audio
from .config import Settings
from .stages import Context, Score
from .stages.align import align as _align
from .stages.load import load as _load
from .stages.nmf import nmf as _nmf
from .stages.separate import separate as _separate
from .stages.synth import synth as _synth
from .stages.train import train as _train

log = logging.getLogger("bespoke")


class Progress:
    """Progress reporting for the stages: tqdm bars on stderr, or nothing when quiet.

    ``with progress.stage("train", total=1.0) as update: update(fraction)``.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled

    @contextlib.contextmanager
    def stage(self, name: str, total: float = 1.0, unit: str = ""):
        if not self.enabled:
            yield lambda value, **kw: None
            return
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"{name:<9}", unit=unit, leave=True, dynamic_ncols=True,
                   bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}")
        state = {"v": 0.0}

        def update(value: float, **postfix):
            value = min(value, total)
            if value > state["v"]:
                bar.update(value - state["v"])
                state["v"] = value
            if postfix:
                bar.set_postfix(postfix, refresh=False)

        try:
            yield update
            update(total)
        finally:
            bar.close()


@dataclass
class Result:
    """What a separation hands back. Audio arrays are ``(n_channels, n_samples)`` at ``sr``.

    With several targets (``api.separate(targets=...)``), ``stems`` holds every requested part's
    stem by part index and ``names`` their file-safe names; ``stem`` is the first's, and
    ``residual`` is the mixture less them all (what no requested part explains): the stems and
    the residual add up to the mixture."""

    stem: np.ndarray
    residual: np.ndarray
    sr: int
    aligned_midi: object                     # pretty_midi.PrettyMIDI, every part, audio time
    target_index: int
    alignment: Optional[object] = None       # align.Alignment
    train: Optional[object] = None           # train.TrainResult
    timings: Dict[str, float] = field(default_factory=dict)
    settings: Optional[Settings] = None
    model: Optional[object] = None
    # with keep_model: "net" (on settings.grid) and "nmf" (on stages.nmf.nmf_setup's grid), each (n_log, n_frames);
    # "others": {part index: NMF mask} of the other parts when the spatial filter uses them (stereo input)
    masks: Optional[Dict[str, np.ndarray]] = None
    warnings: List[str] = field(default_factory=list)
    input_subtype: Optional[str] = None
    stems: Dict[int, np.ndarray] = field(default_factory=dict)
    names: Dict[int, str] = field(default_factory=dict)
    n_parts: int = 0                         # the MIDI's parts, as given

    def save(self, path, subtype=None, fmt=None) -> dict:
        from .audio import save_audio

        return save_audio(path, self.stem, self.sr, subtype=subtype, fmt=fmt, like=self.input_subtype)

    def save_residual(self, path, subtype=None, fmt=None) -> dict:
        from .audio import save_audio

        return save_audio(path, self.residual, self.sr, subtype=subtype, fmt=fmt, like=self.input_subtype)

    def save_aligned_midi(self, path) -> None:
        midimod.save_midi(self.aligned_midi, path)

    def stem_paths(self, template: str) -> Dict[object, str]:
        """Where save_stems(template) writes: {part index: path, "residual": path}."""
        from .stems import stem_paths

        return stem_paths(template, self.names, self.n_parts or len(self.aligned_midi.instruments))

    def save_stems(self, template: str, subtype=None, fmt=None, overwrite: bool = False) -> Dict[object, dict]:
        """Write every stem and the residual, all or none (files.atomic_paths): ``template`` names
        them with ``{index}`` and ``{name}`` (e.g. "stems/{index}-{name}.flac"; the residual's name
        is "residual", its index the MIDI's part count). Without ``overwrite`` a file there already
        is an OutputError and nothing is written. The residual file takes up the stems' rounding
        (stems.write_set). Returns the writer's figures by part index and "residual" (path,
        clipped, peak, subtype, format)."""
        from .files import atomic_paths
        from .stems import write_set

        if not self.stems:
            raise ValueError("save_stems: this result holds one stem (separate with targets=... for several)")
        paths = self.stem_paths(template)
        order = ["residual"] + list(self.stems)
        with atomic_paths([paths[k] for k in order], overwrite=overwrite) as tmps:
            info = write_set(self, dict(zip(order, tmps)), subtype=subtype, fmt=fmt)
        return {k: dict(path=paths[k], **v) for k, v in info.items()}


# --------------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class Stage:
    """One step of the loop: ``fn(ctx, *values[inputs]) -> values[outputs]``; ``bar``: a progress bar."""

    name: str
    fn: Callable
    inputs: Tuple[str, ...]
    outputs: Tuple[str, ...]
    bar: bool = True


STAGES: Tuple[Stage, ...] = (
    Stage("load", _load, ("audio",), ("recording",), bar=False),
    Stage("align", _align, ("recording", "score"), ("aligned",)),
    Stage("nmf", _nmf, ("recording", "aligned"), ("first_pass", "estimates")),
    Stage("synth", _synth, ("recording", "aligned", "estimates"), ("material",)),
    Stage("train", _train, ("recording", "aligned", "first_pass", "material"), ("trained",)),
    Stage("separate", _separate, ("recording", "aligned", "first_pass", "trained"), ("separated",)),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
STATE_FORMAT = "bespoke-run-state/1"
RESULT_VALUES = {"audio", "aligned", "trained", "separated"}   # kept to the end for the Result


@dataclass
class RunState:
    """The values between stages (by name: audio, score, recording, aligned, first_pass, estimates,
    material, trained, separated; see bespoke.stages), the stages done and their times."""

    values: Dict[str, object] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    settings: Optional[dict] = None          # the settings of the run that made it (to_dict)

    def done(self, stage: Stage) -> bool:
        return all(name in self.values for name in stage.outputs)

    def forget(self, stage_name: str) -> "RunState":
        """Drop the outputs of ``stage_name`` and of every stage after it, so that ``run`` does them again."""
        if stage_name not in STAGE_NAMES:
            raise ValueError(f"no stage {stage_name!r} (there are: {', '.join(STAGE_NAMES)})")
        for st in STAGES[STAGE_NAMES.index(stage_name):]:
            for name in st.outputs:
                self.values.pop(name, None)
            self.timings.pop(st.name, None)
        return self

    def save(self, path) -> None:
        """Write the state to ``path`` (a pickle: load only files you made). Atomic."""
        import bespoke

        from .audio import atomic_paths

        doc = {"format": STATE_FORMAT, "version": bespoke.__version__, "state": self}
        with atomic_paths([str(path)]) as (tmp,), open(tmp, "wb") as f:
            pickle.dump(doc, f, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def load(cls, path) -> "RunState":
        from .errors import InputError

        try:
            with open(path, "rb") as f:
                doc = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as e:
            raise InputError(f"{path}: not a saved bespoke run ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            raise InputError(f"{path}: not a saved bespoke run ({STATE_FORMAT})")
        return doc["state"]


def release_memory() -> None:
    """Collect garbage and return freed heap memory to the system (glibc's malloc_trim; a no-op
    elsewhere), so that a long song's later stages do not stack on the earlier ones' peak."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _last_use(stages) -> Dict[str, int]:
    """For each value, the index of the last stage that reads it."""
    last: Dict[str, int] = {}
    for k, st in enumerate(stages):
        for name in st.inputs:
            last[name] = k
    return last


def _context(settings: Settings, warn: Callable[[str], None], keep_masks: bool) -> Context:
    import torch

    from .train import resolve_device

    device = resolve_device(settings.device)
    seed = 0 if settings.seed is None else int(settings.seed)
    if settings.seed is not None:
        torch.manual_seed(seed)
    return Context(settings=settings, device=device, seed=seed, warn=warn, keep_masks=keep_masks)


def _run_stage(st: Stage, state: RunState, ctx: Context, progress: "Progress") -> None:
    t = time.perf_counter()
    bar = progress.stage(st.name) if st.bar else contextlib.nullcontext(lambda value, **kw: None)
    with bar as update:
        ctx.update = update
        out = st.fn(ctx, *(state.values[name] for name in st.inputs))
    out = out if isinstance(out, tuple) else (out,)
    state.values.update(zip(st.outputs, out))
    state.timings[st.name] = time.perf_counter() - t


def run(audio: Audio, pm, target_index: int, settings: Settings, progress: Optional["Progress"] = None,
        keep_model: bool = False, on_warning: Optional[Callable[[str], None]] = None,
        state: Optional[RunState] = None, until: Optional[str] = None, keep_values: bool = False,
        targets: Sequence[int] = ()):
    """The whole pipeline on a loaded recording and MIDI (see api.separate for the arguments).
    ``targets``: several parts to separate at once (one alignment, NMF and network; a stem each,
    Result.stems); empty or one part: ``target_index`` alone.

    Returns a Result; with ``until`` (a stage name), the RunState after that stage instead (every
    value kept). ``state``: go on from a saved RunState, doing only the stages whose outputs it
    lacks (RunState.forget re-runs one). Values no later stage reads are dropped as the loop goes
    (memory), unless ``keep_values``."""
    if until is not None and until not in STAGE_NAMES:
        raise ValueError(f"until: no stage {until!r} (there are: {', '.join(STAGE_NAMES)})")
    progress = progress or Progress(False)
    state = state or RunState()
    state.values.setdefault("audio", audio)
    several = tuple(int(i) for i in targets) if len(targets) > 1 else ()
    state.values.setdefault("score", Score(pm, several[0] if several else target_index, several))
    state.settings = settings.to_dict()

    def warn(msg):
        state.warnings.append(msg)
        if on_warning:
            on_warning(msg)

    n_parts = len(state.values["score"].midi.instruments)
    ctx = _context(settings, warn, keep_model)
    last = _last_use(STAGES)
    keep = keep_values or until is not None
    masks = {}
    for k, st in enumerate(STAGES):
        if not state.done(st):
            _run_stage(st, state, ctx, progress)
        if until == st.name:
            return state
        if keep_model and st.name == "nmf":
            masks["nmf"] = state.values["first_pass"].mask
            masks["others"] = dict(state.values["first_pass"].others)   # stereo: the other parts' NMF masks
        drop = [n for n in state.values if last.get(n) == k and n not in RESULT_VALUES]
        if drop and not keep:
            for name in drop:
                del state.values[name]
            release_memory()
    res = _result(state, settings, keep_model, masks)
    res.n_parts = n_parts
    return res


def _result(state: RunState, settings: Settings, keep_model: bool, masks: dict) -> "Result":
    t = time.perf_counter()
    v = state.values
    audio, separated, aligned, trained = v["audio"], v["separated"], v["aligned"], v["trained"]
    if keep_model:
        masks["net"] = separated.net_mask
        masks.setdefault("nmf", v["first_pass"].mask if "first_pass" in v else None)
    stems = dict(separated.stems)
    total = separated.stem if not stems else np.sum(list(stems.values()), axis=0, dtype=np.float64)
    residual = np.subtract(audio.samples, total, dtype=np.float32)
    del total
    timings = dict(state.timings)
    timings["separate"] = timings.get("separate", 0.0) + time.perf_counter() - t
    return Result(stem=separated.stem, residual=residual, sr=audio.sr, aligned_midi=aligned.midi,
                  target_index=aligned.target_index, alignment=aligned.alignment, train=trained.result,
                  timings=timings, settings=settings, model=trained.model if keep_model else None,
                  warnings=list(state.warnings), masks=masks if keep_model else None, input_subtype=audio.subtype,
                  stems=stems, names=_names(aligned.midi, stems))


def as_set(res: Result) -> Result:
    """``res`` with its one stem in ``stems`` too (a set of one: a run with a single target)."""
    if not res.stems:
        res.stems = {res.target_index: res.stem}
        res.names = _names(res.aligned_midi, res.stems)
    return res


def _names(pm, stems: dict) -> Dict[int, str]:
    """Each stem's part name as a file name may hold it (outputs.safe_name)."""
    from .stems import safe_name

    return {i: safe_name(pm.instruments[i].name, pm.instruments[i].program, pm.instruments[i].is_drum) for i in stems}
