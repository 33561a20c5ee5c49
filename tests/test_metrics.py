"""medgen_tf.metrics against closed forms and independent numpy/scipy implementations."""

import numpy as np
import pytest
from scipy import ndimage

from medgen_tf import metrics


def _reference_ssim_map(a, b, data_range):
    """Wang et al. 2004 SSIM map of two (h, w) images, written from the paper with scipy."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(x):
        # truncate gives radius int(3.34 * 1.5 + 0.5) = 5: the 11x11 window; the 5-pixel border
        # where the window leaves the image is cropped, as in "valid" filtering.
        return ndimage.gaussian_filter(x, sigma=1.5, truncate=3.34, mode="constant")[5:-5, 5:-5]

    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )


@pytest.fixture
def image_pair():
    generator = np.random.default_rng(0)
    clean = ndimage.gaussian_filter(generator.random((3, 32, 32, 1)), sigma=(0, 2, 2, 0))
    clean = (clean - clean.min()) / (clean.max() - clean.min())
    noisy = np.clip(clean + 0.05 * generator.standard_normal(clean.shape), 0, 1)
    mask = np.zeros(clean.shape, np.float32)
    mask[:, 8:26, 6:24] = 1.0
    return clean.astype(np.float32), noisy.astype(np.float32), mask


def test_psnr_matches_numpy(image_pair):
    a, b, mask = image_pair
    mse = ((a.astype(np.float64) - b) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(
        metrics.psnr(a, b, data_range=1.0), 10 * np.log10(1 / mse), rtol=1e-4
    )
    # A [-1, 1] copy of the same images has range 2 and the same PSNR.
    np.testing.assert_allclose(
        metrics.psnr(2 * a - 1, 2 * b - 1, data_range=2.0), 10 * np.log10(1 / mse), rtol=1e-4
    )
    inside = mask.astype(bool)
    masked_mse = [
        ((a[i][inside[i]] - b[i][inside[i]].astype(np.float64)) ** 2).mean() for i in range(3)
    ]
    np.testing.assert_allclose(
        metrics.psnr(a, b, 1.0, mask=mask), 10 * np.log10(1 / np.array(masked_mse)), rtol=1e-4
    )
    assert metrics.psnr(a, a, 1.0, reduce="mean") == np.inf


def test_ssim_matches_reference_implementation(image_pair):
    a, b, mask = image_pair
    expected = [_reference_ssim_map(a[i, ..., 0], b[i, ..., 0], 1.0).mean() for i in range(3)]
    np.testing.assert_allclose(metrics.ssim(a, b, data_range=1.0), expected, atol=1e-3)
    # Masked: mean of the map over window centres inside the mask.
    expected_masked = []
    for i in range(3):
        index_map = _reference_ssim_map(a[i, ..., 0], b[i, ..., 0], 1.0)
        inside = mask[i, 5:-5, 5:-5, 0] > 0.5
        expected_masked.append(index_map[inside].mean())
    np.testing.assert_allclose(metrics.ssim(a, b, 1.0, mask=mask), expected_masked, atol=1e-3)
    assert not np.allclose(expected_masked, expected, atol=1e-3)
    np.testing.assert_allclose(metrics.ssim(a, a, 1.0), 1.0, atol=1e-6)


def test_single_image_reduce_and_mae(image_pair):
    a, b, mask = image_pair
    single = metrics.ssim(a[0], b[0], 1.0)
    assert isinstance(single, float)
    assert single == pytest.approx(metrics.ssim(a, b, 1.0)[0], abs=1e-6)
    assert metrics.mae(a, b, reduce="mean") == pytest.approx(np.abs(a - b).mean(), rel=1e-5)
    inside = mask.astype(bool)
    expected = [np.abs(a[i][inside[i]] - b[i][inside[i]]).mean() for i in range(3)]
    np.testing.assert_allclose(metrics.mae(a, b, mask=mask), expected, rtol=1e-5)


def test_image_metrics_reject_bad_input(image_pair):
    a, b, _ = image_pair
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(a, b, data_range=None)
    with pytest.raises(ValueError, match="same shape"):
        metrics.mae(a, b[:2])
    with pytest.raises(ValueError, match="at least 161x161"):
        metrics.ms_ssim(a, b, data_range=1.0)
    with pytest.raises(ValueError, match="at least one pixel"):
        metrics.mae(a, b, mask=np.zeros_like(a))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_image_metrics_refuse_non_finite_pixels(image_pair, value):
    from medgen_tf.evaluation import translation_metrics

    a, b, mask = image_pair
    b = b.copy()
    b[0, 3, 3, 0] = b[2, 20, 9, 0] = value
    calls = {
        "mae": lambda: metrics.mae(a, b),
        "psnr": lambda: metrics.psnr(a, b, 1.0),
        "masked psnr": lambda: metrics.psnr(a, b, 1.0, mask=mask),
        "ssim": lambda: metrics.ssim(a, b, 1.0),
        "masked ssim": lambda: metrics.ssim(a, b, 1.0, mask=mask),
        "ms_ssim": lambda: metrics.ms_ssim(a, b, 1.0, power_factors=metrics.ms_ssim_weights(2)),
        "translation_metrics": lambda: translation_metrics(2 * a - 1, 2 * b - 1, mask),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match="2 NaN or Inf values") as error:
            call()
        assert "\n" not in str(error.value), name
    with pytest.raises(ValueError, match="^a: 2 NaN or Inf values; did training diverge"):
        metrics.mae(b, a)
    # A diverged model's predictions are named as such, Inf included (a clip to the value range
    # would otherwise score it).
    with pytest.raises(ValueError, match="^predicted: 2 NaN or Inf values"):
        translation_metrics(2 * b - 1, 2 * a - 1, mask)


def test_ms_ssim_orders_noise_levels():
    generator = np.random.default_rng(1)
    clean = ndimage.gaussian_filter(generator.random((2, 48, 48, 1)), sigma=(0, 2, 2, 0))
    clean = ((clean - clean.min()) / (clean.max() - clean.min())).astype(np.float32)
    factors = metrics.ms_ssim_weights(3)
    slightly = clean + 0.02 * generator.standard_normal(clean.shape).astype(np.float32)
    strongly = clean + 0.2 * generator.standard_normal(clean.shape).astype(np.float32)
    assert metrics.ms_ssim(
        clean, clean, 1.0, power_factors=factors, reduce="mean"
    ) == pytest.approx(1.0, abs=1e-5)
    high = metrics.ms_ssim(clean, slightly, 1.0, power_factors=factors, reduce="mean")
    low = metrics.ms_ssim(clean, strongly, 1.0, power_factors=factors, reduce="mean")
    assert 1.0 > high > low


def test_ms_ssim_on_too_small_images_suggests_the_scales_that_fit():
    generator = np.random.default_rng(15)
    # The advice was always "e.g. ms_ssim_weights(3)", even to a caller who had passed 3.
    for side, filter_size, num_scales, advice in (
        (24, 7, 3, r"pass at most 2 power_factors, e\.g\. ms_ssim_weights\(2\)$"),
        (64, 11, 5, r"pass at most 3 power_factors, e\.g\. ms_ssim_weights\(3\)$"),
        (6, 7, 2, r"no number of scales fits: one scale needs at least 7x7$"),
    ):
        a = generator.random((1, side, side, 1))
        with pytest.raises(ValueError, match=rf"got \({side}, {side}\); {advice}"):
            metrics.ms_ssim(
                a,
                a,
                1.0,
                power_factors=metrics.ms_ssim_weights(num_scales),
                filter_size=filter_size,
            )
    # The largest suggested number of scales does run on that image.
    a = generator.random((1, 24, 24, 1))
    two_scales = metrics.ms_ssim_weights(2)
    assert metrics.ms_ssim(a, a, 1.0, power_factors=two_scales, filter_size=7, reduce="mean") == (
        pytest.approx(1.0)
    )


def test_ms_ssim_weights_are_the_papers_finest_scales_renormalised():
    paper = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, scale 1 (finest) first
    # The paper's five sum to 1.0001, so even all five move slightly when renormalised.
    assert metrics.ms_ssim_weights() == pytest.approx(paper, abs=1e-4)
    three = metrics.ms_ssim_weights(3)
    assert three == pytest.approx((0.0711, 0.4530, 0.4760), abs=1e-4)
    assert sum(three) == pytest.approx(1.0)
    # Index 0 is the finest scale: pixel noise, which halving averages away, costs most there.
    generator = np.random.default_rng(8)
    a = ndimage.gaussian_filter(generator.random((2, 48, 48, 1)), sigma=(0, 2, 2, 0))
    a = ((a - a.min()) / (a.max() - a.min())).astype(np.float32)
    b = a + 0.1 * generator.standard_normal(a.shape).astype(np.float32)
    finest = metrics.ms_ssim(a, b, 1.0, power_factors=(1.0, 0.0, 0.0), reduce="mean")
    coarsest = metrics.ms_ssim(a, b, 1.0, power_factors=(0.0, 0.0, 1.0), reduce="mean")
    assert finest < coarsest - 0.1
    with pytest.raises(ValueError, match="num_scales"):
        metrics.ms_ssim_weights(6)


def test_frechet_distance_from_moments_closed_form():
    generator = np.random.default_rng(2)
    mean_a, mean_b = generator.normal(size=5), generator.normal(size=5)
    variances_a, variances_b = generator.uniform(0.5, 2, 5), generator.uniform(0.5, 2, 5)
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum(
        variances_a + variances_b - 2 * np.sqrt(variances_a * variances_b)
    )
    value = metrics.frechet_distance_from_moments(
        mean_a, np.diag(variances_a), mean_b, np.diag(variances_b)
    )
    assert value == pytest.approx(expected, rel=1e-9)
    # A full (non-diagonal) case: rotating both Gaussians by one orthogonal matrix preserves it.
    rotation, _ = np.linalg.qr(generator.normal(size=(5, 5)))
    value = metrics.frechet_distance_from_moments(
        rotation @ mean_a,
        rotation @ np.diag(variances_a) @ rotation.T,
        rotation @ mean_b,
        rotation @ np.diag(variances_b) @ rotation.T,
    )
    assert value == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_of_samples_matches_closed_form():
    generator = np.random.default_rng(3)
    mean_a, mean_b = np.zeros(4), np.array([1.0, 0.5, 0.0, -0.5])
    scales_a, scales_b = np.array([1.0, 2.0, 0.5, 1.0]), np.array([1.5, 1.0, 0.5, 2.0])

    # Standardised samples have exactly the intended mean and covariance, so the sample version
    # must equal the closed form up to round-off, not just up to sampling noise.
    def exact_sample(mean, scales, n=5000):
        white = generator.standard_normal((n, 4))
        white -= white.mean(axis=0)
        white = white @ np.linalg.inv(np.linalg.cholesky(np.cov(white, rowvar=False)).T)
        return mean + white * scales

    a, b = exact_sample(mean_a, scales_a), exact_sample(mean_b, scales_b)
    variances_a, variances_b = scales_a**2, scales_b**2
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum(
        variances_a + variances_b - 2 * np.sqrt(variances_a * variances_b)
    )
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-3)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_survives_singular_covariance():
    generator = np.random.default_rng(4)
    # 10 samples in 32 dimensions: rank-deficient covariances.
    a, b = generator.normal(size=(10, 32)), generator.normal(size=(10, 32)) + 1.0
    value = metrics.frechet_distance(a, b)
    assert np.isfinite(value) and value > 0


def test_frechet_distance_scales_as_the_square_of_the_features_with_fewer_samples_than_dims():
    # n = 20 <= d = 64: singular covariances. A general matrix square root of their product left
    # an imaginary part that grew with the features' scale, and c = 100 and 1000 were refused.
    generator = np.random.default_rng(3)
    x = np.maximum(generator.normal(size=(20, 64)), 0.0)  # ReLU-like, with dead entries
    y = np.maximum(generator.normal(0.3, 1.2, size=(20, 64)), 0.0)
    # Independent value from the samples: Tr (C_x C_y)^(1/2) is the sum of the singular values
    # of Y X^T / (n - 1) for centred X, Y, as (Y X^T)(X Y^T) has the nonzero eigenvalues of
    # (X^T X)(Y^T Y) = (n - 1)^2 C_x C_y.
    centred_x, centred_y = x - x.mean(axis=0), y - y.mean(axis=0)
    trace_sqrt = np.linalg.svd(centred_y @ centred_x.T, compute_uv=False).sum() / (len(x) - 1)
    expected = (
        np.sum((x.mean(axis=0) - y.mean(axis=0)) ** 2)
        + np.sum(x.var(axis=0, ddof=1) + y.var(axis=0, ddof=1))
        - 2 * trace_sqrt
    )
    value = metrics.frechet_distance(x, y)
    for scale in (100, 1000):
        assert metrics.frechet_distance(scale * x, scale * y) == pytest.approx(
            scale**2 * value, rel=1e-9
        )
    assert value == pytest.approx(expected, rel=1e-9)


def test_kid_near_zero_for_one_distribution_positive_for_two():
    generator = np.random.default_rng(5)
    a = generator.normal(size=(400, 16))
    b = generator.normal(size=(400, 16))
    shifted = generator.normal(size=(400, 16)) + 0.5
    same_mean, same_std = metrics.kid(a, b, num_subsets=20, subset_size=200)
    different_mean, _ = metrics.kid(a, shifted, num_subsets=20, subset_size=200)
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert different_mean > 10 * same_std and different_mean > 0.1


def _brute_force_kid(x, y):
    """Unbiased MMD^2 with k(u, v) = (u . v / d + 1)^3, pair by pair in plain Python."""
    d = x.shape[1]

    def kernel(u, v):
        return (sum(float(a) * float(b) for a, b in zip(u, v, strict=True)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    within_x = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    within_y = sum(kernel(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    across = sum(kernel(x[i], y[j]) for i in range(m) for j in range(n))
    return within_x / (m * (m - 1)) + within_y / (n * (n - 1)) - 2.0 * across / (m * n)


def test_kid_equals_the_unbiased_cubic_kernel_mmd_computed_pair_by_pair():
    generator = np.random.default_rng(11)
    x = generator.normal(size=(6, 3))
    y = generator.normal(0.4, 1.3, size=(6, 3))
    expected = _brute_force_kid(x, y)
    # A square kernel, a biased estimate (i == j kept) or a scaled value gives another number.
    assert abs(expected) > 0.1
    # subset_size >= n: every subset is the whole set, in some order, so every estimate is it.
    mean, std = metrics.kid(x, y, num_subsets=3, subset_size=50)
    assert mean == pytest.approx(expected, rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-10)
    # One set against itself: the cross term keeps i == j and the within terms do not, so the
    # unbiased estimate is below 0 (a biased one would give exactly 0).
    same = metrics.kid(x, x, num_subsets=2, subset_size=50)[0]
    assert same == pytest.approx(_brute_force_kid(x, x), rel=1e-10) and same < -0.1
    # Averaged over random subsets of 3 rows the unbiased estimate has the full-set value as
    # its expectation; subsets drawn with replacement (repeated rows) would bias it.
    num_subsets = 4000
    mean, std = metrics.kid(x, y, num_subsets=num_subsets, subset_size=3, seed=1)
    assert std > 0.1
    assert mean == pytest.approx(expected, abs=4 * std / np.sqrt(num_subsets))


@pytest.mark.parametrize("options", [dict(subset_size=1), dict(subset_size=0), dict(num_subsets=0)])
def test_kid_refuses_subsets_that_give_no_estimate(options):
    # One row per subset leaves no pair to average (0 / 0); no subsets leave no mean.
    a = np.random.default_rng(5).normal(size=(20, 4))
    with pytest.raises(ValueError, match="subset_size >= 2 and num_subsets >= 1") as raised:
        metrics.kid(a, a + 1.0, **{"num_subsets": 5, "subset_size": 10, **options})
    assert "\n" not in str(raised.value)


def test_precision_recall_identical_and_disjoint():
    generator = np.random.default_rng(6)
    real = generator.normal(size=(200, 8))
    identical = metrics.precision_recall(real, real.copy(), k=3)
    assert identical == {"precision": 1.0, "recall": 1.0}
    far = metrics.precision_recall(real, generator.normal(size=(200, 8)) + 20.0, k=3)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    # A collapsed generator (all samples near one real point): full fidelity, little diversity.
    collapsed = real[:1] + 0.01 * generator.normal(size=(200, 8))
    result = metrics.precision_recall(real, collapsed, k=3)
    assert result["precision"] == 1.0 and result["recall"] < 0.1


def test_memorization_flags_a_copied_training_image():
    generator = np.random.default_rng(7)
    train = generator.random((50, 16, 16, 1))
    test = generator.random((20, 16, 16, 1))
    generated = generator.random((30, 16, 16, 1))
    generated[11] = train[42]
    result = metrics.memorization(generated, train, test, num_pairs=3)
    assert result["flagged_indices"] == [11]
    assert result["closest_pairs"][0][:2] == (11, 42)
    assert result["closest_pairs"][0][2] == pytest.approx(0.0, abs=1e-6)
    assert result["fraction_flagged"] == pytest.approx(1 / 30)
    fresh = metrics.memorization(generator.random((30, 16, 16, 1)), train, test)
    assert fresh["flagged_indices"] == []
    assert 0.8 < fresh["distance_ratio"] < 1.2
    assert fresh["test_duplicates"] == 0


def test_memorization_still_flags_copies_when_a_blank_slice_is_in_train_and_test():
    generator = np.random.default_rng(9)
    blank = np.full((16, 16, 1), -1.0)  # air above the head: the same in every subject
    train = generator.uniform(-1, 1, (50, 16, 16, 1))
    train[[3, 17]] = blank
    test = generator.uniform(-1, 1, (20, 16, 16, 1))
    test[[0, 5]] = blank
    generated = generator.uniform(-1, 1, (30, 16, 16, 1))
    planted = [2, 11, 25]
    generated[planted] = train[[42, 7, 30]]
    result = metrics.memorization(generated, train, test)
    assert result["test_duplicates"] == 2
    # The threshold comes from the test images that are not in train, not from the blanks' 0.
    unseen = np.delete(test, [0, 5], axis=0)
    closest_unseen = metrics.pairwise_distances(unseen, train).min()
    assert result["threshold"] == pytest.approx(0.5 * closest_unseen)
    assert result["flagged_indices"] == planted
    assert result["fraction_flagged"] == pytest.approx(3 / 30)
    with pytest.raises(ValueError, match="every test sample is also in train"):
        metrics.memorization(generated, train, train[:5])


def test_a_mask_with_another_channel_count_is_one_line(image_pair):
    # A 3-channel mask for 1-channel images: mae and psnr raised TensorFlow's BroadcastTo
    # InvalidArgumentError, and ssim silently scored the union of the three channels.
    a, b, mask = image_pair
    wrong = np.repeat(mask, 3, axis=-1)
    for name, call in {
        "mae": lambda: metrics.mae(a, b, mask=wrong),
        "psnr": lambda: metrics.psnr(a, b, 1.0, mask=wrong),
        "ssim": lambda: metrics.ssim(a, b, 1.0, mask=wrong),
    }.items():
        with pytest.raises(ValueError, match="mask must have the images' shape") as raised:
            call()
        assert "\n" not in str(raised.value), name
    # One channel, or the images' own count, is still accepted.
    rgb_a, rgb_b = np.repeat(a, 3, axis=-1), np.repeat(b, 3, axis=-1)
    np.testing.assert_allclose(
        metrics.mae(rgb_a, rgb_b, mask=wrong), metrics.mae(rgb_a, rgb_b, mask=mask), rtol=1e-6
    )


def test_empty_image_batches_are_refused():
    # No images gave an empty array of scores, and reduce="mean" a NaN with numpy warnings.
    empty = np.zeros((0, 16, 16, 1), np.float32)
    for call in (
        lambda: metrics.mae(empty, empty, reduce="mean"),
        lambda: metrics.psnr(empty, empty, 1.0),
        lambda: metrics.ssim(empty, empty, 1.0, reduce="mean"),
    ):
        with pytest.raises(ValueError, match="no pixels"):
            call()
    # A zero-width channel axis was a NaN per image.
    with pytest.raises(ValueError, match="no pixels"):
        metrics.mae(np.zeros((2, 16, 16, 0)), np.zeros((2, 16, 16, 0)))


def test_masked_psnr_of_identical_images_is_inf_without_a_warning(image_pair, recwarn):
    a, _, mask = image_pair
    assert np.all(np.isinf(metrics.psnr(a, a, 1.0, mask=mask)))
    assert np.all(np.isinf(metrics.psnr(a, a, 1.0)))
    # numpy's "divide by zero encountered" was printed for every masked call.
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_feature_sets_of_different_dimension_are_one_line():
    # precision_recall and pairwise_distances raised numpy's "matmul: Input operand 1 has a
    # mismatch in its core dimension 0, with gufunc signature ..."
    generator = np.random.default_rng(10)
    eight, seven = generator.normal(size=(20, 8)), generator.normal(size=(20, 7))
    for call in (
        lambda: metrics.precision_recall(eight, seven),
        lambda: metrics.pairwise_distances(eight, seven),
        lambda: metrics.frechet_distance(eight, seven),
        lambda: metrics.kid(eight, seven, subset_size=10),
        lambda: metrics.memorization(eight, eight + 1.0, seven),
    ):
        with pytest.raises(ValueError, match="same dimension") as raised:
            call()
        assert "\n" not in str(raised.value)


def test_features_without_columns_are_refused():
    # (n, 0) features: frechet_distance raised numpy's "zero-size array to reduction operation
    # maximum which has no identity", kid returned (nan, nan) with a warning per subset.
    empty = np.zeros((10, 0))
    for call in (
        lambda: metrics.frechet_distance(empty, empty),
        lambda: metrics.kid(empty, empty, subset_size=5),
        lambda: metrics.precision_recall(empty, empty),
    ):
        with pytest.raises(ValueError, match=r"at least one feature, got shape \(10, 0\)"):
            call()


def test_frechet_distance_from_moments_checks_the_moments():
    # A 3-vector mean with 2x2 covariances was silently scored (0.0 for equal means), and a NaN
    # covariance raised LinAlgError "SVD did not converge".
    eye = np.eye(2)
    with pytest.raises(ValueError, match=r"mean \(d,\) and covariance \(d, d\)"):
        metrics.frechet_distance_from_moments(np.zeros(3), eye, np.zeros(3), eye)
    with pytest.raises(ValueError, match=r"mean \(d,\) and covariance \(d, d\)"):
        metrics.frechet_distance_from_moments(
            np.zeros(2), np.ones((2, 3)), np.zeros(2), np.ones((2, 3))
        )
    with pytest.raises(ValueError, match="NaN or inf"):
        metrics.frechet_distance_from_moments(
            np.zeros(2), np.full((2, 2), np.nan), np.zeros(2), eye
        )
    # Scalars are one-dimensional moments: N(0, 1) and N(3, 4) are 9 + 1 + 4 - 2 * 2 = 10 apart.
    assert metrics.frechet_distance_from_moments(0.0, 1.0, 3.0, 4.0) == pytest.approx(10.0)


def test_memorization_checks_a_single_generated_sample():
    # One generated image was refused ("generated must be (n, d) with n >= 2"), though its
    # nearest training neighbour is well defined; so is a single held-out reference.
    generator = np.random.default_rng(11)
    train = generator.random((20, 8, 8, 1))
    test = generator.random((5, 8, 8, 1))
    copy = metrics.memorization(train[3:4], train, test)
    assert copy["flagged_indices"] == [0] and copy["closest_pairs"][0][:2] == (0, 3)
    fresh = metrics.memorization(generator.random((1, 8, 8, 1)), train, test[:1])
    assert fresh["flagged_indices"] == [] and fresh["fraction_flagged"] == 0.0
    with pytest.raises(ValueError, match=r"generated must be \(n, d\) with n >= 1"):
        metrics.memorization(train[:0], train, test)


def test_small_argument_mistakes_are_one_line():
    generator = np.random.default_rng(12)
    real, fake = generator.normal(size=(20, 4)), generator.normal(size=(20, 4))
    # k=2.5 was numpy's TypeError "Partition index must be integer".
    with pytest.raises(ValueError, match="k must be an integer"):
        metrics.precision_recall(real, fake, k=2.5)
    # No power factors was IndexError "pop from empty list" inside TensorFlow.
    a = generator.random((1, 32, 32, 1)).astype(np.float32)
    with pytest.raises(ValueError, match="power_factors"):
        metrics.ms_ssim(a, a, 1.0, power_factors=())
    # NaN labels or predictions gave a balanced accuracy of NaN with numpy warnings.
    with pytest.raises(ValueError, match="NaN"):
        metrics.balanced_accuracy([0, 1, np.nan], [0, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        metrics.balanced_accuracy([0, 1, 1], [0, np.nan, 1])


def test_balanced_accuracy_refuses_scores_and_accepts_whole_number_floats():
    labels = np.array([0, 0, 1, 1, 1, 0])
    logits = np.array([-2.0, -1.0, 1.5, 2.0, 0.5, -0.3])
    # Logits or probabilities equal no label: both scored 0.0, where thresholded they score 1.0.
    for scores in (logits, 1 / (1 + np.exp(-logits))):
        with pytest.raises(ValueError, match="predictions must be class labels; threshold"):
            metrics.balanced_accuracy(labels, scores)
    assert metrics.balanced_accuracy(labels, (logits > 0).astype(int)) == 1.0
    assert metrics.balanced_accuracy(labels, (logits > 0).astype(np.float32)) == 1.0
    assert metrics.balanced_accuracy(labels, np.zeros(6)) == 0.5


def test_kid_refuses_a_subset_size_or_num_subsets_that_is_no_whole_number():
    generator = np.random.default_rng(14)
    a, b = generator.normal(size=(20, 4)), generator.normal(size=(20, 4))
    # int() truncated them: subset_size=2.9 ran with 2 rows, and num_subsets=0.5 was refused as
    # "num_subsets >= 1" without saying that it must be a whole number.
    with pytest.raises(ValueError, match=r"^subset_size must be a whole number, got 2\.9$"):
        metrics.kid(a, b, subset_size=2.9, num_subsets=3)
    with pytest.raises(ValueError, match=r"^num_subsets must be a whole number, got 0\.5$"):
        metrics.kid(a, b, num_subsets=0.5)
    with pytest.raises(ValueError, match="^subset_size must be a whole number, got True$"):
        metrics.kid(a, b, subset_size=True)
    # Whole-number floats score as the ints do.
    assert metrics.kid(a, b, subset_size=10.0, num_subsets=3.0) == metrics.kid(
        a, b, subset_size=10, num_subsets=3
    )


@pytest.mark.parametrize("data_range", [float("inf"), "x", np.array([1.0, 2.0]), 0.0, -1.0])
def test_a_data_range_that_is_no_positive_finite_number_is_refused(image_pair, data_range):
    # inf gave PSNR inf for any pair and SSIM NaN; a string or an array raised numpy/Python
    # conversion errors that did not name data_range.
    a, b, _ = image_pair
    for call in (metrics.psnr, metrics.ssim):
        with pytest.raises(ValueError, match="data_range must be a positive number"):
            call(a, b, data_range)


def test_memorization_refuses_a_threshold_factor_or_num_pairs_that_cannot_work():
    generator = np.random.default_rng(13)
    train, test = generator.random((10, 4)), generator.random((5, 4))
    generated = train[:3].copy()  # three exact copies
    # threshold_factor 0 or below made the threshold <= 0: exact copies went unflagged.
    for factor in (0.0, -0.5, float("nan")):
        with pytest.raises(ValueError, match="threshold_factor must be"):
            metrics.memorization(generated, train, test, threshold_factor=factor)
    # num_pairs=-1 silently listed all pairs but the farthest.
    with pytest.raises(ValueError, match="num_pairs must be"):
        metrics.memorization(generated, train, test, num_pairs=-1)
    assert metrics.memorization(generated, train, test, num_pairs=0)["closest_pairs"] == []


@pytest.mark.parametrize("chunk_size", [0, -3, 2.5, None])
def test_pairwise_distances_refuses_a_chunk_size_that_is_no_positive_int(chunk_size):
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        metrics.pairwise_distances(x, x, chunk_size=chunk_size)
    # A numpy integer is an integer.
    assert metrics.pairwise_distances(x, x, chunk_size=np.int64(2)).shape == (3, 3)


def test_check_value_range_allows_one_percent_slack_and_raises_the_error_type_asked_for():
    from medgen_tf.errors import DataError

    images = np.array([-1.019, 0.0, 1.019], np.float32)  # within 1 % of the width 2 (0.02)
    assert metrics.check_value_range(images, (-1, 1)) == (-1.0, 1.0)
    assert metrics.check_value_range(np.zeros((0, 4)), (0, 255)) == (0.0, 255.0)
    with pytest.raises(
        ValueError, match=r"^target: values span \[-1.03, 1\], outside value_range \(-1, 1\); pass"
    ):
        metrics.check_value_range(np.array([-1.03, 1.0]), (-1, 1), "target")
    with pytest.raises(
        DataError, match=r"^images: values span \[0, 300\], outside value_range \(0, 255\)"
    ):
        metrics.check_value_range(np.array([0, 300], np.uint16), (0, 255), error=DataError)
    for bad_range in [(1, 1), (1, -1), (0, float("inf")), (float("nan"), 1)]:
        with pytest.raises(ValueError, match=r"^value_range must be \(low, high\) with high > low"):
            metrics.check_value_range(images, bad_range)


def test_memorization_finds_copied_test_images_despite_round_off():
    # At 64 x 64 the expanded |x - y|^2 of two identical rows is round-off, up to ~2e-6 after
    # the square root, not 0: the duplicate tolerance scales with the norms to absorb it.
    rng = np.random.default_rng(0)
    train = rng.uniform(-1, 1, (30, 64, 64, 1))
    test = np.concatenate([train[:10], rng.uniform(-1, 1, (4, 64, 64, 1))])
    assert metrics.pairwise_distances(test[:10], train[:10]).diagonal().max() > 1e-6
    result = metrics.memorization(rng.uniform(-1, 1, (5, 64, 64, 1)), train, test)
    assert result["test_duplicates"] == 10


def test_memorization_ratio_is_against_the_unseen_test_samples_only():
    rng = np.random.default_rng(5)
    train = rng.normal(size=(20, 6))
    unseen = rng.normal(size=(2, 6))
    # Three of five test samples copied from train: the median over all five was 0, and
    # distance_ratio NaN whatever the generator did.
    test = np.concatenate([train[:3], unseen])
    generated = rng.normal(size=(7, 6))
    result = metrics.memorization(generated, train, test)
    assert result["test_duplicates"] == 3
    nearest = lambda rows: np.sqrt(((rows[:, None] - train[None]) ** 2).sum(-1)).min(axis=1)  # noqa: E731
    expected = np.median(nearest(generated)) / np.median(nearest(unseen))
    assert np.isfinite(result["distance_ratio"])
    np.testing.assert_allclose(result["distance_ratio"], expected, rtol=1e-6)
    # The summary still covers every test sample, duplicates included.
    assert result["test_to_train"]["median"] < 1e-6


@pytest.mark.parametrize(
    "covariance, problem",
    [
        ([[1.0, 5.0], [0.0, 1.0]], "covariance_a is not symmetric"),
        ([[1.0, 0.0], [5.0, 1.0]], "covariance_a is not symmetric"),
        (np.diag([1.0, -4.0]), r"covariance_a has a negative eigenvalue \(-4\)"),
        (-np.eye(2), r"covariance_a has a negative eigenvalue \(-1\)"),
    ],
    ids=["upper", "lower", "indefinite", "negative-definite"],
)
def test_frechet_distance_from_moments_refuses_a_matrix_that_is_no_covariance(covariance, problem):
    # eigh read one triangle and the square root zeroed negative eigenvalues: each of these
    # scored 0.0 against N(0, I), a perfect score.
    with pytest.raises(ValueError, match=problem):
        metrics.frechet_distance_from_moments(np.zeros(2), covariance, np.zeros(2), np.eye(2))


def test_frechet_distance_accepts_singular_covariances_and_their_round_off():
    # The checks sit above np.cov's round-off: n <= d (singular, eigenvalues of +-1e-13 of the
    # largest) and large features still score, and a set against itself is 0.
    generator = np.random.default_rng(21)
    a, b = generator.normal(size=(2, 30, 200)) * 1000.0
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6 * np.trace(np.cov(a.T)))
    assert metrics.frechet_distance(a, b) > 0
    zero = np.zeros((2, 2))
    assert metrics.frechet_distance_from_moments(np.zeros(2), zero, np.ones(2), zero) == 2.0


@pytest.mark.parametrize("dtype", ["float64", "float16", "uint8"])
def test_image_metrics_take_tensors_of_any_dtype(image_pair, dtype):
    # A tensor that was not float32 was refused by convert_to_tensor(dtype=float32) in a
    # message printing the whole tensor (152 lines for float64, 545 for uint8).
    import tensorflow as tf

    a, b, mask = image_pair
    scale = 255.0 if dtype == "uint8" else 1.0
    a, b = (np.round(x * scale) / scale for x in (a, b))
    expected = metrics.psnr(a.astype(np.float32), b.astype(np.float32), 1.0, mask=mask)
    tensors = [tf.constant((x * scale).astype(dtype)) for x in (a, b)]
    got = metrics.psnr(*tensors, scale, mask=tf.constant(mask.astype(dtype)))
    np.testing.assert_allclose(got, expected, rtol=2e-3 if dtype == "float16" else 1e-5)


def test_more_argument_mistakes_are_one_line_naming_the_argument():
    generator = np.random.default_rng(22)
    real, fake = generator.normal(size=(20, 4)), generator.normal(size=(20, 4))
    train, test = generator.random((10, 4)), generator.random((5, 4))
    # num_pairs=2.7 listed 2 pairs; None for k or subset_size was float()'s TypeError, which
    # named no argument; seed=1.5 was numpy's "SeedSequence expects int".
    with pytest.raises(ValueError, match=r"^num_pairs must be a whole number, got 2\.7$"):
        metrics.memorization(train[:3], train, test, num_pairs=2.7)
    assert len(metrics.memorization(train[:3], train, test, num_pairs=2.0)["closest_pairs"]) == 2
    with pytest.raises(ValueError, match="^k must be"):
        metrics.precision_recall(real, fake, k=None)
    with pytest.raises(ValueError, match="^subset_size must be a whole number, got None$"):
        metrics.kid(real, fake, subset_size=None)
    with pytest.raises(ValueError, match=r"^seed must be a whole number, got 1\.5$"):
        metrics.kid(real, fake, subset_size=5, seed=1.5)
    with pytest.raises(ValueError, match="^seed must be None or 0 or more, got -1$"):
        metrics.kid(real, fake, subset_size=5, seed=-1)
    assert metrics.kid(real, fake, subset_size=5, seed=3.0) == metrics.kid(
        real, fake, subset_size=5, seed=3
    )
    assert np.isfinite(metrics.kid(real, fake, subset_size=5, num_subsets=2, seed=None)[0])
    # filter_size 0 or -3 was TensorFlow's "filter must not have zero elements", 11.5 "Cannot
    # convert 11.5 to EagerTensor".
    images = generator.random((1, 48, 48, 1)).astype(np.float32)
    for filter_size in (0, -3, 11.5, None):
        with pytest.raises(ValueError, match="^filter_size must be a whole number >= 1"):
            metrics.ms_ssim(images, images, 1.0, metrics.ms_ssim_weights(2), filter_size)
    assert metrics.ms_ssim(images, images, 1.0, metrics.ms_ssim_weights(2), 11.0) == (
        pytest.approx(1.0)
    )
