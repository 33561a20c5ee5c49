"""MedMNIST: the official ``.npz`` layout, checked downloads, licences.

A MedMNIST file holds ``{train,val,test}_images`` (uint8, (n, s, s) grey or (n, s, s, 3) RGB,
s in 28/64/128/224) and ``{train,val,test}_labels`` (n, 1) or (n, k) for multi-label sets.
Files come from the MedMNIST v3 Zenodo record 10519652; URLs and md5 sums are those of the
``medmnist`` package (``medmnist/info.py``, MedMNIST/MedMNIST on GitHub). Files are opened
with ``allow_pickle=False``: opening a downloaded file never runs code.

Licences: every MedMNIST dataset is CC BY 4.0 except DermaMNIST, CC BY-NC 4.0
(non-commercial). :func:`load_medmnist` prints the licence the first time a dataset is used.
Cite Yang et al., "MedMNIST v2", Scientific Data 10:41 (2023). The TFDS catalog's copies
(``tfds:pneumonia_mnist``) are read by :mod:`medgen_tf.data.tfds_catalog`.
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from pathlib import Path

import numpy as np

from medgen_tf import config
from medgen_tf.data.nifti import file_digest
from medgen_tf.errors import DataError, check_value_range, first_line

logger = logging.getLogger(__name__)

ZENODO = "https://zenodo.org/records/10519652/files"

#: name -> (md5 per size, label names, licence). From medmnist/info.py (MedMNIST v3).
DATASETS = {
    "pneumoniamnist": (
        {
            28: "28209eda62fecd6e6a2d98b1501bb15f",
            64: "8f4eceb4ccffa70c672198ea285246c6",
            128: "05b46931834c231683c68f40c47b2971",
            224: "d6a3c71de1b945ea11211b03746c1fe1",
        },
        ["normal", "pneumonia"],
        "CC BY 4.0",
    ),
    "breastmnist": (
        {
            28: "750601b1f35ba3300ea97c75c52ff8f6",
            64: "742edef2a1fd1524b2efff4bd7ba9364",
            128: "363e4b3f8d712e9b5de15470a2aaadf1",
            224: "b56378a6eefa9fed602bb16d192d4c8b",
        },
        ["malignant", "normal, benign"],
        "CC BY 4.0",
    ),
    "organamnist": (
        {
            28: "68e3f8846a6bd62f0c9bf841c0d9eacc",
            64: "2dcccc29b88e6da5a01161ef20cda288",
            128: "eeae80d0a227a8d099027e1b3cfd3b60",
            224: "50747347e05c87dd3aaf92c49f9f3170",
        },
        [
            "bladder",
            "femur-left",
            "femur-right",
            "heart",
            "kidney-left",
            "kidney-right",
            "liver",
            "lung-left",
            "lung-right",
            "pancreas",
            "spleen",
        ],
        "CC BY 4.0",
    ),
    "dermamnist": (
        {
            28: "0744692d530f8e62ec473284d019b0c7",
            64: "b70a2f5635c6199aeaa28c31d7202e1f",
            128: "2defd784463fa5243564e855ed717de1",
            224: "8974907d8e169bef5f5b96bc506ae45d",
        },
        [
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ],
        "CC BY-NC 4.0",
    ),
}

SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")


_licences_shown: set[str] = set()
#: path -> (size, mtime_ns, expected md5) of cached files whose md5 matched: hashing a 224 px
#: file takes seconds, so each file is hashed once per process unless it changes on disk.
_md5_verified: dict[str, tuple[int, int, str]] = {}

#: What reading a damaged archive member can raise: a bad CRC or zip structure, a corrupt
#: deflate stream, a file cut short, a read error, a member listed but unreadable, a bad header.
_CORRUPT_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, ValueError)


def file_name(name: str, size: int = 28) -> str:
    """Official file name: ``pneumoniamnist.npz`` at 28 px, ``pneumoniamnist_64.npz`` above."""
    return f"{name}.npz" if size == 28 else f"{name}_{size}.npz"


def licence(name: str) -> str:
    """The dataset's licence (CC BY 4.0, or CC BY-NC 4.0 for DermaMNIST)."""
    return DATASETS[name][2] if name in DATASETS else "CC BY 4.0 (see medmnist.com)"


def show_licence(name: str) -> None:
    """Print the licence once per process, so users see the terms of what they train on."""
    if name not in _licences_shown:
        _licences_shown.add(name)
        print(f"{name}: MedMNIST v3, licence {licence(name)}; cite Yang et al., Sci Data 2023.")


def download(name: str, size: int = 28, cache_dir=None) -> Path:
    """Fetch an official file once, md5-checked by ``keras.utils.get_file``; return its path."""
    if name not in DATASETS:
        raise DataError(f"medmnist:{name}: unknown dataset; known: {', '.join(sorted(DATASETS))}")
    if size not in SIZES:
        raise DataError(f"medmnist:{name}@{size}: size must be one of {SIZES}")
    import keras

    cache_dir = Path(cache_dir or config.cache_dir())
    target = file_name(name, size)
    try:
        # get_file saves to /tmp/.keras when cache_dir is not writable, which a folder not
        # made yet is not: the file then missed the cache and was fetched again once /tmp
        # was cleaned.
        (cache_dir / "medmnist").mkdir(parents=True, exist_ok=True)
    except OSError as error:
        # A read-only home (a container, a cluster node): get_file's fallback still works.
        logging.getLogger(__name__).warning(
            "medmnist:%s@%d: cannot make the cache folder %s (%s); Keras saves the download "
            "under /tmp/.keras instead",
            name,
            size,
            cache_dir,
            error,
        )
    try:
        path = keras.utils.get_file(
            fname=target,
            origin=f"{ZENODO}/{target}?download=1",
            file_hash=DATASETS[name][0][size],
            hash_algorithm="md5",
            cache_dir=str(cache_dir),
            cache_subdir="medmnist",
        )
    except Exception as error:  # offline, HTTP error, or md5 mismatch
        raise DataError(f"medmnist:{name}@{size}: download failed ({error})") from error
    return Path(path)


def md5_of(path) -> str:
    """Hex md5 of a file (the checksum MedMNIST publishes)."""
    return file_digest(path, "md5")


def check_cached(path, name: str, size: int) -> Path:
    """Verify a cached official file against its published md5 (local only, no network).

    A file cut short by an interrupted copy or altered on disk would otherwise be trusted
    forever, because a cached file is never downloaded again.
    """
    path = Path(path)
    stat = path.stat()
    expected = DATASETS[name][0][size]
    key, stamp = str(path.resolve()), (stat.st_size, stat.st_mtime_ns, expected)
    if _md5_verified.get(key) == stamp:
        return path
    if md5_of(path) != expected:
        raise DataError(
            f"{path}: md5 mismatch with the official {name}@{size} file (corrupted or altered); "
            "delete it to download it again"
        )
    _md5_verified[key] = stamp
    return path


def read_npz(path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images (n, s, s, c) as stored (uint8 in official files) and labels (n, k) from a
    MedMNIST-layout ``.npz``; DataError naming the file for a damaged or malformed one."""
    path = Path(path)
    if split not in SPLITS:
        raise DataError(f"{path}: unknown split {split!r}; choose from {SPLITS}")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as error:
        problem = first_line(error)
        # np.load takes whatever is neither a zip nor a .npy for a pickle, and its advice to
        # allow pickles is wrong for a damaged file: reading data never runs code.
        if "pickle" in problem:
            raise DataError(f"{path}: not a .npz archive (truncated or damaged)") from error
        raise DataError(f"{path}: not a readable .npz archive ({problem})") from error
    # np.load goes by the file's content, not its name: a .npy renamed .npz is one bare array.
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single .npy array, not a .npz archive of named arrays")
    with archive:
        missing = [key for key in (f"{split}_images", f"{split}_labels") if key not in archive]
        if missing:
            raise DataError(
                f"{path}: missing key(s) {', '.join(missing)} (MedMNIST layout needs "
                "{train,val,test}_{images,labels})"
            )
        try:
            images, labels = archive[f"{split}_images"], archive[f"{split}_labels"]
        except ValueError as error:
            if "pickle" not in str(error):
                raise DataError(f"{path}: corrupt .npz archive ({first_line(error)})") from error
            # Object arrays would need pickle, which can run code: refused.
            raise DataError(f"{path}: array needs pickle to load; refused ({error})") from error
        except _CORRUPT_ERRORS as error:
            raise DataError(f"{path}: corrupt .npz archive ({first_line(error)})") from error
    # numpy hands back a member that is no .npy file as raw bytes.
    for key, value in ((f"{split}_images", images), (f"{split}_labels", labels)):
        if not isinstance(value, np.ndarray):
            raise DataError(f"{path}: {key} is not a .npy array (a damaged or foreign .npz)")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(
            f"{path}: {split}_images has shape {images.shape}, expected (n, s, s), (n, s, s, 1) or (n, s, s, 3)"
        )
    if images.shape[1] != images.shape[2]:
        raise DataError(
            f"{path}: {split}_images are {images.shape[1]}x{images.shape[2]}, not square "
            "(MedMNIST images are s x s)"
        )
    if len(images) == 0:
        raise DataError(f"{path}: split {split} has 0 images")
    if images.shape[1] == 0:
        # Every later step (the range check's min, the resize) fails on them without the file.
        raise DataError(f"{path}: {split}_images are 0x0 pixels")
    if labels.ndim == 0:
        raise DataError(f"{path}: {split}_labels is a single value, expected one row per image")
    if len(labels) != len(images):
        raise DataError(f"{path}: {len(images)} images but {len(labels)} labels in split {split}")
    labels = labels.reshape(len(labels), -1)
    if labels.shape[1] == 0:
        raise DataError(f"{path}: {split}_labels has no label column (shape {labels.shape})")
    if labels.dtype.kind not in "iubf":
        raise DataError(f"{path}: {split}_labels have dtype {labels.dtype}, expected integers")
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise DataError(f"{path}: {split}_labels has NaN or Inf values")
    # The labels become int32 class indices: a cast would truncate 1.9 to 1 and wrap 2**40 to 0.
    if labels.dtype.kind == "f" and not np.all(labels == np.floor(labels)):
        raise DataError(f"{path}: {split}_labels has fractional values, expected class indices")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= 2**31:
        raise DataError(
            f"{path}: {split}_labels are in [{low}, {high}], expected class indices 0..2**31-1"
        )
    return images, labels


def constant_images(images) -> tuple[list[int], str]:
    """The indices of the (h, w, c) images whose pixels are all one value (grey level or
    colour), and that value of the first as messages show it ("0", "(255, 0, 0)"); ``images``
    is one (n, h, w, c) array, or a list of images of several sizes (TFDS)."""
    if isinstance(images, np.ndarray):  # one stacked array: a single vectorised test
        flat = np.all(images.min(axis=(1, 2)) == images.max(axis=(1, 2)), axis=-1)
        constant = np.flatnonzero(flat).tolist()
    else:
        constant = [
            index
            for index, image in enumerate(images)
            if np.all(image.min(axis=(0, 1)) == image.max(axis=(0, 1)))
        ]
    if not constant:
        return [], ""
    pixel = [f"{float(value):g}" for value in images[constant[0]][0, 0]]
    return constant, pixel[0] if len(set(pixel)) == 1 else f"({', '.join(pixel)})"


def check_not_constant(images: np.ndarray, path, split: str = "train") -> None:
    """Refuse (n, s, s, c) images whose pixels are ALL one value each (grey level or colour),
    as float 0..1 images cast to uint8 (all 0) are: like a constant NIfTI volume, they carry
    nothing to learn from. A few constant images among others (a blank frame in a real
    dataset) load, with a warning naming the first."""
    constant, shown = constant_images(images)
    if not constant:
        return
    if len(constant) == len(images):
        raise DataError(
            f"{path}: all {len(images)} {split}_images are constant ({split}_images[0]: every "
            f"pixel is {shown}); nothing to learn from them"
        )
    logger.warning(
        "%s: %s_images[%d] is constant (every pixel is %s), as are %d of %d images; they are kept",
        path,
        split,
        constant[0],
        shown,
        len(constant),
        len(images),
    )


def to_unit_range(images: np.ndarray, path, split: str = "train") -> np.ndarray:
    """Images as float32 in [0, 1]: integers 0..255 are divided by 255, floats in [0, 1] kept.

    Dividing float images already in [0, 1] by 255 would give blank images, and guessing a
    scale for any other range would hide a real problem, so those are refused, as is a split
    of constant images (:func:`check_not_constant`).
    """
    kind = images.dtype.kind
    if kind in "iu":
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise DataError(
                f"{path}: {split}_images are integers in [{low}, {high}], expected 0..255"
            )
        check_not_constant(images, path, split)
        return images.astype(np.float32) / 255.0
    if kind == "f":
        if not np.all(np.isfinite(images)):
            count = int(images.size - np.count_nonzero(np.isfinite(images)))
            raise DataError(f"{path}: {split}_images has {count} NaN or Inf values")
        low, high = float(images.min()), float(images.max())
        if low < 0.0 or high > 1.0:
            raise DataError(
                f"{path}: float {split}_images are in [{low:g}, {high:g}], expected [0, 1] "
                "(or uint8 0..255)"
            )
        check_not_constant(images, path, split)
        return images.astype(np.float32)
    raise DataError(f"{path}: {split}_images have dtype {images.dtype}, expected uint8 or float")


def load_medmnist(
    name_or_path,
    split: str = "train",
    size: int = 28,
    image_size: int | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
):
    """A MedMNIST split as float32 images in ``value_range`` and integer labels.

    Args:
        name_or_path: a dataset name from :data:`DATASETS` (downloaded when missing; the
            cached file is md5-checked either way) or a local ``.npz`` in the MedMNIST layout.
        split: ``"train"``, ``"val"`` or ``"test"``.
        size: official file size (28, 64, 128, 224) when downloading by name.
        image_size: resize to this side (antialiased) when it differs from the file's.
        value_range: output intensity range ``(low, high)``, finite, high > low; uint8 0..255 (or
            float 0..1) maps linearly onto it.

    Returns:
        dict with ``images`` (n, s, s, c) float32, ``labels`` (n,) int32 (first column for
        multi-label files), ``label_names`` and ``name``.
    """
    # Checked before any download: (1, -1) loaded inverted images, (0, 0) blank ones, (0, inf)
    # NaN and inf ones (0 * inf), and a size below 1 was a TensorFlow traceback naming no file.
    try:
        low, high = check_value_range((), value_range)
    except ValueError as error:
        raise ValueError(f"{name_or_path}: {error}") from None
    if image_size is not None and image_size < 1:
        raise ValueError(f"{name_or_path}: image_size must be at least 1, got {image_size}")
    path = Path(str(name_or_path))
    if path.suffix.lower() == ".npz":
        name, label_names = path.stem, []
    else:
        name = str(name_or_path).lower()
        if name not in DATASETS:
            raise DataError(
                f"medmnist:{name_or_path}: unknown dataset; known: {', '.join(sorted(DATASETS))} "
                "(or give a .npz path)"
            )
        local = config.cache_dir() / "medmnist" / file_name(name, size)
        path = check_cached(local, name, size) if local.exists() else download(name, size)
        label_names = DATASETS[name][1]
        show_licence(name)
    images, labels = read_npz(path, split)
    images = low + to_unit_range(images, path, split) * (high - low)
    if image_size is not None and image_size != images.shape[1]:
        import tensorflow as tf

        images = tf.image.resize(images, (image_size, image_size), antialias=True).numpy()
    return {
        "images": images.astype(np.float32),
        "labels": labels[:, 0].astype(np.int32),
        "label_names": list(label_names),
        "name": name,
    }
