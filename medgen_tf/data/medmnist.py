"""MedMNIST: the official ``.npz`` layout, checked downloads, licences; and the tfds path.

A MedMNIST file holds ``{train,val,test}_images`` (uint8, (n, s, s) grey or (n, s, s, 3) RGB,
s in 28/64/128/224) and ``{train,val,test}_labels`` (n, 1) or (n, k) for multi-label sets.
Files come from the MedMNIST v3 Zenodo record 10519652; URLs and md5 sums are those of the
``medmnist`` package (``medmnist/info.py``, MedMNIST/MedMNIST on GitHub). Files are opened
with ``allow_pickle=False``: opening a downloaded file never runs code.

Licences: every MedMNIST dataset is CC BY 4.0 except DermaMNIST, CC BY-NC 4.0
(non-commercial). :func:`load_medmnist` prints the licence the first time a dataset is used.
Cite Yang et al., "MedMNIST v2", Scientific Data 10:41 (2023).
"""

from __future__ import annotations

import queue
import re
import socket
import threading
import time
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np

from medgen_tf import config
from medgen_tf.data.nifti import file_digest
from medgen_tf.errors import DataError

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

#: Medical image datasets in the TFDS catalog (``tfds.list_builders()``, tensorflow-datasets
#: 4.9); any other catalog name is passed to ``tfds.load`` as well.
TFDS_MEDICAL = ("pneumonia_mnist", "patch_camelyon", "malaria", "diabetic_retinopathy_detection")
TFDS_IMAGE_KEY = "image"
TFDS_LABEL_KEY = "label"

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
        raise DataError(f"{path}: not a readable .npz archive ({_one_line(error)})") from error
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
                raise DataError(f"{path}: corrupt .npz archive ({_one_line(error)})") from error
            # Object arrays would need pickle, which can run code: refused.
            raise DataError(f"{path}: array needs pickle to load; refused ({error})") from error
        except _CORRUPT_ERRORS as error:
            raise DataError(f"{path}: corrupt .npz archive ({_one_line(error)})") from error
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"{path}: {split}_images has shape {images.shape}, expected (n, s, s[, 3])")
    if images.shape[1] != images.shape[2]:
        raise DataError(
            f"{path}: {split}_images are {images.shape[1]}x{images.shape[2]}, not square "
            "(MedMNIST images are s x s)"
        )
    if len(images) == 0:
        raise DataError(f"{path}: split {split} has 0 images")
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


def _one_line(error: Exception) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return text or type(error).__name__


def to_unit_range(images: np.ndarray, path, split: str = "train") -> np.ndarray:
    """Images as float32 in [0, 1]: integers 0..255 are divided by 255, floats in [0, 1] kept.

    Dividing float images already in [0, 1] by 255 would give blank images, and guessing a
    scale for any other range would hide a real problem, so those are refused.
    """
    kind = images.dtype.kind
    if kind in "iu":
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise DataError(
                f"{path}: {split}_images are integers in [{low}, {high}], expected 0..255"
            )
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
        value_range: output intensity range; uint8 0..255 (or float 0..1) maps linearly
            onto it.

    Returns:
        dict with ``images`` (n, s, s, c) float32, ``labels`` (n,) int32 (first column for
        multi-label files), ``label_names`` and ``name``.
    """
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
    low, high = value_range
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


#: Port a direct connection to a source URL's host is made on when the URL names none.
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}


def _goes_through_proxy(parts: urllib.parse.SplitResult) -> bool:
    """Whether TFDS's downloader (``requests``) fetches this URL through a proxy.

    ``getproxies()`` also reports ``no_proxy`` (as ``"no"``), and an ``http_proxy`` says
    nothing about an https URL, so only a proxy for the URL's scheme (or ``all_proxy``) that
    the host does not bypass counts.
    """
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    return bool(proxy) and not urllib.request.proxy_bypass(parts.hostname)


def _unreachable_problem(hosts: dict[str, int], timeout_seconds: float) -> str | None:
    """None as soon as one host accepts a connection, else why none did, within one deadline.

    ``socket.create_connection`` gives every address of a host the full timeout and name
    resolution has none at all, so one host with four silently dropped addresses took four
    timeouts. Each host is tried in a daemon thread and the answers are awaited only until
    ``timeout_seconds`` after the start; an attempt still running then is left behind.
    """
    answers: queue.Queue = queue.Queue()

    def attempt(host, port):
        try:
            socket.create_connection((host, port), timeout=timeout_seconds).close()
            answers.put((host, None))
        except OSError as error:
            answers.put((host, error.strerror or _one_line(error)))
        except Exception:  # the probe itself failed: say nothing rather than refuse wrongly
            answers.put((host, None))

    deadline = time.monotonic() + timeout_seconds
    for host, port in hosts.items():
        threading.Thread(
            target=attempt, args=(host, port), name=f"tfds-probe-{host}", daemon=True
        ).start()
    problems = {}
    while len(problems) < len(hosts):
        try:
            host, problem = answers.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            break
        if problem is None:
            return None
        problems[host] = problem
    silent = f"no answer within {timeout_seconds:g} s"
    return "; ".join(f"{host}: {problems.get(host, silent)}" for host in hosts)


def _check_sources_reachable(name, url_infos, data_dir, timeout_seconds=5.0):
    """A one-line DataError if no host the dataset downloads from can be reached.

    Offline, TFDS's downloader retries every URL ten times with growing waits, so a missing
    network showed up only after minutes. The whole check takes at most ``timeout_seconds``.
    A direct connection says nothing about a URL fetched through a proxy, so nothing is
    checked when one is, nor for a builder that lists no URLs.
    """
    hosts = {}
    for url in url_infos or {}:
        parts = urllib.parse.urlsplit(url)
        if not parts.hostname:
            continue
        if _goes_through_proxy(parts):
            return
        hosts.setdefault(parts.hostname, parts.port or _DEFAULT_PORTS.get(parts.scheme, 443))
    if not hosts:
        return
    problem = _unreachable_problem(hosts, timeout_seconds)
    if problem is not None:
        raise DataError(
            f"tfds:{name}: not prepared in {data_dir} and its source cannot be reached "
            f"({problem}); prepare it on a machine with network and copy it there (its "
            f"downloads/ folder is enough), or point TFDS_DATA_DIR at a prepared copy"
        )


def _source_already_local(builder) -> bool:
    """Whether TFDS holds a source file of the dataset already, so it can prepare it offline.

    A download finished before preparation was interrupted, or a ``downloads/`` folder copied
    from a connected machine, is used without the network. TFDS looks in
    ``downloads/<dataset>/`` and, as older versions stored them, ``downloads/``, for a file
    named after the URL and its checksum (or the URL alone), complete once its ``.INFO`` file
    is beside it; a file put in ``downloads/manual/`` under the source's name is used instead of
    a download. A builder lists more URLs than it fetches (pneumonia_mnist lists each file with
    and without ``?download=1``), so one source present is enough. A dataset that needs
    manually downloaded files is left to TFDS's own instructions.
    """
    from tensorflow_datasets.core.download import resource

    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        return True
    downloads = builder.data_dir_root / "downloads"
    for url, url_info in (builder.url_infos or {}).items():
        file_names = {resource.get_dl_fname(url, url_info.checksum), resource.get_dl_fname(url)}
        for folder in (downloads / builder.name, downloads):
            if any(resource.is_locally_cached(folder / file_name) for file_name in file_names):
                return True
        if url_info.filename and (downloads / "manual" / url_info.filename).exists():
            return True
    return False


def _builder_problem(error: Exception) -> str:
    """TFDS's own reason for refusing a builder (an unknown version or config), on one line.

    TFDS wraps it as ``Failed to construct dataset "x", builder_kwargs "{...}": reason``, and
    lists the config names closest to an unknown one on the lines after it.
    """
    text = re.sub(
        r'^Failed to construct dataset "[^"]*", builder_kwargs "[^"]*": ', "", str(error).strip()
    )
    text = re.sub(r"\s*Here are \d+ \w+ whose name closely match:\s*$", "", text)
    first, *rest = [line.strip() for line in text.splitlines() if line.strip()] or [
        type(error).__name__
    ]
    if rest and not any(" " in line for line in rest):
        return ", ".join([first, *rest])
    return first


def load_tfds(
    name: str,
    split: str = "train",
    image_size: int = 64,
    value_range: tuple[float, float] = (-1.0, 1.0),
    data_dir=None,
    max_examples: int | None = None,
):
    """Images and labels of a TFDS catalog image dataset (needs the ``tfds`` extra).

    The dataset must have an ``image`` feature (uint8) and may have a ``label``. A dataset not
    yet prepared in ``data_dir`` (default ``TFDS_DATA_DIR``, else ``~/tensorflow_datasets``) is
    prepared from the source files in its ``downloads/`` folder, downloading those missing;
    when none is there and none of its sources can be reached, a one-line DataError says so
    at once.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError(
            f"tfds:{name}: tensorflow-datasets is not installed; pip install 'medgen-tf[tfds]'"
        ) from error
    import tensorflow as tf

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.DatasetNotFoundError as error:
        raise DataError(f"tfds:{name}: not a TFDS dataset ({_one_line(error)})") from error
    except Exception as error:
        raise DataError(f"tfds:{name}: {_builder_problem(error)}") from error
    if not builder.is_prepared() and not _source_already_local(builder):
        _check_sources_reachable(name, builder.url_infos, builder.data_dir)
    try:
        dataset, info = tfds.load(name, split=split, with_info=True, data_dir=data_dir)
    except Exception as error:
        problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"tfds:{name}: cannot load split {split!r} ({problem})") from error
    if TFDS_IMAGE_KEY not in info.features:
        raise DataError(f"tfds:{name}: no 'image' feature; not an image dataset")
    if max_examples is not None:
        dataset = dataset.take(max_examples)
    images, labels = [], []
    for example in dataset.as_numpy_iterator():
        image = example[TFDS_IMAGE_KEY]
        images.append(image if image.ndim == 3 else image[..., None])
        labels.append(int(example.get(TFDS_LABEL_KEY, -1)))
    if not images:
        raise DataError(f"tfds:{name}: split {split!r} is empty")
    low, high = value_range
    batch = tf.image.resize(
        np.stack(images).astype(np.float32), (image_size, image_size), antialias=True
    ).numpy()
    label_feature = info.features[TFDS_LABEL_KEY] if TFDS_LABEL_KEY in info.features else None
    label_names = list(getattr(label_feature, "names", []) or [])
    return {
        "images": (low + batch / 255.0 * (high - low)).astype(np.float32),
        "labels": np.array(labels, dtype=np.int32) if label_feature is not None else None,
        "label_names": label_names,
        "name": name,
    }
