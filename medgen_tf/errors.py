"""The one exception type for bad input, and the checks every module shares."""

import numbers

import numpy as np


class DataError(ValueError):
    """Bad input data: the message is one line naming the file (or spec) and the problem."""


#: Most characters of a library's reason that :func:`first_line` passes on.
FIRST_LINE_MAX_CHARS = 200


def first_line(error: Exception) -> str:
    """The first line of an exception's message (its type's name when it has none), for
    one-line errors that pass on a library's reason; cut to :data:`FIRST_LINE_MAX_CHARS`
    characters, ending in "...". Keras' first line can hold a whole model config (16 KB)."""
    # The first line with text: "\nshape (3,) ..." had given only the type's name.
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    if len(text) > FIRST_LINE_MAX_CHARS:
        text = text[: FIRST_LINE_MAX_CHARS - 3] + "..."
    return text or type(error).__name__


def is_whole_number(value) -> bool:
    """True for an int or numpy integer; False for a bool, a float (even 2.0) or a string.

    The checks for counts, sizes and seeds use it instead of ``int()``, which turns 2.5 into 2
    and True into 1 without a word.
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_whole_at_least(name: str, value, minimum: int) -> None:
    """ValueError ``"name=value: give a whole number >= minimum"`` unless ``value`` is one:
    the recipes' check of a size or seed, made before any data are loaded."""
    if not is_whole_number(value) or value < minimum:
        raise ValueError(f"{name}={value!r}: give a whole number >= {minimum}")


def check_value_range(
    images,
    value_range,
    name: str = "images",
    error=ValueError,
    slack=0.01,
    advice="pass the range the images are stored in, e.g. value_range=(0, 255) for 8-bit",
):
    """``value_range`` as floats ``(low, high)``, after checking it and that ``images`` lie in it.

    Images outside the range by more than ``slack`` times its width (default 1 %: room for
    round-off and interpolation overshoot) are refused, not clipped: 8-bit slices read with the
    default (-1, 1) were scored as white images, and their PSNR came out near -38 dB. Raises
    ``error`` (``ValueError`` or a subclass such as ``DataError``) with a one-line message
    naming ``name`` and ending with ``advice``; NaN or Inf images get a message of their own.
    """
    try:
        low, high = (float(value) for value in value_range)
    except (TypeError, ValueError):  # 1, (0,) or ("a", "b"): Python's unpacking errors
        raise error(
            f"value_range must be (low, high) with high > low, got {value_range!r}"
        ) from None
    # (1, 1) was blamed on the model as NaN scores; a reversed range was scored.
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise error(f"value_range must be (low, high) with high > low, got {value_range!r}")
    images = np.asarray(images)
    if images.size:
        smallest, largest = float(np.min(images)), float(np.max(images))
        if not (np.isfinite(smallest) and np.isfinite(largest)):
            # NaN fails every comparison below, so NaN images passed as in range.
            raise error(f"{name}: NaN or Inf values")
        margin = slack * (high - low)
        if smallest < low - margin or largest > high + margin:
            raise error(
                f"{name}: values span [{smallest:g}, {largest:g}], outside value_range ({low:g}, {high:g}); "
                f"{advice}"
            )
    return low, high
