"""The embedded brain MRI data: the MNI ICBM152 template and a simulated multi-contrast cohort.

What is real and what is simulated:

- **Real**: ``data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz`` is the MNI ICBM152
  2009a symmetric T1-weighted template, an average of 152 real scans after nonlinear
  registration (Fonov et al., NeuroImage 2011). The grey- and white-matter probability maps
  beside it were segmented from the same real data. The cohort's ``"t1"`` contrast is this real
  template intensity (warped, bias-corrupted and noisy per subject; ``t1_source="template"``).
- **Simulated**: T2- and PD-weighted images are computed from the real tissue maps with the
  spin-echo signal equation and BrainWeb's 1.5 T constants for CSF, GM and WM (Kwan, Evans &
  Pike, IEEE TMI 1999; BrainWeb's phantom has more tissue classes, models T2* too and
  simulates the sequence itself with the Bloch equations). ``t1_source="simulated"``
  simulates T1w the same way.

The tissue maps: grey matter (GM) and white matter (WM) are the template's probability maps.
The brain mask is the T1 template above 1% of its range (the template ships brain-extracted,
so everything outside the brain is exactly 0) with 3-D holes filled; CSF = clip(mask - GM - WM,
0, 1). Ventricles and sulci, where neither GM nor WM is likely, become CSF.

A cohort subject is the template under a random smooth deformation (a random affine plus a
cubic-spline displacement field of a few mm), with per-subject jitter of the tissue constants,
a smooth multiplicative bias field (like BrainWeb's INU) and Rician noise. All contrasts of a
subject share its anatomy, bias field and slice positions: paired ground truth for
translation. Subjects are split train/val/test by subject, never by slice.

Speed: the template maps are smoothed once (an antialiasing filter matched to the output
pixel size) at 2 mm when the output pixels are coarser than 2.5 mm, and each subject is
sampled only at the output pixels of the slices it keeps (scipy ``map_coordinates``), never
as a full 3-D volume. The cohort is cached on disk (``config.cache_dir()``), keyed by a hash of
every parameter, the template checksums and a format version.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import numbers
from pathlib import Path

import numpy as np

from medgen_tf import config
from medgen_tf.data.nifti import load_volume
from medgen_tf.errors import DataError, check_value_range, first_line, is_whole_number
from medgen_tf.files import atomic_path

logger = logging.getLogger(__name__)

#: Embedded files and their sha256; loading refuses any other bytes.
TEMPLATE_FILES = {
    "t1": (
        "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
        "421a10e872fd6cadae7f61d358dffbcc1795a497d61ee76c5dda2503e1a1e9e6",
    ),
    "gm": (
        "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
        "97a5ca69bd24db37a9cb7b32525e1733a209af904129bf1cd36da06d24243bed",
    ),
    "wm": (
        "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
        "382d92812de4744f9c86c7a0e4f680dc317a0a50e4da1f0153618a6798c7b7db",
    ),
}

CONTRASTS = ("t1", "t2", "pd")

#: Tissue constants at 1.5 T: (T1 ms, T2 ms, relative proton density). These are the values of
#: the BrainWeb MRI simulator, file brainweb/tissue_mr_parameters.txt of the BrainWeb site
#: (Kwan, Evans & Pike, "MRI simulation-based evaluation of image-processing and
#: classification methods", IEEE TMI 18(11):1085-1097, 1999); the same numbers appear in e.g.
#: Fessler's MIRT mri_brainweb_params.m. Signal equation: Bernstein, King & Zhou, "Handbook
#: of MRI Pulse Sequences" (2004).
TISSUE_CONSTANTS = {
    "csf": (2569.0, 329.0, 1.00),
    "gm": (833.0, 83.0, 0.86),
    "wm": (500.0, 70.0, 0.77),
}

#: Spin-echo protocols (TR ms, TE ms). T1w: short TR and TE, so longitudinal recovery
#: (fast in WM, slow in CSF) dominates. T2w: long TR and TE, so transverse decay (slow in CSF)
#: dominates. PD: long TR and short TE, so neither relaxation matters and proton density shows.
DEFAULT_PROTOCOLS = {"t1": (500.0, 15.0), "t2": (4000.0, 100.0), "pd": (4000.0, 15.0)}

#: Bump when the cohort's content changes for the same parameters: stale caches are rebuilt.
CACHE_FORMAT_VERSION = 1

SPLITS = ("train", "val", "test", "all")
#: Smallest image side :func:`build_cohort` renders (data specs check it first, by name).
MIN_IMAGE_SIZE = 8


def spin_echo_signal(t1_ms, t2_ms, proton_density, repetition_time_ms, echo_time_ms):
    """Spin-echo signal S = PD * (1 - exp(-TR/T1)) * exp(-TE/T2) (Bernstein et al. 2004)."""
    t1_ms, t2_ms = np.asarray(t1_ms, dtype=np.float64), np.asarray(t2_ms, dtype=np.float64)
    return (
        proton_density * (1.0 - np.exp(-repetition_time_ms / t1_ms)) * np.exp(-echo_time_ms / t2_ms)
    )


def checked_protocols(protocols=None) -> dict[str, tuple[float, float]]:
    """:data:`DEFAULT_PROTOCOLS` with the ``{contrast: (TR ms, TE ms)}`` overrides, each checked.

    Raises:
        ValueError: a contrast other than t1, t2 and pd, or a protocol that is not two finite
            numbers with TR > 0 and TE >= 0 (a NaN or TR <= 0 gave images all background).
    """
    if protocols is not None and not isinstance(protocols, dict):
        raise ValueError(
            f"protocols must be a dict {{contrast: (TR ms, TE ms)}}, got {protocols!r}"
        )
    merged = dict(DEFAULT_PROTOCOLS)
    for contrast, protocol in (protocols or {}).items():
        if contrast not in DEFAULT_PROTOCOLS:
            raise ValueError(f"protocols: unknown contrast {contrast!r}; use t1, t2 or pd")
        try:
            repetition_time, echo_time = (float(value) for value in protocol)
        except (TypeError, ValueError):
            raise ValueError(
                f"protocols[{contrast!r}] must be (TR ms, TE ms), got {protocol!r}"
            ) from None
        if not (math.isfinite(repetition_time) and math.isfinite(echo_time)) or not (
            repetition_time > 0 and echo_time >= 0
        ):
            raise ValueError(
                f"protocols[{contrast!r}] must have a finite TR > 0 and TE >= 0 (ms), got "
                f"{protocol!r}"
            )
        merged[contrast] = (repetition_time, echo_time)
    return merged


def tissue_signals(contrast: str, protocols=None, tissue_constants=None) -> dict[str, float]:
    """Pure-tissue signal of CSF, GM and WM for one contrast (``"t1"``, ``"t2"``, ``"pd"``)."""
    protocols = checked_protocols(protocols)
    tissue_constants = tissue_constants or TISSUE_CONSTANTS
    if contrast not in protocols:
        raise DataError(f"unknown contrast {contrast!r}; choose from {sorted(protocols)}")
    repetition_time, echo_time = protocols[contrast]
    return {
        tissue: float(spin_echo_signal(t1, t2, density, repetition_time, echo_time))
        for tissue, (t1, t2, density) in tissue_constants.items()
    }


def simulate_contrast(tissue_maps, contrast: str, protocols=None, tissue_constants=None):
    """Partial-volume signal: sum over tissues of probability x pure-tissue signal."""
    signals = tissue_signals(contrast, protocols, tissue_constants)
    return sum(signals[tissue] * np.asarray(tissue_maps[tissue]) for tissue in ("csf", "gm", "wm"))


# --------------------------------------------------------------------------- template


def _template_path(name: str) -> tuple[Path, str]:
    filename, sha256 = TEMPLATE_FILES[name]
    return config.data_dir() / filename, sha256


@functools.lru_cache(maxsize=2)
def _load_template_cached(data_dir: str):
    volumes = {}
    for name in TEMPLATE_FILES:
        path, sha256 = _template_path(name)
        if not path.exists():
            raise DataError(
                f"{path}: embedded template file missing (reinstall medgen-tf, or point "
                f"MEDGEN_DATA_DIR at a folder holding the three template files)"
            )
        volume, affine = load_volume(path, expected_sha256=sha256)
        volumes[name] = volume / 255.0
    from scipy import ndimage

    mask = ndimage.binary_fill_holes(volumes["t1"] > 0.01)
    volumes["mask"] = mask.astype(np.float32)
    volumes["csf"] = np.clip(volumes["mask"] - volumes["gm"] - volumes["wm"], 0.0, 1.0)
    # Shared by every cohort built in this process, and written into the disk cache through
    # them: read-only, so no caller can change what later builds (and their cache) start from.
    for volume in (*volumes.values(), affine):
        volume.flags.writeable = False
    return volumes, affine


def load_template() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The template maps at 1 mm, checked against their sha256.

    Returns:
        ``(maps, affine)`` where maps has float32 arrays in [0, 1] (RAS, 197x233x189):
        ``"t1"`` (real T1w template), ``"gm"``, ``"wm"``, ``"csf"`` and ``"mask"``.
    """
    volumes, affine = _load_template_cached(str(config.data_dir()))
    # Copies: an edit of these (a learner thresholding the GM map) changed every cohort built
    # later in the process, and the on-disk cache of that cohort, under the unchanged key.
    return {name: volume.copy() for name, volume in volumes.items()}, affine.copy()


def template_sha256() -> dict[str, str]:
    """The expected sha256 of each embedded file."""
    return {name: sha for name, (_, sha) in TEMPLATE_FILES.items()}


@functools.lru_cache(maxsize=4)
def _working_maps(data_dir: str, working_mm: int, sigma_mm: float):
    """Template maps block-averaged to ``working_mm`` and smoothed against aliasing."""
    from scipy import ndimage

    volumes, _ = _load_template_cached(data_dir)
    maps = {}
    for name in ("t1", "gm", "wm", "csf", "mask"):
        volume = volumes[name]
        if working_mm > 1:
            shape = [size - size % working_mm for size in volume.shape]
            volume = volume[: shape[0], : shape[1], : shape[2]]
            volume = volume.reshape(
                shape[0] // working_mm,
                working_mm,
                shape[1] // working_mm,
                working_mm,
                shape[2] // working_mm,
                working_mm,
            ).mean(axis=(1, 3, 5))
        if sigma_mm > 0:
            volume = ndimage.gaussian_filter(volume, sigma_mm / working_mm, mode="constant")
        maps[name] = np.ascontiguousarray(volume, dtype=np.float32)
    return maps


@functools.lru_cache(maxsize=2)
def _brain_box(data_dir: str):
    volumes, _ = _load_template_cached(data_dir)
    mask = volumes["mask"] > 0.5
    areas = mask.sum(axis=(0, 1))
    # Axial range with at least a quarter of the largest brain area: drops the bottom of the
    # cerebellum and the vertex, where slices are nearly empty.
    z_kept = np.flatnonzero(areas >= 0.25 * areas.max())
    coords = np.argwhere(mask)
    low, high = coords.min(axis=0), coords.max(axis=0)
    return low.astype(np.float64), high.astype(np.float64), float(z_kept[0]), float(z_kept[-1])


# --------------------------------------------------------------------------- subjects


def _subject_parameters(seed: int, subject: int, template_shape, jitter: float = 0.05):
    """Random anatomy and acquisition parameters of one subject (independent of cohort size)."""
    rng = np.random.default_rng([seed, subject, 20260])
    angle = np.deg2rad(rng.uniform(-6.0, 6.0))
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1.0]]
    )
    scale = np.diag(rng.uniform(0.93, 1.07, size=3))
    grid = 6
    return {
        "matrix": rotation @ scale,
        "shift": rng.uniform(-3.0, 3.0, size=3),
        # Displacement control points (mm) on a grid x grid x grid lattice over the template.
        "displacement": rng.normal(0.0, 2.5, size=(3, grid, grid, grid)),
        # Log bias field on a coarse 4^3 lattice: slowly varying, like BrainWeb's INU fields.
        "bias": rng.normal(0.0, 1.0, size=(4, 4, 4)) * rng.uniform(0.03, 0.07),
        "tissue_scale": {
            tissue: np.exp(rng.normal(0.0, jitter, size=3)) for tissue in TISSUE_CONSTANTS
        },
        "noise_fraction": rng.uniform(0.01, 0.04),
        "noise_seed": int(rng.integers(2**31)),
        "template_shape": tuple(template_shape),
    }


def _lattice_values(lattice, points, template_shape):
    """Evaluate a coarse lattice spanning the template at points (n, 3) in 1 mm voxel units.

    The lattice is refined 6x by cubic-spline zoom first (cheap: a few thousand nodes), then
    read linearly: smooth like a cubic B-spline field at a fraction of the cost per point,
    which matters at 256 px where a subject has millions of points.
    """
    from scipy import ndimage

    fine_shape = [6 * (size - 1) + 1 for size in lattice.shape]
    fine = ndimage.zoom(
        lattice,
        [f / s for f, s in zip(fine_shape, lattice.shape, strict=True)],
        order=3,
        mode="nearest",
        grid_mode=False,
    )
    size = np.array(fine.shape, dtype=np.float64)
    scaled = points * ((size - 1) / (np.array(template_shape, dtype=np.float64) - 1))
    return ndimage.map_coordinates(fine, scaled.T, order=1, mode="nearest")


def _render(points, parameters, maps, working_mm, contrasts, protocols, t1_source):
    """Signals of one subject at points (n, 3) given in template 1 mm voxel coordinates."""
    from scipy import ndimage

    shape = parameters["template_shape"]
    center = (np.array(shape, dtype=np.float64) - 1) / 2
    displacement = np.stack(
        [_lattice_values(parameters["displacement"][axis], points, shape) for axis in range(3)],
        axis=1,
    )
    source = (
        (points - center) @ parameters["matrix"].T + center + parameters["shift"] + displacement
    )
    # Block-averaged voxel i covers 1 mm voxels [w*i, w*i + w - 1], centred at w*i + (w - 1)/2.
    source = (source - (working_mm - 1) / 2) / working_mm
    sampled = {
        name: ndimage.map_coordinates(maps[name], source.T, order=1, mode="constant", cval=0.0)
        for name in ("t1", "gm", "wm", "csf", "mask")
    }
    bias = np.exp(_lattice_values(parameters["bias"], points, shape))
    tissue_constants = {
        tissue: tuple(np.array(values) * parameters["tissue_scale"][tissue])
        for tissue, values in TISSUE_CONSTANTS.items()
    }
    rng = np.random.default_rng(parameters["noise_seed"])
    signals = {}
    brain = sampled["mask"] > 0.5
    for contrast in CONTRASTS:  # all three always, so the noise stream does not depend on choice
        if contrast == "t1" and t1_source == "template":
            clean = sampled["t1"]
        else:
            clean = simulate_contrast(sampled, contrast, protocols, tissue_constants)
        clean = clean * bias
        reference = float(np.percentile(clean[brain], 99.0)) if brain.any() else 1.0
        sigma = parameters["noise_fraction"] * reference
        # Rician noise: the magnitude of a complex signal with Gaussian noise in both channels.
        real = clean + rng.normal(0.0, sigma, size=clean.shape)
        imaginary = rng.normal(0.0, sigma, size=clean.shape)
        noisy = np.sqrt(real**2 + imaginary**2)
        if contrast in contrasts:
            signals[contrast] = noisy.astype(np.float32)
    return signals, sampled


def _unit_scale(signal, brain):
    """Robust scaling of one subject's rendered slices: 99.5th percentile inside the brain -> 1,
    clipped to [0, 1]."""
    high = float(np.percentile(signal[brain], 99.5)) if brain.any() else float(signal.max())
    return np.clip(signal / max(high, 1e-8), 0.0, 1.0)


def _slice_points(image_size: int, slices_per_subject: int, data_dir: str):
    """Output pixel centres (k, s, s, 3) in template voxels; axial, anterior up, right on the right."""
    low, high, z_low, z_high = _brain_box(data_dir)
    center = (low + high) / 2
    side = 1.08 * max(high[0] - low[0], high[1] - low[1])
    spacing = side / image_size
    offsets = (np.arange(image_size) + 0.5) * spacing - side / 2
    x = center[0] + offsets  # columns: patient left -> right (neurological convention)
    y = center[1] - offsets  # rows: anterior at the top
    z = np.linspace(z_low, z_high, slices_per_subject)
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    positions = (z - z_low) / max(z_high - z_low, 1.0)
    return np.stack([xx, yy, zz], axis=-1), positions.astype(np.float32), spacing


def _working_resolution(spacing_mm: float) -> tuple[int, float]:
    working_mm = 2 if spacing_mm >= 2.5 else 1
    # Gaussian of FWHM ~ one output pixel, minus the blur already in the block average.
    sigma = np.sqrt(max(0.0, (0.42 * spacing_mm) ** 2 - (0.42 * working_mm) ** 2))
    return working_mm, round(float(sigma), 3)


def subject_volumes(
    subject: int = 0,
    contrasts=CONTRASTS,
    seed: int = 0,
    voxel_size: float = 2.0,
    protocols=None,
    t1_source: str = "template",
    return_tissue: bool = False,
):
    """Whole 3-D volumes of one simulated subject (e.g. to write test NIfTI files).

    Args:
        subject: subject index; subject i is the same in every cohort with the same seed.
        contrasts: any of ``"t1"``, ``"t2"``, ``"pd"``.
        seed: cohort seed.
        voxel_size: isotropic voxel size in mm of the returned grid.
        protocols: optional ``{contrast: (TR ms, TE ms)}`` overrides.
        t1_source: ``"template"`` (real T1 intensities) or ``"simulated"``.
        return_tissue: also return the subject's (deformed) ``"gm"``, ``"wm"``, ``"csf"``
            probability maps.

    Returns:
        dict with one float32 array (x, y, z) in [0, 1] per contrast (RAS, per-volume robust
        scaling), ``"mask"`` (brain mask, 0/1) and ``"affine"`` (4x4, mm).

    Raises:
        DataError: an unknown contrast.
        ValueError: ``voxel_size`` not a finite number > 0.
    """
    contrasts = _check_contrasts(contrasts)
    _check_voxel_size(voxel_size)
    checked_protocols(protocols)
    data_dir = str(config.data_dir())
    volumes, affine = _load_template_cached(data_dir)
    shape = volumes["t1"].shape
    working_mm, sigma = _working_resolution(voxel_size)
    maps = _working_maps(data_dir, working_mm, sigma)
    axes = [np.arange(0, size - 0.5, voxel_size) for size in shape]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    parameters = _subject_parameters(seed, subject, shape)
    signals, sampled = _render(
        grid.reshape(-1, 3), parameters, maps, working_mm, contrasts, protocols, t1_source
    )
    brain = sampled["mask"] > 0.5
    result = {c: _unit_scale(signals[c], brain).reshape(grid.shape[:3]) for c in contrasts}
    result["mask"] = brain.reshape(grid.shape[:3]).astype(np.float32)
    if return_tissue:
        for tissue in ("gm", "wm", "csf"):
            result[tissue] = sampled[tissue].reshape(grid.shape[:3]).astype(np.float32)
    result["affine"] = affine @ np.diag([voxel_size, voxel_size, voxel_size, 1.0])
    return result


def subject_bias_field(subject: int = 0, seed: int = 0, voxel_size: float = 4.0) -> np.ndarray:
    """The multiplicative bias field of one subject on a (x, y, z) grid of ``voxel_size`` mm.

    Every contrast of the subject is multiplied by this field (a receive-coil sensitivity is a
    property of the session, not of the sequence); values near 1, slowly varying.
    ValueError if ``voxel_size`` is not a finite number > 0.
    """
    _check_voxel_size(voxel_size)
    volumes, _ = _load_template_cached(str(config.data_dir()))
    shape = volumes["t1"].shape
    axes = [np.arange(0, size - 0.5, voxel_size) for size in shape]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    parameters = _subject_parameters(seed, subject, shape)
    field = np.exp(_lattice_values(parameters["bias"], grid.reshape(-1, 3), shape))
    return field.reshape(grid.shape[:3]).astype(np.float32)


# --------------------------------------------------------------------------- cohort + cache


def _check_contrasts(contrasts) -> tuple[str, ...]:
    if isinstance(contrasts, str):
        contrasts = (contrasts,)
    contrasts = tuple(contrasts)
    unknown = [c for c in contrasts if c not in CONTRASTS]
    if unknown or not contrasts:
        raise DataError(f"unknown contrast(s) {unknown or contrasts}; choose from {CONTRASTS}")
    return contrasts


def _check_voxel_size(voxel_size) -> None:
    # The grid steps by voxel_size: 0 divides by zero and a negative step gives an empty grid.
    if (
        not isinstance(voxel_size, numbers.Real)
        or isinstance(voxel_size, bool)
        or not (np.isfinite(voxel_size) and voxel_size > 0)
    ):
        raise ValueError(f"voxel_size must be a number of mm > 0, got {voxel_size!r}")


def _check_count(name: str, value, minimum: int, reason: str = "") -> None:
    # Checked before anything is built or cached: a bad count otherwise surfaces as a numpy
    # error deep in the build (or, for a split, after a whole cohort was written to the cache).
    if not is_whole_number(value) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}{reason}, got {value!r}")


def split_subjects(num_subjects: int) -> dict[str, np.ndarray]:
    """Subject ids per split: 75% / 12.5% / 12.5% (24/4/4 for 32), by subject, never by slice.

    The held-out subjects are the last ids, so the split depends on ``num_subjects``: subject i
    is the same in every cohort of a seed, and a test subject of a small cohort is a training
    subject of a larger one. Train, evaluate and compare within one cohort size.

    Raises:
        ValueError: ``num_subjects`` not a whole number >= 3.
    """
    _check_count("num_subjects", num_subjects, 3, " (one per split)")
    held_out = max(1, round(num_subjects / 8))
    train = num_subjects - 2 * held_out
    ids = np.arange(num_subjects, dtype=np.int32)
    return {
        "train": ids[:train],
        "val": ids[train : train + held_out],
        "test": ids[train + held_out :],
        "all": ids,
    }


def _check_cohort_numbers(num_subjects, image_size, seed, slices_per_subject) -> None:
    # A fractional image_size made a grid of ceil(size) pixels in silence, and seed -1 failed
    # in numpy with no argument named.
    _check_count("num_subjects", num_subjects, 1)
    _check_count("image_size", image_size, MIN_IMAGE_SIZE)
    _check_count("seed", seed, 0)
    _check_count("slices_per_subject", slices_per_subject, 1)


def _cohort_key(parameters: dict) -> str:
    text = json.dumps(parameters, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def build_cohort(
    num_subjects: int = 32,
    image_size: int = 64,
    seed: int = 0,
    slices_per_subject: int = 48,
    protocols=None,
    t1_source: str = "template",
) -> dict[str, np.ndarray]:
    """Simulate every subject's axial slices (no cache); values in [0, 1].

    Returns:
        dict: ``"t1"``, ``"t2"``, ``"pd"`` float32 (n, s, s); ``"mask"`` float32 (n, s, s);
        ``"subject"`` int32 (n,); ``"position"`` float32 (n,) in [0, 1] (0 = most inferior).

    Raises:
        ValueError: ``num_subjects`` or ``slices_per_subject`` not a whole number >= 1,
            ``image_size`` not a whole number >= :data:`MIN_IMAGE_SIZE`, ``seed`` not a whole
            number >= 0, or an unknown ``t1_source``.
    """
    _check_cohort_numbers(num_subjects, image_size, seed, slices_per_subject)
    checked_protocols(protocols)
    if t1_source not in ("template", "simulated"):
        raise ValueError(f"t1_source must be 'template' or 'simulated', got {t1_source!r}")
    data_dir = str(config.data_dir())
    volumes, _ = _load_template_cached(data_dir)
    points, positions, spacing = _slice_points(image_size, slices_per_subject, data_dir)
    working_mm, sigma = _working_resolution(spacing)
    maps = _working_maps(data_dir, working_mm, sigma)
    flat_points = points.reshape(-1, 3)
    outputs = {name: [] for name in (*CONTRASTS, "mask", "subject", "position")}
    for subject in range(num_subjects):
        parameters = _subject_parameters(seed, subject, volumes["t1"].shape)
        signals, sampled = _render(
            flat_points, parameters, maps, working_mm, CONTRASTS, protocols, t1_source
        )
        brain = sampled["mask"] > 0.5
        for contrast in CONTRASTS:
            outputs[contrast].append(
                _unit_scale(signals[contrast], brain).reshape(points.shape[:3])
            )
        outputs["mask"].append(brain.reshape(points.shape[:3]))
        outputs["subject"].append(np.full(len(positions), subject, dtype=np.int32))
        outputs["position"].append(positions)
    result = {name: np.concatenate(values, axis=0) for name, values in outputs.items()}
    for name in (*CONTRASTS, "mask"):
        result[name] = result[name].astype(np.float32)
    return result


def _read_cache(path: Path, key: str, expected_keys) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as archive:
            if str(archive["cache_key"]) != key:
                raise ValueError("parameters changed (stale cache)")
            data = {name: archive[name] for name in expected_keys}
        count = len(data["subject"])
        if any(len(value) != count for value in data.values()):
            raise ValueError("arrays of different lengths")
        return data
    except Exception as error:  # any unreadable cache is simply rebuilt
        problem = first_line(error)
        if "pickled" in problem:  # numpy's advice to allow pickles is wrong for a damaged file
            problem = "not a .npz archive"
        logger.warning("cohort cache %s unusable (%s); rebuilding", path.name, problem)
        return None


def _write_cache(path: Path, key: str, data: dict) -> None:
    # Written beside the target and renamed (files.atomic_path): several processes may build
    # the same cohort at once, and a reader must never see a half-written archive. A cache that
    # cannot be written (read-only disk, a file where the folder should be) only costs a rebuild
    # next time, so it is a warning, not a failure.
    try:
        with atomic_path(path, suffix=".tmp") as temporary, open(temporary, "wb") as stream:
            np.savez_compressed(stream, cache_key=np.array(key), **data)
    except OSError as error:
        logger.warning(
            "cohort cache %s not written (%s); it will be rebuilt next time", path, error
        )


def load_cohort(
    num_subjects: int = 32,
    image_size: int = 64,
    seed: int = 0,
    slices_per_subject: int = 48,
    protocols=None,
    t1_source: str = "template",
    use_cache: bool = True,
) -> dict[str, np.ndarray]:
    """:func:`build_cohort` through the on-disk cache (values in [0, 1]).

    Raises:
        ValueError: ``num_subjects``, ``image_size``, ``seed`` or ``slices_per_subject`` refused
            as by :func:`build_cohort` (checked before the cache is read or written), or any
            other argument it refuses.
    """
    _check_cohort_numbers(num_subjects, image_size, seed, slices_per_subject)
    parameters = {
        "format": CACHE_FORMAT_VERSION,
        # int(): numpy integers pass the checks, and JSON (the cache key) refuses them.
        "num_subjects": int(num_subjects),
        "image_size": int(image_size),
        "seed": int(seed),
        "slices_per_subject": int(slices_per_subject),
        "protocols": checked_protocols(protocols),
        "tissue_constants": TISSUE_CONSTANTS,
        "t1_source": t1_source,
        "template_sha256": template_sha256(),
    }
    key = _cohort_key(parameters)
    path = config.cache_dir() / f"brain_cohort_{key}.npz"
    names = (*CONTRASTS, "mask", "subject", "position")
    if use_cache and path.exists():
        # The template is verified (sha256) at its first load in a process, cached or not, so a
        # tampered data folder fails here too; later loads in the same process reuse it.
        _load_template_cached(str(config.data_dir()))
        cached = _read_cache(path, key, names)
        if cached is not None:
            return _from_storage(cached)
    stored = _to_storage(
        build_cohort(num_subjects, image_size, seed, slices_per_subject, protocols, t1_source)
    )
    if use_cache:
        _write_cache(path, key, stored)
    # Always return the stored precision, so a cache hit and a fresh build are identical.
    return _from_storage(stored)


def _to_storage(cohort):
    # uint16 keeps [0, 1] to 1.5e-5 at half the size of float32, and no pickle is ever needed.
    stored = {name: np.round(cohort[name] * 65535).astype(np.uint16) for name in CONTRASTS}
    stored["mask"] = cohort["mask"].astype(np.uint8)
    stored["subject"] = cohort["subject"].astype(np.int32)
    stored["position"] = cohort["position"].astype(np.float32)
    return stored


def _from_storage(stored):
    cohort = {name: stored[name].astype(np.float32) / 65535.0 for name in CONTRASTS}
    cohort["mask"] = stored["mask"].astype(np.float32)
    cohort["subject"] = stored["subject"].astype(np.int32)
    cohort["position"] = stored["position"].astype(np.float32)
    return cohort


def brain_slices(
    contrasts=("t1", "t2"),
    split: str = "train",
    image_size: int = 64,
    seed: int = 0,
    value_range: tuple[float, float] = (-1.0, 1.0),
    num_subjects: int = 32,
    return_labels: bool = False,
    slices_per_subject: int = 48,
    protocols=None,
    t1_source: str = "template",
    use_cache: bool = True,
) -> dict[str, np.ndarray]:
    """Paired axial slices of the simulated cohort, keyed by contrast.

    Intensities: each subject's slices of each contrast are scaled on their own so that the
    99.5th percentile of their brain pixels maps to the top of ``value_range`` and zero signal
    (air) to the bottom; use (-1, 1) for tanh GAN generators and (0, 1) for a sigmoid VAE
    decoder. The percentile is taken over the slices rendered (``slices_per_subject`` at
    ``image_size``), not a fixed grid, so one anatomical slice's values change with those two
    settings (subject 0's lowest slice at 32 px, mean T2 in the brain: 0.536 with 48 slices per
    subject, 0.679 with 2); compare images made with the same ones.

    Args:
        contrasts: subset of ``("t1", "t2", "pd")``; row i of every array is the same slice.
        split: ``"train"``, ``"val"``, ``"test"`` (disjoint subjects) or ``"all"``.
        image_size: output side in pixels (28, 32, 64, 128, 256, ...).
        seed: cohort seed; the same seed gives the same arrays.
        value_range: (low, high) of the output intensities.
        num_subjects: cohort size; split 75/12.5/12.5 % by subject.
        return_labels: also return ``"subject"`` (n,) int32, ``"position"`` (n,) float32 in
            [0, 1] (0 inferior, 1 superior) and ``"mask"`` (n, s, s, 1) float32 brain mask.
        slices_per_subject: evenly spaced axial slices per subject.
        protocols: ``{contrast: (TR ms, TE ms)}`` overrides of :data:`DEFAULT_PROTOCOLS`.
        t1_source: ``"template"`` (real T1 template intensities) or ``"simulated"``.
        use_cache: read/write the on-disk cache.

    Returns:
        dict of float32 arrays (n, image_size, image_size, 1), plus labels if asked.

    Raises:
        DataError: an unknown contrast or split.
        ValueError: ``num_subjects`` not a whole number >= 3 (one subject per split),
            ``slices_per_subject`` not a whole number >= 1, or a bad ``value_range``; all
            checked before the cohort is built or cached.

    Example:
        >>> pairs = brain_slices(("t1", "t2"), split="train", image_size=64)
        >>> pairs["t1"].shape, pairs["t2"].shape  # doctest: +SKIP
        ((1152, 64, 64, 1), (1152, 64, 64, 1))
    """
    contrasts = _check_contrasts(contrasts)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {SPLITS}")
    low, high = check_value_range((), value_range)
    # The split first: it needs more subjects than a cohort does, and a refused size must not
    # build and cache a whole cohort before saying so.
    subjects = split_subjects(num_subjects)[split]
    cohort = load_cohort(
        num_subjects, image_size, seed, slices_per_subject, protocols, t1_source, use_cache
    )
    rows = np.isin(cohort["subject"], subjects)
    result = {
        c: (low + cohort[c][rows] * (high - low)).astype(np.float32)[..., None] for c in contrasts
    }
    if return_labels:
        result["subject"] = cohort["subject"][rows]
        result["position"] = cohort["position"][rows]
        result["mask"] = cohort["mask"][rows][..., None]
    return result
