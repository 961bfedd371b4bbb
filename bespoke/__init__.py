"""bespoke: score-informed music source separation, one song at a time.

    >>> import bespoke
    >>> result = bespoke.separate("mix.wav", "part.mid", program="violin")
    >>> result.save("violin.wav")

The heavy modules (torch, librosa) load on first use, so ``import bespoke``
and ``bespoke --help`` stay fast.
"""
__version__ = "0.1.0"

__all__ = ["separate", "__version__"]
# No submodule may be named like a function here (an import of bespoke.X would replace
# bespoke.X): the masks live in bespoke.masks, the alignment in bespoke.align (see bespoke.api.align).


def separate(*args, **kwargs):
    """See :func:`bespoke.api.separate`."""
    from .api import separate as _separate

    return _separate(*args, **kwargs)

