"""The command line: parse, call the API, report. No logic lives here.

Heavy libraries (torch, librosa, numpy, matplotlib) load inside the commands, so
``bespoke --help`` is instant. Every failure the user can act on ends as one line on stderr
(``bespoke: error: ...``) and a non-zero exit status, with no output file written.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional, Sequence

import click

from .errors import BespokeError
from .options import FileName, all_parts_option, click_options, cluster_options
from .outputs import check_outputs
from .rows import die_with_parent

DEBUG_ENV = "BESPOKE_DEBUG"
_RUN: dict = {"argv": None, "stop": False}  # the running command line (for reports); Ctrl-C seen


def _checked_progress(enabled: bool):
    """A pipeline.Progress that also ends the run at the next stage or step after Ctrl-C, should
    the KeyboardInterrupt itself have been swallowed inside a library callback."""
    import contextlib

    from .pipeline import Progress

    class CheckedProgress(Progress):
        @contextlib.contextmanager
        def stage(self, name, total=1.0, unit=""):
            _check_stop()
            with super().stage(name, total, unit) as update:
                def checked(value, **postfix):
                    _check_stop()
                    update(value, **postfix)

                yield checked
            _check_stop()

    return CheckedProgress(enabled)


def _check_stop() -> None:
    if _RUN["stop"]:
        raise KeyboardInterrupt


class _LineTracker:
    """Stands in for sys.stderr during a command and notes whether the last write ended a line,
    so that an error or warning never lands at the end of a half-drawn progress bar."""

    def __init__(self, stream):
        self._stream = stream
        self.at_line_start = True

    def write(self, text):
        if text:
            self.at_line_start = text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _line_start() -> None:
    if isinstance(sys.stderr, _LineTracker) and not sys.stderr.at_line_start:
        sys.stderr.write("\n")


def _err(msg: str) -> None:
    _line_start()
    click.echo(f"bespoke: error: {msg}", err=True)


def _warn(msg: str) -> None:
    _line_start()
    click.echo(f"bespoke: warning: {msg}", err=True)


EPILOG_SEPARATE = """\b
Examples:
  bespoke separate song.wav violin.mid -o violin.wav
  bespoke separate song.flac quartet.mid --target "Violin I" -o v1.flac --residual rest.flac
  bespoke separate take.wav horn.mid --program "french horn" --budget 120 -o horn.wav
  bespoke separate song.flac quartet.mid --all -o 'stems/{index}-{name}.flac'

\b
How it works: the MIDI is aligned to the recording (DTW); a score-informed
NMF gives a first estimate of the target and of the rest; the target part is
synthesised with soundfonts; a small network is trained for --budget seconds
on mixtures built around this very recording from those pieces, then applied
to it, its mask averaged with the NMF's. The stem keeps the input's sample
rate, channel count and bit depth. Give every part of the MIDI when you have
it: the whole score aligns and separates better than one part alone.
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
@click.option("-o", "--output", required=True, type=FileName(dir_okay=False),
              help="Where to write the stem; the extension picks the format (.wav, .flac, .ogg, .mp3). With --all "
                   "or several --target, a name template: see --all.")
@click_options
@all_parts_option
@click.option("--overwrite", is_flag=True, help="Replace output files that exist already.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or summary; errors and warnings only.")
def separate(mix, midi, output, target, program, soundfont, budget, steps, device, seed, precision, residual,
             save_aligned, no_align, min_confidence, force, format, subtype, report, plot, all_parts, overwrite, quiet):
    """Extract the part that MIDI plays from the recording MIX (or every part: --all)."""
    from . import api, options
    from .audio import load_audio
    from .config import Settings
    from .midi import load_midi, select_part
    from .outputs import plan_audio, prepare_outputs, write_separation
    from .report import summary_line
    from .stems import separate_several, stems_line

    fmt, targets = format, list(target or ())
    if all_parts and targets:
        raise click.UsageError("--all separates every part: give --all or --target, not both")
    run_opts = dict(program=program, soundfont=soundfont, budget=budget, steps=steps, device=device, seed=seed,
                    precision=precision, align=not no_align, min_confidence=min_confidence, force=force,
                    progress=_checked_progress(not quiet), on_warning=_warn)
    outs = dict(residual=residual, aligned_midi=save_aligned, plot=plot, report=report)
    if all_parts or len(targets) > 1:  # several stems: stems.separate_several
        res, written = separate_several(mix, midi, output, "all" if all_parts else targets, run_opts, outs, fmt,
                                        subtype, overwrite, command=_RUN["argv"], check_stop=_check_stop)
        _warn_clipped(written["stems"] + [written["residual"]])
        return None if quiet else click.echo(stems_line(written) + summary_line(res), err=True)
    prepare_outputs([output, residual], [save_aligned, report, plot], [mix, midi, soundfont], overwrite, fmt, plot)
    audio = load_audio(mix)
    pm = load_midi(midi)
    index = select_part(pm, targets[0] if targets else None, source=midi)
    plan_audio([output, residual], audio, fmt, subtype)
    res = api.separate(audio, pm, target=index, settings=options.apply(Settings(), plot=bool(plot)), **run_opts)
    _check_stop()
    written = write_separation(res, audio, pm, index, dict(outs, stem=output), mix=mix, midi=midi, fmt=fmt,
                               subtype=subtype, command=_RUN["argv"], overwrite=overwrite)
    _warn_clipped([written[k] for k in ("stem", "residual") if k in written])
    if not quiet:
        click.echo(f"wrote {output}" + summary_line(res), err=True)


def _warn_clipped(written) -> None:
    for w in (w for w in written if w["clipped"]):
        _warn(f"{w['path']}: {w['clipped']} samples clipped (peak {w['peak']:.2f})")


@cli.command()
@click.argument("mix", type=click.Path(dir_okay=False))
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=FileName(dir_okay=False), help="Where to write the aligned MIDI.")
@click.option("-t", "--target", default=None, help="Part whose --program applies (see 'bespoke info').")
@click.option("-p", "--program", default=None, help="The target's real instrument (GM number or name).")
@click.option("--min-confidence", type=click.FloatRange(0.0, 1.0), default=None, show_default="0.5",
              help="Stop with an error when the alignment confidence is below this.")
@click.option("--force", is_flag=True,
              help="Write the alignment even when the MIDI does not seem to fit the recording.")
@click.option("--plot", type=FileName(dir_okay=False), default=None,
              help="Also draw the alignment here: the cost matrix with the path, and the aligned notes over the "
                   "recording's spectrogram (.png, .pdf, .svg; needs matplotlib).")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors and warnings.")
def align(mix, midi, output, target, program, min_confidence, force, plot, overwrite, quiet):
    """Align MIDI to the recording MIX and write the aligned MIDI (every note kept, moved in time).

    Every part of the MIDI guides the alignment; a MIDI of one part of the ensemble works too."""
    from . import api
    from .audio import load_audio
    from .files import atomic_paths
    from .midi import load_midi, save_midi, select_part

    check_outputs([output, plot], [mix, midi], overwrite)
    if plot:
        from .plot import check_figure_path, require_matplotlib

        check_figure_path(plot)
        require_matplotlib()
    audio = load_audio(mix)
    pm = load_midi(midi)
    idx = select_part(pm, target, source=midi) if target is not None else None
    aligned, al = api.align(audio, pm, program=program, target=target, keep_cost=bool(plot),
                            min_confidence=min_confidence, force=force, on_warning=_warn)
    with atomic_paths([plot, output] if plot else [output], overwrite=overwrite) as tmps:  # together, MIDI last
        if plot:
            from .plot import alignment_figure, save_figure

            save_figure(alignment_figure(al, aligned, audio.samples, audio.sr, target_index=idx,
                                         title=Path(mix).name), tmps[0])
        save_midi(aligned, tmps[-1])
    if not quiet:
        click.echo(f"wrote {output}: alignment confidence {al.confidence:.2f}", err=True)


@cli.command()
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=FileName(dir_okay=False), help="Where to write the audio.")
@click.option("-t", "--target", default=None, help="Render only this part.")
@click.option("-p", "--program", default=None, help="Play every part with this GM program (number or name).")
@click.option("--soundfont", type=click.Path(dir_okay=False), default=None, help="Soundfont (.sf2/.sf3).")
@click.option("--sr", type=click.IntRange(8000, 192000), default=44100, show_default=True, help="Sample rate.")
@click.option("--overwrite", is_flag=True, help="Replace the output if it exists.")
def synth(midi, output, target, program, soundfont, sr, overwrite):
    """Render MIDI to audio with fluidsynth (what bespoke trains on)."""
    from . import api
    from .audio import plan_output, save_audio

    check_outputs([output], [midi, soundfont], overwrite)
    plan_output(output, sr, 1)
    y = api.synth(midi, sr=sr, program=program, target=target, soundfont=soundfont)
    save_audio(output, y[None], sr, overwrite=overwrite)


@cli.command(name="eval")
@click.argument("estimate", type=click.Path(dir_okay=False))
@click.argument("reference", type=click.Path(dir_okay=False))
@click.option("--mix", type=click.Path(dir_okay=False), default=None,
              help="The mixture: also print its scores and the improvement over it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def eval_(estimate, reference, mix, as_json):
    """Score a separated stem against the true part: SI-SDR and SDR in dB."""
    import json

    from .evaluate import score_files, scores_text

    s = score_files(estimate, reference, mix)
    click.echo(json.dumps({k: round(v, 3) for k, v in s.items()}) if as_json else scores_text(s))


@cli.command()
@click.argument("midi", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(midi, as_json):
    """List the parts of a MIDI file (index, name, program, notes, time span) to choose --target."""
    import json

    from .midi import describe, load_midi

    summary, text = describe(load_midi(midi), midi)
    click.echo(json.dumps(summary, indent=2) if as_json else text)


@cli.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Songs processed at once (the CPU threads are split between them).")
@click.option("--overwrite", is_flag=True, help="Redo rows whose output exists (default: skip them, so a "
                                                  "stopped batch resumes where it was). A folder, FIFO or "
                                                  "device there is never replaced.")
@click.option("--out-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="The output root: every output a row names must lie inside it (symbolic links "
                   "resolved). Default: the manifest's folder. Relative paths in the manifest stay "
                   "relative to the manifest's folder.")
@click.option("--allow-outside", is_flag=True,
              help="Let the manifest's rows write anywhere, not only inside the output root.")
@click.option("-b", "--budget", type=click.FloatRange(min=1.0), default=None,
              help="Training seconds for rows that give none.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Training steps for rows that give none.")
@click.option("--seed", type=int, default=None, help="Seed for rows that give none.")
@click.option("--device", default=None, help="Device for rows that give none (auto, cpu, cuda).")
@click.option("--soundfont", type=click.Path(dir_okay=False), default=None, help="Soundfont for rows that give none.")
@click.option("--force", is_flag=True, help="--force for rows that do not say otherwise.")
@click.option("--dry-run", is_flag=True, help="Check the manifest and print the 'bespoke separate' command of "
                                              "each row, running nothing.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or line per finished row; just the summary table.")
@cluster_options
def batch(manifest, jobs, overwrite, out_dir, allow_outside, budget, steps, seed, device, soundfont, force,
          dry_run, quiet, cluster, **per_row):
    """Separate many songs listed in MANIFEST, a CSV file.

    \b
    Columns: mix, midi, out (required), and optionally the options of 'bespoke
    separate' by name: target, program, soundfont, budget, steps, device, seed,
    precision, residual, save_aligned, no_align, min_confidence, force, format,
    subtype, report, plot. Paths are relative to the manifest's folder; an
    empty cell takes the default (the options below).

    \b
    Every output a row names (out, residual, save_aligned, report, plot) must
    lie inside the output root (the manifest's folder, or --out-dir) unless
    --allow-outside is given; otherwise nothing runs.

    \b
    Rows whose output exists as an audio file are skipped (a stopped batch
    resumes); any other file there fails the row and is left alone
    (--overwrite replaces regular files, never a folder, FIFO or device). A
    row that fails is reported and the others go on; a summary table ends
    the run, also after Ctrl-C (pressed once or more), and the exit status
    is 1 if any row failed.
    """
    from .batch import run_from_cli
    from .cluster import cluster_spec
    defaults = dict(budget=budget, steps=steps, seed=seed, device=device, soundfont=soundfont, force=force or None)
    code = run_from_cli(manifest, jobs=jobs, overwrite=overwrite, defaults=defaults, dry_run=dry_run,
                        quiet=quiet, echo=lambda m: click.echo(m, err=True), out=click.echo, out_dir=out_dir,
                        allow_outside=allow_outside, cluster=cluster_spec(cluster, jobs, **per_row))
    if code:
        raise click.exceptions.Exit(code)


def _on_signal(signum, frame):
    """Ctrl-C and SIGTERM: unwind through the atomic writers, which remove their temporary files.
    The flag ends the run at the next progress step in case a library swallows the exception. In a
    finalizer (a progress bar's __del__ run by the garbage collector) an exception is only printed,
    traceback and all, and ignored: there the flag alone does the work."""
    _RUN["stop"] = True
    if _in_finalizer(frame):
        return
    raise KeyboardInterrupt


def _in_finalizer(frame) -> bool:
    """Whether ``frame`` runs inside an object's ``__del__``."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 error, 2 usage, 3 internal error, 130 interrupted)."""
    import signal
    import warnings

    old_handlers, old_stderr = {}, sys.stderr
    sys.stderr = _LineTracker(sys.stderr)
    _RUN["stop"] = False
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGTERM (kill, a batch stopping) cleans up like Ctrl-C
        try:
            if signal.getsignal(sig) in (signal.default_int_handler, signal.SIG_DFL):
                old_handlers[sig] = signal.signal(sig, _on_signal)
        except ValueError:  # not the main thread
            pass
    try:
        die_with_parent()  # in a row of a batch: end with the batch
        with warnings.catch_warnings():
            if not os.environ.get(DEBUG_ENV):
                warnings.simplefilter("ignore")  # library chatter is not the user's business
            args = list(argv) if argv is not None else sys.argv[1:]
            _RUN["argv"] = ["bespoke"] + args
            # make_context + invoke rather than cli.main: click's own Ctrl-C handling would print a
            # blank line and hide the KeyboardInterrupt
            with cli.make_context("bespoke", args) as ctx:
                cli.invoke(ctx)
        return 0
    except click.exceptions.Abort:
        _err("interrupted; no output was written")
        return 130
    except click.UsageError as e:
        where = e.ctx.command_path if e.ctx is not None else "bespoke"
        _err(f"{e.format_message()} (see '{where} --help')")
        return e.exit_code
    except click.ClickException as e:
        _err(e.format_message())
        return e.exit_code
    except click.exceptions.Exit as e:
        return e.exit_code
    except BespokeError as e:
        _err(e.cli_message())
        return 1
    except KeyboardInterrupt:
        _err("interrupted; no output was written")
        return 130
    except BrokenPipeError:  # bespoke info | head
        return 1
    except MemoryError:
        _err("out of memory; try a smaller --budget or split the recording")
        return 1
    except Exception as e:  # a bug: one line, and the traceback on request
        if os.environ.get(DEBUG_ENV):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        _err(f"internal error: {type(e).__name__}: {msg} (set {DEBUG_ENV}=1 for the traceback, and please report it)")
        return 3
    finally:
        sys.stderr = old_stderr
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
