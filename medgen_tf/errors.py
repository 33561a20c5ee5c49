"""The one exception type for bad input."""


class DataError(ValueError):
    """Bad input data: the message is one line naming the file (or spec) and the problem."""


def first_line(error: Exception) -> str:
    """The first line of an exception's message (its type's name when it has none), for
    one-line errors that pass on a library's reason."""
    text = str(error).splitlines()[0] if str(error) else ""
    return text or type(error).__name__
