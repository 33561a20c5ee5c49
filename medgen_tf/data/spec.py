"""One data-spec grammar for the CLI and the notebooks.

=============================  ==============================================================
spec                           meaning
=============================  ==============================================================
``brain``                      simulated cohort, T1w + T2w + PD slices pooled; label = contrast
                               (0 t1, 1 t2, 2 pd)
``brain:t1`` (``t2``, ``pd``)  one contrast; label = axial region tercile (0 inferior,
                               1 middle, 2 superior)
``nifti:PATH``                 a ``.nii``/``.nii.gz`` file or a folder of them; label = index
                               of the source file (sorted names); the split is ignored
``nifti:PATH#N``               volume N (0-based) of 4-D files (fMRI, DWI, multi-echo), e.g.
                               ``nifti:bold.nii.gz#0``; 4-D files need it
``medmnist:NAME[@SIZE]``       an official MedMNIST dataset (downloaded, md5-checked), e.g.
                               ``medmnist:pneumoniamnist@64``; NAME may instead be a local
                               ``.npz`` path in the MedMNIST layout (``medmnist:data/x.npz``)
``tfds:NAME``                  a TFDS catalog image dataset, e.g. ``tfds:pneumonia_mnist``
                               (needs the ``tfds`` extra)
=============================  ==============================================================

A ``~`` at the start of a PATH is the home folder (``nifti:~/scans``): a shell expands it only
at the start of a word, so after ``nifti:`` it reaches the spec as written.

Every loader returns ``dict(images=(n, s, s, c) float32 in value_range, labels=(n,) int32 or
None, label_names=list[str], name=str)``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from medgen_tf.data import brain, medmnist, nifti, tfds_catalog
from medgen_tf.errors import DataError

CONTRAST_NAMES = {"t1": "T1w", "t2": "T2w", "pd": "PD"}
REGION_NAMES = ["inferior", "middle", "superior"]


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"kind:argument"``; DataError for an unknown kind or a missing argument."""
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(
            f"data spec {spec!r}: empty; use brain[:t1|t2|pd], nifti:PATH, "
            "medmnist:NAME[@SIZE] or tfds:NAME"
        )
    kind, _, argument = spec.strip().partition(":")
    kind = kind.lower()
    if kind not in ("brain", "nifti", "medmnist", "tfds") and _looks_like_path(spec):
        # A bare path is a common slip; say whether the file is there and which prefix to use.
        path = Path(spec.strip()).expanduser()
        prefix = "medmnist" if path.name.lower().endswith(".npz") else "nifti"
        if not path.exists():
            raise DataError(f"{path}: does not exist (data spec {spec!r})")
        raise DataError(f"data spec {spec!r}: a path needs its kind, e.g. {prefix}:{path}")
    if kind not in ("brain", "nifti", "medmnist", "tfds"):
        raise DataError(
            f"data spec {spec!r}: unknown kind {kind!r}; use brain[:t1|t2|pd], "
            "nifti:PATH, medmnist:NAME[@SIZE] or tfds:NAME"
        )
    if kind != "brain" and not argument:
        raise DataError(f"data spec {spec!r}: {kind} needs an argument after the colon")
    return kind, (argument or None)


def _looks_like_path(spec: str) -> bool:
    text = spec.strip()
    if re.match(r"^[A-Za-z]\w+:", text):
        return False  # "nifit:x.nii" is a mistyped kind; a one-letter "C:" is a Windows path
    return "/" in text or "\\" in text or text.lower().endswith((".nii", ".nii.gz", ".npz"))


def split_volume_index(spec: str, argument: str) -> tuple[Path, int | None]:
    """``PATH#N`` -> (PATH, N); plain ``PATH`` -> (PATH, None), with ``~`` expanded. A path that
    exists as written (a ``#`` in a real file name) is taken literally."""
    if "#" not in argument or Path(argument).expanduser().exists():
        return Path(argument).expanduser(), None
    path_text, _, index_text = argument.rpartition("#")
    if not index_text.isdigit():
        raise DataError(
            f"data spec {spec!r}: volume index after '#' must be a whole number >= 0, "
            f"e.g. nifti:{path_text}#0"
        )
    return Path(path_text).expanduser(), int(index_text)


def _must_exist(path: Path, spec: str) -> Path:
    # Checked here so the message says the path is missing, not what a loader failed to parse.
    if not path.exists():
        raise DataError(f"{path}: does not exist (data spec {spec!r})")
    return path


def load_spec(
    spec: str,
    image_size: int = 64,
    split: str = "train",
    value_range: tuple[float, float] = (-1.0, 1.0),
    seed: int = 0,
    num_subjects: int = 32,
) -> dict:
    """Load the images named by a data spec (see the module docstring for the grammar).

    ``seed`` and ``num_subjects`` choose the simulated cohort for ``brain`` specs; other kinds
    ignore them.

    Example:
        >>> data = load_spec("brain:t2", image_size=32)  # doctest: +SKIP
        >>> data["images"].shape, data["label_names"]  # doctest: +SKIP
        ((1152, 32, 32, 1), ['inferior', 'middle', 'superior'])
    """
    kind, argument = parse_spec(spec)
    if kind == "brain":
        return _load_brain(spec, argument, image_size, split, value_range, seed, num_subjects)
    if kind == "nifti":
        path, volume_index = split_volume_index(spec, argument)
        _must_exist(path, spec)
        images, sources = nifti.load_nifti_slices(
            path,
            image_size=image_size,
            value_range=value_range,
            volume_index=volume_index,
            return_sources=True,
        )
        names = [file.name for file in nifti.nifti_files(path)]
        return {"images": images, "labels": sources, "label_names": names, "name": spec}
    if kind == "medmnist":
        # A .npz path is taken whole (its folders may hold an "@"); a name's size follows
        # its last "@".
        if argument.lower().endswith(".npz"):
            name, size_text = argument, ""
        else:
            name, at, size_text = argument.rpartition("@")
            if not at:  # rpartition puts the whole text last when there is no "@"
                name, size_text = size_text, ""
            elif not size_text:
                raise DataError(f"data spec {spec!r}: no size after '@'")
        if name.lower().endswith(".npz"):
            name = _must_exist(Path(name).expanduser(), spec)
            if size_text:
                raise DataError(
                    f"data spec {spec!r}: @{size_text} picks the size of a named MedMNIST "
                    "dataset; a .npz file's images have their own size (use image_size)"
                )
        size = 28
        if size_text:
            if not size_text.isdigit() or int(size_text) not in medmnist.SIZES:
                raise DataError(f"data spec {spec!r}: size must be one of {medmnist.SIZES}")
            size = int(size_text)
        data = medmnist.load_medmnist(
            name, split=split, size=size, image_size=image_size, value_range=value_range
        )
        return {**data, "name": spec}
    data = tfds_catalog.load_tfds(
        argument, split=split, image_size=image_size, value_range=value_range
    )
    return {**data, "name": spec}


def _check_brain_size(spec, image_size):
    # Checked here, where the spec is known: the cohort builder's own check can only say
    # "image_size", and reaches a CLI user as a traceback.
    if image_size < brain.MIN_IMAGE_SIZE:
        raise DataError(
            f"data spec {spec!r}: image size {image_size} is too small; the brain cohort "
            f"needs at least {brain.MIN_IMAGE_SIZE} pixels"
        )


def _load_brain(spec, contrast, image_size, split, value_range, seed, num_subjects):
    _check_brain_size(spec, image_size)
    if contrast is None:
        pairs = brain.brain_slices(
            brain.CONTRASTS,
            split=split,
            image_size=image_size,
            seed=seed,
            value_range=value_range,
            num_subjects=num_subjects,
            return_labels=True,
        )
        images = np.concatenate([pairs[c] for c in brain.CONTRASTS], axis=0)
        labels = np.repeat(
            np.arange(len(brain.CONTRASTS), dtype=np.int32),
            [len(pairs[c]) for c in brain.CONTRASTS],
        )
        names = [CONTRAST_NAMES[c] for c in brain.CONTRASTS]
        subjects = np.tile(pairs["subject"], len(brain.CONTRASTS))
        return {
            "images": images,
            "labels": labels,
            "label_names": names,
            "name": spec,
            "subject": subjects,
        }
    contrast = contrast.lower()
    if contrast not in brain.CONTRASTS:
        raise DataError(f"data spec {spec!r}: unknown contrast {contrast!r}; use t1, t2 or pd")
    data = brain.brain_slices(
        (contrast,),
        split=split,
        image_size=image_size,
        seed=seed,
        value_range=value_range,
        num_subjects=num_subjects,
        return_labels=True,
    )
    # Terciles of the axial position: a 3-class label for conditional models.
    labels = np.minimum((data["position"] * 3).astype(np.int32), 2)
    return {
        "images": data[contrast],
        "labels": labels,
        "label_names": list(REGION_NAMES),
        "name": spec,
        "subject": data["subject"],
    }


def load_domains(
    spec_a: str,
    spec_b: str,
    image_size: int = 64,
    split: str = "train",
    value_range=(-1.0, 1.0),
    seed: int = 0,
    paired: bool = False,
    num_subjects: int = 32,
):
    """Images of two domains (e.g. for CycleGAN); DataError if their image shapes differ.

    With ``paired=True`` the domains must also hold the same number of images (row i of A
    corresponds to row i of B, as in ``brain:t1`` / ``brain:t2``). Two ``nifti:`` specs are
    then cut on the same slices (:func:`~medgen_tf.data.nifti.load_paired_nifti_slices`: same
    voxel grid, files paired by name). With ``paired=False`` two ``brain`` specs come from
    disjoint halves of the split's subjects (A the first half, B the second; each domain's
    ``"subject"`` says which), so no subject is in both; other specs load as they are, so keep
    their sources apart yourself (two folders of different patients).
    """
    if paired and parse_spec(spec_a)[0] == parse_spec(spec_b)[0] == "nifti":
        return _load_paired_nifti(spec_a, spec_b, image_size, value_range)
    domain_a = load_spec(spec_a, image_size, split, value_range, seed, num_subjects)
    domain_b = load_spec(spec_b, image_size, split, value_range, seed, num_subjects)
    if not paired and parse_spec(spec_a)[0] == parse_spec(spec_b)[0] == "brain":
        # Row i of two brain contrasts is one slice of one subject: "unpaired" domains were
        # perfectly paired. As translation.unpaired_domains splits them for CycleGAN.
        subjects = np.unique(domain_a["subject"])
        if len(subjects) < 2:
            raise DataError(
                f"domains {spec_a!r} and {spec_b!r}: split {split!r} has fewer than 2 subjects "
                "to share out"
            )
        halves = subjects[: len(subjects) // 2], subjects[len(subjects) // 2 :]
        domain_a, domain_b = (
            _rows(domain, np.isin(domain["subject"], half))
            for domain, half in zip((domain_a, domain_b), halves, strict=True)
        )
    shape_a, shape_b = domain_a["images"].shape, domain_b["images"].shape
    if shape_a[1:] != shape_b[1:]:
        raise DataError(
            f"domains {spec_a!r} and {spec_b!r}: image shapes differ "
            f"({shape_a[1:]} vs {shape_b[1:]}); use the same channels and size"
        )
    if paired and shape_a[0] != shape_b[0]:
        raise DataError(
            f"domains {spec_a!r} and {spec_b!r}: {shape_a[0]} vs {shape_b[0]} "
            "images; paired domains need the same count"
        )
    return domain_a, domain_b


def _rows(domain, keep):
    # Every per-image array of a load_spec result, cut to the rows kept.
    return {
        key: value[keep] if isinstance(value, np.ndarray) and len(value) == len(keep) else value
        for key, value in domain.items()
    }


def _load_paired_nifti(spec_a, spec_b, image_size, value_range):
    (path_a, index_a), (path_b, index_b) = (
        split_volume_index(spec, parse_spec(spec)[1]) for spec in (spec_a, spec_b)
    )
    _must_exist(path_a, spec_a)
    _must_exist(path_b, spec_b)
    images_a, images_b, sources = nifti.load_paired_nifti_slices(
        path_a,
        path_b,
        image_size=image_size,
        value_range=value_range,
        volume_indices=(index_a, index_b),
    )
    pairs = nifti.paired_nifti_files(path_a, path_b)
    domains = []
    for side, (spec, images) in enumerate(((spec_a, images_a), (spec_b, images_b))):
        names = [pair[side].name for pair in pairs]
        domains.append({"images": images, "labels": sources, "label_names": names, "name": spec})
    return tuple(domains)


def preview_grid(
    spec: str, out_path, image_size: int = 64, num_columns: int = 6, num_subjects: int = 32
) -> Path:
    """Write a labelled grid of a dataset as a PNG and return its path.

    For ``brain``: one row per contrast (T1w real template, T2w and PD simulated), one column
    per subject, all at 60 % of the subject's brain height (just above the ventricles), so the
    shared anatomy is visible. For other specs: one row per label (up to 6), else a single row.
    """
    import matplotlib.pyplot as plt

    from medgen_tf.viz import compare_rows

    kind, argument = parse_spec(spec)
    if kind == "brain" and argument is None:
        _check_brain_size(spec, image_size)
        data = brain.brain_slices(
            brain.CONTRASTS,
            split="train",
            image_size=image_size,
            return_labels=True,
            num_subjects=num_subjects,
        )
        # One slice per subject, just above the ventricles, where all three tissues show.
        distance = np.abs(data["position"] - 0.6)
        picks = np.array(
            [
                np.flatnonzero(data["subject"] == subject)[
                    np.argmin(distance[data["subject"] == subject])
                ]
                for subject in np.unique(data["subject"])[:num_columns]
            ]
        )
        rows = {
            "T1w (real template)": data["t1"][picks],
            "T2w (sim.)": data["t2"][picks],
            "PD (sim.)": data["pd"][picks],
        }
        title = f"brain cohort: subjects {', '.join(str(s) for s in data['subject'][picks])}"
    else:
        data = load_spec(spec, image_size=image_size)
        images, labels = data["images"], data["labels"]
        rng = np.random.default_rng(0)
        rows = {}
        if labels is not None and len(np.unique(labels)) > 1:
            for label in np.unique(labels)[:6]:
                members = np.flatnonzero(labels == label)
                chosen = np.sort(rng.choice(members, min(num_columns, len(members)), replace=False))
                names = data["label_names"]
                rows[names[label] if 0 <= label < len(names) else str(label)] = images[chosen]
        else:
            chosen = np.sort(rng.choice(len(images), min(num_columns, len(images)), replace=False))
            rows["images"] = images[chosen]
        title = f"{spec}: {len(images)} images, {image_size}x{image_size}"
    figure = compare_rows(rows, path=out_path, title=title, value_range=(-1.0, 1.0))
    plt.close(figure)
    return Path(out_path)
