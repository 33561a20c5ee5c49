"""Does synthetic data help a classifier trained on scarce, imbalanced data? A measurement.

The downstream task is **simulated lesion detection**: axial T2-weighted slices of the
embedded cohort, a few of which carry a small hyperintense disc drawn inside the brain
(:func:`medgen_tf.evaluation.draw_lesion`; random position, radius and intensity, fixed by a
seed). The lesions are synthetic: this is a controlled benchmark, not a diagnostic model.

Five training conditions for the same small CNN, each over several seeds:

- ``"real only"``: the scarce, imbalanced training slices as they are;
- ``"real + cGAN"``: plus lesion samples of a conditional GAN (Mirza & Osindero 2014) trained
  on the same training slices only, enough to balance the two classes;
- ``"classic augmentation"``: flips, small rotations and shifts, intensity jitter (Keras
  preprocessing layers in the ``tf.data`` pipeline, training only);
- ``"both"``;
- ``"real, positives repeated"``: a control that only rebalances (each real positive repeated
  as often as the cGAN condition adds samples), so a gain of ``"real + cGAN"`` can be split into
  "more positives per batch" and "new information from the generator".

Every condition trains for the same number of gradient steps (those of the real training set
over ``num_epochs`` epochs), so a condition that adds slices does not also add updates.
Balanced accuracy and AUROC are measured on held-out subjects (splits are by subject, never by
slice, and the GAN never sees a held-out subject). Taught in
``notebooks/05_synthetic_data_augmentation.ipynb``.

Example:
    >>> splits = lesion_detection_splits(image_size=32, train_prevalence=0.08)  # doctest: +SKIP
    >>> rows = run_experiment(splits["train"], splits["test"], seeds=(0, 1, 2))  # doctest: +SKIP
    >>> print(format_results(rows))  # doctest: +SKIP
    >>> print(format_paired_differences(rows, baseline="real only"))  # doctest: +SKIP
"""

from __future__ import annotations

import math
import tempfile

import keras
import numpy as np

from medgen_tf.data.brain import SPLITS, brain_slices
from medgen_tf.data.pipeline import make_dataset
from medgen_tf.errors import DataError, check_whole_at_least
from medgen_tf.evaluation import draw_lesion
from medgen_tf.metrics import auroc, balanced_accuracy, check_finite, check_value_range

__all__ = [
    "CONDITIONS",
    "RandomGamma",
    "RandomSignalGain",
    "add_lesions",
    "build_augmenter",
    "build_classifier",
    "classifier_logits",
    "evaluate_classifier",
    "format_paired_differences",
    "format_results",
    "lesion_detection_data",
    "lesion_detection_splits",
    "lesion_effect",
    "paired_differences",
    "run_experiment",
    "summarize",
    "synthetic_lesion_samples",
    "train_classifier",
    "train_conditional_gan",
]

#: Condition name -> (how the positives are balanced: None, "cgan" or "repeat"; classic
#: augmentation on or off).
CONDITIONS = {
    "real only": (None, False),
    "real + cGAN": ("cgan", False),
    "classic augmentation": (None, True),
    "both": ("cgan", True),
    "real, positives repeated": ("repeat", False),
}


# --------------------------------------------------------------------------- the task


def add_lesions(
    images,
    brain_masks,
    labels,
    seed=0,
    radius_range=(1.6, 3.2),
    intensity_range=(0.35, 0.75),
    softness=1.0,
):
    """Draw one round lesion, wholly inside the brain, into every slice whose label is 1.

    Args:
        images: ``(n, s, s, 1)`` slices; brain_masks: ``(n, s, s, 1)`` or ``(n, s, s)``, 0/1.
        labels: ``(n,)`` 0/1; slices labelled 0 are returned unchanged.
        seed: fixes every lesion's centre, radius and intensity.
        radius_range: radius in pixels, uniform; intensity_range: the lesion's value, uniform.
        softness: width of the blended edge in pixels (see ``draw_lesion``).

    Returns:
        ``(lesioned_images, lesion_masks)``; masks are boolean ``(n, s, s)`` (the discs' cores).

    Raises:
        DataError: a positive slice whose brain is too small to hold the largest lesion.
    """
    from scipy import ndimage

    images = np.asarray(images, np.float32)
    brain_masks = np.asarray(brain_masks).reshape(images.shape[:3]) > 0.5
    labels = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng([seed, 7919])
    lesioned, lesion_masks = images.copy(), np.zeros(images.shape[:3], bool)
    for index in np.flatnonzero(labels == 1):
        radius = rng.uniform(*radius_range)
        # Distance to the nearest non-brain pixel: a centre this far in keeps the blended edge
        # (radius + softness / 2) inside the brain.
        depth = ndimage.distance_transform_edt(brain_masks[index])
        rows, columns = np.nonzero(depth >= radius + softness)
        if len(rows) == 0:
            raise DataError(f"slice {index}: brain too small for a lesion of radius {radius:.1f}")
        pick = rng.integers(len(rows))
        lesioned[index], lesion_masks[index] = draw_lesion(
            images[index],
            (rows[pick], columns[pick]),
            radius,
            rng.uniform(*intensity_range),
            softness,
        )
    return lesioned, lesion_masks


def lesion_detection_data(
    split="train",
    prevalence=0.08,
    image_size=32,
    seed=0,
    contrast="t2",
    num_subjects=32,
    slices_per_subject=48,
    radius_range=None,
    intensity_range=(0.35, 0.75),
):
    """One split of the simulated lesion-detection task, values in [-1, 1].

    Exactly ``round(prevalence * n)`` slices get a lesion, chosen at random (``seed``) among
    the slices with room for one: brain at least ``radius_range[1] + 1`` pixels deep, enough
    for the largest disc. A slice without that room is always negative, which makes "has room"
    a (weak) shortcut to the label; ``"room"`` says which slices have it. The cohort's splits
    are by subject (:func:`split_subjects`).

    Args:
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        prevalence: fraction of positive slices in this split.
        image_size: side in pixels; contrast: ``"t1"``, ``"t2"`` or ``"pd"``.
        seed: fixes which slices are positive and their lesions (the cohort itself uses seed 0).
        num_subjects, slices_per_subject: cohort size (see ``brain_slices``).
        radius_range: lesion radius in pixels; default 5-10 % of ``image_size``.
        intensity_range: lesion intensity in [-1, 1] (T2 tissue is about -0.2 to 0.5).

    Returns:
        dict with ``"images"`` ``(n, s, s, 1)`` float32, ``"labels"`` ``(n,)`` int32,
        ``"subject"`` ``(n,)`` int32, ``"lesion_mask"`` ``(n, s, s)`` and ``"brain_mask"``
        ``(n, s, s)`` booleans, and ``"room"`` ``(n,)`` boolean: the slices that could have
        been given a lesion.
    """
    from scipy import ndimage

    if not 0.0 <= prevalence <= 1.0:
        raise ValueError(f"prevalence must be in [0, 1], got {prevalence}")
    if radius_range is None:
        radius_range = (0.05 * image_size, 0.1 * image_size)
    slices = _cohort_slices(split, image_size, contrast, num_subjects, slices_per_subject)
    images, brain = slices[contrast], slices["mask"][..., 0] > 0.5
    depth = np.array([ndimage.distance_transform_edt(mask).max() for mask in brain])
    room = depth >= radius_range[1] + 1.0
    eligible = np.flatnonzero(room)
    num_positive = round(prevalence * len(images))
    if num_positive > len(eligible):
        raise DataError(
            f"lesion task ({split}): {num_positive} positives asked, only "
            f"{len(eligible)} slices have room for a lesion"
        )
    rng = np.random.default_rng([seed, SPLITS.index(split), 104729])
    labels = np.zeros(len(images), np.int32)
    labels[rng.choice(eligible, num_positive, replace=False)] = 1
    lesioned, lesion_masks = add_lesions(
        images,
        brain,
        labels,
        seed=seed * 4 + SPLITS.index(split),
        radius_range=radius_range,
        intensity_range=intensity_range,
    )
    return {
        "images": lesioned,
        "labels": labels,
        "subject": slices["subject"],
        "lesion_mask": lesion_masks,
        "brain_mask": brain,
        "room": room,
    }


def _cohort_slices(split, image_size, contrast, num_subjects, slices_per_subject):
    """The lesion-free slices (and masks, subjects) that :func:`lesion_detection_data` draws on."""
    return brain_slices(
        (contrast,),
        split=split,
        image_size=image_size,
        num_subjects=num_subjects,
        slices_per_subject=slices_per_subject,
        return_labels=True,
    )


def lesion_effect(
    split="train",
    prevalence=0.08,
    image_size=32,
    contrast="t2",
    num_subjects=32,
    slices_per_subject=48,
    **kwargs,
):
    """How much a real simulated lesion changes its slice: one value per positive slice.

    Each value is the mean over pixels of ``|lesioned - original|``, for the slices that
    :func:`lesion_detection_data` (called with the same arguments) gives a lesion. It is the
    yardstick for a conditional generator's label effect, the mean ``|G(z, lesion) -
    G(z, normal)|`` over pixels: a generator that draws lesions like the real ones changes its
    samples by about this much when the label flips; a lesion disc covers a few pixels of a
    slice, so the value is small.

    Args:
        split, prevalence, image_size, contrast, num_subjects, slices_per_subject, **kwargs:
            as for :func:`lesion_detection_data` (``seed``, ``radius_range``,
            ``intensity_range``).

    Returns:
        ``(num_positive,)`` float64 array, in the slices' order.
    """
    data = lesion_detection_data(
        split,
        prevalence,
        image_size=image_size,
        contrast=contrast,
        num_subjects=num_subjects,
        slices_per_subject=slices_per_subject,
        **kwargs,
    )
    clean = _cohort_slices(split, image_size, contrast, num_subjects, slices_per_subject)[contrast]
    positive = data["labels"] == 1
    change = np.abs(data["images"][positive].astype(np.float64) - clean[positive])
    return change.reshape(int(positive.sum()), -1).mean(axis=1)


def lesion_detection_splits(train_prevalence=0.08, test_prevalence=0.5, **kwargs):
    """``{"train", "val", "test"}`` of :func:`lesion_detection_data`, disjoint subjects.

    Training is rare-positive (``train_prevalence``); the held-out splits default to balanced,
    which changes neither balanced accuracy nor AUROC in expectation (both are insensitive to
    prevalence) but gives them many more positives to be estimated from.
    """
    return {
        split: lesion_detection_data(split, prevalence, **kwargs)
        for split, prevalence in (
            ("train", train_prevalence),
            ("val", test_prevalence),
            ("test", test_prevalence),
        )
    }


# --------------------------------------------------------------------------- the classifier


def _check_classifier_data(
    images, labels=None, name="images", labels_name="labels", check_range=True
):
    """``images`` as float32, after one-line ValueErrors naming the argument for bad data.

    Images must be a non-empty ``(n, h, w, c)`` array of finite values in [-1, 1] (1 % slack,
    as :func:`medgen_tf.metrics.check_value_range`) and ``labels``, when given, one 0 or 1 per
    image. Unchecked, a NaN pixel scored as a finite, meaningless logit (or was blamed on
    training), labels {0, 255} trained silently with binary cross-entropy, and ``(n, h, w)``
    images failed deep inside Keras.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"{name} must be a non-empty (n, h, w, c) array, got shape {images.shape}")
    check_finite(images, name, advice="drop or repair those slices")
    if check_range:
        check_value_range(
            images, (-1.0, 1.0), name, advice="scale them to [-1, 1], as lesion_detection_data does"
        )
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(images):
            raise ValueError(
                f"{name} and {labels_name} differ in length: {len(images)} and {len(labels)}"
            )
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(
                f"{labels_name} must be 0 or 1, got values {np.unique(labels)[:5].tolist()}"
            )
    return images


def build_classifier(
    image_size=32, channels=1, base_filters=16, dropout=0.3, name="lesion_classifier"
):
    """A small CNN: slice -> one logit for "has a lesion" (no sigmoid; use a loss from_logits).

    Three blocks of Conv3x3 + ReLU + MaxPool doubling the filters, then a global *max* pool: a
    lesion anywhere in the slice should make it positive, and the mean of a feature map would
    dilute a few bright pixels among hundreds of normal ones.
    """
    inputs = keras.Input((image_size, image_size, channels), name="images")
    x, filters = inputs, base_filters
    for block in range(3):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", name=f"conv_{block}"
        )(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{block}")(x)
        filters *= 2
    x = keras.layers.GlobalMaxPooling2D(name="global_max")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(inputs, logits, name=name)


@keras.saving.register_keras_serializable(package="medgen_tf")
class RandomSignalGain(keras.layers.RandomBrightness):
    """Brightness jitter for MR: the signal above the scale's floor times a random gain.

    Keras' ``RandomBrightness`` adds an offset, which lifts the air of an MR image (no signal,
    the floor of ``value_range``) above its floor, and no scan has such air. The gain is drawn
    as that layer draws its offset: ``factor`` 0.1 gives a gain in [0.9, 1.1]; the air stays.
    """

    def transform_images(self, images, transformation, training=True):
        if not training:
            return images
        low, high = self.value_range
        gain = 1.0 + self.backend.cast(transformation["rgb_delta"], images.dtype) / (high - low)
        return self.backend.numpy.clip(low + (images - low) * gain, low, high)


@keras.saving.register_keras_serializable(package="medgen_tf")
class RandomGamma(keras.layers.RandomContrast):
    """Contrast jitter for MR: a random gamma on the image mapped to [0, 1].

    Keras' ``RandomContrast`` stretches about each image's mean, which moves the air (the floor
    of ``value_range``) too; a gamma keeps the floor and the ceiling where they are. ``factor``
    0.1 gives a gamma drawn uniformly in [0.9, 1.1]. (``RandomContrast`` itself reads a single
    number ``f`` as the range [1, 1 + f], since its factor may not go below 0: a gamma drawn
    there only ever darkened the mid-tones, lesions included, of the training images alone.)
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(factor, value_range=value_range, seed=seed, **kwargs)
        if isinstance(factor, (int, float)):
            self.factor = (abs(factor), abs(factor))  # 1 - f to 1 + f; saved as this pair

    def transform_images(self, images, transformation, training=True):
        if not training:
            return images
        low, high = self.value_range
        gamma = self.backend.cast(transformation["contrast_factor"], images.dtype)
        unit = self.backend.numpy.clip((images - low) / (high - low), 0.0, 1.0)
        return low + (high - low) * self.backend.numpy.power(unit, gamma)


def build_augmenter(seed=0, rotation=0.02, translation=0.06, intensity=0.1):
    """Classic augmentation as Keras preprocessing layers, for images in [-1, 1].

    Left-right flips (the brain is nearly symmetric), rotations up to ``rotation`` of a turn
    (0.02 = 7 degrees), shifts up to ``translation`` of the side, the corners they open filled
    by reflecting the border (air, with its noise: a constant -1 painted noise-free bands that
    no scan has), and intensity jitter of ``intensity``: a gain on the signal and a gamma
    (:class:`RandomSignalGain`, :class:`RandomGamma`), which leave the air where it is, where
    Keras' brightness and contrast layers lifted it to as much as -0.8. Layers act only with
    ``training=True``.
    """
    layers = keras.layers
    # Five seeds per experiment seed: seed + i gave seed k's rotation the seed of seed k + 1's
    # flip (a flip exactly when the other run's angle was negative).
    first = 5 * int(seed)
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=first),
            layers.RandomRotation(rotation, fill_mode="reflect", seed=first + 1),
            layers.RandomTranslation(translation, translation, fill_mode="reflect", seed=first + 2),
            RandomSignalGain(intensity, value_range=(-1.0, 1.0), seed=first + 3),
            RandomGamma(intensity, value_range=(-1.0, 1.0), seed=first + 4),
        ],
        name="classic_augmentation",
    )


def train_classifier(
    images,
    labels,
    num_epochs=15,
    batch_size=32,
    seed=0,
    augment=False,
    learning_rate=1e-3,
    class_weight=None,
    steps_per_epoch=None,
    **classifier_kwargs,
):
    """Build, compile and fit :func:`build_classifier`; returns the trained model.

    The model takes ``num_epochs * steps_per_epoch`` gradient steps. By default
    ``steps_per_epoch`` is ``ceil(n / batch_size)``, one pass over the ``n`` slices per epoch,
    so a larger training set gets more steps. Pass ``steps_per_epoch`` to fix the number of
    steps whatever ``n`` is (:func:`run_experiment` does, so that its conditions get equal
    steps). The batches then form one stream of passes over the slices, each pass in the order
    fixed by ``(seed, pass)``, and the epochs take consecutive chunks of it: Keras 3 ``fit``
    with ``steps_per_epoch`` keeps one iterator over a dataset across epochs (it starts a new
    one only once a dataset of known length is used up; this one's length is unknown to it), so
    a set with more batches per pass than ``steps_per_epoch`` is not cut to its first batches
    each epoch (tests/test_augmentation.py checks that every slice is seen). With
    ``steps_per_epoch = ceil(m / batch_size)`` for ``m < n``, each slice is seen about ``m / n``
    times as often as with the default.

    ``augment=True`` maps :func:`build_augmenter` over the training batches only (never at
    evaluation). ``class_weight`` (e.g. ``{0: 1.0, 1: 10.0}``) is passed to ``fit``; off by default.

    Raises:
        ValueError: ``images`` not a non-empty ``(n, h, w, c)`` array of finite values (in
            [-1, 1] with ``augment=True``, the augmenter's range), or ``labels`` not one 0 or 1
            per image.
    """
    # batch_size=0 was a ZeroDivisionError below, True trained with batches of 1, and 2.5
    # epochs a TypeError from Keras.
    check_whole_at_least("batch_size", batch_size, 1)
    check_whole_at_least("num_epochs", num_epochs, 1)
    # The range is checked only where the augmenter needs it: :func:`classifier_logits` and
    # :func:`run_experiment` refuse images off [-1, 1] in any case.
    images = _check_classifier_data(images, labels, check_range=augment)
    keras.utils.set_random_seed(seed)
    model = build_classifier(images.shape[1], images.shape[-1], **classifier_kwargs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    targets = np.asarray(labels, np.float32).reshape(-1, 1)
    batches_per_pass = math.ceil(len(targets) / batch_size)
    if steps_per_epoch is None:
        steps_per_epoch = batches_per_pass
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
    # Passes back to back, each in the order fixed by (seed, pass), as training.fit does; as many
    # as the steps need (the default: one per epoch). fit consumes them as one stream.
    dataset = make_dataset(
        np.asarray(images, np.float32),
        targets,
        batch_size=batch_size,
        seed=seed,
        num_epochs=math.ceil(num_epochs * steps_per_epoch / batches_per_pass),
        drop_remainder=False,
    )
    if augment:
        augmenter = build_augmenter(seed)
        # Sequential map: the layers draw from one seeded generator, and parallel calls would
        # take its draws in a different order each run (results then vary from run to run).
        dataset = dataset.map(lambda x, y: (augmenter(x, training=True), y))
    model.fit(
        dataset,
        epochs=num_epochs,
        steps_per_epoch=steps_per_epoch,
        class_weight=class_weight,
        shuffle=False,
        verbose=0,
    )
    return model


def classifier_logits(model, images, batch_size=256):
    """The model's logits ``(n,)`` for ``images``, in inference mode.

    Called eagerly batch by batch rather than through ``model.predict``: ``predict`` traces a
    new function for every model, and an experiment builds dozens of them.

    Raises:
        ValueError: ``images`` not a non-empty ``(n, h, w, c)`` array of finite values in
            [-1, 1] (a NaN pixel gave a finite, meaningless logit).
    """
    images = _check_classifier_data(images)
    batches = [
        keras.ops.convert_to_numpy(model(images[start : start + batch_size], training=False))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(batches).reshape(-1)


def evaluate_classifier(model, images, labels):
    """``{"balanced_accuracy", "auroc"}`` on ``images``; positive when the logit is above 0.

    Raises:
        ValueError: ``images`` or ``labels`` refused as by :func:`train_classifier` (images
            also in [-1, 1]); NaN or Inf logits (a diverged classifier), which would otherwise
            all read as "negative", i.e. a balanced accuracy of exactly 0.5.
    """
    _check_classifier_data(images, labels)
    logits = classifier_logits(model, images)
    check_finite(logits, "classifier logits")
    return {
        "balanced_accuracy": balanced_accuracy(labels, (logits > 0).astype(np.int32)),
        "auroc": auroc(labels, logits),
    }


# --------------------------------------------------------------------------- synthetic data


def train_conditional_gan(
    images,
    labels,
    num_epochs=20,
    seed=0,
    latent_dim=64,
    base_filters=32,
    batch_size=32,
    balance=True,
):
    """A :class:`ConditionalGAN` (two classes) trained on the given slices only.

    ``balance=True`` repeats the slices of the rarer class (usually the positives) until they
    are as many as those of the other class, so both classes get as many updates; every real
    slice of both classes is kept. It adds updates, not information: the GAN still sees only
    the few real slices of the rarer class.

    Raises:
        ValueError: ``images`` are not a non-empty ``(n, h, w, c)`` array of finite values, or
            ``labels`` are not one 0 or 1 per image.
        DataError: ``labels`` lack one of the classes 0 and 1 (the GAN cannot learn a class it
            never sees).
    """
    from medgen_tf.models.gan import ConditionalGAN, build_discriminator, build_generator
    from medgen_tf.training import fit

    # Labels other than 0 and 1 (a 2, or a 0.5 that int32 would round to 0) used to be dropped
    # by the balancing or fed to a two-class embedding, silently.
    images = _check_classifier_data(images, labels, check_range=False)
    labels = np.asarray(labels).reshape(-1).astype(np.int32)
    positive, negative = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    for indices, name, kind in ((positive, "positive", "lesion"), (negative, "negative", "normal")):
        if len(indices) == 0:
            raise DataError(f"train_conditional_gan: no {name} slice to learn the {kind} class")
    if balance:
        # Only the rarer class is repeated: cutting the larger one to the smaller one's count
        # threw real slices away (3 negatives and 10 positives trained on 3 of each).
        count = max(len(positive), len(negative))
        negative, positive = (
            np.tile(indices, math.ceil(count / len(indices)))[:count]
            for indices in (negative, positive)
        )
        order = np.concatenate([negative, positive])
        images, labels = images[order], labels[order]
    image_size = images.shape[1]
    keras.utils.set_random_seed(seed)
    gan = ConditionalGAN(
        build_generator(latent_dim, image_size, images.shape[-1], base_filters, num_classes=2),
        build_discriminator(image_size, images.shape[-1], base_filters, num_classes=2),
        num_classes=2,
        seed=seed,
    )
    gan.compile()
    with tempfile.TemporaryDirectory() as run_dir:  # checkpoints are not kept
        fit(
            gan,
            (images, labels),
            run_dir,
            num_epochs=num_epochs,
            batch_size=batch_size,
            seed=seed,
            verbose=0,
            tensorboard=False,
        )
    return gan


def synthetic_lesion_samples(gan, num_samples, seed=0, label=1):
    """``num_samples`` generated slices of class ``label`` (in [-1, 1]) and their labels."""
    images = gan.generate(num_samples, seed=seed, labels=np.full(num_samples, label, np.int32))
    return np.clip(images, -1.0, 1.0), np.full(num_samples, label, np.int32)


# --------------------------------------------------------------------------- the experiment


def run_experiment(
    train,
    test,
    seeds=(0, 1, 2),
    conditions=tuple(CONDITIONS),
    num_epochs=15,
    gan_epochs=20,
    batch_size=32,
    gans=None,
    gan_kwargs=None,
    classifier_kwargs=None,
):
    """Train and evaluate the classifier under each condition for each seed.

    Args:
        train, test: dicts with ``"images"`` and ``"labels"`` (e.g. from
            :func:`lesion_detection_splits`); the cGAN sees ``train`` only.
        seeds: one classifier per (condition, seed); one cGAN per seed, shared by the
            conditions that use synthetic data. Seed ``k`` fixes the classifier's initial
            weights, its shuffling, dropout and augmentation streams, and the cGAN. For a
            seed, every condition starts from the same initial weights and draws from the same
            seeded streams; the batches are shared only by conditions whose training sets have
            the same size (real only and classic augmentation, before augmentation changes
            the slices; real + cGAN, both and the repeat control, whose added slices differ):
            a set of another size is shuffled into another order. Per-seed differences are
            paired by the initial weights and the seed, not by identical batches.
        conditions: names from :data:`CONDITIONS`.
        num_epochs, gan_epochs, batch_size: classifier epochs, cGAN epochs, batch size. Every
            condition trains for the same number of gradient steps, ``num_epochs`` times the
            real training set's ``ceil(n / batch_size)``: a balanced set (about twice as many
            slices) is seen about half as many times per slice, instead of getting twice as
            many updates (see ``steps_per_epoch`` of :func:`train_classifier`).
        gans: optional ``{seed: trained ConditionalGAN}`` to reuse; those trained here are
            added to it.
        gan_kwargs, classifier_kwargs: extra arguments of :func:`train_conditional_gan` and
            :func:`train_classifier`.

    Returns:
        A list of rows ``{"condition", "seed", "balanced_accuracy", "auroc",
        "num_train", "num_synthetic"}`` (``num_synthetic``: slices added to the real ones).

    Raises:
        ValueError: images or labels of ``train`` or ``test`` refused as by
            :func:`evaluate_classifier`, before anything is trained.
        DataError: a balancing condition is asked for but ``train`` has no positive slice.
    """
    unknown = [name for name in conditions if name not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown condition(s) {unknown}; choose from {list(CONDITIONS)}")
    # Checked before any training: batch_size=0 was a ZeroDivisionError, True trained with
    # batches of 1, and a repeated seed made two rows the statistics would count as replicates.
    check_whole_at_least("batch_size", batch_size, 1)
    check_whole_at_least("num_epochs", num_epochs, 1)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"run_experiment: seeds {tuple(seeds)} repeat a seed; give distinct ones")
    # Checked before any training: bad test data surfaced only after a model was trained, or
    # never (NaN pixels were scored).
    for split_name, split in (("train", train), ("test", test)):
        _check_classifier_data(
            split["images"], split["labels"], f"{split_name}['images']", f"{split_name}['labels']"
        )
    # A classifier built for the training slices refused the test slices only once trained.
    train_shape, test_shape = np.shape(train["images"])[1:], np.shape(test["images"])[1:]
    if train_shape != test_shape:
        raise ValueError(
            f"run_experiment: train['images'] are {train_shape} per slice but test['images'] "
            f"{test_shape}; load both splits at one image_size"
        )
    gans = {} if gans is None else gans
    images, labels = np.asarray(train["images"], np.float32), np.asarray(train["labels"], np.int32)
    num_synthetic = int((labels == 0).sum() - (labels == 1).sum())
    balancing = [name for name in conditions if CONDITIONS[name][0] is not None]
    if balancing and num_synthetic > 0 and not (labels == 1).any():
        # Checked before any training: np.resize of no positives would repeat zeros, i.e. copy
        # negative slice 0 as "positives", and a cGAN would draw a class it never saw.
        raise DataError(
            f"run_experiment: train has no positive slice, so {balancing} cannot balance the "
            "classes; use a training split with lesions"
        )
    # The same number of gradient steps for every condition: the real set's steps per epoch.
    steps_per_epoch = math.ceil(len(labels) / batch_size)
    rows = []
    for seed in seeds:
        for name in conditions:
            balance, augment = CONDITIONS[name]
            train_images, train_labels = images, labels
            if balance == "repeat" and num_synthetic > 0:
                extra = np.resize(np.flatnonzero(labels == 1), num_synthetic)
                train_images = np.concatenate([images, images[extra]])
                train_labels = np.concatenate([labels, labels[extra]])
            if balance == "cgan" and num_synthetic > 0:
                if seed not in gans:
                    gans[seed] = train_conditional_gan(
                        images,
                        labels,
                        gan_epochs,
                        seed=seed,
                        batch_size=batch_size,
                        **(gan_kwargs or {}),
                    )
                fake_images, fake_labels = synthetic_lesion_samples(
                    gans[seed], num_synthetic, seed=1000 + seed
                )
                train_images = np.concatenate([images, fake_images])
                train_labels = np.concatenate([labels, fake_labels])
            model = train_classifier(
                train_images,
                train_labels,
                num_epochs,
                batch_size,
                seed=seed,
                augment=augment,
                steps_per_epoch=steps_per_epoch,
                **(classifier_kwargs or {}),
            )
            scores = evaluate_classifier(model, test["images"], test["labels"])
            rows.append(
                {
                    "condition": name,
                    "seed": seed,
                    **scores,
                    "num_train": len(train_labels),
                    "num_synthetic": len(train_labels) - len(labels),
                }
            )
    return rows


def _check_one_row_per_seed(rows, context):
    # Pooled runs that reused a seed: summarize counted every row as a seed, and
    # paired_differences kept the last of each, so the two tables disagreed in silence.
    seen = set()
    for row in rows:
        key = (row["condition"], row["seed"])
        if key in seen:
            raise ValueError(
                f"{context}: two rows for condition {key[0]!r} and seed {key[1]!r}; each seed "
                "is one replicate (give runs that are pooled distinct seeds)"
            )
        seen.add(key)


def summarize(rows):
    """``{condition: {"balanced_accuracy": (mean, std), "auroc": (mean, std), "seeds": k}}``.

    The spread is the sample standard deviation over seeds (0 for a single seed).

    Raises:
        ValueError: two rows of one condition with the same seed.
    """
    _check_one_row_per_seed(rows, "summarize")
    summary = {}
    for name in dict.fromkeys(row["condition"] for row in rows):
        chosen = [row for row in rows if row["condition"] == name]
        entry = {"seeds": len(chosen)}
        for metric in ("balanced_accuracy", "auroc"):
            values = np.array([row[metric] for row in chosen], np.float64)
            spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            entry[metric] = (float(values.mean()), spread)
        summary[name] = entry
    return summary


def format_results(rows):
    """The results as a plain-text table: mean ± standard deviation over seeds."""
    summary = summarize(rows)
    if not summary:
        raise ValueError(
            "format_results: no rows to format (an experiment with no seeds or no conditions)"
        )
    width = max(len("condition"), *(len(name) for name in summary)) + 2
    header = f"{'condition':{width}s}{'balanced accuracy':>20s}{'AUROC':>18s}{'seeds':>7s}"
    lines = [header, "-" * len(header)]
    for name, entry in summary.items():
        (accuracy, accuracy_std), (area, area_std) = entry["balanced_accuracy"], entry["auroc"]
        lines.append(
            f"{name:{width}s}{accuracy:>13.3f} ± {accuracy_std:.3f}"
            f"{area:>11.3f} ± {area_std:.3f}{entry['seeds']:>7d}"
        )
    return "\n".join(lines)


def paired_differences(rows, baseline="real only", metric="auroc", confidence=0.95):
    """Each condition minus ``baseline``, paired by seed, with a t-interval over seeds.

    For every condition other than ``baseline``, the per-seed differences ``condition -
    baseline`` of ``metric`` (seeds present in both), their mean, and the two-sided
    ``confidence`` Student-t interval of the mean (``mean ± t * sd / sqrt(k)``, ``k - 1``
    degrees of freedom; NaN bounds for a single seed). The seeds vary the classifier's
    training (initial weights, batches, augmentation, the cGAN), never the test set: the
    interval measures training noise only, not the sampling of test subjects.

    Returns:
        ``{condition: {"per_seed": array, "seeds": k, "mean", "low", "high"}}``, in the order of
        ``rows``.

    Raises:
        ValueError: ``baseline`` has no row, two rows of one condition with the same seed, or
            ``confidence`` is not in (0, 1).
    """
    from scipy import stats

    _check_one_row_per_seed(rows, "paired_differences")

    # 95 (a percentage) gave NaN bounds, 1.0 infinite ones.
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence}")
    values = {}
    for row in rows:
        values.setdefault(row["condition"], {})[row["seed"]] = float(row[metric])
    if baseline not in values:
        raise ValueError(f"no rows for the baseline condition {baseline!r}")
    result = {}
    for name, by_seed in values.items():
        if name == baseline:
            continue
        seeds = [seed for seed in by_seed if seed in values[baseline]]
        per_seed = np.array([by_seed[seed] - values[baseline][seed] for seed in seeds])
        mean = float(per_seed.mean()) if len(seeds) else float("nan")
        low = high = float("nan")
        if len(seeds) > 1:
            quantile = stats.t.ppf(0.5 + confidence / 2, len(seeds) - 1)
            half = quantile * per_seed.std(ddof=1) / math.sqrt(len(seeds))
            low, high = mean - half, mean + half
        result[name] = {
            "per_seed": per_seed,
            "seeds": len(seeds),
            "mean": mean,
            "low": float(low),
            "high": float(high),
        }
    return result


def format_paired_differences(rows, baseline="real only", metric="auroc", confidence=0.95):
    """:func:`paired_differences` as a plain-text table, one line per condition."""
    differences = paired_differences(rows, baseline, metric, confidence)
    width = max([len("condition"), *(len(name) for name in differences)]) + 2
    interval_title = f"{confidence:.0%} t-interval"
    lines = [
        f"{metric}: condition minus {baseline!r}, paired by seed",
        f"{'condition':{width}s}{'mean':>8s}  {interval_title:>18s}  per seed",
    ]
    lines.append("-" * (len(lines[1]) + 12))
    for name, entry in differences.items():
        if entry["seeds"] > 1:
            interval = f"[{entry['low']:+.3f}, {entry['high']:+.3f}]"
        else:
            interval = "n/a (one seed)"
        per_seed = ", ".join(f"{value:+.3f}" for value in entry["per_seed"])
        lines.append(f"{name:{width}s}{entry['mean']:>+8.3f}  {interval:>18s}  {per_seed}")
    return "\n".join(lines)
