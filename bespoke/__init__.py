"""bespoke: score-informed music source separation, one song at a time.

    >>> import bespoke
    >>> result = bespoke.separate("mix.wav", "part.mid", program="violin")
    >>> result.save("violin.wav")

The heavy modules (torch, librosa) load on first use, so ``import bespoke``
and ``bespoke --help`` stay fast.
"""
__version__ = "0.1.0"

__all__ = ["separate", "__version__"]


def separate(*args, **kwargs):
    """See :func:`bespoke.api.separate`."""
    from .api import separate as _separate

    return _separate(*args, **kwargs)
