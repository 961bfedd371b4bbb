"""Errors that reach the user as one clear line.

A message names the options that would help as ``«name»`` or ``«name value»`` (``name`` from
options.SEPARATE, or overwrite / quiet): an API user reads ``force=True`` or ``device='cpu'``,
the CLI prints ``--force`` or ``--device cpu`` (``cli_message``).
"""
import re

_OPTION = re.compile(r"«([a-z_]+)(?: ([^»]*))?»")


def _flag(name: str) -> str:
    from .options import BY_NAME

    opt = BY_NAME.get(name)
    return opt.flag if opt is not None else "--" + name.replace("_", "-")


def _keyword(m: "re.Match") -> str:
    from .options import BY_NAME

    name, value = m.group(1), m.group(2)
    opt = BY_NAME.get(name)
    keyword = opt.keyword if opt is not None else name
    if value is not None:
        return f"{keyword}={value!r}"
    if opt is not None and opt.kind != "bool":
        return f"{keyword}="
    return f"{keyword}=False" if opt is not None and opt.api == "align" else f"{keyword}=True"


class BespokeError(Exception):
    """Base class: a problem the user can act on; never a bug."""

    def __str__(self) -> str:
        return _OPTION.sub(_keyword, super().__str__())

    def cli_message(self) -> str:
        """The message with the options written as command-line flags."""
        return _OPTION.sub(lambda m: _flag(m.group(1)) + (f" {m.group(2)}" if m.group(2) is not None else ""),
                           super().__str__())


class InputError(BespokeError):
    """An input file is missing, unreadable or unusable."""


class OutputError(BespokeError):
    """An output cannot be written where asked."""


class AlignmentError(BespokeError):
    """The MIDI could not be aligned to the recording with confidence."""


class DependencyError(BespokeError):
    """An optional or system dependency is missing."""
