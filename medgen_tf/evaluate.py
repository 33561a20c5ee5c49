"""Scoring an unconditional or conditional generator against real slices (``medgen-tf evaluate``).

Every score is reported beside its **real-vs-real floor**: the same score between real
training and real held-out (test) slices of the cohort at the same sample size. Sample-based
scores are biased at small n (FD-medgen, like FID, is larger for fewer samples), so a number
alone means little; "generated 12.3 vs floor 4.1 at n = 500" does.

For image-to-image translation against paired ground truth (CycleGAN), see
:mod:`medgen_tf.evaluation`.
"""

from __future__ import annotations

import json
import math
import operator
from pathlib import Path

import numpy as np

from medgen_tf import features as feature_module
from medgen_tf import metrics
from medgen_tf.errors import DataError, first_line, is_whole_number
from medgen_tf.files import atomic_path, check_generator, load_keras_file, read_run_config

__all__ = [
    "compare_feature_sets",
    "evaluate_run",
    "evaluate_samples",
    "format_score_table",
    "load_sampler",
]

VALUE_RANGE = (-1.0, 1.0)
#: Neighbourhood size of precision/recall; a score needs at least this many + 2 samples.
NEIGHBOURS = 3


#: The whole-number settings evaluate reads from config.json, with the least each may be
#: (the cohort needs a subject per split). A hand-edited or damaged file gave a traceback from
#: int() or the cohort builder, or (an image_size of 32.7) a silently truncated size.
_WHOLE_NUMBER_SETTINGS = {"image_size": 1, "num_subjects": 3, "seed": 0}


def _check_settings(path: Path, settings: dict) -> None:
    for key, minimum in _WHOLE_NUMBER_SETTINGS.items():
        value = settings.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < minimum
        ):
            raise DataError(
                f"{path}: {key} {value!r} is not a whole number of at least {minimum} "
                "(a damaged or hand-edited config.json?)"
            )
    for key in ("data", "data_spec"):
        value = settings.get(key)
        if value is not None and not isinstance(value, str):
            raise DataError(
                f"{path}: {key} {value!r} is not a data spec such as 'brain:t1' "
                "(a damaged or hand-edited config.json?)"
            )


def _read_config(run_dir: Path) -> dict:
    # Required: without it the data, size and cohort of the run would be guessed, and the
    # guess (brain at 64 px) fails later as a shape mismatch that hides the missing file.
    run = read_run_config(run_dir)
    # The caller's settings win over the engine's where both have one (e.g. "seed").
    settings = {**run["engine"], **run["config"]}
    _check_settings(Path(run_dir) / "config.json", settings)
    # The cohort seed is the caller's "seed" (the recipes load their data with it); the
    # engine's own seed only shuffled the batches of whatever data it was given.
    settings["data_seed"] = int(run["config"].get("seed") or 0)
    return settings


def _num_classes(generator) -> int | None:
    if len(generator.inputs) < 2:
        return None
    for layer in generator.layers:
        if hasattr(layer, "input_dim"):  # the label Embedding
            return int(layer.input_dim)
    raise DataError(f"{generator.name}: conditional generator without a label embedding")


def load_sampler(run_dir):
    """A function ``sample(num_samples, seed, labels) -> images in [-1, 1]`` for a run folder.

    Looks for, in order: ``generator.keras`` (GAN generator, tanh output; a conditional one
    takes ``[noise, labels]``), ``decoder.keras`` (VAE decoder: logits or [0, 1] means, mapped
    to [-1, 1]), ``vae.keras`` / ``model.keras`` (a whole model with ``generate`` or
    ``sample``). The first file found decides (a DataError naming it if it cannot be sampled).
    Returns ``(sample, kind, num_classes)``.

    The same seed draws the same noise as ``medgen-tf sample`` (``keras.random.normal``, as
    ``GAN.generate`` and ``VAE.sample``). For an unconditional GAN or a VAE, the first n images
    of ``sample(N, S)`` are the n images of ``sample --seed S --n n``. ``evaluate`` gives a
    conditional run the same noise with labels drawn from the training mix; given no
    ``labels``, the sampler takes ``sample``'s (the classes in turn). ``seed`` may be a numpy
    integer; ``sample(0, seed)`` is an empty array.
    """
    import medgen_tf.models.gan  # noqa: F401 (registers the serializable classes)
    import medgen_tf.models.vae  # noqa: F401

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run folder not found")
    if (run_dir / "generator.keras").is_file():
        generator = load_keras_file(run_dir / "generator.keras", compile=False)
        check_generator(generator, run_dir / "generator.keras")
        latent_dim = int(generator.inputs[0].shape[-1])
        num_classes = _num_classes(generator)

        def sample(num_samples, seed, labels=None):
            inputs = _prior_noise(num_samples, latent_dim, _as_seed(seed))
            if num_classes:
                inputs = [inputs, _labels_or_classes_in_turn(labels, num_samples, num_classes)]
            return _predict(generator, inputs)

        return sample, "gan", num_classes
    if (run_dir / "decoder.keras").is_file():
        decoder = load_keras_file(run_dir / "decoder.keras", compile=False)
        check_generator(decoder, run_dir / "decoder.keras")
        latent_dim = int(decoder.inputs[0].shape[-1])
        logits = decoder.layers[-1].name == "logits"

        def sample(num_samples, seed, labels=None):
            outputs = _predict(decoder, _prior_noise(num_samples, latent_dim, _as_seed(seed)))
            means = 1.0 / (1.0 + np.exp(-outputs)) if logits else outputs
            return 2.0 * means - 1.0

        return sample, "vae", None
    for name in ("vae.keras", "model.keras"):
        if (run_dir / name).is_file():
            model = load_keras_file(run_dir / name, compile=False)
            if hasattr(model, "sample"):  # VAE: prior samples in [0, 1]

                def sample(num_samples, seed, labels=None, model=model):
                    images = model.sample(int(num_samples), seed=_as_seed(seed))
                    return 2.0 * np.asarray(images) - 1.0

                return sample, "vae", None
            if hasattr(model, "generate"):
                num_classes = getattr(model, "num_classes", None)

                def sample(num_samples, seed, labels=None, model=model, classes=num_classes):
                    if classes:
                        labels = _labels_or_classes_in_turn(labels, num_samples, classes)
                    images = model.generate(int(num_samples), seed=_as_seed(seed), labels=labels)
                    return np.asarray(images)

                return sample, "gan", num_classes
            # Not skipped: the folder's model file is there, it just cannot be sampled.
            raise DataError(
                f"{run_dir / name}: a {type(model).__name__} with neither sample() (a VAE) nor "
                "generate() (a GAN); evaluate samples the model medgen-tf train exports"
            )
    if any((run_dir / name).is_file() for name in ("generator_ab.keras", "generator_ba.keras")):
        raise DataError(
            f"{run_dir}: a CycleGAN run translates images (medgen-tf translate) and draws no "
            "samples to score; notebook 03 scores translations against paired targets"
        )
    raise DataError(
        f"{run_dir}: no generator.keras, decoder.keras, vae.keras or model.keras to sample from"
    )


def _as_seed(seed):
    # keras.random (and so GAN.generate and VAE.sample) takes a Python int or None, not a
    # numpy integer; json.dumps neither. operator.index: a whole number, never a rounded float.
    return None if seed is None else operator.index(seed)


def _prior_noise(num_samples, latent_dim, seed):
    # Drawn as GAN.generate, VAE.sample and `medgen-tf sample` (recipes) draw it, all at once
    # and only then cut into batches: the same seed gives the same images in every command.
    import keras

    noise = keras.random.normal((int(num_samples), latent_dim), seed=seed)
    return keras.ops.convert_to_numpy(noise).astype(np.float32)


def _labels_or_classes_in_turn(labels, num_samples, num_classes):
    # No labels: the classes in turn, as `medgen-tf sample` labels a conditional generator's.
    if labels is None:
        return np.arange(num_samples, dtype=np.int32) % num_classes
    return np.asarray(labels, np.int32)


def _predict(model, inputs, batch_size=256):
    count = len(inputs[0]) if isinstance(inputs, list) else len(inputs)
    outputs = []
    for start in range(0, count, batch_size):
        if isinstance(inputs, list):
            batch = [part[start : start + batch_size] for part in inputs]
        else:
            batch = inputs[start : start + batch_size]
        outputs.append(np.asarray(model(batch, training=False), dtype=np.float32))
    return np.concatenate(outputs, axis=0) if outputs else _no_images(model)


def _no_images(network):
    # Zero samples asked for: no images, of the network's shape. Not computed: TF's Conv2D
    # gives an empty batch its input's channels (VAE.decode catches the same case).
    return np.zeros((0, *network.outputs[0].shape[1:]), np.float32)


def _subset(array, size, generator):
    # Random order, not sorted: the report figure shows the first rows.
    return array[generator.choice(len(array), size, replace=False)]


def evaluate_samples(
    generated, train, test, num_samples=None, seed=0, k=NEIGHBOURS, extractor=None
):
    """All scores of ``generated`` against ``train``, each beside the test-vs-train floor.

    Args:
        generated, train, test: images (n, h, w, 1) in [-1, 1]; ``test`` holds subjects that
            are not in ``train``.
        num_samples: n for the distribution scores; at most ``len(test)`` (the floor needs as
            many test slices). Default: ``min(len(generated), len(test), len(train))``. The first
            n generated images are scored, in their order.
        seed: chooses the subsets.
        k: neighbourhood size of precision/recall.
        extractor: a model from :func:`medgen_tf.features.load_feature_extractor`.

    Returns:
        dict: ``num_samples``, ``fd_medgen``, ``kid`` (mean, std over 50 subsets of n // 2),
        ``precision_recall``, each as
        ``{"generated": ..., "real_floor": ...}``, and ``memorization`` (pixel space, against
        every training slice; its ``test_to_train`` part is the floor).
    """
    generated, train, test = (np.asarray(images, np.float32) for images in (generated, train, test))
    for name, images in (("generated", generated), ("train", train), ("test", test)):
        # Named here: further on, a NaN in the real images was blamed on training ("did
        # training diverge?"), or on the test split by the memorisation check.
        advice = "did training diverge?" if name == "generated" else "check the data"
        try:
            metrics.check_finite(images, f"{name} images", advice)
        except ValueError as error:
            raise DataError(str(error)) from None
    for name, images in (("generated", generated), ("test", test)):
        # Checked here: the memorisation check's own error would blame the test split.
        if images.shape[1:] != train.shape[1:]:
            raise DataError(
                f"{name} images are {images.shape[1:]}, train images {train.shape[1:]}: "
                "scores compare images of one shape"
            )
    size = min(len(generated), len(test), len(train))
    if num_samples is not None:
        size = min(size, int(num_samples))
    if size < k + 2:
        raise DataError(f"evaluation needs at least {k + 2} samples, got {size}")
    rng = np.random.default_rng(seed)
    # The generated images keep their order (they are independent draws already), so the
    # memorisation check's indices are those of ``medgen-tf sample --seed S --n n``; shuffled,
    # they pointed to images no command showed.
    generated = generated[:size]
    train_subset = _subset(train, size, rng)
    test_subset = _subset(test, size, rng)
    extract = lambda images: feature_module.extract_features(  # noqa: E731
        images, value_range=VALUE_RANGE, extractor=extractor
    )
    features_generated = extract(generated)
    features_train = extract(train_subset)
    features_test = extract(test_subset)
    # Subsets of half the samples: subsets of all n would be the same set every time (std 0),
    # as k + 2 rows were for every n up to 11.
    kid_options = dict(num_subsets=50, subset_size=min(1000, max(2, size // 2)), seed=seed)
    kid_generated = metrics.kid(features_train, features_generated, **kid_options)
    kid_floor = metrics.kid(features_train, features_test, **kid_options)
    try:
        memorization = metrics.memorization(generated, train, test_subset)
    except ValueError as error:  # e.g. a test split that repeats the train split
        raise DataError(f"test split: {first_line(error)}") from None
    duplicates = memorization["test_duplicates"]
    if 2 * duplicates > size:
        # Then most of what should be unseen is not: distance_ratio and the threshold would
        # rest on the few test images left, a reference too thin to report.
        raise DataError(
            f"test split: {duplicates} of the {size} test images scored are also in train, so "
            "the memorisation check has no unseen reference; use a test split of other subjects"
        )
    return {
        "num_samples": size,
        "fd_medgen": {
            "generated": metrics.frechet_distance(features_train, features_generated),
            "real_floor": metrics.frechet_distance(features_train, features_test),
        },
        "kid": {
            "generated": {"mean": kid_generated[0], "std": kid_generated[1]},
            "real_floor": {"mean": kid_floor[0], "std": kid_floor[1]},
        },
        "precision_recall": {
            "generated": metrics.precision_recall(features_train, features_generated, k=k),
            "real_floor": metrics.precision_recall(features_train, features_test, k=k),
        },
        "memorization": memorization,
        "_images": {"generated": generated, "train": train_subset, "train_all": train},
    }


def compare_feature_sets(reference, candidates, k=3, seed=0, num_subsets=50):
    """FD-medgen, KID and precision/recall of several feature sets against one reference.

    The scores of :func:`evaluate_samples`, for any number of sets at once (a real held-out set
    for the floor, generators, constructed failure cases), all against the same ``reference``
    features, so one table compares them. Give every set the reference's size: the scores are
    biased at small n and comparable only at equal n.

    Args:
        reference: (n, d) features of real training images.
        candidates: ``{name: (n, d) features}``.
        k: neighbourhood size of precision/recall.
        seed: chooses the KID subsets.
        num_subsets: KID subsets (of ``n // 2`` rows each, at most 1000).

    Returns:
        ``{name: {"n", "fd_medgen", "kid_mean", "kid_std", "precision", "recall"}}``, in the
        order of ``candidates``.

    Raises:
        ValueError: ``"<name>: <problem>"`` for a set that cannot be scored (another feature
            width, fewer than ``k + 1`` rows, NaN values, ...); ``"reference ..."`` for a
            reference with NaN or Inf values or fewer than 2 rows.
    """
    # Checked once here: inside the loop its faults were blamed on the first candidate, under
    # the metric's internal name ("gen: features_a contain NaN or inf").
    reference = metrics._as_features(reference, "reference")
    if not candidates:  # else {}, and format_score_table printed a header alone
        raise ValueError("compare_feature_sets got no candidates: pass {name: (n, d) features}")
    scores = {}
    for name, features in candidates.items():
        try:
            scores[name] = _feature_scores(reference, features, k, seed, num_subsets)
        except ValueError as error:  # the metric's words, and which set they are about
            raise ValueError(f"{name}: {first_line(error)}") from None
    return scores


def _feature_scores(reference, features, k, seed, num_subsets):
    features = np.asarray(features, np.float64)
    size = min(len(reference), len(features))
    kid_mean, kid_std = metrics.kid(
        reference,
        features,
        num_subsets=num_subsets,
        subset_size=min(1000, max(2, size // 2)),
        seed=seed,
    )
    return {
        "n": len(features),
        "fd_medgen": metrics.frechet_distance(reference, features),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        **metrics.precision_recall(reference, features, k=k),
    }


def format_score_table(scores, kid_scale=1000.0):
    """A plain-text table of :func:`compare_feature_sets` scores, one row per set.

    KID is shown times ``kid_scale`` (mean +- std over subsets), a positive number; the header
    names it (``KID x 1e3`` for 1000, ``KID x 500`` for 500).
    """
    if not kid_scale > 0:
        raise ValueError(f"kid_scale must be positive, got {kid_scale}")
    if not scores:  # else a header alone, as if every set had been scored
        raise ValueError("format_score_table got no scores: pass compare_feature_sets(...)")
    exponent = round(math.log10(kid_scale))
    if math.isclose(kid_scale, 10.0**exponent):
        kid_header = f"KID x 1e{exponent}" if exponent else "KID"
    else:
        kid_header = f"KID x {kid_scale:g}"
    width = max([len("set")] + [len(name) for name in scores])
    lines = [
        f"{'set':<{width}}  {'n':>4}  {'FD-medgen':>9}  {kid_header:>15}  "
        f"{'precision':>9}  {'recall':>6}"
    ]
    for name, row in scores.items():
        kid_text = f"{row['kid_mean'] * kid_scale:.2f} +- {row['kid_std'] * kid_scale:.2f}"
        lines.append(
            f"{name:<{width}}  {row['n']:>4}  {row['fd_medgen']:>9.3f}  {kid_text:>15}  "
            f"{row['precision']:>9.3f}  {row['recall']:>6.3f}"
        )
    return "\n".join(lines)


def _report_figure(images, memorization, path, title):
    from medgen_tf import viz

    pairs = memorization["closest_pairs"][:8]
    rows = {
        "real (train)": images["train"][:8],
        "generated": images["generated"][:8],
        "closest generated": images["generated"][[p[0] for p in pairs]],
        "its nearest train": images["train_all"][[p[1] for p in pairs]],
    }
    figure = viz.compare_rows(rows, path=path, title=title, value_range=VALUE_RANGE)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return Path(path)


def evaluate_run(
    run_dir,
    num_samples: int = 500,
    seed: int = 0,
    data: str | None = None,
    num_subjects: int | None = None,
):
    """Sample a run's generator and write ``RUN_DIR/metrics.json`` and ``RUN_DIR/evaluation.png``.

    The real slices come from the run's ``config.json`` (``data`` spec, ``image_size``,
    ``num_subjects``, and its training ``seed``, which chose the simulated cohort) unless given;
    generated and real images are compared at the run's ``image_size`` (features are computed
    at 64x64). A conditional generator gets labels drawn from the training labels, so its class
    mix matches the data. ``seed`` chooses the samples and subsets, not the cohort. A
    ``nifti:`` spec is refused with a ``DataError``: it has no held-out subjects for the floor;
    so are a run folder without ``config.json``, a split (or ``num_samples``) of fewer than 5
    images, and a test split with no image unseen in train (or more than half of those scored
    also in train).

    Returns:
        the path of ``metrics.json``.
    """
    from medgen_tf.data import load_spec
    from medgen_tf.data.spec import parse_spec

    run_dir = Path(run_dir)
    seed = _as_seed(seed)  # a numpy integer too: keras.random and config.json take only ints
    minimum = NEIGHBOURS + 2
    if not is_whole_number(num_samples):
        # int() would score 20 samples for 20.9.
        raise DataError(f"num_samples={num_samples} (--n): give a whole number of samples")
    if num_samples < minimum:
        raise DataError(
            f"num_samples={num_samples} (--n): evaluation needs at least {minimum} samples"
        )
    sample, kind, num_classes = load_sampler(run_dir)
    config = _read_config(run_dir)
    data = data or config.get("data") or config.get("data_spec") or "brain"
    data_kind = parse_spec(data)[0]
    if data_kind == "nifti":
        # A nifti: spec has no held-out subjects (every split is all of its slices), so the
        # "floor" would be train against train and the memorisation threshold would collapse to
        # zero: numbers that look like an evaluation but are not one. Refusing says so; a
        # warning beside them would be skipped, and the numbers copied into a report anyway.
        raise DataError(
            f"data spec {data!r}: nifti: data have no held-out split, so evaluate has no "
            "real-vs-real floor (it would be train vs train); evaluate needs brain, medmnist "
            "or tfds data"
        )
    image_size = int(config.get("image_size") or 64)
    trained_subjects = config.get("num_subjects")
    if num_subjects and trained_subjects and int(num_subjects) != int(trained_subjects):
        # The held-out subjects are the last ids of a cohort (data.brain.split_subjects): in a
        # cohort of another size the "test" subjects would include ones the run trained on.
        raise DataError(
            f"num_subjects={num_subjects}: the run was trained on a {trained_subjects}-subject "
            "cohort; its held-out subjects exist only in a cohort of that size"
        )
    num_subjects = int(num_subjects or trained_subjects or 32)
    # The training cohort: a brain run trained with --seed 5 simulated subjects from seed 5,
    # so its real slices (and the held-out subjects of the floor) come from that cohort.
    data_seed = int(config.get("data_seed") or 0)
    options = dict(
        image_size=image_size,
        value_range=VALUE_RANGE,
        num_subjects=num_subjects,
        seed=data_seed,
    )
    train = load_spec(data, split="train", **options)
    test = load_spec(data, split="test", **options)
    for split, images in (("train", train["images"]), ("test", test["images"])):
        if len(images) < minimum:
            raise DataError(
                f"data {data!r}: the {split} split has {len(images)} images; evaluation needs "
                f"at least {minimum}"
            )
    size = min(int(num_samples), len(test["images"]))
    labels = None
    if num_classes:
        # Labels beyond the generator's embedding fail inside it ("indices[1] = 2 is not in
        # [0, 2)", a traceback): data with other classes than the run's are refused here.
        largest = None if train["labels"] is None else int(np.max(train["labels"]))
        if largest is None or largest >= num_classes:
            found = "no labels" if largest is None else f"labels up to {largest}"
            raise DataError(
                f"{run_dir}: the generator knows {num_classes} classes, but data {data!r} has "
                f"{found}; evaluate it on the data it was trained on"
            )
        labels = np.random.default_rng(seed).choice(train["labels"], size)
    generated = sample(size, seed, labels)
    if generated.shape[1:] != train["images"].shape[1:]:
        raise DataError(
            f"{run_dir}: generator makes {generated.shape[1:]} images but {data} at image_size "
            f"{image_size} is {train['images'].shape[1:]}"
        )
    try:
        results = evaluate_samples(generated, train["images"], test["images"], size, seed=seed)
    except DataError as error:
        # The split's own problems name the data, the samples' the run; others (the
        # extractor's weights) stand alone.
        if str(error).startswith("generated images"):
            raise DataError(f"{run_dir}: {error}") from None
        if not str(error).startswith("test split:"):
            raise
        raise DataError(f"data {data!r}: {error}") from None
    images = results.pop("_images")
    # The cohort's size and seed say which simulated subjects were scored; other data ignore
    # them, and a report that gave them claimed a 32-subject cohort for a MedMNIST run.
    is_cohort = data_kind == "brain"
    report = {
        "run": run_dir.name,
        "model": kind,
        "data": data,
        "image_size": image_size,
        "num_subjects": num_subjects if is_cohort else None,
        "data_seed": data_seed if is_cohort else None,
        "seed": seed,
        "feature_extractor": {
            "name": "FD-medgen (not FID)",
            "weights_sha256": feature_module.WEIGHTS_SHA256,
        },
        "real_floor": (
            "train vs held-out test subjects, same n"
            if is_cohort
            else "train vs test split, same n"
        ),
        **results,
    }
    _check_finite(report)
    path = run_dir / "metrics.json"
    title = (
        f"{run_dir.name}: FD-medgen {results['fd_medgen']['generated']:.2f} "
        f"(real floor {results['fd_medgen']['real_floor']:.2f}), n = {results['num_samples']}"
    )
    # Both written beside their targets, then each replaced in one rename, the figure first:
    # a crash leaves the earlier evaluation's pair whole, never new scores beside an old
    # figure.
    with atomic_path(path) as metrics_file, atomic_path(run_dir / "evaluation.png") as figure:
        metrics_file.write_text(json.dumps(report, indent=2))
        _report_figure(images, results["memorization"], figure, title)
    return path


def _check_finite(value, where="metrics"):
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_finite(item, f"{where}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"{where} is {value}: the generator's samples are degenerate")
