"""Settings of the synthesis, augmentation, network, training and separation stages."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class RestSettings:
    """The rest of the recording transcribed when the MIDI holds the target's part alone
    (bespoke.transcribe, in the align stage): the transcriber's notes that the target's aligned
    notes do not explain become one more part, so a one-part run goes on as a whole-score run."""

    enabled: bool = True             # needs basic-pitch and onnxruntime (else: skipped, with a warning)
    frame_threshold: float = 0.3     # a note sounds where the transcriber's note posterior is above this
    onset_threshold: float = 0.5     # ... and a new one starts where its onset posterior peaks above this
    min_note_s: float = 0.12         # shorter notes are dropped
    margin_s: float = 0.1            # a target note, widened this much either side, ...
    cover: float = 0.5               # ... that covers this share of a transcribed note of its pitch explains it
    intervals: Tuple[int, ...] = (0,)  # ... or of its pitch less one of these (12, 19, 24: its overtones)
    program: int = 0                 # the rest's GM program (for the NMF's timbres and the training renderings)


@dataclass(frozen=True)
class SynthSettings:
    """What the target is rendered with (bespoke.synth, pipeline's synth stage)."""

    # Soundfont (.sf2/.sf3). None: $BESPOKE_SOUNDFONT, soundfonts/, Debian's FluidR3_GM, or
    # pretty_midi's TimGM6mb (synth.resolve_soundfont).
    soundfont: Optional[str] = None
    n_programs: int = 3             # GM programs of the target's family used for training timbres
    n_renders: int = 6              # renderings of the target (programs x soundfonts x performances)
    # With several parts separated at once (one network for them all), renderings in all, shared
    # among the parts (at least 2 and at most n_renders each), so the synth stage's time and the
    # training material's memory stay about twice one part's
    n_renders_all: int = 12
    vary: bool = True               # vary each rendering's performance (durations, dynamics, vibrato)
    extra_soundfonts: int = 1       # other installed soundfonts used besides the main one
    detune_spread_cents: float = 8.0  # a varied rendering is detuned by up to +- this from the recording's tuning
    # A varied performance (augment.vary_performance): each note held up to vary_max_hold_s longer
    # (pedal, legato) with probability vary_p_hold, or cut short with vary_p_short; velocities
    # jittered (std vary_velocity_std); a melodic (monophonic) part gets a vibrato with probability
    # vary_p_vibrato, its depth and rate drawn from vibrato_cents and vibrato_hz (pitch bends over
    # +- bend_range semitones).
    vary_p_hold: float = 0.3
    vary_max_hold_s: float = 1.0
    vary_p_short: float = 0.2
    vary_velocity_std: float = 12.0
    vary_p_vibrato: float = 0.5
    vibrato_cents: tuple = (8.0, 30.0)
    vibrato_hz: tuple = (4.5, 6.5)
    bend_range: float = 2.0

    def renders_per_part(self, n_parts: int) -> int:
        """Renderings of each part when ``n_parts`` parts are separated at once (n_renders for one)."""
        if n_parts <= 1:
            return self.n_renders
        return int(min(self.n_renders, max(2, -(-self.n_renders_all // n_parts))))


@dataclass(frozen=True)
class AugmentSettings:
    """How training examples are made from the sources (bespoke.data.TrainingSet)."""

    segment_s: float = 3.0
    p_target_active: float = 0.85      # share of examples centred where the target plays
    target_gain_db: tuple = (-12.0, 6.0)  # target level relative to the background
    p_pitch_shift: float = 0.5
    max_shift: int = 4                 # semitones, for backgrounds
    p_eq: float = 0.7
    eq_db: float = 6.0
    jitter: bool = True                # score noise, so the network tolerates alignment error:
    jitter_global_ms: float = 25.0     #   a common shift within +- this,
    jitter_onset_ms: float = 20.0      #   each onset (Gaussian, std) ...
    jitter_offset_ms: float = 60.0     #   ... and each end
    p_silent_target: float = 0.05       # examples with the template but no target sound
    mix_level_db: tuple = (-12.0, 0.0)  # an example's mixture level: this many dB ...
    mix_rms: float = 0.3                # ... relative to this RMS


@dataclass(frozen=True)
class ModelSettings:
    """The mask network (bespoke.model.MaskNet)."""

    channels: Tuple[int, ...] = (16, 24, 32, 48)
    n_context: int = 2


@dataclass(frozen=True)
class TrainSettings:
    """Training the network (bespoke.train.fit) and what it trains on."""

    budget: float = 60.0            # seconds of training
    steps: Optional[int] = None     # exact number of steps (overrides budget)
    # With a seed and no step count, the budget becomes budget * seeded_rate steps (the default
    # network's pace on 2 CPU cores: 3.3 steps/s measured in the pipeline with bfloat16 on an idle
    # AVX512-BF16 machine; float32, where bfloat16 is not native, about 2.4 by a micro-benchmark)
    # instead of a clock: a seeded run is then repeatable.
    seeded_rate: float = 3.0
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4      # AdamW's
    warmup_steps: int = 20          # the learning rate rises linearly over these first steps
    grad_clip: float = 5.0          # gradient norm clipped to this
    # auto: bfloat16 autocast where the CPU or GPU computes it natively, else float32 (train.py)
    precision: str = "auto"
    # >0: the network ends with a moving average of its weights (this decay per step), not the last
    # step's: TRIOS at 180 steps 7.99 -> 8.07 dB, the same-instrument targets 7.11 -> 7.18
    ema: float = 0.97
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


POOLS = ("product", "logit")


@dataclass(frozen=True)
class SeparateSettings:
    """How the stem's mask is made and applied (bespoke.masks, stages.separate)."""

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
    # Where the score has a drum part the NMF has nothing to model it with (its keys are not
    # pitches; broadband drum templates, tried, soaked up the distorted guitars too) and its mask
    # deserves less of the vote. The bench's 7 band targets, same masks (seed 0, 180 steps):
    # network weight 0.15 / 0.3 / 0.5 / network alone / NMF alone: 2.10 / 2.48 / 2.19 / 0.68 / 0.99 dB
    # (6 of 7 targets gain at 0.3; the flute loses 0.34).
    ensemble_drums: float = 0.3
    # With a single-part MIDI the NMF models the rest with a few free components only and leaks:
    # the network weighs more and either mask may veto a bin (the product). Measured offline on
    # the 13 bench targets given their part alone (make bench-one-part's setting, same masks):
    # product 0.7 against logit 0.25 / 1.5, real 2.13 / 1.84 dB, synthetic 2.72 / 2.28, same
    # instrument 3.51 / 3.01 (logit 0.5 / 1.0: 1.92 / 2.82 / 3.74; product 0.4: 2.12 / 2.29 / 2.98).
    ensemble_one_part: float = 0.7
    ensemble_pool_one_part: str = "product"
    mask_power: float = 1.0
    # Stereo and multichannel input: EM iterations of a multichannel Wiener filter fitted to the
    # recording's stereo image, each source's power its mask's share of each bin (bespoke.spatial);
    # with a full score the rest is the other parts (their NMF masks), each where it sits.
    # 0: the same mask on every channel. Mono input is unchanged either way. bench/STEREO.md,
    # first 5 band targets (seed 0): mono mask / 3 / 5 / 5 with the other parts: 1.87 / 2.70 / 2.71 / 2.83 dB.
    spatial: int = 5
    chunk_s: float = 20.0           # the network's mask is predicted this many seconds at a time ...
    context_s: float = 3.0          # ... with this much context either side
    block_s: float = 30.0           # the mask is applied to the input's STFT this many seconds at a time

    def __post_init__(self):
        for name in ("ensemble_pool", "ensemble_pool_one_part"):
            if getattr(self, name) not in POOLS:
                raise ValueError(f"SeparateSettings.{name}: {getattr(self, name)!r} is not product or logit")
