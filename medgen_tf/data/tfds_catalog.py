"""The TFDS catalog path (``tfds:NAME``): a catalog image dataset as arrays, offline-aware.

TFDS downloads a dataset on first use. Offline, its downloader retries each URL ten times
with growing waits, so a missing network showed up only after minutes: here a dataset that
is neither prepared nor downloaded, whose sources cannot be reached, is a one-line DataError
at once. Needs the ``tfds`` extra (``pip install 'medgen-tf[tfds]'``).
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import threading
import time
import urllib.parse
import urllib.request

import numpy as np

from medgen_tf.data.medmnist import constant_images
from medgen_tf.errors import DataError, check_value_range, first_line

#: Medical image datasets in the TFDS catalog (``tfds.list_builders()``, tensorflow-datasets
#: 4.9); any other catalog name is passed to ``tfds.load`` as well.
TFDS_MEDICAL = ("pneumonia_mnist", "patch_camelyon", "malaria", "diabetic_retinopathy_detection")
TFDS_IMAGE_KEY = "image"
TFDS_LABEL_KEY = "label"

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


def _unreachable_problem(
    hosts: dict[str, int], timeout_seconds: float, clock=time.monotonic
) -> str | None:
    """None as soon as one host accepts a connection, else why none did, within one deadline.

    ``socket.create_connection`` gives every address of a host the full timeout and name
    resolution has none at all, so one host with four silently dropped addresses took four
    timeouts. Each host is tried in a daemon thread and the answers are awaited only until
    ``timeout_seconds`` after the start; an attempt still running then is left behind.
    ``clock`` returns seconds (tests pass a fake one).
    """
    answers: queue.Queue = queue.Queue()

    def attempt(host, port):
        try:
            socket.create_connection((host, port), timeout=timeout_seconds).close()
            answers.put((host, None))
        except OSError as error:
            answers.put((host, error.strerror or first_line(error)))
        except Exception:  # the probe itself failed: say nothing rather than refuse wrongly
            answers.put((host, None))

    deadline = clock() + timeout_seconds
    for host, port in hosts.items():
        threading.Thread(
            target=attempt, args=(host, port), name=f"tfds-probe-{host}", daemon=True
        ).start()
    problems = {}
    while len(problems) < len(hosts):
        try:
            host, problem = answers.get(timeout=max(deadline - clock(), 0.0))
        except queue.Empty:
            break
        if problem is None:
            return None
        problems[host] = problem
    silent = f"no answer within {timeout_seconds:g} s"
    return "; ".join(f"{host}: {problems.get(host, silent)}" for host in hosts)


def _check_sources_reachable(name, url_infos, data_dir, timeout_seconds=10.0):
    """A one-line DataError if no host the dataset downloads from can be reached.

    Offline, TFDS's downloader retries every URL ten times with growing waits, so a missing
    network showed up only after minutes. The whole check takes at most ``timeout_seconds``,
    name lookup included: 10 s leaves a slow resolver room (glibc waits 5 s for a nameserver
    that does not answer before it asks the next).
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
            f"({problem}); prepare it on a machine with network and copy that machine's TFDS "
            f"folder to {data_dir} (its downloads/ folder is enough), or point TFDS_DATA_DIR "
            f"at a prepared copy"
        )


def _source_already_local(builder) -> bool:
    """Whether TFDS holds the dataset's source files already, so it can prepare it offline.

    A download finished before preparation was interrupted, or a ``downloads/`` folder copied
    from a connected machine, is used without the network. TFDS looks in
    ``downloads/<dataset>/`` and, as older versions stored them, ``downloads/``, for a file
    named after the URL and its checksum (or the URL alone), complete once its ``.INFO`` file
    is beside it; a file put in ``downloads/manual/`` under the source's name is used instead of
    a download. Every source must be there, but URLs that differ only in their query are one
    source (pneumonia_mnist lists each file with and without ``?download=1``). A dataset that
    needs manually downloaded files is left to TFDS's own instructions.
    """
    from tensorflow_datasets.core.download import resource

    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        return True
    downloads = builder.data_dir_root / "downloads"

    def cached(url, url_info):
        file_names = {resource.get_dl_fname(url, url_info.checksum), resource.get_dl_fname(url)}
        for folder in (downloads / builder.name, downloads):
            if any(resource.is_locally_cached(folder / file_name) for file_name in file_names):
                return True
        return bool(url_info.filename) and (downloads / "manual" / url_info.filename).exists()

    sources = {}
    for url, url_info in (builder.url_infos or {}).items():
        parts = urllib.parse.urlsplit(url)
        sources.setdefault((parts.netloc, parts.path), []).append((url, url_info))
    return bool(sources) and all(
        any(cached(url, url_info) for url, url_info in alternates)
        for alternates in sources.values()
    )


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


def square_resized(images: np.ndarray, image_size: int) -> np.ndarray:
    """(n, h, w, c) images padded with black to squares, then resized (antialiased) to
    (n, image_size, image_size, c) float32, in their own value scale: a non-square image keeps
    its aspect, as NIfTI slices do (:func:`medgen_tf.data.nifti.pad_to_square`)."""
    import tensorflow as tf

    _, height, width, _ = images.shape
    side = max(height, width)
    pad_h, pad_w = side - height, side - width
    square = np.pad(
        images.astype(np.float32),
        ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)),
    )
    if side == image_size:
        return square
    return tf.image.resize(square, (image_size, image_size), antialias=True).numpy()


def load_tfds(
    name: str,
    split: str = "train",
    image_size: int = 64,
    value_range: tuple[float, float] = (-1.0, 1.0),
    data_dir=None,
    max_examples: int | None = None,
):
    """Images and labels of a TFDS catalog image dataset (needs the ``tfds`` extra).

    The dataset must have an ``image`` feature and may have a ``label``: class indices (with
    the ``ClassLabel`` names), or text, whose classes are then the names found in ``split``
    in sorted order (a split missing one numbers the others differently). uint8 images are
    divided by 255 and uint16 ones by 65535, then mapped linearly onto ``value_range``: 12-bit
    scans stored in uint16 (0..4095) fill its lowest sixteenth. A split whose images are each
    one value (grey level or colour) everywhere is refused, and a few such images among others
    load with a warning, as in MedMNIST files.

    A dataset not yet prepared in ``data_dir`` (default ``TFDS_DATA_DIR``, else
    ``~/tensorflow_datasets``) is prepared from the source files in its ``downloads/`` folder,
    downloading those missing; when none is there and none of its sources can be reached, a
    one-line DataError says so at once.
    """
    # Checked before the split is read: (1, -1) loaded inverted images, (0, 0) blank ones,
    # (0, inf) NaN and inf ones (0 * inf), and image_size 0 was TensorFlow's "output dimensions
    # must be positive" traceback.
    try:
        low, high = check_value_range((), value_range)
    except ValueError as error:
        raise ValueError(f"tfds:{name}: {error}") from None
    if image_size < 1:
        raise ValueError(f"tfds:{name}: image_size must be at least 1, got {image_size}")
    # take(-1) is the whole split: max_examples=-1 loaded every example.
    if max_examples is not None and max_examples < 1:
        raise ValueError(
            f"tfds:{name}: max_examples must be at least 1 (or None), got {max_examples}"
        )
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise DataError(
            f"tfds:{name}: tensorflow-datasets is not installed; pip install 'medgen-tf[tfds]'"
        ) from error

    # TFDS logs a warning for a dataset folder not yet prepared; the one-line error (or the
    # download) that follows says it better.
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    absl_logger.setLevel(logging.ERROR)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        needs_sources = not builder.is_prepared() and not _source_already_local(builder)
    except tfds.core.DatasetNotFoundError as error:
        raise DataError(f"tfds:{name}: not a TFDS dataset ({first_line(error)})") from error
    except Exception as error:
        raise DataError(f"tfds:{name}: {_builder_problem(error)}") from error
    finally:
        absl_logger.setLevel(level)
    # Checked on the builder's own description, before tfds.load downloads and prepares the
    # whole dataset (a text corpus of gigabytes) only to be refused.
    if TFDS_IMAGE_KEY not in builder.info.features:
        raise DataError(f"tfds:{name}: no 'image' feature; not an image dataset")
    if needs_sources:
        # The TFDS folder (its root), where a copied downloads/ folder is looked for.
        _check_sources_reachable(name, builder.url_infos, builder.data_dir_root)
    try:
        dataset, info = tfds.load(name, split=split, with_info=True, data_dir=data_dir)
    except Exception as error:
        raise DataError(
            f"tfds:{name}: cannot load split {split!r} ({first_line(error)})"
        ) from error
    if max_examples is not None:
        dataset = dataset.take(max_examples)
    images, labels = [], []
    for example in dataset.as_numpy_iterator():
        image = example[TFDS_IMAGE_KEY]
        images.append(image if image.ndim == 3 else image[..., None])
        labels.append(example.get(TFDS_LABEL_KEY, -1))
    if not images:
        raise DataError(f"tfds:{name}: split {split!r} is empty")
    channels = sorted({image.shape[-1] for image in images})
    if len(channels) != 1:
        raise DataError(f"tfds:{name}: split {split!r} mixes images of {channels} channels")
    # RGBA loaded, though image grids refuse it, as a MedMNIST file of it is refused.
    if channels[0] not in (1, 3):
        raise DataError(
            f"tfds:{name}: split {split!r} has images of {channels[0]} channels, expected 1 "
            "(grey) or 3 (RGB)"
        )
    # uint16 (12-bit CT/MR) divided by 255 like uint8 went far outside value_range (65535 to 513).
    dtype = images[0].dtype
    if dtype.kind != "u":
        raise DataError(f"tfds:{name}: images have dtype {dtype}, expected uint8 or uint16")
    full_scale = float(np.iinfo(dtype).max)
    # Every image one value (grey level or colour): nothing to learn from, as a MedMNIST
    # file's (medmnist.check_not_constant) or a NIfTI volume's. A few blank frames among
    # real images load, with a warning.
    constant, shown = constant_images(images)
    if constant:
        if len(constant) == len(images):
            raise DataError(
                f"tfds:{name}: split {split!r}: all {len(images)} images are constant (image 0: "
                f"every pixel is {shown}); nothing to learn from them"
            )
        logging.getLogger(__name__).warning(
            "tfds:%s: split %r image %d is constant (every pixel is %s), as are %d of %d "
            "images; they are kept",
            name,
            split,
            constant[0],
            shown,
            len(constant),
            len(images),
        )
    # Many datasets hold images of many sizes (malaria, cats_vs_dogs): stacked as they are,
    # they were numpy's "all input arrays must have the same shape". Each size is resized
    # as one batch.
    by_shape = {}
    for index, image in enumerate(images):
        by_shape.setdefault(image.shape, []).append(index)
    batch = np.empty((len(images), image_size, image_size, channels[0]), np.float32)
    for indices in by_shape.values():
        batch[indices] = square_resized(np.stack([images[i] for i in indices]), image_size)
    label_feature = info.features[TFDS_LABEL_KEY] if TFDS_LABEL_KEY in info.features else None
    label_names = list(getattr(label_feature, "names", []) or [])
    if label_feature is None:
        labels = None
    elif isinstance(labels[0], bytes):
        # Text labels (int(b"tumour") was a ValueError traceback): the classes are the names
        # found in this split, in sorted order.
        texts = sorted(set(labels))
        label_names = [text.decode("utf-8", "replace") for text in texts]
        index = {text: number for number, text in enumerate(texts)}
        labels = np.array([index[text] for text in labels], dtype=np.int32)
    else:
        # int() of a vector label was a TypeError traceback, and of 0.7 silently class 0.
        shape = next((np.shape(label) for label in labels if np.shape(label) != ()), None)
        if shape is not None:
            raise DataError(
                f"tfds:{name}: split {split!r} has labels of shape {shape}, expected one class "
                "index per image"
            )
        values = np.array(labels)
        if values.dtype.kind == "f" and not np.all(values == np.floor(values)):
            raise DataError(
                f"tfds:{name}: split {split!r} has fractional labels, expected class indices"
            )
        # TFDS writes -1 for an unlabelled example (diabetic_retinopathy_detection's test
        # split); a cast made inf into -2**31 and wrapped 2**32 to 0.
        if not np.all(np.isfinite(values)):
            raise DataError(f"tfds:{name}: split {split!r} has NaN or Inf labels")
        # Named apart from low and high, which hold value_range for the images below.
        lowest, highest = values.min(), values.max()
        if lowest < 0 or highest >= 2**31:
            raise DataError(
                f"tfds:{name}: split {split!r} has labels in [{lowest:g}, {highest:g}], expected "
                "class indices 0..2**31-1 (TFDS writes -1 for an unlabelled example)"
            )
        labels = values.astype(np.int32)
    return {
        "images": (low + batch / full_scale * (high - low)).astype(np.float32),
        "labels": labels,
        "label_names": label_names,
        "name": name,
    }
