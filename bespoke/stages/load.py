"""Stage load: the recording as the analysis hears it (mono at the grid's rate, its tuning)."""
from __future__ import annotations

import numpy as np

from ..audio import Audio, resample
from . import Context, Recording


def mono_at(audio: Audio, sr: int) -> np.ndarray:
    """The mixture as mono float32 ``(n_samples,)`` at ``sr``."""
    return resample(audio.mono(), audio.sr, sr)


def load(ctx: Context, audio: Audio) -> Recording:
    """Audio ``(n_channels, n_samples)`` -> Recording. A bad soundfont fails here, before the long work.
    The audio's own warnings (Audio.warnings) are passed on here."""
    from ..spectral import estimate_tuning
    from ..synth import resolve_soundfont

    for warning in getattr(audio, "warnings", ()):  # the input's own (a file that ends early)
        ctx.warn(warning)
    sr = ctx.settings.grid.sr
    mix = mono_at(audio, sr)
    tuning = estimate_tuning(mix, sr)
    resolve_soundfont(ctx.settings.synth.soundfont)
    return Recording(audio=audio, mix=mix, sr=sr, tuning=tuning)
