"""The one settings tree: every setting bespoke has, with its default, and nothing elsewhere.

    Settings
    ├── grid      spectral.Grid       the network's time-frequency grid (spectral)
    ├── align     AlignSettings       alignment: refusal rules and the aligner's knobs (align/)
    ├── nmf       NMFSettings         the first pass, score-informed NMF (nmf)
    ├── synth     SynthSettings       renderings of the target (synth)
    ├── augment   AugmentSettings     how training examples are made (data)
    ├── model     ModelSettings       the mask network (model)
    ├── train     TrainSettings       training (train)
    ├── separate  SeparateSettings    the stem's mask (separate)
    └── program, device, seed         the run: the target's GM program, where to compute, the seed

Every section is a frozen dataclass: change a setting with ``override`` (or
``dataclasses.replace``), which returns a new tree and leaves the one it was given alone::

    s = override(Settings(), {"train": {"steps": 30}, "seed": 0})
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Optional

from ..spectral import Grid
from .align import AlignSettings
from .nmf import NMFSettings
from .stages import AugmentSettings, ModelSettings, RestSettings, SeparateSettings, SynthSettings, TrainSettings

__all__ = ["Settings", "AlignSettings", "RestSettings", "NMFSettings", "SynthSettings", "AugmentSettings",
           "ModelSettings", "TrainSettings", "SeparateSettings", "Grid", "override", "from_dict"]


@dataclass(frozen=True)
class Settings:
    grid: Grid = field(default_factory=Grid)
    align: AlignSettings = field(default_factory=AlignSettings)
    rest: RestSettings = field(default_factory=RestSettings)
    nmf: NMFSettings = field(default_factory=NMFSettings)
    synth: SynthSettings = field(default_factory=SynthSettings)
    augment: AugmentSettings = field(default_factory=AugmentSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    separate: SeparateSettings = field(default_factory=SeparateSettings)
    program: Optional[int] = None   # GM program of the target (None: the MIDI's)
    device: str = "auto"            # auto (CUDA when present), cpu, cuda, cuda:N
    seed: Optional[int] = None      # None: train on the clock; a number: a repeatable run

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, overrides: Optional[Mapping[str, Any]] = None, **fields) -> "Settings":
        """A copy with ``overrides`` (nested, as in ``override``) and top-level ``fields`` changed."""
        return override(self, {**(overrides or {}), **fields})


def override(obj, overrides: Mapping[str, Any], where: str = "settings"):
    """A copy of the frozen dataclass ``obj`` with fields replaced from a nested mapping, e.g.
    ``{"train": {"lr": 1e-3}, "separate": {"mask_power": 2}}``. A list is taken for a tuple field.
    An unknown name raises ValueError naming the fields there are."""
    names = {f.name for f in dataclasses.fields(obj)}
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            raise ValueError(f"{where} has no field {key!r} (it has: {', '.join(sorted(names))})")
        current = getattr(obj, key)
        if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
            value = override(current, value, f"{where}.{key}")
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        changes[key] = value
    return dataclasses.replace(obj, **changes)


def from_dict(d: Mapping[str, Any]) -> Settings:
    """The Settings a ``to_dict`` (a report's "settings") describes; missing fields keep their defaults."""
    return override(Settings(), d)
