"""The options of a separation, listed once: the CLI's flags (``bespoke separate``), the
API's keywords (``api.separate``) and the manifest's columns (``bespoke batch``) all come
from ``SEPARATE``, and ``apply`` is the one place that turns their values into Settings.

No heavy imports here (click only): ``bespoke --help`` builds its options from this list.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import click


@dataclass(frozen=True)
class Option:
    """One option. ``name``: the API keyword and the manifest column; ``flag``: the CLI's.
    ``kind``: str, int, float, path, bool (a flag), choice. ``output``: an output path or
    format of the CLI's (not a setting). ``api``: the API keyword, where it differs.
    ``setting``: the Settings field a value goes to as it is (see ``apply`` for the rest)."""

    name: str
    flag: str
    kind: str
    help: str
    short: Optional[str] = None
    show_default: Optional[str] = None
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: Tuple[str, ...] = ()
    output: bool = False
    api: Optional[str] = None
    setting: Optional[str] = None   # the field of config.Settings it sets ("train.budget"), if one
    multiple: bool = False          # the CLI's flag may repeat (a tuple of values)

    @property
    def keyword(self) -> str:
        return self.api or self.name


SEPARATE: Tuple[Option, ...] = (
    Option("target", "--target", "str", short="-t", multiple=True,
           help="The part to extract when the MIDI has several: index (0, #2), track name, or instrument "
                "('violin', 'program:40'). See 'bespoke info MIDI'. Repeat it to separate several parts at "
                "once (as --all does, for those parts)."),
    Option("program", "--program", "str", short="-p", setting="program",
           help="The target's real instrument (GM number 0-127 or name), when the MIDI's program is wrong."),
    Option("soundfont", "--soundfont", "path", setting="synth.soundfont",
           help="Soundfont (.sf2/.sf3) for synthesis. Default: $BESPOKE_SOUNDFONT, soundfonts/, "
                "Debian's FluidR3_GM, or pretty_midi's TimGM6mb."),
    Option("budget", "--budget", "float", short="-b", show_default="60", minimum=1.0, setting="train.budget",
           help="Seconds of training. More is cleaner, up to a point."),
    Option("steps", "--steps", "int", minimum=1, setting="train.steps",
           help="Train exactly this many steps instead of a time budget."),
    Option("device", "--device", "str", show_default="auto", setting="device",
           help="auto (CUDA when present), cpu, cuda or cuda:N."),
    Option("seed", "--seed", "int", setting="seed",
           help="Random seed: the same seed, inputs and device give the same stem. Training then "
                "stops after a step count (--steps, or 3 per second of --budget), not on the clock."),
    Option("precision", "--precision", "choice", choices=("auto", "fp32", "bf16"), show_default="auto",
           setting="train.precision",
           help="Training arithmetic: auto uses bfloat16 where the CPU or GPU computes it natively "
                "(about twice as fast on such CPUs), else float32."),
    Option("residual", "--residual", "path", output=True, help="Also write everything except the target here."),
    Option("save_aligned", "--save-aligned", "path", output=True,
           help="Also write the MIDI aligned to the recording here (moved to the recording's key if "
                "it was written in another; with a one-part MIDI, the transcribed rest of the "
                "recording is a second part)."),
    Option("no_align", "--no-align", "bool", api="align",
           help="The MIDI is already aligned to the recording: skip alignment."),
    Option("min_confidence", "--min-confidence", "float", show_default="0.5", minimum=0.0, maximum=1.0,
           setting="align.min_confidence",
           help="Stop with an error when the alignment confidence is below this."),
    Option("force", "--force", "bool",
           help="Go on when the MIDI does not seem to fit the recording (low alignment confidence, "
                "or a length far from the recording's)."),
    Option("format", "--format", "str", output=True,
           help="Output container (WAV, FLAC, OGG, MP3), overriding the extension."),
    Option("subtype", "--subtype", "str", output=True,
           help="Output sample format (PCM_16, PCM_24, FLOAT, ...). Default: the input's, where the format "
                "holds it."),
    Option("report", "--report", "path", output=True,
           help="Write a JSON report here: versions, device, seed, stage times, alignment confidence and "
                "time map, training loss curve, settings."),
    Option("plot", "--plot", "path", output=True,
           help="Draw the alignment and the mixture/stem spectrograms with the aligned notes here "
                "(.png, .pdf, .svg; needs matplotlib)."),
)
BY_NAME = {o.name: o for o in SEPARATE}


class FileName(click.Path):
    """A file's path; an empty one is a usage error, found before any work."""

    def convert(self, value, param, ctx):
        if value == "":
            self.fail("the file name is empty", param, ctx)
        return super().convert(value, param, ctx)


def _click_option(opt: Option):
    """A click option for an Option."""
    names = [opt.flag] + ([opt.short] if opt.short else [])
    if opt.kind == "bool":
        return click.option(*names, opt.name, is_flag=True, help=opt.help)
    types = {"str": None, "path": FileName(dir_okay=False), "choice": click.Choice(list(opt.choices)),
             "int": click.IntRange(min=opt.minimum, max=opt.maximum),
             "float": click.FloatRange(opt.minimum, opt.maximum)}
    return click.option(*names, opt.name, type=types[opt.kind], default=None, show_default=opt.show_default,
                        help=opt.help, multiple=opt.multiple)


def click_options(f):
    """Decorate a click command with the options of 'bespoke separate' (SEPARATE)."""
    for opt in reversed(SEPARATE):
        f = _click_option(opt)(f)
    return f


def apply(settings, program=None, soundfont=None, budget=None, steps=None, device=None, seed=None,
          precision=None, no_align=False, min_confidence=None, force=False, plot=False):
    """A copy of ``settings`` (config.Settings) with the options given (None: unchanged): each
    Option's value goes to its ``setting``; ``no_align`` turns the alignment off, ``force`` its
    refusals (confidence and length), and ``plot`` keeps its cost matrix for the figure."""
    from .config import override
    from .midi import parse_program

    values = dict(program=program, soundfont=soundfont, budget=budget, steps=steps, device=device, seed=seed,
                  precision=precision, min_confidence=min_confidence)
    casts = {"int": int, "float": float, "program": parse_program}
    tree: dict = {}
    for name, value in values.items():
        if value is None:
            continue
        opt = BY_NAME[name]
        *sections, field = opt.setting.split(".")
        node = tree
        for sec in sections:
            node = node.setdefault(sec, {})
        node[field] = casts.get("program" if name == "program" else opt.kind, str)(value)
    align = tree.setdefault("align", {})
    if no_align:
        align["enabled"] = False
    if force:
        align.update(min_confidence=0.0, max_duration_ratio=0.0)
    if plot:
        align["keep_cost"] = True
    return override(settings, {k: v for k, v in tree.items() if v != {}})



all_parts_option = click.option(
    "--all", "all_parts", is_flag=True,
    help="Separate every part at once: one alignment, NMF and network (in the same --budget), a stem per part "
         "and the residual (what no part explains), which add up to the mixture. -o is then a name template "
         "with {index} and/or {name}, filled for each part (its index, its track name made file-safe) and for "
         "the residual (name 'residual', index the part count), e.g. 'stems/{index}-{name}.flac'; --residual, "
         "if given, names the residual instead. Not a batch column (it writes several files).")


def cluster_options(f):
    """The options of ``bespoke batch --cluster`` (bespoke.cluster.cluster_spec reads them)."""
    with_ = "With --cluster: "
    opts = [
        click.option("--cluster", type=click.Choice(["ray"]), default=None,
                     help="Run each row as a task of a Ray cluster instead of a local process (needs the "
                          "cluster extra: pip install 'bespoke[cluster]'). Outputs must be on a path every "
                          "node sees."),
        click.option("--address", default=None,
                     help=with_ + "the cluster to join (host:port of its head; 'auto': the one 'ray start' "
                                  "runs on this machine). Default: start one on this machine."),
        click.option("--cpus-per-row", type=click.FloatRange(min=0.0, min_open=True), default=None,
                     show_default="1", help=with_ + "CPUs each row asks for (its thread count)."),
        click.option("--gpus-per-row", type=click.FloatRange(min=0.0), default=None,
                     help=with_ + "GPUs each row asks for (default: 1 for rows whose device is cuda, else 0)."),
        click.option("--memory-per-row", type=click.FloatRange(min=0.0), default=None, show_default="1.5",
                     help=with_ + "memory (GB) each row asks for; 0 asks for none."),
        click.option("--retries", type=click.IntRange(min=0), default=None, show_default="2",
                     help=with_ + "times a row lost with its node or worker is run again elsewhere."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f
