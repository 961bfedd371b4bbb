"""The command line: parse, call the API, report. No logic lives here.

Heavy libraries (torch, librosa) load inside the commands, so ``bespoke --help`` is instant.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import click

from .errors import BespokeError, OutputError

DEBUG_ENV = "BESPOKE_DEBUG"


def _err(msg: str) -> None:
    click.echo(f"bespoke: error: {msg}", err=True)


def _warn(msg: str) -> None:
    click.echo(f"bespoke: warning: {msg}", err=True)


def _same_file(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def check_outputs(outputs: Sequence[Optional[str]], inputs: Sequence[str], overwrite: bool) -> None:
    """Fail early, before any work, if an output cannot or must not be written."""
    seen = []
    for out in outputs:
        if not out:
            continue
        p = Path(out)
        for i in inputs:
            if _same_file(p, i):
                raise OutputError(f"{out}: the output would overwrite an input file")
        for s in seen:
            if _same_file(p, s):
                raise OutputError(f"{out}: named for two outputs")
        seen.append(out)
        if p.is_dir():
            raise OutputError(f"{out}: is a folder; give a file name")
        folder = p.parent if str(p.parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(f"{out}: the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise OutputError(f"{out}: cannot write in {folder} (permission denied)")
        if p.exists() and not overwrite:
            raise OutputError(f"{out}: exists already (use --overwrite to replace it)")


EPILOG_SEPARATE = """\b
Examples:
  bespoke separate song.wav violin.mid -o violin.wav
  bespoke separate song.flac quartet.mid --target "Violin I" -o v1.flac --residual rest.flac
  bespoke separate take.wav horn.mid --program "french horn" --budget 120 -o horn.wav

\b
How it works: the MIDI is aligned to the recording (DTW), the target part is
synthesised with a soundfont, and a small network is trained on augmented
mixtures built around this very recording for --budget seconds, then applied
to it. The stem keeps the input's sample rate, channel count and bit depth.
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="bespoke", prog_name="bespoke")
def cli():
    """bespoke: take one instrument out of a recording, guided by its MIDI score.

    No pre-trained model: each song trains its own small network in minutes, on the
    CPU or a GPU. Run 'bespoke COMMAND --help' for each command's options.
    """


@cli.command(epilog=EPILOG_SEPARATE)
@click.argument("mix", type=click.Path(dir_okay=False))
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the stem; the extension picks the format (.wav, .flac, .ogg, .mp3).")
@click.option("-t", "--target", default=None,
              help="The part to extract when the MIDI has several: index (0, #2), track name, or instrument "
                   "('violin', 'program:40'). See 'bespoke info MIDI'.")
@click.option("-p", "--program", default=None,
              help="The target's real instrument (GM number 0-127 or name), when the MIDI's program is wrong.")
@click.option("--soundfont", type=click.Path(dir_okay=False), default=None,
              help="Soundfont (.sf2/.sf3) for synthesis. Default: $BESPOKE_SOUNDFONT, soundfonts/, "
                   "Debian's FluidR3_GM, or pretty_midi's TimGM6mb.")
@click.option("-b", "--budget", type=click.FloatRange(min=1.0), default=None, show_default="60",
              help="Seconds of training. More is cleaner, up to a point.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Train exactly this many steps instead of a time budget (with --seed: repeatable).")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--seed", type=int, default=None, help="Random seed, for repeatable runs.")
@click.option("--residual", type=click.Path(dir_okay=False), default=None,
              help="Also write everything except the target here.")
@click.option("--save-aligned", type=click.Path(dir_okay=False), default=None,
              help="Also write the MIDI aligned to the recording here.")
@click.option("--no-align", is_flag=True, help="The MIDI is already aligned to the recording: skip alignment.")
@click.option("--min-confidence", type=click.FloatRange(0.0, 1.0), default=None,
              help="Stop with an error when the alignment confidence is below this.")
@click.option("--format", "fmt", default=None, help="Output container (WAV, FLAC, OGG, MP3), overriding the extension.")
@click.option("--subtype", default=None, help="Output sample format (PCM_16, PCM_24, FLOAT, ...). Default: the input's.")
@click.option("--overwrite", is_flag=True, help="Replace output files that exist already.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or summary; errors and warnings only.")
def separate(mix, midi, output, target, program, soundfont, budget, steps, device, seed, residual,
             save_aligned, no_align, min_confidence, fmt, subtype, overwrite, quiet):
    """Extract the part that MIDI plays from the recording MIX."""
    from . import api
    from .audio import format_for_path

    check_outputs([output, residual, save_aligned], [mix, midi], overwrite)
    for out in (output, residual):
        if out:
            format_for_path(out, fmt)
    res = api.separate(mix, midi, target=target, program=program, soundfont=soundfont, budget=budget,
                       steps=steps, device=device, seed=seed, align=not no_align, min_confidence=min_confidence,
                       progress=not quiet, on_warning=_warn)
    info = res.save(output, subtype=subtype, fmt=fmt)
    if info["clipped"]:
        _warn(f"{output}: {info['clipped']} samples clipped (peak {info['peak']:.2f})")
    if residual:
        res.save_residual(residual, subtype=subtype, fmt=fmt)
    if save_aligned:
        res.save_aligned_midi(save_aligned)
    if not quiet:
        t = res.timings
        total = sum(t.values())
        conf = f", alignment confidence {res.alignment.confidence:.2f}" if res.alignment is not None else ""
        click.echo(f"wrote {output} ({res.stem.shape[0]} ch, {res.sr} Hz, {res.stem.shape[1] / res.sr:.1f} s) in "
                   f"{total:.0f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()) + conf, err=True)


@cli.command()
@click.argument("mix", type=click.Path(dir_okay=False))
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the aligned MIDI.")
@click.option("-t", "--target", default=None, help="Part whose --program applies (see 'bespoke info').")
@click.option("-p", "--program", default=None, help="The target's real instrument (GM number or name).")
@click.option("--soundfont", type=click.Path(dir_okay=False), default=None, help="Soundfont for rendering the score.")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors and warnings.")
def align(mix, midi, output, target, program, soundfont, overwrite, quiet):
    """Align MIDI to the recording MIX and write the aligned MIDI (every note kept, moved in time)."""
    from . import api
    from .midi import save_midi

    check_outputs([output], [mix, midi], overwrite)
    aligned, al = api.align(mix, midi, program=program, target=target, soundfont=soundfont)
    save_midi(aligned, output)
    if al.confidence < 0.25:
        _warn(f"low alignment confidence ({al.confidence:.2f}): check that the MIDI matches the recording")
    if not quiet:
        click.echo(f"wrote {output}: alignment confidence {al.confidence:.2f}", err=True)


@cli.command()
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Where to write the audio.")
@click.option("-t", "--target", default=None, help="Render only this part.")
@click.option("-p", "--program", default=None, help="Play every part with this GM program (number or name).")
@click.option("--soundfont", type=click.Path(dir_okay=False), default=None, help="Soundfont (.sf2/.sf3).")
@click.option("--sr", type=click.IntRange(8000, 192000), default=44100, show_default=True, help="Sample rate.")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
def synth(midi, output, target, program, soundfont, sr, overwrite):
    """Render MIDI to audio with fluidsynth (what bespoke trains on)."""
    from . import api
    from .audio import format_for_path, save_audio

    check_outputs([output], [midi], overwrite)
    format_for_path(output)
    y = api.synth(midi, sr=sr, program=program, target=target, soundfont=soundfont)
    save_audio(output, y[None], sr)


@cli.command(name="eval")
@click.argument("estimate", type=click.Path(dir_okay=False))
@click.argument("reference", type=click.Path(dir_okay=False))
@click.option("--mix", type=click.Path(dir_okay=False), default=None,
              help="The mixture: also print its scores and the improvement over it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def eval_(estimate, reference, mix, as_json):
    """Score a separated stem against the true part: SI-SDR and SDR in dB."""
    import json

    from .audio import load_audio
    from .evaluate import scores
    from .errors import InputError

    est = load_audio(estimate, check_silence=False)
    ref = load_audio(reference)
    m = load_audio(mix) if mix else None
    for other, name in ((est, estimate), (m, mix)):
        if other is not None and other.sr != ref.sr:
            raise InputError(f"{name}: sample rate {other.sr} Hz differs from the reference's {ref.sr} Hz")
    s = scores(est.samples, ref.samples, m.samples if m is not None else None)
    if as_json:
        click.echo(json.dumps({k: round(v, 3) for k, v in s.items()}))
        return
    click.echo(f"SI-SDR {s['si_sdr']:7.2f} dB    SDR {s['sdr']:7.2f} dB")
    if m is not None:
        click.echo(f"mixture SI-SDR {s['mix_si_sdr']:7.2f} dB    SDR {s['mix_sdr']:7.2f} dB")
        click.echo(f"improvement SI-SDR {s['si_sdr_improvement']:+7.2f} dB    SDR {s['sdr_improvement']:+7.2f} dB")


@cli.command()
@click.argument("midi", type=click.Path(dir_okay=False))
def info(midi):
    """List the parts of a MIDI file (index, name, program, notes, time span) to choose --target."""
    from .midi import load_midi, parts

    pm = load_midi(midi)
    for p in parts(pm):
        click.echo(p.label)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 error, 2 usage, 130 interrupted)."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="bespoke", standalone_mode=False)
        return 0
    except click.exceptions.Abort:
        _err("interrupted")
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except BespokeError as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt:
        _err("interrupted; no output was written")
        return 130
    except MemoryError:
        _err("out of memory; try a smaller --budget or split the recording")
        return 1
    except Exception as e:  # a bug: one line, and the traceback on request
        if os.environ.get(DEBUG_ENV):
            raise
        _err(f"internal error: {type(e).__name__}: {e} (set {DEBUG_ENV}=1 for the traceback, and please report it)")
        return 3


if __name__ == "__main__":
    sys.exit(main())
