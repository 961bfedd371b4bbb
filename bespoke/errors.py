"""Errors that reach the user as one clear line (the CLI prints ``str(err)``)."""


class BespokeError(Exception):
    """Base class: a problem the user can act on; never a bug."""


class InputError(BespokeError):
    """An input file is missing, unreadable or unusable."""


class OutputError(BespokeError):
    """An output cannot be written where asked."""


class AlignmentError(BespokeError):
    """The MIDI could not be aligned to the recording with confidence."""


class DependencyError(BespokeError):
    """An optional or system dependency is missing."""
