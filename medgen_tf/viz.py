"""Figures: image grids, side-by-side comparisons and training curves.

Everything here takes numpy arrays and writes PNGs with matplotlib's non-interactive
backend when asked to save, so it works on a headless CI machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

# No backend is forced: matplotlib falls back to Agg on a machine without a display,
# and notebooks keep their inline backend.
import matplotlib.pyplot as plt
import numpy as np

from medgen_tf.errors import check_value_range, is_whole_number
from medgen_tf.files import atomic_path


def to_display(images, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Map images to [0, 1] for display.

    ``value_range`` defaults to the range the data were stored in: (0, 255) for ``uint8``,
    otherwise (-1, 1) if any value is below 0, else (0, 1), and the data's own (min, max) when
    they lie clearly outside those (beyond -2 or 2, e.g. float intensities in [0, 255] or CT
    numbers). Values outside the range are clipped. NaN and Inf pixels come out as NaN, which
    the figures here draw red: clipped, a diverged generator's NaN grid looked white, like
    saturated images.
    """
    if value_range is None:  # "or" is ambiguous for an array range
        value_range = default_value_range(images)
    low, high = check_value_range((), value_range)
    images = np.asarray(images, dtype=np.float32)
    images = np.where(np.isfinite(images), images, np.nan)
    return np.clip((images - low) / (high - low), 0.0, 1.0)


#: Grey, with NaN (a diverged model's pixels, see :func:`to_display`) in red.
GREY = plt.get_cmap("gray").with_extremes(bad="red")


def _image_batch(images, where: str) -> np.ndarray:
    """``images`` as an array of several images; one (h, w, 1) or (h, w, 3) image is refused,
    since read as (n, h, w) it drew h strips one pixel wide."""
    images = np.asarray(images)
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        # One (h, w) image had given matplotlib's "Invalid shape (28,) for image data".
        advice = "; for one image pass images[None]" if images.ndim == 2 else ""
        raise ValueError(
            f"{where}: expected (n, h, w), (n, h, w, 1) or (n, h, w, 3) images, got shape "
            f"{images.shape}{advice}"
        )
    if images.ndim == 3 and images.shape[-1] in (1, 3) and images.shape[1] > 3:
        raise ValueError(
            f"{where}: {images.shape} reads as {images.shape[0]} images of "
            f"{images.shape[1]}x{images.shape[2]} pixels; for one image pass images[None]"
        )
    return images


def default_value_range(*image_sets) -> tuple[float, float]:
    """One display range for all of ``image_sets``, so they are shown on the same scale."""
    arrays = [np.asarray(images) for images in image_sets]
    if arrays and all(array.dtype == np.uint8 for array in arrays):
        return (0.0, 255.0)
    values = [array[np.isfinite(array)] for array in arrays if array.size]
    values = [array for array in values if array.size]
    if not values:
        return (0.0, 1.0)
    low = min(float(array.min()) for array in values)
    high = max(float(array.max()) for array in values)
    # Float data on another scale were clipped to (0, 1) or (-1, 1): an all-white or binary
    # picture. A little tanh or interpolation overshoot keeps the stored scale.
    if (low < -2.0 or high > 2.0) and high > low:
        return (low, high)
    if low < 0:
        return (-1.0, 1.0)
    return (0.0, 1.0)


def image_grid(images, num_columns: int = 8, value_range=None, padding: int = 1) -> np.ndarray:
    """Tile (n, h, w[, 1]) grey or (n, h, w, 3) RGB images into one array in [0, 1], row by
    row: 2-D for grey images, (height, width, 3) for RGB ones; NaN where a pixel was not
    finite."""
    # Checked, not clamped: 0 columns had quietly given one column, a negative padding a grid
    # whose tiles overwrite each other.
    if not is_whole_number(num_columns) or num_columns < 1:
        raise ValueError(f"image_grid: num_columns must be a positive int, got {num_columns!r}")
    if not is_whole_number(padding) or padding < 0:
        raise ValueError(f"image_grid: padding must be an int of at least 0, got {padding!r}")
    images = to_display(_image_batch(images, "image_grid"), value_range)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    count, height, width = images.shape[:3]
    if count == 0:  # else numpy's "negative dimensions are not allowed"
        raise ValueError(f"image_grid got no images, shape {images.shape}")
    num_columns = max(1, min(num_columns, count))
    num_rows = -(-count // num_columns)
    grid = np.ones(
        (
            num_rows * (height + padding) - padding,
            num_columns * (width + padding) - padding,
            *images.shape[3:],
        ),
        dtype=np.float32,
    )
    for index, image in enumerate(images):
        row, column = divmod(index, num_columns)
        top, left = row * (height + padding), column * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_image_grid(images, path, num_columns: int = 8, title: str | None = None, value_range=None):
    """Save a grid of images (grey colormap for one channel, colour for RGB; no axes) and
    return its path."""
    grid = image_grid(images, num_columns=num_columns, value_range=value_range)
    scale = 6.0 / max(grid.shape[:2])
    figure, axis = plt.subplots(figsize=(grid.shape[1] * scale + 0.2, grid.shape[0] * scale + 0.5))
    axis.imshow(grid, cmap=GREY, vmin=0.0, vmax=1.0, interpolation="nearest")
    axis.set_axis_off()
    if title:
        axis.set_title(title)
    return _save(figure, path)


def compare_rows(
    rows: Mapping[str, np.ndarray], path=None, title: str | None = None, value_range=None
):
    """One labelled row per entry (e.g. input / translation / ground truth), columns aligned.

    Every row is shown on the same scale: ``value_range``, or by default one range chosen
    for all rows (see :func:`to_display`). Returns the matplotlib figure; also saves it when
    ``path`` is given.
    """
    labels = list(rows)
    if not labels:  # else "max() arg is an empty sequence"
        raise ValueError("compare_rows needs at least one row")
    # One range for every row: chosen row by row, an early generator's output that happens to
    # be all >= 0 would be shown as if it were in [0, 1], brighter than the real row under it.
    rows = {
        label: _image_batch(images, f"compare_rows row {label!r}") for label, images in rows.items()
    }
    if value_range is None:
        value_range = default_value_range(*rows.values())
    num_columns = max(len(np.asarray(rows[label])) for label in labels)
    if num_columns == 0:  # else matplotlib's "Number of columns must be a positive integer"
        raise ValueError("compare_rows needs at least one image in a row")
    figure, axes = plt.subplots(
        len(labels),
        num_columns,
        figsize=(1.3 * num_columns + 1.0, 1.4 * len(labels)),
        squeeze=False,
    )
    try:
        for row_index, label in enumerate(labels):
            images = to_display(rows[label], value_range)
            for column in range(num_columns):
                axis = axes[row_index, column]
                axis.set_xticks([])
                axis.set_yticks([])
                for spine in axis.spines.values():
                    spine.set_visible(False)
                if column < len(images):
                    axis.imshow(np.squeeze(images[column]), cmap=GREY, vmin=0.0, vmax=1.0)
            axes[row_index, 0].set_ylabel(label, rotation=0, ha="right", va="center")
        if title:
            figure.suptitle(title)
        figure.tight_layout()
    except BaseException:
        plt.close(figure)  # a figure nobody can close would stay open in a notebook's loop
        raise
    if path is not None:
        _save(figure, path, close=False)
    return figure


def plot_history(history: Mapping[str, Sequence[float]], path=None, title: str = "Training curves"):
    """Plot each metric of a Keras-style history dict (or the ``History`` that ``fit`` returns)
    against the epoch; save when ``path``."""
    history = getattr(history, "history", history)
    keys = [key for key, values in history.items() if len(values) > 0]
    figure, axes = plt.subplots(
        1, len(keys) or 1, figsize=(3.2 * max(len(keys), 1), 2.8), squeeze=False
    )
    for axis, key in zip(axes[0], keys, strict=False):  # no keys: one empty axis
        values = history[key]
        axis.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 20 else None)
        axis.set_title(key)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    if path is not None:
        _save(figure, path, close=False)
    return figure


def _save(figure, path, close: bool = True) -> Path:
    path = Path(path)
    if not path.suffix:
        # matplotlib appends its default format's extension to a bare name: name that file.
        path = path.with_name(f"{path.name}.{plt.rcParams['savefig.format']}")
    # Written beside the target and renamed over it, so a crash (or a kill mid-epoch) never
    # leaves a truncated PNG where a good one was. The format is given because the temporary
    # name is not the one matplotlib would read it from.
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=100, bbox_inches="tight", format=path.suffix[1:])
    except BaseException:
        # The caller gets no figure to close: left open, each failed save kept one in memory.
        plt.close(figure)
        raise
    if close:
        plt.close(figure)
    return path
