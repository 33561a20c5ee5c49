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


def test_histogram_match_maps_each_rank_to_the_reference_quantile_and_cannot_invert_a_contrast():
    rng = np.random.default_rng(3)
    # 101 distinct values inside the mask, in shuffled order and skewed (squares of an even
    # grid): with 101 quantiles, the pixel of rank k is exactly the quantile at level k / 100.
    inside = rng.permutation(np.linspace(0.0, 1.0, 101) ** 2).astype("float32")
    values = np.concatenate([inside, np.full(19, -1.0, "float32")])  # 19 pixels of air
    order = rng.permutation(120)
    images, mask = values[order].reshape(8, 15), (np.arange(120) < 101)[order].reshape(8, 15)
    # The reference's masked values follow another law (a T2-like contrast, bright skewed);
    # outside its mask sit values that must not count.
    reference = np.concatenate([1.0 - rng.exponential(0.2, 150), np.full(50, 100.0)])
    reference = reference.astype("float32")
    reference_mask = reference < 50.0
    matched = histogram_match(
        images, reference, mask=mask, reference_mask=reference_mask, num_quantiles=101
    )
    levels = np.linspace(0.0, 1.0, 101)
    expected = np.quantile(reference[reference_mask].astype(np.float64), levels)
    # Inside the mask: the output's sorted values are the reference quantiles, one per rank ...
    np.testing.assert_allclose(np.sort(matched[mask]), expected, atol=1e-5)
    assert not np.allclose(np.sort(images[mask]), expected, atol=0.05)  # the input is not
    # ... given in the input's order (monotone: the darkest pixel gets the darkest value, so a
    # contrast where dark must become bright, T1 -> T2, cannot be produced) ...
    ranks = np.argsort(np.argsort(images[mask]))
    np.testing.assert_allclose(matched[mask], expected[ranks], atol=1e-5)
    assert matched[images == 0.0] == pytest.approx(expected[0], abs=1e-5)
    assert matched[images == 1.0] == pytest.approx(expected[-1], abs=1e-5)
    # ... and outside the mask the air keeps its value.
    np.testing.assert_array_equal(matched[~mask], images[~mask])


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


def test_translation_metrics_refuse_targets_outside_the_value_range_and_bad_ranges():
    from medgen_tf.evaluation import translation_metrics

    rng = np.random.default_rng(4)
    target = rng.uniform(-1, 1, (2, 16, 16, 1)).astype("float32")
    predicted = np.clip(target + 0.1 * rng.standard_normal(target.shape), -1, 1)
    mask = np.ones_like(target)
    # 8-bit targets with the default (-1, 1) were scored: PSNR -37.7 dB, SSIM 0.0002.
    eight_bit = np.round((target + 1) * 127.5).astype(np.uint8)
    with pytest.raises(
        ValueError, match=r"^target: values span \[\d+, 255\], outside value_range \(-1, 1\)"
    ):
        translation_metrics(predicted, eight_bit, mask)
    expected = translation_metrics(predicted, target, mask)
    rescaled = translation_metrics((predicted + 1) * 127.5, eight_bit, mask, value_range=(0, 255))
    assert rescaled["psnr_brain"] == pytest.approx(expected["psnr_brain"], abs=0.1)
    # (1, 1) was blamed on the model ("predicted: 512 NaN or Inf values; did training
    # diverge?"), and a reversed (1, -1) was scored as if it were (-1, 1).
    for value_range in [(1.0, 1.0), (1.0, -1.0)]:
        with pytest.raises(ValueError, match="value_range must be"):
            translation_metrics(predicted, target, mask, value_range=value_range)


def test_translation_metrics_refuse_predictions_on_another_scale_and_clip_a_small_overshoot():
    from medgen_tf.evaluation import translation_metrics

    rng = np.random.default_rng(6)
    target = rng.uniform(-1, 1, (2, 16, 16, 1)).astype("float32")
    mask = np.ones_like(target)
    # Predictions in [0, 255] against a (-1, 1) target were clipped to white and scored:
    # PSNR 6 dB, SSIM 0.12, no error.
    with pytest.raises(
        ValueError,
        match=r"^predicted: values span \[[\d.]+, [\d.]+\], outside value_range \(-1, 1\);"
        r" put the predictions on the target's scale",
    ):
        translation_metrics((target + 1) * 127.5, target, mask)
    # A linear output overshooting by 5 % of the width is clipped, as the docstring says.
    overshoot = target.copy()
    overshoot[0, :4] = 1.1
    overshoot[1, :4] = -1.1
    clipped = np.clip(overshoot, -1, 1)
    assert translation_metrics(overshoot, target, mask) == translation_metrics(
        clipped, target, mask
    )


def test_histogram_match_refuses_nan_and_a_one_point_table():
    rng = np.random.default_rng(5)
    images = rng.normal(size=(2, 8, 8, 1)).astype("float32")
    with_nan = images.copy()
    with_nan[0, 0, 0, 0] = np.nan
    # One NaN pixel made every quantile NaN: all 128 pixels came back as one constant.
    with pytest.raises(ValueError, match="images: 1 NaN or Inf"):
        histogram_match(with_nan, images)
    with pytest.raises(ValueError, match="reference: 1 NaN or Inf"):
        histogram_match(images, with_nan)
    # A NaN outside the mask is left alone, as every value outside it is.
    mask = np.ones(images.shape, bool)
    mask[0, 0, 0, 0] = False
    assert np.isnan(histogram_match(with_nan, images, mask=mask)[0, 0, 0, 0])
    # num_quantiles=1 mapped every pixel to the reference's minimum.
    with pytest.raises(ValueError, match="num_quantiles"):
        histogram_match(images, images, num_quantiles=1)


def test_format_table_without_rows_is_one_line():
    with pytest.raises(ValueError, match="format_table got no rows"):
        format_table({})


def test_histogram_match_with_two_quantiles_is_the_linear_map_of_the_ranges():
    images = np.linspace(0.0, 1.0, 11, dtype="float32").reshape(1, 11, 1, 1)
    reference = np.linspace(10.0, 20.0, 5, dtype="float32")
    np.testing.assert_allclose(
        histogram_match(images, reference, num_quantiles=2), 10.0 + 10.0 * images, rtol=1e-6
    )


def test_translation_metrics_values_are_on_the_unit_scale():
    from medgen_tf import metrics
    from medgen_tf.evaluation import translation_metrics

    rng = np.random.default_rng(8)
    target = rng.uniform(-0.8, 0.8, (2, 16, 16, 1)).astype("float32")
    mask = np.zeros_like(target)
    mask[:, 4:12, 4:12] = 1.0
    # A shift of 0.1 on (-1, 1) is 0.05 of the range on [0, 1], so PSNR = 20 log10(1 / 0.05).
    predicted = target + 0.1
    scores = translation_metrics(predicted, target, mask)
    for where in ("brain", "image"):
        assert scores[f"mae_{where}"] == pytest.approx(0.05, rel=1e-4)
        assert scores[f"psnr_{where}"] == pytest.approx(20 * np.log10(20.0), abs=1e-3)
    unit_target, unit_predicted = (target + 1) / 2, (predicted + 1) / 2
    assert scores["ssim_brain"] == pytest.approx(
        float(np.mean(metrics.ssim(unit_target, unit_predicted, 1.0, mask=mask))), rel=1e-6
    )
    assert scores["ssim_image"] == pytest.approx(
        float(np.mean(metrics.ssim(unit_target, unit_predicted, 1.0))), rel=1e-6
    )
    same = translation_metrics(target, target, mask)
    assert same["mae_brain"] == 0.0 and same["psnr_image"] == np.inf
    assert same["ssim_brain"] == pytest.approx(1.0)


def test_translation_metrics_clip_up_to_ten_percent_of_the_range_and_refuse_more():
    from medgen_tf.evaluation import translation_metrics

    target = np.random.default_rng(9).uniform(-1, 1, (1, 16, 16, 1)).astype("float32")
    mask = np.ones_like(target)
    predicted = target.copy()
    predicted[0, 0, 0, 0] = 1.0 + 0.16  # 8 % of the width of (-1, 1)
    translation_metrics(predicted, target, mask)
    predicted[0, 0, 0, 0] = 1.0 + 0.24  # 12 %
    with pytest.raises(ValueError, match="^predicted: values span"):
        translation_metrics(predicted, target, mask)


def test_draw_lesion_blends_its_edge_over_softness_pixels():
    from medgen_tf.evaluation import draw_lesion

    image = np.full((17, 17, 1), -0.5, "float32")
    lesioned, core = draw_lesion(image, center=(8, 8), radius=3.0, value=0.9, softness=2.0)
    # weight = clip((radius - distance) / softness + 1/2, 0, 1); value = mix(-0.5, 0.9, weight)
    for (row, column), distance in [((8, 10), 2.0), ((8, 11), 3.0), ((9, 11), 10**0.5)]:
        weight = np.clip((3.0 - distance) / 2.0 + 0.5, 0.0, 1.0)
        expected = (1 - weight) * -0.5 + weight * 0.9
        assert lesioned[row, column, 0] == pytest.approx(expected, abs=1e-6), distance
    assert lesioned[8, 12, 0] == -0.5  # distance 4: outside the blended edge
    # The core is what lies at least `softness` inside the radius: distances 0 and 1 here.
    assert core.sum() == 5
    # The default softness, 1 pixel: the core is every pixel within 2 of the centre.
    assert draw_lesion(image, center=(8, 8), radius=3.0, value=0.9)[1].sum() == 13


def _paired_slices(seed=0, count=6, size=16):
    rng = np.random.default_rng(seed)
    target = rng.uniform(-1, 1, (count, size, size, 1)).astype("float32")
    noise = rng.normal(0, 0.2, target.shape).astype("float32")
    predicted = np.clip(target + noise * np.arange(1, count + 1)[:, None, None, None], -1, 1)
    mask = np.zeros(target.shape, "float32")
    mask[:, 3:13, 3:13] = 1.0
    return predicted, target, mask


def test_per_subject_metrics_score_each_subjects_slices_and_pool_back_to_the_slice_mean():
    from medgen_tf.evaluation import per_subject_metrics, translation_metrics

    predicted, target, mask = _paired_slices()
    subjects = np.array([31, 31, 29, 29, 29, 30])  # unequal slice counts, unsorted ids
    scores = per_subject_metrics(predicted, target, mask, subjects)
    assert list(scores) == [29, 30, 31] and all(type(subject) is int for subject in scores)
    rows = subjects == 29
    assert scores[29] == translation_metrics(predicted[rows], target[rows], mask[rows])
    # The pooled table is the slice-weighted mean of the subjects' means, not their plain mean.
    pooled = translation_metrics(predicted, target, mask)
    counts = {subject: int(np.sum(subjects == subject)) for subject in scores}
    weighted = sum(counts[s] * scores[s]["ssim_brain"] for s in scores) / len(subjects)
    assert pooled["ssim_brain"] == pytest.approx(weighted, rel=1e-5)
    assert scores[31]["mae_brain"] < scores[29]["mae_brain"] < scores[30]["mae_brain"]
    # Ids as text, from a table of file names (an object array), key the result as they are.
    names = np.array(["IXI012", "IXI012", "IXI002", "IXI002", "IXI002", "IXI100"], dtype=object)
    by_name = per_subject_metrics(predicted, target, mask, names)
    assert list(by_name) == ["IXI002", "IXI012", "IXI100"]
    assert by_name["IXI002"] == scores[29]


def test_per_subject_metrics_refuse_ids_that_are_not_one_per_image():
    from medgen_tf.evaluation import per_subject_metrics

    predicted, target, mask = _paired_slices()
    for subjects, problem in [
        (np.zeros(5, int), r"one id per image, 6 ids, got an array of shape \(5,\)"),
        (np.zeros((6, 1), int), r"shape \(6, 1\)"),
    ]:
        with pytest.raises(ValueError, match=problem) as caught:
            per_subject_metrics(predicted, target, mask, subjects)
        assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="hold 6, 5 and 6 images"):
        per_subject_metrics(predicted, target[:5], mask, np.zeros(6, int))
    with pytest.raises(ValueError, match="got no images"):
        per_subject_metrics(predicted[:0], target[:0], mask[:0], np.zeros(0, int))


def test_format_per_subject_lists_every_subject_and_the_range():
    from medgen_tf.evaluation import format_per_subject

    def scores(values):
        return {
            subject: {"ssim_brain": value, "psnr_brain": 20.0 + value}
            for subject, value in zip((28, 29), values, strict=True)
        }

    table = format_per_subject(
        {"copy input": scores([0.1234, -0.2]), "CycleGAN": scores([0.5, 0.45])}
    )
    lines = table.splitlines()
    assert lines[0] == "ssim_brain per subject"
    assert "subject 28" in lines[1] and "subject 29" in lines[1]
    assert lines[3].split() == ["copy", "input", "0.123", "-0.200", "-0.200", "to", "0.123"]
    assert lines[4].split() == ["CycleGAN", "0.500", "0.450", "0.450", "to", "0.500"]
    # A column: each value ends where its header ends, and every row is as long as the rule.
    assert len({len(line) for line in lines[1:]}) == 1
    row = lines[3]
    ends = [row.index("0.123") + 5, row.index("-0.200") + 6, row.rindex("0.123") + 5]
    assert ends == [lines[1].index(label) + len(label) for label in ("28", "29", "max")]
    psnr = format_per_subject({"CycleGAN": scores([0.5, 0.45])}, column="psnr_brain")
    assert psnr.splitlines()[3].split()[-3:] == ["20.45", "to", "20.50"]
    with pytest.raises(
        ValueError, match="scored on subjects \\[28\\], the first row on \\[28, 29\\]"
    ):
        format_per_subject({"a": scores([0.1, 0.2]), "b": {28: {"ssim_brain": 0.1}}})
    with pytest.raises(ValueError, match="no column 'ssim'"):
        format_per_subject({"a": scores([0.1, 0.2])}, column="ssim")
    with pytest.raises(ValueError, match="got no rows"):
        format_per_subject({})
