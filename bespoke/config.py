"""Every setting in one place, with its default. The CLI and the API fill a Settings; the
stages read their part of it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Tuple

from .data import Recipe
from .nmf import NMFSettings
from .spectral import Grid


@dataclass
class AlignSettings:
    enabled: bool = True            # False: the MIDI is already aligned to the recording
    # Below min_confidence: an error (unless force); 0 disables the check. Below warn_confidence:
    # a warning. Calibrated with bench/align_eval.py's full case set (right MIDI against another
    # piece's MIDI cut to the same length): right pairs 0.79-1.0, wrong pairs up to 0.45 (a
    # single part of one chorale against another chorale's), most below 0.1.
    min_confidence: float = 0.5
    warn_confidence: float = 0.7
    # The score's notes and the recording's sound may differ in length by at most this factor
    # (else an error unless force; 0 disables): catches a MIDI of another piece before the work.
    max_duration_ratio: float = 3.0
    keep_cost: bool = False         # keep the global DTW cost matrix in the Alignment (for --plot)
    coarse_cells: float = 4e6       # the global DTW's matrix is at most this many cells (memory)
    # Place note-ons before the onsets heard in the recording by the instruments' attack time
    # (align.ATTACK_LAG_MS), so that the aligned MIDI, rendered, sounds in time with the recording.
    compensate_attack: bool = True

    def params(self):
        """The aligner's knobs (align.AlignParams) for these settings."""
        from .align import AlignParams

        return AlignParams(coarse_cells=self.coarse_cells)


@dataclass
class ModelSettings:
    channels: Tuple[int, ...] = (16, 24, 32, 48)
    n_context: int = 2


@dataclass
class TrainSettings:
    budget: float = 60.0            # seconds of training
    steps: Optional[int] = None     # exact number of steps (overrides budget)
    # With a seed and no step count, the budget becomes budget * seeded_rate steps (the default
    # network's pace on 2 CPU cores: 3.3 steps/s measured in the pipeline with bfloat16 on an idle
    # AVX512-BF16 machine; float32, where bfloat16 is not native, about 2.4 by a micro-benchmark)
    # instead of a clock: a seeded run is then repeatable.
    seeded_rate: float = 3.0
    batch_size: int = 8
    lr: float = 2e-3
    # auto: bfloat16 autocast where the CPU or GPU computes it natively, else float32 (train.py)
    precision: str = "auto"
    # >0: the network ends with a moving average of its weights (this decay per step), not the last
    # step's: TRIOS at 180 steps 7.99 -> 8.07 dB, the same-instrument targets 7.11 -> 7.18
    ema: float = 0.97
    n_programs: int = 3             # GM programs of the target's family used for training timbres
    n_renders: int = 6              # renderings of the target (programs x soundfonts x performances)
    vary: bool = True               # vary each rendering's performance (durations, dynamics, vibrato)
    extra_soundfonts: int = 1       # other installed soundfonts used besides the main one
    self_train: float = 0.0         # share of the budget before self-training starts (0: off)
    synth_weight: float = 1.0       # how often training targets are renderings ...
    pseudo_weight: float = 1.0      # ... or the target as first estimated from the recording
    # A song longer than max_song_s seconds trains on excerpts of it (pipeline.Excerpts): one of
    # excerpt_s seconds in each of ceil(max_song_s / excerpt_s) equal stretches, max_song_s in all,
    # so the renderings and training signals of a long recording stay a few minutes long (the
    # network only sees 3-s crops anyway). 0: always the whole song.
    max_song_s: float = 300.0
    excerpt_s: float = 60.0

    def total_steps(self, seeded: bool) -> Optional[int]:
        """The exact number of training steps, or None to train for ``budget`` seconds."""
        if self.steps is not None:
            return int(self.steps)
        if seeded:
            return max(1, int(round(self.budget * self.seeded_rate)))
        return None


@dataclass
class Settings:
    grid: Grid = field(default_factory=lambda: Grid(hop=512, bins_per_octave=24))
    align: AlignSettings = field(default_factory=AlignSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    recipe: Recipe = field(default_factory=Recipe)
    nmf: NMFSettings = field(default_factory=NMFSettings)
    # The stem's mask pools the network's mask (weight ``ensemble``) and the NMF's (1 - ensemble) on
    # the output's STFT bins (1: the network alone, 0: NMF alone). ensemble_pool "logit": a vote in
    # log-odds, sigmoid(sharpness * (w logit(net) + (1 - w) logit(nmf))); "product": the geometric
    # mean net ** w * nmf ** (1 - w) (the default before, at w = 0.4). Measured offline on the
    # bench's 13 targets (same masks, 180 steps): logit 0.25 / 1.5 against product 0.4, real
    # 8.32 / 8.04 dB, synthetic 7.69 / 7.36, same instrument 7.21 / 7.18. Since the NMF's several
    # shapes per sustained pitch (NMFSettings.shapes) it deserves more of the vote: weight 0.15
    # against 0.25 (sharpness 1.5 both), real 8.78 / 8.70, synthetic 8.14 / 7.99, same instrument
    # 7.74 / 7.60 (0.1: 8.69 / 8.16 / 7.75; 0.2: 8.78 / 8.08 / 7.68).
    ensemble: float = 0.15
    ensemble_pool: str = "logit"
    ensemble_sharpness: float = 1.5
    # With a single-part MIDI the NMF models the rest with a few free components only and leaks:
    # the network weighs more and either mask may veto a bin (the product). Measured offline on
    # the 13 bench targets given their part alone (make bench-one-part's setting, same masks):
    # product 0.7 against logit 0.25 / 1.5, real 2.13 / 1.84 dB, synthetic 2.72 / 2.28, same
    # instrument 3.51 / 3.01 (logit 0.5 / 1.0: 1.92 / 2.82 / 3.74; product 0.4: 2.12 / 2.29 / 2.98).
    ensemble_one_part: float = 0.7
    ensemble_pool_one_part: str = "product"
    soundfont: Optional[str] = None
    program: Optional[int] = None   # GM program of the target (None: the MIDI's)
    device: str = "auto"
    seed: Optional[int] = None
    mask_power: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)
