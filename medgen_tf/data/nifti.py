"""NIfTI volumes to model-ready slices: load, reorient, normalise, slice, resize.

Every function takes and returns numpy arrays; bad input raises :class:`medgen_tf.DataError`
with one line naming the file and the problem. The steps, in the order a pipeline uses them:

1. :func:`load_volume` reads a ``.nii``/``.nii.gz`` file with nibabel, reorients it to the
   closest canonical orientation (RAS+: the first array axis runs Right, the second Anterior,
   the third Superior), so axis 2 is always axial whatever the scanner wrote. A file that
   records no orientation (qform and sform codes both 0) is read as nibabel reads it, in
   ANALYZE's radiological order, with a warning: its left and right may be swapped.
2. :func:`normalize_intensity` clips to robust percentiles of the foreground and scales.
3. :func:`extract_slices` cuts 2-D slices along an axis and drops near-empty ones.
4. :func:`resize_slices` pads each slice to a square and resizes it with antialiasing.

:func:`load_nifti_slices` chains the four for a file or a folder;
:func:`load_paired_nifti_slices` does it for co-registered pairs, on the same slices.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import re
from pathlib import Path

import numpy as np

from medgen_tf.errors import DataError, check_value_range, first_line, is_whole_number

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_path(path) -> bool:
    """True for names ending in ``.nii`` or ``.nii.gz``."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def file_digest(path, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``"sha256"``, ``"md5"``, ...), read in 1 MiB blocks."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    return file_digest(path, "sha256")


def load_volume(path, volume_index: int | None = None, expected_sha256: str | None = None):
    """Load a NIfTI file as a float32 3-D array in canonical RAS orientation.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.
        volume_index: for 4-D files (e.g. fMRI, multi-echo, DWI), which volume along the
            fourth axis to return (0-based; ``nifti:PATH#N`` in a data spec). Required when
            that axis has more than one volume: choosing silently would hide a real decision
            from the user. A 3-D file is one volume: only 0 (or -1) is accepted.
        expected_sha256: when given, the file's sha256 must match (tamper/corruption check).

    Returns:
        ``(volume, affine)``: a float32 array of shape (x, y, z) with x to the Right, y
        Anterior and z Superior, and the 4x4 voxel-to-world affine of the reoriented image.

    Raises:
        DataError: missing file, not NIfTI, corrupt or truncated data, 2-D or 5-D+ data,
            4-D without ``volume_index`` (or out of range), NaN/Inf voxels, a constant
            volume, or a sha256 mismatch.

    Example:
        >>> volume, affine = load_volume("sub-01_T1w.nii.gz")  # doctest: +SKIP
    """
    import nibabel as nib

    path = Path(path)
    # float() truncated 1.5 to volume 1, True was volume 1, and "1" was called a corrupt file.
    if volume_index is not None and not is_whole_number(volume_index):
        raise ValueError(f"volume_index must be a whole number or None, got {volume_index!r}")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a .nii or .nii.gz file")
    if not is_nifti_path(path):
        raise DataError(f"{path}: not a NIfTI file (expected a .nii or .nii.gz name)")
    if expected_sha256 is not None and sha256_of(path) != expected_sha256:
        raise DataError(
            f"{path}: sha256 mismatch (file altered or corrupted; restore the original)"
        )
    if path.name.lower().endswith(".gz"):
        data_size = _check_gzip_stream(path)
    else:
        data_size = path.stat().st_size
    try:
        _check_voxel_sizes(path)
        with quiet_nibabel():
            image = nib.load(str(path))
        if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
            raise DataError(f"{path}: not a NIfTI image ({type(image).__name__})")
        if int(image.header["qform_code"]) == 0 and int(image.header["sform_code"]) == 0:
            # nibabel then assumes ANALYZE's storage (x flipped); the NIfTI standard's method 1
            # would not flip it. Nothing in the file says which is true.
            logging.getLogger(__name__).warning(
                "%s: no orientation in the header (qform and sform codes 0): read in ANALYZE's "
                "radiological order, as nibabel does; left and right may be swapped",
                path,
            )
        shape, kind = image.shape, image.get_data_dtype().kind
        if kind == "c":
            raise DataError(
                f"{path}: complex-valued voxels ({image.get_data_dtype()}); save the magnitude "
                "image (e.g. numpy.abs) and load that"
            )
        if kind not in "biuf":
            raise DataError(
                f"{path}: voxel type {image.get_data_dtype()} (RGB or structured) is not "
                "supported; save one grey-level channel"
            )
        if len(shape) not in (3, 4):
            raise DataError(
                f"{path}: expected a 3-D (or 4-D) image, got {len(shape)}-D shape {shape}"
            )
        if 0 in shape:
            raise DataError(f"{path}: empty image (shape {shape})")
        _check_affine(image.affine, path)
        _check_claimed_size(image, data_size, path)
        if len(shape) == 4:
            if volume_index is None:
                if shape[3] != 1:
                    raise DataError(
                        f"{path}: 4-D image with {shape[3]} volumes; pick one with the spec "
                        f"nifti:{path}#N (N from 0 to {shape[3] - 1}) or volume_index=N"
                    )
                volume_index = 0
            if not -shape[3] <= volume_index < shape[3]:
                raise DataError(
                    f"{path}: volume_index {volume_index} out of range for {shape[3]} volumes"
                )
            # The one volume is cut out before any voxel is read: a DWI or fMRI series would
            # otherwise be read whole (in float64 when scaled) to keep a hundredth of it.
            image = image.slicer[..., volume_index % shape[3]]
        elif volume_index not in (None, 0, -1):
            # Ignoring the index would hand back the one volume the user did not ask for.
            raise DataError(f"{path}: volume_index {volume_index} given, but the image is 3-D")
        image = nib.as_closest_canonical(image)
        # Reading the data is where truncated or corrupt streams fail. A scale factor that
        # overflows float32 gives Inf voxels, refused below in one line: numpy's warning about
        # the cast would only add two lines of noise before it.
        with np.errstate(over="ignore", invalid="ignore"):
            data = np.asarray(image.dataobj, dtype=np.float32)
            if not np.all(np.isfinite(data)):
                # Finite values beyond float32 (a float64 file, or a scale factor) became Inf
                # in the cast: calling them NaN or Inf voxels sent users looking for those.
                beyond = np.isfinite(np.asarray(image.dataobj)) & ~np.isfinite(data)
                if beyond.any():
                    raise DataError(
                        f"{path}: {int(beyond.sum())} voxels beyond float32's range (magnitude "
                        "above 3.4e38, after the header's scale factor); rescale the image"
                    )
        affine = np.asarray(image.affine, dtype=np.float64)
    except DataError:
        raise
    except Exception as error:  # nibabel, gzip, zlib and OS errors all mean "unreadable"
        raise DataError(f"{path}: unreadable or corrupt NIfTI ({first_line(error)})") from error
    check_volume(data, str(path))
    return np.ascontiguousarray(data), affine


def _check_gzip_stream(path: Path) -> int:
    """Read a .gz file to its end: only there is its CRC checked. Returns its decompressed
    length in bytes.

    nibabel stops reading once it has the voxels it needs, so a flipped byte in the stream can
    load as wrong voxel values without any error.
    """
    import gzip
    import zlib

    length = 0
    try:
        with gzip.open(path, "rb") as stream:
            while block := stream.read(1 << 22):
                length += len(block)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path}: unreadable or corrupt NIfTI (gzip: {first_line(error)})"
        ) from error
    return length


@contextlib.contextmanager
def quiet_nibabel():
    """Silence nibabel's header fix-up messages (e.g. a zero pixdim that an sform makes
    irrelevant) for the block: they go to stderr through its own logger, beside our one line."""
    import nibabel as nib

    logger = nib.imageglobals.logger
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def _check_voxel_sizes(path: Path) -> None:
    """DataError for a zero, negative or non-finite voxel size (pixdim) that the geometry uses.

    nibabel's own load turns a zero size into 1 mm and a negative one into its absolute value,
    with a line on stderr, so a file without usable geometry would be sliced as if it had
    1 mm voxels; the raw header is read here because the loaded one is already changed. With
    an sform (sform_code > 0) the affine comes from it, not from pixdim: such a file is fine.
    """
    import nibabel as nib

    with nib.openers.ImageOpener(str(path)) as stream:
        head = stream.read(540)
    for header_class in (nib.Nifti1Header, nib.Nifti2Header):
        size = header_class.template_dtype.itemsize
        if len(head) >= size and size in (
            int.from_bytes(head[:4], "little"),
            int.from_bytes(head[:4], "big"),
        ):
            header = header_class(head[:size], check=False)
            break
    else:
        return  # not a NIfTI header: nib.load says why
    if header["sform_code"] > 0:
        return
    spatial = int(np.clip(header["dim"][0], 0, 3))
    sizes = header["pixdim"][1 : 1 + spatial]
    if not np.all(np.isfinite(sizes) & (sizes > 0)):
        shown = ", ".join(f"{size:g}" for size in sizes)
        raise DataError(
            f"{path}: voxel size pixdim[1:{1 + spatial}] = ({shown}) in the header is zero, "
            "negative or not finite; set the real voxel size in mm and save the file again"
        )


def _check_affine(affine, path: Path) -> None:
    """DataError for a voxel-to-world affine that gives no orientation: non-finite entries, or
    a singular 3x3 part (two voxel axes along one world direction, or one of length 0).

    Reorienting needs it: nibabel failed on some ("SVD did not converge", "Cannot drop
    coordinates ..."), and reoriented others by a direction the file does not have.
    """
    affine = np.asarray(affine, dtype=np.float64)
    if not np.all(np.isfinite(affine)):
        raise DataError(
            f"{path}: the voxel-to-world affine (sform/qform) has NaN or Inf entries; set the "
            "real geometry in the header and save the file again"
        )
    if np.linalg.matrix_rank(affine[:3, :3]) < 3:
        raise DataError(
            f"{path}: the voxel-to-world affine (sform/qform) is not invertible (two voxel axes "
            "along one direction, or one of length 0), so the orientation is unknown; set the "
            "real geometry in the header and save the file again"
        )


def _check_claimed_size(image, data_size: int, path: Path) -> None:
    """DataError when the header claims more voxel bytes than the (decompressed) file holds.

    nibabel allocates the whole claimed array before it finds the data missing: a 74-byte
    .nii.gz claiming 800^3 float32 voxels took 2.6 GB, and a bigger claim a MemoryError or the
    OOM killer, instead of a message about the file.
    """
    proxy = image.dataobj
    claimed = math.prod(int(side) for side in proxy.shape) * proxy.dtype.itemsize
    held = max(0, data_size - int(proxy.offset))
    if held < claimed:
        raise DataError(
            f"{path}: truncated NIfTI (header says {claimed} bytes of voxel data, "
            f"the file holds {held})"
        )


def check_volume(volume: np.ndarray, name: str) -> None:
    """Raise DataError for NaN/Inf voxels or a constant (e.g. all-zero) volume."""
    if not np.all(np.isfinite(volume)):
        count = int(np.size(volume) - np.count_nonzero(np.isfinite(volume)))
        # FSL and SPM write NaN outside a mask: say how to load such a file.
        raise DataError(
            f"{name}: {count} NaN or Inf voxels; if NaN marks the background, replace it with 0 "
            "(e.g. np.nan_to_num) and save the file again"
        )
    if volume.size == 0 or float(volume.max()) == float(volume.min()):
        value = float(volume.flat[0]) if volume.size else float("nan")
        raise DataError(f"{name}: constant volume (every voxel is {value:g}); nothing to learn")


def foreground_mask(volume: np.ndarray) -> np.ndarray:
    """Voxels 10% of the way from the air level up to the bright level: a cheap head mask.

    Both levels are robust percentiles (0.5 and 99.5), not the minimum and maximum: a few
    padding voxels (-32768 in some int16 exports) would otherwise make the whole field of
    view "foreground", and no blank slice would be dropped. More padding than 0.5 % of the
    volume (a padded plane, a field of view cut after resampling) is a separate mode at the
    minimum, and when that minimum lies further below zero than the bright level of the other
    voxels lies above it, both levels are taken over the voxels above the minimum. An MR
    magnitude image reads 0 where there is no signal, so a minimum at or above 0 (air written
    as exact zeros, a skull-stripped background) always stays the air level, and the mask is
    as without this rule.
    """
    low, high = np.percentile(volume, (0.5, 99.5))
    minimum = volume.min()
    # One padded plane of -32768 (2.5 % of a 40x48x32 head) put the air level there: the mask
    # was 97.5 % of the volume instead of 28 %, and blank slices were kept.
    if np.count_nonzero(volume == minimum) > 0.005 * (volume.size - 1):
        above = volume[volume > minimum]
        if above.size:
            above_low, above_high = np.percentile(above, (0.5, 99.5))
            if 0 < above_high < -minimum:
                low, high = above_low, above_high
    return volume > low + 0.1 * (high - low)


def normalize_intensity(
    volume: np.ndarray,
    value_range: tuple[float, float] = (-1.0, 1.0),
    percentiles: tuple[float, float] = (0.5, 99.5),
    mask: np.ndarray | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Clip to robust foreground percentiles, then scale linearly into ``value_range``.

    MR intensities have no physical unit and a few very bright voxels (vessels, fat,
    artefacts) would squash the rest of the range under a plain min-max. Percentiles are taken
    inside ``mask`` (default :func:`foreground_mask`) so the air around the head, often half
    the volume, does not drag the lower percentile to zero. Background ends up at
    ``value_range[0]``.

    Raises:
        ValueError: ``value_range`` is not finite with high > low.
        DataError (naming ``name``, e.g. the file): the foreground is (almost) one value, as in
        a binary mask or a label file; scaling it would give all-background images.
    """
    # (1, -1) gave inverted images and (0, 0) constant ones, without a word.
    out_low, out_high = check_value_range((), value_range)
    volume = np.asarray(volume, dtype=np.float32)
    if mask is None:
        mask = foreground_mask(volume)
    values = volume[mask] if np.any(mask) else volume.ravel()
    low, high = np.percentile(values, percentiles)
    if high <= low:
        raise DataError(
            f"{name or 'volume'}: foreground intensity is constant ({low:g}); a mask or label "
            "file? nothing to learn from it"
        )
    scaled = (np.clip(volume, low, high) - low) / (high - low)
    scaled = np.where(mask, scaled, 0.0)
    return (out_low + scaled * (out_high - out_low)).astype(np.float32)


def extract_slices(volume: np.ndarray, axis: int = 2, min_foreground: float = 0.25, mask=None):
    """Cut 2-D slices along ``axis`` (2 = axial in RAS) and drop near-empty ones.

    A slice is kept when its foreground area is at least ``min_foreground`` times the
    largest slice's area: the first and last few slices of a head are mostly air and teach a
    generator nothing but blank images.

    Returns:
        ``(slices, positions)``: an array (n, rows, columns) in display orientation and the
        kept indices along ``axis``.
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    if mask is None:
        mask = foreground_mask(volume)
    other_axes = tuple(index for index in range(3) if index != axis)
    areas = mask.sum(axis=other_axes)
    keep = np.flatnonzero(areas >= min_foreground * max(int(areas.max()), 1))
    # rot90 puts the in-plane second axis (anterior, or superior) at the top of the image and
    # the first (right, or anterior) to the right: the usual neurological display.
    slices = np.rot90(np.moveaxis(volume, axis, 0)[keep], axes=(1, 2))
    return np.ascontiguousarray(slices, dtype=np.float32), keep


PLANES = ("sagittal", "coronal", "axial")


def check_sliceable(shape, axis: int, name, advice=None) -> None:
    """DataError when slices of a (RAS) volume along ``axis`` would be 1 voxel wide.

    A single sagittal slice, shape (1, y, z), cut axially gives z images that are 1-pixel
    stripes, which train without a word and teach a model nothing. ``advice`` replaces the
    default way out (``load_nifti_slices(axis=...)``, which a caller without an axis option,
    such as ``translate``, cannot offer).
    """
    in_plane = [index for index in range(3) if index != axis]
    thin = [index for index in in_plane if shape[index] == 1]
    if not thin:
        return
    usable = [
        other for other in range(3) if all(shape[index] > 1 for index in range(3) if index != other)
    ]
    if advice is None:
        advice = (
            f"it is one {PLANES[usable[0]]} slice: cut it along axis {usable[0]} (in Python, "
            f"load_nifti_slices(..., axis={usable[0]}))"
            if usable
            else "no axis gives 2-D images; give a 3-D volume"
        )
    raise DataError(
        f"{name}: shape {tuple(shape)} is 1 voxel thick along axis {thin[0]}, so its slices along "
        f"axis {axis} ({PLANES[axis]}) would be 1-pixel stripes; {advice}"
    )


def pad_to_square(slices: np.ndarray, fill_value: float) -> np.ndarray:
    """Pad (n, h, w) slices symmetrically to (n, s, s), s = max(h, w), so resizing keeps aspect."""
    _, height, width = slices.shape
    side = max(height, width)
    pad_h, pad_w = side - height, side - width
    return np.pad(
        slices,
        ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2)),
        constant_values=fill_value,
    )


def in_plane_spacing(affine: np.ndarray, axis: int = 2) -> tuple[float, float]:
    """Pixel size in mm, (rows, columns), of :func:`extract_slices` slices along ``axis``.

    ``affine`` is that of the RAS-reoriented volume (:func:`load_volume`), so its column norms
    are the voxel sizes in RAS order. After extract_slices' rot90, rows run along the second
    in-plane axis and columns along the first.
    """
    import nibabel as nib

    zooms = nib.affines.voxel_sizes(np.asarray(affine, dtype=np.float64))
    first, second = (index for index in range(3) if index != axis)
    return float(zooms[second]), float(zooms[first])


def millimetre_true_size(shape, spacing, image_size: int) -> tuple[int, int]:
    """(rows, columns) that a (height, width) slice with ``spacing`` mm pixels takes on an
    ``image_size`` grid when its long side in mm spans the grid and a millimetre spans the
    same number of pixels both ways (:func:`resize_slices`, and its inverse in translation)."""
    height_mm, width_mm = shape[0] * spacing[0], shape[1] * spacing[1]
    side_mm = max(height_mm, width_mm)
    return (
        max(1, round(height_mm / side_mm * image_size)),
        max(1, round(width_mm / side_mm * image_size)),
    )


def resize_slices(
    slices: np.ndarray,
    image_size: int,
    fill_value: float | None = None,
    spacing: tuple[float, float] | None = None,
) -> np.ndarray:
    """Pad (n, h, w) slices to squares and resize to (n, image_size, image_size, 1).

    Bilinear with ``antialias=True``: when shrinking, TensorFlow widens the kernel to the
    output pixel footprint, so thin structures (cortex, vessels) do not alias into moire.

    ``spacing`` (mm per row, mm per column; see :func:`in_plane_spacing`): for non-square
    pixels each slice is resized so that a millimetre spans the same number of output pixels
    along rows and columns, then padded, so a sphere scanned with 2x1 mm pixels stays round.
    Square pixels (or ``None``) take the plain pad-and-resize path, unchanged.
    """
    if image_size < 4:
        raise ValueError(f"image_size must be at least 4, got {image_size}")
    import tensorflow as tf

    slices = np.asarray(slices, dtype=np.float32)
    if fill_value is None:
        fill_value = float(slices.min()) if slices.size else 0.0
    if spacing is not None and not np.isclose(spacing[0], spacing[1], rtol=1e-3, atol=0.0):
        # Straight to the output grid (no intermediate upsampling): the field of view's long
        # side in mm spans image_size pixels, the short side proportionally fewer.
        target = millimetre_true_size(slices.shape[1:], spacing, image_size)
        resampled = tf.image.resize(slices[..., None], target, method="bilinear", antialias=True)
        return pad_to_square(resampled.numpy()[..., 0], fill_value)[..., None].astype(np.float32)
    square = pad_to_square(slices, fill_value)[..., None]
    if square.shape[1] == image_size:
        return square
    resized = tf.image.resize(square, (image_size, image_size), method="bilinear", antialias=True)
    return resized.numpy().astype(np.float32)


def list_nifti_files(folder) -> list[Path]:
    """Sorted ``.nii``/``.nii.gz`` files directly inside ``folder``; DataError if none.

    Hidden files are skipped: macOS ``._`` resource forks and the temporary files of an
    interrupted atomic write (:func:`medgen_tf.files.atomic_path`) are not scans.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    files = sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and is_nifti_path(path) and not path.name.startswith(".")
    )
    if not files:
        raise DataError(f"{folder}: no .nii or .nii.gz files in this folder")
    return files


def nifti_files(path) -> list[Path]:
    """``[path]`` for a file, the folder's NIfTI files (:func:`list_nifti_files`) for a folder."""
    path = Path(path)
    return list_nifti_files(path) if path.is_dir() else [path]


def load_nifti_slices(
    path,
    image_size: int = 64,
    axis: int = 2,
    value_range: tuple[float, float] = (-1.0, 1.0),
    volume_index: int | None = None,
    min_foreground: float = 0.25,
    return_sources: bool = False,
):
    """Slices of a NIfTI file or of every NIfTI file in a folder, ready for a model.

    Each volume is normalised on its own (:func:`normalize_intensity`) before slicing, so
    scanners with different gains land in the same ``value_range``. Slices are resized with
    the file's voxel sizes (:func:`in_plane_spacing`), so anisotropic voxels keep anatomy's
    shape; isotropic files take the plain pad-and-resize path. Each file's slice is padded to
    a square and shrunk to ``image_size`` on its own: nothing brings files to one millimetre
    grid, so the same head fills less of the frame in a file with a wider field of view.
    Resample a folder of mixed protocols to one grid first (e.g. with nibabel.processing).

    Returns:
        float32 array (n, image_size, image_size, 1); with ``return_sources=True`` also an
        int32 array (n,) giving, for each slice, the index of its file in the sorted list.

    Raises:
        ValueError: ``value_range`` is not finite with high > low (checked before any file
            is read).
    """
    check_value_range((), value_range)
    files = nifti_files(path)
    all_slices, sources = [], []
    for file_index, file in enumerate(files):
        volume, mask, affine = _prepared_volume(file, volume_index, value_range)
        all_slices.append(
            _volume_slices(
                volume, mask, affine, file, image_size, axis, value_range, min_foreground
            )
        )
        sources.append(np.full(len(all_slices[-1]), file_index, dtype=np.int32))
    images = np.concatenate(all_slices, axis=0)
    if return_sources:
        return images, np.concatenate(sources)
    return images


def nifti_stem(file) -> str:
    """A NIfTI file's name without ``.nii`` or ``.nii.gz``, in whatever case."""
    name = Path(file).name
    for extension in (".nii.gz", ".nii"):
        if name.lower().endswith(extension):
            return name[: -len(extension)]
    return name


def _subject_keys(files) -> list[str]:
    """Each file's name without the start and end that every name in its folder shares.

    ``sub-01_T1w.nii.gz`` and ``sub-02_T1w.nii.gz`` give ``01`` and ``02``: the shared parts
    are cut back to a separator (``_``, ``-`` or ``.``), so a shared leading digit stays.
    """
    stems = [nifti_stem(file) for file in files]
    if len(stems) < 2:
        return stems
    prefix = os.path.commonprefix(stems)
    prefix = prefix[: max(prefix.rfind(separator) for separator in "_-.") + 1]
    suffix = os.path.commonprefix([stem[::-1] for stem in stems])[::-1]
    cuts = [suffix.find(separator) for separator in "_-." if separator in suffix]
    suffix = suffix[min(cuts) :] if cuts else ""
    return [stem[len(prefix) : len(stem) - len(suffix)] for stem in stems]


def _distinct_part_pairings(files_a, files_b) -> dict[tuple[int, ...], tuple[int, int]]:
    """Each way a name part pairs the two folders' files, with the parts that give it.

    A part (``_``/``-``/``.``-separated) qualifies when it tells the files of each folder apart
    and both folders hold the same values: for names that carry more than the subject
    (dcm2niix: ``sub01_T1_MPRAGE_<time>_3``) the time and series number differ between the T1
    and the T2 of one subject, the subject does not. Returns ``{pairing: (part in A, part in
    B)}``, a pairing listing for each file of A the index of its partner in B; more than one
    pairing means the names do not say which part is the subject.
    """
    parts_a, parts_b = (
        [re.split(r"[_.-]", nifti_stem(f)) for f in files] for files in (files_a, files_b)
    )

    def distinct_columns(parts):
        for position in range(min(len(name) for name in parts)):
            column = [name[position] for name in parts]
            if len(set(column)) == len(column):
                yield position, column

    pairings = {}
    for position_a, column_a in distinct_columns(parts_a):
        for position_b, column_b in distinct_columns(parts_b):
            if set(column_a) == set(column_b):
                pairing = tuple(column_b.index(value) for value in column_a)
                pairings.setdefault(pairing, (position_a, position_b))
    return pairings


_BIDS_SUBJECT = re.compile(r"(?:^|[_/])sub-([A-Za-z0-9]+)")


def _bids_subject(file) -> str | None:
    """The label of a BIDS ``sub-<label>`` entity in a file's name, or None."""
    match = _BIDS_SUBJECT.search(nifti_stem(file))
    return match.group(1) if match else None


def paired_nifti_files(path_a, path_b) -> list[tuple[Path, Path]]:
    """``(file_a, file_b)`` pairs of two NIfTI files, or of two folders' files matched by name.

    A file's subject is its name without what every name in its folder shares
    (``sub-01_T1w.nii.gz`` pairs with ``sub-01_T2w.nii.gz``), or else a part of its name that
    differs within its folder and takes the same values in both (``sub01_T1_MPRAGE_<time>_3``
    with ``sub01_T2_SPACE_<time>_5``); names whose parts pair the files in more than one way are
    refused, as is one file per folder whose BIDS ``sub-`` labels differ. Pairing by name, not
    by sorted position: with one subject missing on one side, position would pair every later
    T1 with the next subject's T2, and registered volumes on one grid would not show it.
    """
    files_a, files_b = nifti_files(path_a), nifti_files(path_b)
    if len(files_a) != len(files_b):
        raise DataError(
            f"{path_a} and {path_b}: {len(files_a)} vs {len(files_b)} NIfTI files; paired data "
            "need one file per subject on each side"
        )
    if len(files_a) == 1:
        # Nothing in one name alone says which part is the subject, but a BIDS entity does:
        # sub-01_T1w with sub-02_T2w (one file per folder) was paired without a word.
        subject_a, subject_b = _bids_subject(files_a[0]), _bids_subject(files_b[0])
        if subject_a and subject_b and subject_a != subject_b:
            raise DataError(
                f"{files_b[0]}: subject sub-{subject_b}, but its partner {files_a[0].name} is "
                f"sub-{subject_a}; paired data need the same subject on each side"
            )
        return [(files_a[0], files_b[0])]
    keys_a, keys_b = _subject_keys(files_a), _subject_keys(files_b)
    if len(set(keys_a)) == len(keys_a) and set(keys_a) == set(keys_b):
        by_key_b = dict(zip(keys_b, files_b, strict=True))
        return [(file_a, by_key_b[key]) for key, file_a in zip(keys_a, files_a, strict=True)]
    pairings = _distinct_part_pairings(files_a, files_b)
    if len(pairings) == 1:
        (pairing,) = pairings
        return [(file_a, files_b[index]) for file_a, index in zip(files_a, pairing, strict=True)]
    if len(pairings) > 1:
        # The first such part used to win: a date that tells a folder's files apart paired
        # 20240101_subA_T1 with 20240101_subB_T2, though the subject part pairs them otherwise.
        (first, parts_first), (second, parts_second) = list(pairings.items())[:2]
        raise DataError(
            f"{path_a} and {path_b}: the file names pair up in {len(pairings)} ways: name part "
            f"{parts_first[0] + 1} pairs {files_a[0].name} with {files_b[first[0]].name}, part "
            f"{parts_second[0] + 1} with {files_b[second[0]].name}; rename the files so that "
            "only the subject tells them apart (sub-01_T1w.nii.gz, sub-01_T2w.nii.gz)"
        )
    for path, files in ((path_a, files_a), (path_b, files_b)):
        seen = {}
        for key, file in zip(_subject_keys(files), files, strict=True):
            if key in seen:
                raise DataError(
                    f"{path}: {seen[key].name} and {file.name} name the same subject; paired "
                    "folders need one file per subject, matched by name"
                )
            seen[key] = file
    keys_b = set(_subject_keys(files_b))
    unmatched = [
        file for key, file in zip(_subject_keys(files_a), files_a, strict=True) if key not in keys_b
    ]
    raise DataError(
        f"{path_b}: no partner for {unmatched[0].name} ({len(unmatched)} of {len(files_a)} "
        "files unmatched); paired folders are matched by the part of each file name that "
        "differs within its folder (sub-01_T1w.nii.gz pairs with sub-01_T2w.nii.gz)"
    )


def load_paired_nifti_slices(
    path_a,
    path_b,
    image_size: int = 64,
    axis: int = 2,
    value_range: tuple[float, float] = (-1.0, 1.0),
    volume_indices: tuple[int | None, int | None] = (None, None),
    min_foreground: float = 0.25,
):
    """Slices of co-registered pairs (e.g. a subject's T1 and T2), row i of A matching row i of B.

    ``path_a`` and ``path_b`` are two files, or two folders whose files pair up by name
    (:func:`paired_nifti_files`). The two volumes of a pair must share one voxel grid (shape and affine): register and
    resample first. Each volume is normalised on its own, but the slices kept are chosen once
    for the pair, from the union of the two foreground masks; chosen per volume, the T2's
    range of slices could start one slice later than the T1's and shift every pair.

    Returns:
        ``(images_a, images_b, sources)``: two float32 arrays (n, image_size, image_size, 1)
        and, for each row, the index of its pair in :func:`paired_nifti_files` (A's sorted order).

    Raises:
        ValueError: ``value_range`` is not finite with high > low (checked before any file
            is read).
    """
    check_value_range((), value_range)
    images_a, images_b, sources = [], [], []
    for pair_index, (file_a, file_b) in enumerate(paired_nifti_files(path_a, path_b)):
        volume_a, mask_a, affine = _prepared_volume(file_a, volume_indices[0], value_range)
        volume_b, mask_b, affine_b = _prepared_volume(file_b, volume_indices[1], value_range)
        if volume_a.shape != volume_b.shape or not np.allclose(affine, affine_b, atol=1e-3):
            raise DataError(
                f"{file_b}: not on the voxel grid of its pair {file_a} (shapes {volume_b.shape} "
                f"and {volume_a.shape}, or the affines differ); register and resample it first"
            )
        both = mask_a | mask_b
        for images, volume in ((images_a, volume_a), (images_b, volume_b)):
            images.append(
                _volume_slices(
                    volume, both, affine, file_a, image_size, axis, value_range, min_foreground
                )
            )
        sources.append(np.full(len(images_a[-1]), pair_index, dtype=np.int32))
    return (
        np.concatenate(images_a, axis=0),
        np.concatenate(images_b, axis=0),
        np.concatenate(sources),
    )


def _prepared_volume(file, volume_index, value_range):
    """A file's volume, normalised into ``value_range``, with its foreground mask and affine."""
    volume, affine = load_volume(file, volume_index=volume_index)
    mask = foreground_mask(volume)
    volume = normalize_intensity(volume, value_range=value_range, mask=mask, name=str(file))
    return volume, mask, affine


def _volume_slices(volume, mask, affine, file, image_size, axis, value_range, min_foreground):
    """Slices with enough foreground in ``mask``, resized with the file's voxel sizes."""
    slices, _ = extract_slices(volume, axis=axis, min_foreground=min_foreground, mask=mask)
    check_sliceable(volume.shape, axis, file)
    if len(slices) == 0:
        raise DataError(f"{file}: no slice with enough foreground along axis {axis}")
    spacing = in_plane_spacing(affine, axis)
    resized = resize_slices(slices, image_size, fill_value=value_range[0], spacing=spacing)
    return np.clip(resized, *value_range)
