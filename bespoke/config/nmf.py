"""Settings of the first pass (bespoke.nmf, score-informed NMF): templates, iterations, bands.
Figures quoted here were measured with make bench (bench/RESULTS.md) unless said otherwise."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NMFSettings:
    # Multiplicative-update iterations (a full score's; see single_n_iter); the stage's time grows
    # with them (make bench-scale, 60 minutes: 39.6 s at 45, 73 s at 70). NMF alone on the bench's
    # 13 targets, 45 -> 70: real 8.36 -> 8.39 dB, synthetic 8.14 -> 8.16, same instrument 7.91 ->
    # 7.95 (100 or 150: no more).
    n_iter: int = 70
    n_partials: int = 40          # harmonics per pitch template
    # A partial's band: +- this (at least +- one log bin), the room its learned template has.
    # Real playing (vibrato, intonation, a piano's stretched partials) needs a wide band; 80
    # cents on a 36-bin-per-octave grid measured best (bench/RESULTS.md, Ablation).
    partial_cents: float = 80.0
    # bespoke's first pass factorises on a grid of its own, finer than the network's: the
    # network's grid with this many bins per octave (the pipeline combines the two masks on
    # the output's STFT bins). score_nmf itself works on whatever grid it is given. 48 against
    # 36, with the shapes below: NMF alone real +0.09 dB, synthetic +0.18, same instrument +0.11.
    bins_per_octave: int = 48
    # With a single-part MIDI nothing models the other instruments but a few free components,
    # and wide bands let the target's templates soak them up: the pipeline then keeps narrow
    # bands on the network's own grid (measured on TRIOS, true alignment: 3.0 dB mean against
    # 2.8 with the wide setting; brahms violin 7.5 against 5.0).
    single_partial_cents: float = 40.0
    single_bins_per_octave: int = 24
    tol_on: float = 0.08          # s before an aligned onset where a note may already sound (full score)
    tol_off: float = 0.25         # s after its aligned end (release, reverb)
    onset_span: tuple = (0.1, 0.15)  # s before / after an onset where the onset template may act
    # Which parts get the broadband onset templates: "percussive" (the parts score_nmf is told
    # are struck or plucked), "all" (Ewert & Mueller's choice for piano, for every part) or
    # "none". On bowed and blown parts a flat template active at each onset soaks up whatever
    # else sounds then, most of all with a single-part MIDI.
    onsets: str = "percussive"
    n_free: int = 8               # free components for what the MIDI leaves out (single part only)
    # The pipeline starts each template from the partial amplitudes of one note of the part's
    # instrument rendered with the soundfont (score_nmf's ``timbres``) instead of 1/h: a clarinet's
    # weak even partials, a horn's few strong ones. Each partial keeps at least this share of the
    # loudest (multiplicative updates never revive a zero). NMF alone on the bench's 13 targets,
    # 30 iterations: real 7.19 -> 7.46 dB, synthetic 7.40 -> 7.56, same instrument 7.16 -> 7.21.
    timbre_init: bool = True
    timbre_floor: float = 0.02
    # How that note is rendered: velocity, held timbre_hold_s, one note every timbre_period_s, its
    # spectrum averaged over timbre_span (s after its start: past the attack, before the release).
    timbre_velocity: int = 90
    timbre_hold_s: float = 1.0
    timbre_period_s: float = 1.5
    timbre_span: tuple = (0.1, 0.9)
    # A sustained (bowed, blown, sung) part gets several templates per pitch, not one: its partial
    # amplitudes raised to each of these exponents (the first the template as above, then a
    # brighter and a darker one), all free to act wherever the note sounds. One fixed spectrum per
    # pitch cannot follow a note that brightens when played louder, or its attack against its
    # sustain; a few learned shapes can, and the share of a partial two parts have in common is
    # then better told. Struck and plucked parts keep one (their onset template does that work).
    # NMF alone on the bench's 13 targets: real 7.46 -> 8.18 dB, synthetic 7.56 -> 7.83, same
    # instrument 7.21 -> 7.60.
    shapes: tuple = (1.0, 0.7, 1.4)
    # With a single-part MIDI the extra shapes soak up the other instruments instead (the same 13
    # targets, each given its part alone: 2.40 -> 1.44 dB): the pipeline keeps one there.
    single_shapes: tuple = (1.0,)
    # Parts that play the same instrument (GM program) share their templates: a pitch sounds the
    # same whichever part plays it, and each template learns from every part's notes (score_nmf's
    # ``tie``; the activations stay each part's own).
    tie: bool = True
    # A full score's factorisation runs on 48 bins per octave (above), more iterations (n_iter) and
    # activations from 0.08 s before each aligned onset, and ties same-instrument parts; a single
    # part keeps the settings it was measured with (30 iterations, 0.15 s). With the shapes above,
    # 45 iterations (n_iter's value then), NMF alone on
    # the bench's 13 targets: real 8.18 -> 8.36 dB, synthetic 7.83 -> 8.14, same instrument 7.60 ->
    # 7.91 (36 bins per octave, 30 iterations, 0.15 s, untied before; the tie alone +0.04..+0.10 on
    # same instrument, the finer grid alone +0.09 / +0.18 / +0.11).
    single_n_iter: int = 30
    single_tol_on: float = 0.15
    power: float = 1.0            # soft-mask exponent
    chunk_frames: int = 20000     # frames per chunk of the output masks (memory bound)
    # The updates run over blocks of this many frames, each with only the components whose notes
    # sound somewhere in it (a note's activations are zero outside its span and multiplicative
    # updates keep them so): the same factorisation with fewer products. Against the 20000-frame
    # chunks before, the same iterations, 2 shared cores (noisy): a 3.8-minute quartet 6.6 ->
    # 3.3 s, a 2.3-minute one 5.2 -> 2.1 s; a 10-minute four-part chorale, whose notes leave few
    # templates to skip, about the same (5.0 and 6.0 s against 7.1 and 6.3 s in two runs each).
    # 256-frame blocks were faster on the quartets and far slower on the chorale.
    block_frames: int = 1024
