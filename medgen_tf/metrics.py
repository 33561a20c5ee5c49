"""Image-quality and distribution metrics for generative models of medical images.

Two families, both free of any model:

- **Paired image metrics** (a prediction against its ground truth, e.g. CycleGAN T1 -> T2):
  :func:`psnr`, :func:`ssim`, :func:`ms_ssim`, :func:`mae`, optionally inside a mask
  (the brain, so the air around the head does not inflate the score). The data range is
  always passed by the caller and never inferred from the images: a range inferred per image
  makes two runs incomparable.
- **Distribution metrics** on feature vectors (samples of a generator against real images):
  :func:`frechet_distance`, :func:`kid`, :func:`precision_recall` and the privacy check
  :func:`memorization`. Features come from :mod:`medgen_tf.features` (the offline extractor,
  whose Frechet distance is called "FD-medgen"; it is not FID, which needs the TTUR Inception
  network of Heusel et al.).

Image inputs are numpy arrays or tensors of shape ``(n, h, w, c)`` or ``(h, w, c)``; per-image
values come back as a numpy array ``(n,)`` (a float for a single ``(h, w, c)`` image), or their
mean with ``reduce="mean"``. Feature inputs are ``(n, d)`` arrays; the arithmetic is float64.

References:
    Wang et al. 2004, "Image quality assessment: from error visibility to structural
    similarity" (SSIM). Wang et al. 2003, "Multi-scale structural similarity" (MS-SSIM).
    Heusel et al. 2017 (Frechet distance of features). Binkowski et al. 2018 (KID).
    Kynkaanniemi et al. 2019 (improved precision and recall).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# check_value_range lives in errors (the data loaders use it too); imported here for the
# metrics' own checks and for callers that know it as metrics.check_value_range.
from medgen_tf.errors import check_value_range, is_whole_number

__all__ = [
    "check_finite",
    "check_value_range",
    "psnr",
    "ssim",
    "ms_ssim",
    "ms_ssim_weights",
    "mae",
    "frechet_distance",
    "frechet_distance_from_moments",
    "kid",
    "precision_recall",
    "memorization",
    "pairwise_distances",
    "balanced_accuracy",
    "auroc",
]

# Wang et al. 2004 constants, also tf.image.ssim's defaults.
SSIM_FILTER_SIZE = 11
SSIM_FILTER_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
#: Wang et al. 2003's MS-SSIM exponents, finest scale (the original resolution) first, as in
#: ``tf.image.ssim_multiscale``, whose index 0 is the unscaled image.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


# --------------------------------------------------------------------------- paired images


def check_finite(images, name: str, advice: str = "did training diverge?") -> None:
    """One-line ValueError naming ``name`` when ``images`` hold NaN or Inf values.

    One NaN pixel turns every score into NaN (and an Inf into inf), which reads as a result.
    ``advice`` ends the message; the default suits a model's outputs, not its input data.
    """
    finite = tf.math.is_finite(_float32(images))
    count = int(tf.size(finite)) - int(tf.math.count_nonzero(finite))
    if count:
        raise ValueError(f"{name}: {count} NaN or Inf values; {advice}")


def _float32(values):
    # Cast, not convert_to_tensor(dtype=float32): that refuses a tensor of another dtype with a
    # message that prints the whole tensor (hundreds of lines for a batch of images).
    return tf.cast(tf.convert_to_tensor(values), tf.float32)


def _as_images(a, b, mask=None):
    """Float32 tensors of rank 4, and whether the caller passed one (h, w, c) image."""
    a, b = _float32(a), _float32(b)
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {a.shape} and {b.shape}")
    if a.shape.rank not in (3, 4):
        raise ValueError(f"images must be (n, h, w, c) or (h, w, c), got shape {a.shape}")
    # No images (or a zero-size axis) gave an empty array of scores, or NaN after the mean.
    if a.shape.num_elements() == 0:
        raise ValueError(f"images have no pixels, got shape {a.shape}")
    check_finite(a, "a")
    check_finite(b, "b")
    single = a.shape.rank == 3
    if single:
        a, b = a[None], b[None]
    if mask is not None:
        mask = _float32(mask)
        if single:
            mask = mask[None]
        # Another channel count than 1 or the images' would not broadcast in mae and psnr, and
        # ssim would take the union of its channels.
        if (
            mask.shape.rank != 4
            or mask.shape[:3] != a.shape[:3]
            or mask.shape[3] not in (1, a.shape[3])
        ):
            raise ValueError(
                f"mask must have the images' shape (or one channel), got {mask.shape} "
                f"for images {a.shape}"
            )
        mask = tf.cast(mask > 0.5, tf.float32)
        if not bool(tf.reduce_all(tf.reduce_sum(mask, axis=[1, 2, 3]) > 0)):
            raise ValueError("every image needs at least one pixel inside its mask")
    return a, b, mask, single


def _check_data_range(data_range):
    # inf gave PSNR inf for any pair and SSIM NaN; a string or an array failed in
    # float() with a message that did not name data_range.
    try:
        value = float(data_range)
    except (TypeError, ValueError):
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"data_range must be a positive number (max - min), got {data_range!r}")
    return value


def _finish(values, single, reduce):
    values = np.asarray(values, dtype=np.float64)
    if reduce == "mean":
        return float(values.mean())
    if reduce is not None:
        raise ValueError(f"reduce must be None or 'mean', got {reduce!r}")
    return float(values[0]) if single else values


def _masked_mean(values, mask):
    """Per-image mean of ``values`` (n, h, w, c) over ``mask`` (n, h, w, 1 or c)."""
    mask = tf.broadcast_to(mask, tf.shape(values))
    return tf.reduce_sum(values * mask, axis=[1, 2, 3]) / tf.reduce_sum(mask, axis=[1, 2, 3])


def mae(a, b, mask=None, reduce=None):
    """Mean absolute error per image, over all pixels or only inside ``mask``.

    Args:
        a, b: images (n, h, w, c) or (h, w, c) in the same intensity units.
        mask: optional (n, h, w, 1) or (n, h, w, c) mask; values > 0.5 count.
        reduce: None for per-image values, "mean" for their mean.
    """
    a, b, mask, single = _as_images(a, b, mask)
    error = tf.abs(a - b)
    values = tf.reduce_mean(error, axis=[1, 2, 3]) if mask is None else _masked_mean(error, mask)
    return _finish(values, single, reduce)


def psnr(a, b, data_range, mask=None, reduce=None):
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range**2 / MSE)``, per image.

    Args:
        a, b: images (n, h, w, c) or (h, w, c).
        data_range: max - min of the intensity scale (1.0 for [0, 1], 2.0 for [-1, 1]);
            explicit, never inferred from the images.
        mask: optional mask; the MSE is then the mean over masked pixels only.
        reduce: None for per-image values, "mean" for their mean.

    Identical images give ``inf``.
    """
    data_range = _check_data_range(data_range)
    a, b, mask, single = _as_images(a, b, mask)
    if mask is None:
        values = tf.image.psnr(a, b, max_val=data_range)
    else:
        mse = tf.cast(_masked_mean(tf.square(a - b), mask), tf.float64)
        with np.errstate(divide="ignore"):  # identical images: MSE 0, PSNR inf, as documented
            values = 10.0 * np.log10(data_range**2 / mse.numpy())
    return _finish(values, single, reduce)


def ssim(a, b, data_range, mask=None, reduce=None):
    """Structural similarity (Wang et al. 2004) per image, via ``tf.image.ssim``.

    Gaussian window 11x11 with sigma 1.5, K1 = 0.01, K2 = 0.03; local statistics are taken
    only where the window fits ("valid"), so the SSIM map is (h - 10, w - 10) and averaged over
    channels. Images need h, w >= 11.

    With a ``mask``: the mean of the SSIM map over the window centres that fall inside the
    mask (the mask cropped by 5 pixels per side to align with the map). Windows centred near
    the mask border still see some pixels outside it; that is the usual convention.

    SSIM is not invariant to a shift of the intensities: its luminance term
    ``(2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1)`` assumes a scale that starts at 0, as in the
    paper (``tf.image.ssim``, which this calls, does not shift either). Images in [-1, 1] scored
    with ``data_range=2`` give another value than the same images mapped to [0, 1] with
    ``data_range=1`` (0.820 against 0.913 for mid-grey noise; means of opposite sign even make
    that term negative); map them to [0, 1] first, as
    :func:`medgen_tf.evaluation.translation_metrics` does. PSNR and MAE do not depend on it.

    Args:
        a, b: images (n, h, w, c) or (h, w, c).
        data_range: max - min of the intensity scale; explicit, never inferred.
        mask: optional mask (n, h, w, 1) or (n, h, w, c).
        reduce: None for per-image values, "mean" for their mean.
    """
    data_range = _check_data_range(data_range)
    a, b, mask, single = _as_images(a, b, mask)
    if min(a.shape[1], a.shape[2]) < SSIM_FILTER_SIZE:
        raise ValueError(f"ssim needs images of at least 11x11 pixels, got {a.shape[1:3]}")
    options = dict(
        max_val=data_range,
        filter_size=SSIM_FILTER_SIZE,
        filter_sigma=SSIM_FILTER_SIGMA,
        k1=SSIM_K1,
        k2=SSIM_K2,
    )
    if mask is None:
        values = tf.image.ssim(a, b, **options)
    else:
        index_map = tf.image.ssim(a, b, return_index_map=True, **options)  # (n, h-10, w-10)
        border = SSIM_FILTER_SIZE // 2
        inside = tf.reduce_max(mask[:, border:-border, border:-border, :], axis=-1)
        counts = tf.reduce_sum(inside, axis=[1, 2])
        if not bool(tf.reduce_all(counts > 0)):
            raise ValueError("every mask needs a pixel at least 5 pixels from the image border")
        values = tf.reduce_sum(index_map * inside, axis=[1, 2]) / counts
    return _finish(values, single, reduce)


def ms_ssim_weights(num_scales=5):
    """The paper's exponents for the ``num_scales`` finest scales, renormalised to sum to 1.

    A small image cannot be halved four times, so the scales that exist are the original
    resolution and its first halvings: the paper's scales 1 to ``num_scales``, whose weights
    are the FIRST ``num_scales`` of :data:`MS_SSIM_WEIGHTS` (index 0 = finest, as
    ``tf.image.ssim_multiscale`` expects). Renormalising keeps the exponents summing to 1 as in
    the paper, so an image pair with the same SSIM terms at every scale scores that value
    whatever the number of scales (the paper's five sum to 1.0001, so they move by < 1e-4).
    ``ms_ssim_weights(3)`` is about (0.0711, 0.4530, 0.4760).
    """
    if not 1 <= num_scales <= len(MS_SSIM_WEIGHTS):
        raise ValueError(f"num_scales must be 1 to {len(MS_SSIM_WEIGHTS)}, got {num_scales}")
    kept = np.asarray(MS_SSIM_WEIGHTS[:num_scales], np.float64)
    return tuple(float(weight) for weight in kept / kept.sum())


def ms_ssim(a, b, data_range, power_factors=None, filter_size=SSIM_FILTER_SIZE, reduce=None):
    """Multi-scale SSIM (Wang et al. 2003) per image, via ``tf.image.ssim_multiscale``.

    The image is halved ``len(power_factors) - 1`` times, and the coarsest scale must still
    hold the filter: the side must be at least ``(filter_size - 1) * 2**(scales - 1) + 1``,
    i.e. 161 pixels with the paper's 5 scales and 11x11 window. For 64x64 slices pass 3 scales,
    ``power_factors=ms_ssim_weights(3)`` (the paper's three finest-scale weights, renormalised;
    minimum side 41). No mask: the coarse scales mix brain and background anyway.

    Like :func:`ssim`, it assumes a scale that starts at 0, and more so: each scale's term is
    clipped at 0 (a ReLU in ``tf.image.ssim_multiscale``) before the product, so images in
    [-1, 1] lose more than with ``ssim`` (0.737 against 0.904 mapped to [0, 1], for a 48x48
    uniform noise image and a noisier copy, at 3 scales). Map images to [0, 1] and pass
    ``data_range=1``.

    Args:
        a, b: images (n, h, w, c) or (h, w, c).
        data_range: max - min of the intensity scale; explicit, never inferred.
        power_factors: weights per scale, index 0 the finest (the original resolution);
            default the paper's 5, :data:`MS_SSIM_WEIGHTS`.
        filter_size: Gaussian window side.
        reduce: None for per-image values, "mean" for their mean.

    Raises:
        ValueError: images smaller than that minimum side; the message names the largest
            number of scales that fits them, or says that none does.
    """
    data_range = _check_data_range(data_range)
    if power_factors is None:
        power_factors = MS_SSIM_WEIGHTS
    if len(power_factors) < 1:
        raise ValueError("ms_ssim needs at least one of power_factors (one scale)")
    # Else TensorFlow's op errors ("filter must not have zero elements") or 11.5 "Cannot
    # convert to EagerTensor".
    if not _is_whole_count(filter_size) or filter_size < 1:
        raise ValueError(f"filter_size must be a whole number >= 1, got {filter_size!r}")
    filter_size = int(filter_size)
    a, b, _, single = _as_images(a, b)

    def minimum_side(num_scales):
        return (filter_size - 1) * 2 ** (num_scales - 1) + 1

    side = min(a.shape[1], a.shape[2])
    minimum = minimum_side(len(power_factors))
    if side < minimum:
        # The advice names the scales this image holds: a fixed "ms_ssim_weights(3)" was
        # suggested even to a caller who had passed 3.
        fitting = 0
        while minimum_side(fitting + 1) <= side:
            fitting += 1
        if fitting == 0:
            advice = (
                f"no number of scales fits: one scale needs at least {filter_size}x{filter_size}"
            )
        elif fitting <= len(MS_SSIM_WEIGHTS):
            advice = f"pass at most {fitting} power_factors, e.g. ms_ssim_weights({fitting})"
        else:
            advice = f"pass at most {fitting} power_factors"
        raise ValueError(
            f"ms_ssim with {len(power_factors)} scales and filter_size {filter_size} needs "
            f"images of at least {minimum}x{minimum} pixels, got {tuple(a.shape[1:3])}; {advice}"
        )
    values = tf.image.ssim_multiscale(
        a,
        b,
        max_val=data_range,
        power_factors=power_factors,
        filter_size=filter_size,
        filter_sigma=SSIM_FILTER_SIGMA,
        k1=SSIM_K1,
        k2=SSIM_K2,
    )
    return _finish(values, single, reduce)


# --------------------------------------------------------------------------- distributions


def _as_features(features, name="features", min_rows=2):
    features = np.asarray(features, dtype=np.float64)
    if features.ndim > 2:
        # Not -1: numpy cannot infer it for no rows ("cannot reshape array of size 0").
        features = features.reshape(len(features), int(np.prod(features.shape[1:])))
    if features.ndim != 2 or len(features) < min_rows:
        raise ValueError(f"{name} must be (n, d) with n >= {min_rows}, got shape {features.shape}")
    # d = 0 was numpy's "zero-size array to reduction" in frechet_distance, NaN in kid.
    if features.shape[1] < 1:
        raise ValueError(f"{name} must have at least one feature, got shape {features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{name} contain NaN or inf")
    return features


def _psd_sqrt(matrix):
    """Symmetric square root of a symmetric positive semi-definite matrix, via ``eigh``."""
    values, vectors = np.linalg.eigh(matrix)
    # The zero eigenvalues of a singular covariance (dead features, n <= d) come out as +-round-off
    # of the largest; left in, each would add its square root, ~1e-8 of the scale, to the trace.
    floor = len(values) * np.finfo(np.float64).eps * max(values.max(), 0.0)
    values = np.where(values > floor, values, 0.0)
    return (vectors * np.sqrt(values)) @ vectors.T


def _check_covariance(covariance, name):
    # eigh reads one triangle only and _psd_sqrt zeroes negative eigenvalues, so a matrix that
    # is no covariance scored as a distance all the same (0.0 for some). The tolerances sit far
    # above the round-off of np.cov (about d * 1e-16 of the largest entry or eigenvalue).
    scale = float(np.abs(covariance).max())
    if np.abs(covariance - covariance.T).max() > 1e-8 * scale:
        raise ValueError(f"{name} is not symmetric, so it is no covariance matrix")
    smallest, largest = np.linalg.eigvalsh(covariance)[[0, -1]]
    if smallest < -1e-6 * max(largest, 0.0) or (largest <= 0 and smallest < 0):
        raise ValueError(
            f"{name} has a negative eigenvalue ({smallest:.3g}), so it is no covariance matrix"
        )


def frechet_distance_from_moments(mean_a, covariance_a, mean_b, covariance_b):
    """Frechet distance between N(mean_a, covariance_a) and N(mean_b, covariance_b).

    ``||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2))``, in float64. The trace of
    ``(C_a C_b)^(1/2)`` is computed as the sum of the singular values of ``C_a^(1/2) C_b^(1/2)``
    (symmetric square roots from ``eigh``), which is the same number, real by construction, with
    a round-off relative to the features' scale. The reference FID code takes a general matrix
    square root of ``C_a C_b`` instead, which for the singular covariances of n <= d samples
    leaves an imaginary part that grows with the features' magnitude, so that its tolerance
    refuses large features; this form needs no ``eps`` regularisation either. A covariance that
    is not symmetric, or has a negative eigenvalue beyond round-off, is refused (ValueError).
    """
    mean_a = np.atleast_1d(np.asarray(mean_a, np.float64))
    mean_b = np.atleast_1d(np.asarray(mean_b, np.float64))
    covariance_a = np.atleast_2d(np.asarray(covariance_a, np.float64))
    covariance_b = np.atleast_2d(np.asarray(covariance_b, np.float64))
    if mean_a.shape != mean_b.shape or covariance_a.shape != covariance_b.shape:
        raise ValueError("the two sets of moments must have the same dimension")
    # A mean that does not match its covariance was scored all the same (only the trace of the
    # covariances enters), and a NaN made the SVD fail with LinAlgError.
    if mean_a.ndim != 1 or covariance_a.shape != (len(mean_a), len(mean_a)):
        raise ValueError(
            f"moments must be a mean (d,) and covariance (d, d), got {mean_a.shape} and "
            f"{covariance_a.shape}"
        )
    for moment in (mean_a, mean_b, covariance_a, covariance_b):
        if not np.all(np.isfinite(moment)):
            raise ValueError("the moments contain NaN or inf")
    for name, covariance in (("covariance_a", covariance_a), ("covariance_b", covariance_b)):
        _check_covariance(covariance, name)
    # With A = C_a^(1/2), B = C_b^(1/2): (A B)(A B)^T = A C_b A has the eigenvalues of
    # A A C_b = C_a C_b (XY and YX share them), so the singular values of A B are their square
    # roots; taken directly, not as square roots of eigenvalues, so round-off is not amplified.
    product = _psd_sqrt(covariance_a) @ _psd_sqrt(covariance_b)
    trace_sqrt = np.linalg.svd(product, compute_uv=False).sum()
    difference = mean_a - mean_b
    value = (
        difference @ difference + np.trace(covariance_a) + np.trace(covariance_b) - 2.0 * trace_sqrt
    )
    # Round-off can give a tiny negative number for identical sets.
    return float(max(value, 0.0))


def frechet_distance(features_a, features_b):
    """Frechet distance between Gaussians fitted to two feature sets (n, d).

    With the offline extractor of :mod:`medgen_tf.features` this is "FD-medgen". With
    :func:`medgen_tf.features.inception_features` it is an FID-style distance, but not FID as
    published: those use the TTUR Inception graph, not Keras' ImageNet InceptionV3, and the
    two give different values. Biased upwards at small n: compare scores only at the same n,
    next to the real-vs-real floor at that n.
    """
    features_a = _as_features(features_a, "features_a")
    features_b = _as_features(features_b, "features_b")
    return frechet_distance_from_moments(
        features_a.mean(axis=0),
        np.cov(features_a, rowvar=False),
        features_b.mean(axis=0),
        np.cov(features_b, rowvar=False),
    )


def _polynomial_mmd2_unbiased(x, y):
    dimension = x.shape[1]
    k_xx = (x @ x.T / dimension + 1.0) ** 3
    k_yy = (y @ y.T / dimension + 1.0) ** 3
    k_xy = (x @ y.T / dimension + 1.0) ** 3
    m, n = len(x), len(y)
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return term_xx + term_yy - 2.0 * k_xy.mean()


def _is_whole_count(value) -> bool:
    # Looser than errors.is_whole_number: 3.0 is a count here (sizes often come out of
    # arithmetic as floats), 2.9 and True are not; None or "3" neither, answered by the caller's
    # "must be a whole number" rather than float()'s TypeError.
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    return float(value).is_integer()


def kid(features_a, features_b, num_subsets=100, subset_size=1000, seed=0):
    """Kernel inception distance (Binkowski et al. 2018): mean and std of unbiased MMD^2.

    Kernel ``k(x, y) = (x . y / d + 1)^3``; MMD^2 is estimated on ``num_subsets`` random
    subsets of ``min(subset_size, n_a, n_b)`` rows of each set (without replacement within a
    subset). Unbiased, so it can be slightly negative for two samples of one distribution.
    With ``subset_size`` >= both n and equal n every subset is the whole of both sets and the
    std is 0 (with unequal n the larger set is still subsampled): for small samples pass e.g.
    ``subset_size=n // 2``. Rows the two sets share (a set against itself, or generated images
    that copy training images, scored against those training features) put their
    self-similarity into the cross term and make the estimate clearly negative, below the
    real-vs-real floor: look for copies with :func:`memorization`, not with KID.
    ``subset_size`` < 2 or ``num_subsets`` < 1 is refused (ValueError): the estimate would be
    NaN; so is either one, or a ``seed`` (other than None), that is no whole number.

    Returns:
        (mean, std) over the subsets, as floats.
    """
    features_a = _as_features(features_a, "features_a")
    features_b = _as_features(features_b, "features_b")
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError("features_a and features_b must have the same dimension")
    # int() truncated them: subset_size=2.9 ran with subsets of 2 rows.
    # numpy's "SeedSequence expects int or sequence of ints" for seed=1.5 (or 3.0).
    counts = [("subset_size", subset_size), ("num_subsets", num_subsets)]
    for name, value in counts + ([] if seed is None else [("seed", seed)]):
        if not _is_whole_count(value):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    if seed is not None and int(seed) < 0:
        raise ValueError(f"seed must be None or 0 or more, got {seed}")
    # The unbiased estimate divides by m (m - 1), and the mean of no subsets is NaN.
    if int(subset_size) < 2 or int(num_subsets) < 1:
        raise ValueError(
            f"kid needs subset_size >= 2 and num_subsets >= 1, got {subset_size} and {num_subsets}"
        )
    size = min(int(subset_size), len(features_a), len(features_b))
    generator = np.random.default_rng(None if seed is None else int(seed))
    values = np.empty(int(num_subsets))
    for index in range(int(num_subsets)):
        rows_a = generator.choice(len(features_a), size, replace=False)
        rows_b = generator.choice(len(features_b), size, replace=False)
        values[index] = _polynomial_mmd2_unbiased(features_a[rows_a], features_b[rows_b])
    return float(values.mean()), float(values.std())


def pairwise_distances(x, y, chunk_size=1024):
    """Euclidean distances (len(x), len(y)) in float64, computed in row chunks."""
    if not is_whole_number(chunk_size) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    y = np.asarray(y, np.float64).reshape(len(y), -1)
    # Else numpy's "matmul: Input operand 1 has a mismatch in its core dimension 0".
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same dimension, got {x.shape[1]} and {y.shape[1]} per row"
        )
    y_norms = np.einsum("ij,ij->i", y, y)
    result = np.empty((len(x), len(y)))
    for start in range(0, len(x), chunk_size):
        block = x[start : start + chunk_size]
        squared = np.einsum("ij,ij->i", block, block)[:, None] + y_norms[None] - 2.0 * block @ y.T
        result[start : start + chunk_size] = np.sqrt(np.maximum(squared, 0.0))
    return result


def _knn_radii(features, k):
    distances = pairwise_distances(features, features)
    # Column 0 of the sorted rows is the point itself (distance 0).
    return np.partition(distances, k, axis=1)[:, k]


def precision_recall(features_real, features_fake, k=3):
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN manifolds.

    Each set's manifold is the union of balls around its points with radius the distance to
    the k-th nearest neighbour in the same set. Precision (fidelity) is the fraction of fake
    samples inside the real manifold; recall (diversity) the fraction of real samples inside
    the fake manifold.

    Returns:
        dict with "precision" and "recall" in [0, 1].
    """
    real = _as_features(features_real, "features_real")
    fake = _as_features(features_fake, "features_fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"features_real and features_fake must have the same dimension, got "
            f"{real.shape[1]} and {fake.shape[1]}"
        )
    if not _is_whole_count(k):
        raise ValueError(f"k must be an integer, got {k!r}")
    k = int(k)
    if not 1 <= k < min(len(real), len(fake)):
        raise ValueError(f"k must be in [1, min(n_real, n_fake) - 1], got {k}")
    real_radii = _knn_radii(real, k)
    fake_radii = _knn_radii(fake, k)
    fake_to_real = pairwise_distances(fake, real)
    precision = np.mean(np.any(fake_to_real <= real_radii[None, :], axis=1))
    recall = np.mean(np.any(fake_to_real.T <= fake_radii[None, :], axis=1))
    return {"precision": float(precision), "recall": float(recall)}


def memorization(generated, train, test, num_pairs=8, threshold_factor=0.5):
    """Nearest-training-neighbour check: are generated samples copies of training patients?

    For each generated sample, the Euclidean distance to its nearest training sample; the
    reference is the same distance for real held-out (test) samples, which come from other
    subjects and so show how close an unseen image naturally gets. A generated sample is flagged
    when it lies closer to a training image than ``threshold_factor`` times the closest any
    test image gets (the bare minimum would flag about 1 in ``n_test + 1`` honest samples by
    chance). Works on feature vectors (n, d) or on images (n, h, w, c), flattened.

    Test samples that are themselves in the training set (distance 0 up to round-off, e.g. a
    blank slice above the head that every subject shares) are left out of that minimum: they
    are not unseen images, and would make the threshold 0, so that nothing, not even an exact
    copy, could be flagged. The minimum of the remaining distances is kept rather than a low
    percentile: a percentile sits inside the honest distances by construction (the 1st has 1%
    of held-out images below it), and it would move the threshold, and the flags, of every
    data set without duplicates, as in the notebooks. A NEAR-duplicate (an almost
    blank test slice) still lowers the threshold: drop such slices from all three sets first.
    Generated samples equal to such a shared training image are flagged, as exact copies.

    Returns:
        dict: ``generated_to_train`` and ``test_to_train`` summaries (min, 5th percentile,
        median, mean; over all test samples), ``distance_ratio`` (median generated / median
        of the test samples not found in train; well below 1 hints at memorisation),
        ``test_duplicates`` (test samples found in train, left out of the threshold and of
        the ratio), ``threshold`` (``threshold_factor`` x the smallest
        other test-to-train distance), ``flagged_indices`` (generated rows below it),
        ``fraction_flagged``, and ``closest_pairs``: the ``num_pairs`` closest (generated
        index, train index, distance).

    Raises:
        ValueError: every test sample is also in train, so there is no reference distance.
    """
    # Nearest neighbours need no second sample: one generated image can be checked.
    # A factor <= 0 makes the threshold <= 0, so that not even an exact copy is flagged; a
    # negative num_pairs would drop the farthest pairs from the list instead.
    if not float(threshold_factor) > 0:
        raise ValueError(f"threshold_factor must be positive, got {threshold_factor}")
    # int() truncated it: num_pairs=2.7 listed 2 pairs.
    if not _is_whole_count(num_pairs):
        raise ValueError(f"num_pairs must be a whole number, got {num_pairs!r}")
    if int(num_pairs) < 0:
        raise ValueError(f"num_pairs must be 0 or more, got {num_pairs}")
    generated = _as_features(generated, "generated", min_rows=1)
    train = _as_features(train, "train", min_rows=1)
    test = _as_features(test, "test", min_rows=1)
    if not generated.shape[1] == train.shape[1] == test.shape[1]:
        raise ValueError("generated, train and test must have the same dimension")
    generated_distances = pairwise_distances(generated, train)
    nearest_train = generated_distances.argmin(axis=1)
    generated_nearest = generated_distances[np.arange(len(generated)), nearest_train]
    test_nearest = pairwise_distances(test, train).min(axis=1)

    def summary(values):
        return {
            "min": float(values.min()),
            "p05": float(np.percentile(values, 5)),
            "median": float(np.median(values)),
            "mean": float(values.mean()),
        }

    # pairwise_distances expands |x - y|^2, so identical rows come out up to ~1e-7 x their norm
    # apart rather than exactly 0; 1e-5 x the largest norm is above that and far below any
    # difference between two real images.
    largest_norm = float(np.sqrt(np.max(np.einsum("ij,ij->i", train, train))))
    duplicates = test_nearest <= 1e-5 * largest_norm
    if duplicates.all():
        raise ValueError(
            "every test sample is also in train: no unseen image to set the threshold with"
        )
    threshold = float(threshold_factor * test_nearest[~duplicates].min())
    flagged = np.flatnonzero(generated_nearest < threshold)
    order = np.argsort(generated_nearest, kind="stable")[: int(num_pairs)]
    # The reference is the unseen test images' median, as the threshold's is their minimum:
    # with half or more of the test samples copied from train, the median over all of them
    # was 0 and the ratio NaN, whatever the generator did.
    median_test = float(np.median(test_nearest[~duplicates]))
    return {
        "generated_to_train": summary(generated_nearest),
        "test_to_train": summary(test_nearest),
        "distance_ratio": float(np.median(generated_nearest) / median_test),
        "test_duplicates": int(duplicates.sum()),
        "threshold": threshold,
        "flagged_indices": [int(i) for i in flagged],
        "fraction_flagged": float(len(flagged) / len(generated)),
        "closest_pairs": [
            (int(i), int(nearest_train[i]), float(generated_nearest[i])) for i in order
        ],
    }


# --------------------------------------------------------------------------- classification


def _binary_labels(labels):
    labels = np.asarray(labels).reshape(-1)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return labels.astype(np.int64)


def balanced_accuracy(labels, predictions):
    """Mean of the per-class recalls, (sensitivity + specificity) / 2 for two classes.

    Unlike accuracy it is not inflated by a rare class: predicting "negative" for everything
    scores 0.5 at any prevalence. Classes absent from ``labels`` are ignored.

    Raises:
        ValueError: shapes that differ or are empty, NaN or Inf values, or predictions that
            are not whole numbers (scores or logits instead of class labels).
    """
    labels, predictions = np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)
    if labels.shape != predictions.shape or labels.size == 0:
        raise ValueError(
            f"need equal, non-empty shapes, got {labels.shape} and {predictions.shape}"
        )
    # A NaN label is a class of its own that no prediction equals: the mean became NaN.
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            raise ValueError(f"{name} contain NaN or Inf")
    # Logits or probabilities equal no label, so they scored a plausible 0.0 instead of 1.0.
    if predictions.dtype.kind in "fc" and not np.all(predictions == np.round(predictions)):
        raise ValueError(
            "balanced_accuracy: predictions must be class labels; threshold scores or logits "
            "first, e.g. (logits > 0).astype(int)"
        )
    recalls = [np.mean(predictions[labels == value] == value) for value in np.unique(labels)]
    return float(np.mean(recalls))


def auroc(labels, scores):
    """Area under the ROC curve of ``scores`` for binary ``labels`` (higher score = positive).

    The Mann-Whitney statistic: the probability that a random positive scores above a random
    negative, ties counting one half, computed from mid-ranks in O(n log n). Any monotone
    transform of the scores (logits or probabilities) gives the same value. NaN or Inf scores
    are refused (ValueError), as :func:`check_finite` refuses such images.
    """
    from scipy.stats import rankdata

    labels = _binary_labels(labels)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"labels and scores differ in shape: {labels.shape} and {scores.shape}")
    # rankdata propagates NaN, so one NaN logit makes the AUROC NaN, which reads as a result.
    non_finite = int(np.count_nonzero(~np.isfinite(scores)))
    if non_finite:
        raise ValueError(f"scores: {non_finite} NaN or Inf values; did training diverge?")
    num_positive = int(labels.sum())
    num_negative = labels.size - num_positive
    if num_positive == 0 or num_negative == 0:
        raise ValueError("AUROC needs at least one positive and one negative example")
    ranks = rankdata(scores)  # ties get their mean rank
    rank_sum = ranks[labels == 1].sum()
    return float((rank_sum - num_positive * (num_positive + 1) / 2) / (num_positive * num_negative))
