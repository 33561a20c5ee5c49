"""The one exception type for bad input, and the checks every module shares."""

import numbers


class DataError(ValueError):
    """Bad input data: the message is one line naming the file (or spec) and the problem."""


def first_line(error: Exception) -> str:
    """The first line of an exception's message (its type's name when it has none), for
    one-line errors that pass on a library's reason."""
    text = str(error).splitlines()[0] if str(error) else ""
    return text or type(error).__name__


def is_whole_number(value) -> bool:
    """True for an int or numpy integer; False for a bool, a float (even 2.0) or a string.

    The checks for counts, sizes and seeds use it instead of ``int()``, which turns 2.5 into 2
    and True into 1 without a word.
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
