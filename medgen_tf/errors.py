"""The one exception type for bad input."""


class DataError(ValueError):
    """Bad input data: the message is one line naming the file (or spec) and the problem."""
