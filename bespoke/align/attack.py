"""The instruments' attack lag: how late the aligner hears a note start behind its note-on, per
GM program (ATTACK_LAG_MS, attack_lag); align_pm places note-ons that much before the onsets."""
from __future__ import annotations

# How late the aligner hears a note start behind its note-on, per GM program, as the default
# soundfont (FluidR3_GM) renders it: the time the instrument takes to speak (bowed strings and
# flutes: tens of ms; piano, plucked, percussive: none). Measured with bench/attack_lag.py.
ATTACK_LAG_MS = (
    -10, -10, -15, -15, -15, -15, -10, -20, -10, -5, -10, -10, -20, -25, -15, -15,
    -10, 0, -10, 25, 10, 10, 10, 10, -10, -5, -10, -5, -25, 15, 0, -5,
    -10, -5, 0, 0, -20, -15, -20, -15, 30, 30, 40, 20, 80, -15, -20, -20,
    45, 30, 25, 35, 30, 15, 35, -10, -5, 25, 10, 0, 10, 10, -15, -5,
    5, 5, 5, 0, 5, 5, 10, 5, 50, 30, 10, 15, 40, 45, 20, 0,
    -15, -5, -5, -10, -15, 20, -10, -15, -5, 80, 10, 25, 25, 15, 10, 15,
    -5, 5, -10, 10, 0, 5, 35, 45, -15, -20, -10, -20, -20, 5, 20, 0,
    -20, -20, -20, -20, -20, -20, -20, -20, 0, 0, 0, 0, 0, 0, 0, 0,
)


def attack_lag(program: int, is_drum: bool = False) -> float:
    """Seconds a note of GM ``program`` takes to be heard after its note-on (ATTACK_LAG_MS)."""
    if is_drum:
        return 0.0
    return ATTACK_LAG_MS[int(program) % 128] / 1000.0
