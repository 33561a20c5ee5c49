"""Evaluating image-to-image translation against paired ground truth (CycleGAN, pix2pix).

The lower references a translation model must beat (the input copied unchanged, and
histogram matching) and the table that puts them beside the models: MAE, PSNR and SSIM inside
the brain mask and over the whole image, from :mod:`medgen_tf.metrics`, pooled over slices
or subject by subject. Used by
``notebooks/03_cyclegan.ipynb`` and its solutions.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "histogram_match",
    "translation_metrics",
    "per_subject_metrics",
    "format_table",
    "format_per_subject",
]


def _quantile_levels(num_quantiles):
    return np.linspace(0.0, 1.0, int(num_quantiles))


def histogram_match(images, reference, mask=None, reference_mask=None, num_quantiles=256):
    """Map the intensities of ``images`` so their distribution matches ``reference``'s.

    A monotone look-up table from ``images``' quantiles to ``reference``'s (inside the masks
    when given; outside ``mask`` the images keep their value, e.g. the air at -1). It is the
    strongest translation that only relabels grey levels: it cannot swap which tissue is
    brighter, which is exactly what T1 -> T2 needs (CSF is dark in T1 and bright in T2), so it
    is a lower reference, not a competitor.

    Args:
        images: array of any shape (e.g. ``(n, s, s, 1)``).
        reference: array whose intensity distribution is the target (e.g. training T2 slices
            of OTHER subjects: matching must not peek at the test targets).
        mask, reference_mask: boolean arrays of the same shapes, or None for everything.
        num_quantiles: points of the look-up table.

    Ties: a value repeated over a run of quantiles maps to the reference's quantile at the
    start of that run (``skimage.exposure.match_histograms`` maps it to the end), which only
    matters for images with large flat regions inside the mask.
    """
    images = np.asarray(images, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    mask = np.ones(images.shape, bool) if mask is None else np.asarray(mask, bool)
    reference_mask = (
        np.ones(reference.shape, bool)
        if reference_mask is None
        else np.asarray(reference_mask, bool)
    )
    if mask.shape != images.shape or reference_mask.shape != reference.shape:
        raise ValueError("mask and reference_mask must have the shapes of images and reference.")
    if not mask.any() or not reference_mask.any():
        raise ValueError("histogram_match needs at least one masked value in each array.")
    # One point maps every pixel to the reference's minimum.
    if int(num_quantiles) < 2:
        raise ValueError(f"num_quantiles must be at least 2, got {num_quantiles}")
    # One NaN makes every quantile NaN, and the whole output one constant.
    for name, values in (("images", images[mask]), ("reference", reference[reference_mask])):
        non_finite = int(np.count_nonzero(~np.isfinite(values)))
        if non_finite:
            raise ValueError(f"{name}: {non_finite} NaN or Inf values inside the mask")
    levels = _quantile_levels(num_quantiles)
    source_quantiles = np.quantile(images[mask], levels)
    reference_quantiles = np.quantile(reference[reference_mask], levels)
    # np.interp needs increasing x: repeated quantiles (flat regions) keep their first value.
    source_quantiles, unique = np.unique(source_quantiles, return_index=True)
    matched = np.interp(images, source_quantiles, reference_quantiles[unique])
    return np.where(mask, matched, images).astype(np.float32)


def translation_metrics(predicted, target, mask, value_range=(-1.0, 1.0)):
    """MAE, PSNR and SSIM of ``predicted`` against ``target``, inside ``mask`` and overall.

    Images are first mapped from ``value_range`` to [0, 1], so MAE is a fraction of the full
    intensity range and PSNR uses a peak of 1. Predictions are clipped to the range (a linear
    output may overshoot it a little). Returns a dict of floats (means over images):
    ``mae_brain, psnr_brain, ssim_brain, mae_image, psnr_image, ssim_image``. PSNR is the mean
    of each image's PSNR, the usual convention: one image reproduced exactly has an infinite
    PSNR, and so has the mean (a table prints ``inf``); its MAE and SSIM stay informative.

    Raises:
        ValueError: a target outside ``value_range`` by more than 1 % of its width (the range
            is wrong), or a prediction outside it by more than 10 % (it is on another scale,
            e.g. [0, 255]), or NaN or Inf values in either.
    """
    from medgen_tf import metrics

    predicted = np.asarray(predicted, np.float32)
    target = np.asarray(target, np.float32)
    mask = np.asarray(mask, np.float32)
    # Checked before the clip, which would turn an Inf from a diverged model into a score.
    metrics.check_finite(predicted, "predicted")
    metrics.check_finite(target, "target")
    # The ground truth must be on the stated scale. Predictions may overshoot it (they are
    # clipped below); the truth cannot.
    low, high = metrics.check_value_range(target, value_range, "target")
    # Clipping is meant for overshoot: a tanh generator stays in range, a linear output head
    # may overshoot it a little. 10 % of the width leaves room for that and still refuses a
    # prediction on another scale ([0, 255] against (-1, 1) was clipped to white and scored).
    metrics.check_value_range(
        predicted,
        (low, high),
        "predicted",
        slack=0.1,
        advice="put the predictions on the target's scale before scoring them",
    )
    predicted = (predicted - low) / (high - low)
    target = (target - low) / (high - low)
    predicted = np.clip(predicted, 0.0, 1.0)
    results = {}
    for where, region in (("brain", mask), ("image", None)):
        results[f"mae_{where}"] = float(np.mean(metrics.mae(target, predicted, mask=region)))
        results[f"psnr_{where}"] = float(np.mean(metrics.psnr(target, predicted, 1.0, mask=region)))
        results[f"ssim_{where}"] = float(np.mean(metrics.ssim(target, predicted, 1.0, mask=region)))
    return results


def per_subject_metrics(predicted, target, mask, subjects, value_range=(-1.0, 1.0)):
    """:func:`translation_metrics` of each subject's images: ``{subject: metrics}``, sorted.

    A mean over slices weighs each subject by its number of slices and hides how far the
    score moves from one patient to the next, which a clinical reader asks first. With a
    handful of test subjects, report each one's value and their range beside the pooled mean
    (:func:`format_per_subject`).

    Args:
        predicted, target, mask: as for :func:`translation_metrics`, one image per row.
        subjects: one subject id per image, e.g. the ``"subject"`` array of
            ``brain_slices(..., return_labels=True)``.
        value_range: as for :func:`translation_metrics`.

    Raises:
        ValueError: ``subjects`` is not one id per image, or the arrays hold different
            numbers of images; and whatever :func:`translation_metrics` refuses.
    """
    predicted, target, mask = (np.asarray(array) for array in (predicted, target, mask))
    subjects = np.asarray(subjects)
    counts = {len(predicted), len(target), len(mask)}
    if len(counts) != 1:
        raise ValueError(
            f"per_subject_metrics: predicted, target and mask hold {len(predicted)}, "
            f"{len(target)} and {len(mask)} images; they must hold the same images"
        )
    if subjects.shape != (len(predicted),):
        raise ValueError(
            f"per_subject_metrics: subjects must hold one id per image, {len(predicted)} "
            f"ids, got an array of shape {subjects.shape}"
        )
    if not len(subjects):
        raise ValueError("per_subject_metrics got no images")
    results = {}
    for subject in np.unique(subjects):
        rows = subjects == subject
        # numpy scalars become Python ints or strings; ids in an object array already are.
        key = subject.item() if isinstance(subject, np.generic) else subject
        results[key] = translation_metrics(predicted[rows], target[rows], mask[rows], value_range)
    return results


COLUMNS = ("mae_brain", "psnr_brain", "ssim_brain", "mae_image", "psnr_image", "ssim_image")


def format_per_subject(rows, column="ssim_brain"):
    """A plain-text table of one ``column``: a row per method, a column per subject, then the
    range over subjects. ``rows`` maps a method name to its :func:`per_subject_metrics`."""
    if not rows:
        raise ValueError(
            "format_per_subject got no rows: pass {method name: per_subject_metrics(...)}"
        )
    subjects = list(next(iter(rows.values())))
    for name, by_subject in rows.items():
        if list(by_subject) != subjects:
            raise ValueError(
                f"format_per_subject: {name!r} was scored on subjects {list(by_subject)}, the "
                f"first row on {subjects}; score every method on the same subjects"
            )
        if column not in by_subject[subjects[0]]:
            raise ValueError(f"format_per_subject: no column {column!r}; one of {COLUMNS}")
    width = max(len(name) for name in rows) + 2
    cell = "{:10.2f}" if column.startswith("psnr") else "{:10.3f}"
    header = (
        "method".ljust(width)
        + "".join(f"subject {subject}".rjust(12) for subject in subjects)
        + "min to max".rjust(22)
    )
    lines = [f"{column} per subject", header, "-" * len(header)]
    for name, by_subject in rows.items():
        values = [by_subject[subject][column] for subject in subjects]
        spread = f"{cell.format(min(values)).strip()} to {cell.format(max(values)).strip()}"
        cells = "".join(cell.format(value).rjust(12) for value in values)
        lines.append(name.ljust(width) + cells + spread.rjust(22))
    return "\n".join(lines)


def format_table(rows, columns=COLUMNS):
    """A plain-text table: ``rows`` maps a method name to its :func:`translation_metrics`."""
    if not rows:  # else "max() arg is an empty sequence"
        raise ValueError("format_table got no rows: pass {method name: translation_metrics(...)}")
    width = max(len(name) for name in rows) + 2
    header = "method".ljust(width) + "".join(column.rjust(12) for column in columns)
    lines = [header, "-" * len(header)]
    for name, values in rows.items():
        cells = []
        for column in columns:
            value = values[column]
            cells.append(f"{value:12.2f}" if column.startswith("psnr") else f"{value:12.4f}")
        lines.append(name.ljust(width) + "".join(cells))
    return "\n".join(lines)


def draw_lesion(image, center, radius, value, softness=1.0):
    """A copy of one ``(s, s, 1)`` slice with a round synthetic lesion of intensity ``value``.

    The disc's edge is blended over ``softness`` pixels so it looks like tissue, not a stamp.
    Returns ``(lesioned_image, lesion_mask)`` (mask: the disc's core, boolean ``(s, s)``).
    """
    image = np.array(image, dtype=np.float32, copy=True)
    rows, columns = np.mgrid[: image.shape[0], : image.shape[1]]
    distance = np.hypot(rows - center[0], columns - center[1])
    weight = np.clip((radius - distance) / max(softness, 1e-6) + 0.5, 0.0, 1.0)
    image[..., 0] = (1.0 - weight) * image[..., 0] + weight * value
    return image, distance <= radius - softness
