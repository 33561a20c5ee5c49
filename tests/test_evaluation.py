"""Tests for medgen_tf.evaluation: histogram matching and the metrics table."""

import numpy as np
import pytest

from medgen_tf.evaluation import format_table, histogram_match


def test_histogram_match_gives_the_reference_distribution_inside_the_mask():
    rng = np.random.default_rng(0)
    images = rng.normal(0.0, 1.0, (4, 16, 16, 1)).astype("float32")
    reference = rng.exponential(2.0, (6, 16, 16, 1)).astype("float32") - 1.0
    mask = np.zeros(images.shape, bool)
    mask[:, 4:12, 4:12] = True
    matched = histogram_match(images, reference, mask=mask)
    levels = np.linspace(0.05, 0.95, 7)
    np.testing.assert_allclose(
        np.quantile(matched[mask], levels), np.quantile(reference, levels), atol=0.05
    )
    # Outside the mask nothing changes, and inside the order of intensities is kept.
    np.testing.assert_array_equal(matched[~mask], images[~mask])
    order = np.argsort(images[mask])
    assert np.all(np.diff(matched[mask][order]) >= -1e-6)


def test_histogram_match_cannot_invert_a_contrast():
    # T1 -> T2 needs dark to become bright; a monotone map keeps dark below bright.
    images = np.array([0.1, 0.5, 0.9], "float32")
    inverted_reference = np.array([0.9, 0.5, 0.1], "float32")
    matched = histogram_match(images, inverted_reference, num_quantiles=3)
    assert matched[0] < matched[2]


def test_histogram_match_rejects_empty_masks():
    with pytest.raises(ValueError, match="masked value"):
        histogram_match(np.zeros(4), np.ones(4), mask=np.zeros(4, bool))


def test_format_table_lists_every_method_and_column():
    values = dict.fromkeys(
        ("mae_brain", "psnr_brain", "ssim_brain", "mae_image", "psnr_image", "ssim_image"), 0.5
    )
    table = format_table({"copy input": values, "CycleGAN": {**values, "psnr_brain": 23.456}})
    lines = table.splitlines()
    assert lines[0].split() == ["method", *values]
    assert lines[3].startswith("CycleGAN") and "23.46" in lines[3]


def test_draw_lesion_paints_a_disc_and_leaves_the_rest():
    from medgen_tf.evaluation import draw_lesion

    image = np.full((16, 16, 1), -0.5, "float32")
    lesioned, core = draw_lesion(image, center=(8, 6), radius=3, value=0.9)
    assert core[8, 6] and not core[0, 0] and core.sum() > 5
    np.testing.assert_allclose(lesioned[core, 0], 0.9)
    assert lesioned[0, 0, 0] == -0.5 and image[8, 6, 0] == -0.5  # the input is not modified
