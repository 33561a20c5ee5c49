"""An offline feature extractor for brain MRI slices, and ImageNet InceptionV3 features when online.

FID scores images with an Inception network trained on ImageNet photographs: a download, three
colour channels for grey MRI, and features tuned to dogs and cars. Here a small CNN is trained in
the repository on the embedded simulated cohort (:mod:`medgen_tf.data`) to predict each 64x64
slice's contrast (T1, T2, PD) and its axial position; its penultimate layer is the feature
space. The weights are committed (``medgen_tf/weights/``, 1.3 MB) with their sha256, so
the score is reproducible offline. The Frechet distance in this space is called
**FD-medgen**, never FID: its values are not comparable with published FIDs.

- :func:`load_feature_extractor`: the shipped extractor, its weights checked against
  :data:`WEIGHTS_SHA256`.
- :func:`extract_features`: images -> (n, 64) features.
- :func:`train_feature_extractor`: how the shipped weights were made
  (``python -m medgen_tf.features --train --out medgen_tf/weights/feature_extractor.weights.h5``
  in a checkout; then update :data:`WEIGHTS_SHA256`).
- :func:`inception_features`: Keras' ImageNet InceptionV3 pool features, when its weights can
  be downloaded; offline, a one-line :class:`~medgen_tf.DataError`. Their Frechet distance is
  FID-like but NOT comparable with published FIDs either: those use the 2015 TensorFlow
  Inception graph of the TTUR code (ported by pytorch-fid), whose weights differ from Keras'.

Used by ``medgen-tf evaluate`` and ``notebooks/04_evaluating_generative_models.ipynb``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from medgen_tf import metrics
from medgen_tf.data.nifti import sha256_of
from medgen_tf.errors import DataError, first_line, is_whole_number
from medgen_tf.files import atomic_path

__all__ = [
    "FEATURE_DIM",
    "IMAGE_SIZE",
    "WEIGHTS_PATH",
    "WEIGHTS_SHA256",
    "build_feature_extractor",
    "extract_features",
    "inception_features",
    "load_feature_extractor",
    "train_feature_extractor",
]

IMAGE_SIZE = 64
FEATURE_DIM = 64
CONTRASTS = ("t1", "t2", "pd")
WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "feature_extractor.weights.h5"
#: sha256 of the committed weights, from `python -m medgen_tf.features --train --out FILE` (12
#: epochs, seed 0; validation subjects: contrast accuracy 1.000, position MAE 0.030; a rerun
#: gives this same hash).
WEIGHTS_SHA256 = "4a0b06e3070e1fbcdaf388e66e2c3a7d9d71dcfc0326e989421e2266fbf7f9a0"
INCEPTION_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
)


def build_feature_extractor(image_size: int = IMAGE_SIZE, feature_dim: int = FEATURE_DIM):
    """The extractor CNN: (s, s, 1) images in [-1, 1] -> contrast logits and position.

    Four stride-2 3x3 convolutions (16, 32, 64, 128 filters, batch norm, ReLU), global average
    pooling, and a ``feature_dim`` ReLU layer named ``"features"`` (the feature space), then two
    heads: ``"contrast"`` (3 logits) and ``"position"`` (axial position in [0, 1]).

    Returns:
        The two-headed ``keras.Model``; ``model.get_layer("features").output`` is the feature
        tensor (see :func:`load_feature_extractor`).
    """
    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = inputs
    for filters in (16, 32, 64, 128):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    features = keras.layers.Dense(feature_dim, activation="relu", name="features")(x)
    contrast = keras.layers.Dense(len(CONTRASTS), name="contrast")(features)
    position = keras.layers.Dense(1, activation="sigmoid", name="position")(features)
    return keras.Model(inputs, {"contrast": contrast, "position": position}, name="fd_medgen")


_LOADED: dict = {}


def load_feature_extractor(weights_path=None, expected_sha256: str | None = WEIGHTS_SHA256):
    """The shipped extractor as a ``keras.Model`` from images to (n, FEATURE_DIM) features.

    Args:
        weights_path: a ``.weights.h5`` file; default the committed :data:`WEIGHTS_PATH`.
        expected_sha256: checked before loading (DataError on mismatch); None skips the check,
            for weights you just trained yourself.
    """
    path = Path(weights_path or WEIGHTS_PATH)
    if not path.is_file():
        raise DataError(f"{path}: feature extractor weights not found")
    # The file's size and time are in the key: with no sha256 to check (weights being trained),
    # a retrained file at the same path returned the model loaded from the earlier one.
    status = path.stat()
    key = (str(path.resolve()), expected_sha256, status.st_size, status.st_mtime_ns)
    if key in _LOADED:
        return _LOADED[key]
    if expected_sha256 is not None:
        actual = sha256_of(path)
        if actual != expected_sha256:
            raise DataError(
                f"{path}: sha256 {actual} does not match the recorded {expected_sha256}"
            )
    model = build_feature_extractor()
    try:
        model.load_weights(path)
    except (OSError, ValueError) as error:
        # h5py's "Unable to synchronously open file (file signature not found)" named no file.
        raise DataError(
            f"{path}: not weights of the feature extractor ({type(error).__name__}: "
            f"{first_line(error)})"
        ) from None
    extractor = keras.Model(model.input, model.get_layer("features").output, name="fd_medgen")
    _LOADED[key] = extractor
    return extractor


def _grey_batch(images):
    """``images`` as float32 (n, h, w, 1): a single (h, w, 1) slice becomes a batch of one."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 3:
        # (h, w, 1) is one slice, as in medgen_tf.metrics; read as a stack it would be h images
        # of width w and one pixel. Any other 3-D array is a stack (n, h, w) without channel axis.
        images = images[None] if images.shape[-1] == 1 else images[..., None]
    if images.ndim != 4 or images.shape[-1] != 1:
        raise DataError(f"feature extractor expects (n, h, w, 1) grey images, got {images.shape}")
    return images


def _to_unit_range(images, value_range):
    """``images`` (n, h, w, 1) mapped from ``value_range`` to [-1, 1], after checking them.

    Images outside ``value_range`` are refused rather than clipped: 8-bit slices read with the
    default (-1, 1) became white, and their features were those of blank images. The 1 % slack
    leaves room for round-off and interpolation overshoot.
    """
    images = _grey_batch(images)
    if len(images) == 0 or images.size == 0:
        raise DataError(f"no images to extract features from, got shape {images.shape}")
    non_finite = int(np.count_nonzero(~np.isfinite(images)))
    if non_finite:
        raise DataError(f"images: {non_finite} NaN or Inf values; did training diverge?")
    low, high = metrics.check_value_range(images, value_range, "images", DataError)
    return 2.0 * (images - low) / (high - low) - 1.0


def _check_batch_size(batch_size):
    # 0 was "range() arg 3 must not be zero", a negative size an empty concatenation, and 2.5
    # passed int() only to fail in range().
    if not is_whole_number(batch_size) or batch_size < 1:
        raise DataError(f"batch_size must be at least 1, a whole number; got {batch_size!r}")


def _prepare(images, value_range):
    images = _to_unit_range(images, value_range)
    if images.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
        # Area-like averaging when shrinking, bilinear when enlarging: the extractor only ever
        # saw 64x64 slices, so scores at other sizes are comparable among themselves only.
        images = tf.image.resize(images, (IMAGE_SIZE, IMAGE_SIZE), antialias=True).numpy()
    return np.clip(images, -1.0, 1.0)


def extract_features(images, value_range=(-1.0, 1.0), batch_size: int = 256, extractor=None):
    """FD-medgen features (n, FEATURE_DIM) float64 of grey images (n, h, w, 1).

    Args:
        images: slices (n, h, w, 1) or (n, h, w) in ``value_range`` (outside it by more than
            1 % of its width, NaN or Inf: DataError); resized to 64x64 when they are another
            size. A single slice (h, w, 1) is one image, as in :mod:`medgen_tf.metrics`,
            and gives features (1, FEATURE_DIM): they stay 2-D, the shape every distribution
            metric expects.
        value_range: (low, high) of the images (the cohort's default is (-1, 1)).
        batch_size: images per forward pass.
        extractor: a model from :func:`load_feature_extractor`; default the shipped one.
    """
    _check_batch_size(batch_size)
    extractor = extractor or load_feature_extractor()
    images = _prepare(images, value_range)
    outputs = [
        extractor(images[start : start + batch_size], training=False).numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs, axis=0).astype(np.float64)


def _cohort_arrays(split: str, num_subjects: int, seed: int):
    from medgen_tf.data import brain_slices

    data = brain_slices(
        CONTRASTS,
        split=split,
        image_size=IMAGE_SIZE,
        seed=seed,
        num_subjects=num_subjects,
        return_labels=True,
    )
    images = np.concatenate([data[c] for c in CONTRASTS], axis=0)
    contrast = np.repeat(np.arange(len(CONTRASTS), dtype=np.int32), len(data["position"]))
    position = np.tile(data["position"], len(CONTRASTS)).astype(np.float32)
    return images, contrast, position


def train_feature_extractor(
    out_path,
    num_epochs: int = 12,
    batch_size: int = 64,
    seed: int = 0,
    num_subjects: int = 32,
    learning_rate: float = 2e-3,
    verbose: int = 2,
):
    """Train the extractor on the simulated cohort's training subjects and save its weights.

    ``out_path`` has no default: writing over the shipped weights (:data:`WEIGHTS_PATH`) would
    break every score checked against :data:`WEIGHTS_SHA256`, in an installed package until it
    is reinstalled.

    Targets: the contrast (cross-entropy) and the axial position (mean squared error, x10 so
    both losses start at a similar scale). Light augmentation (random flips and +-10 % intensity
    scaling) keeps the features from keying on exact grey levels. Seeds and op determinism are
    set, so a rerun on the same machine gives the same weights.

    Returns:
        dict with the weights path, its sha256 and validation-subject accuracy / position MAE.
    """
    out_path = Path(out_path)
    # Checked before training: Keras refuses any other name, only once save_weights is reached.
    if not out_path.name.endswith(".weights.h5"):
        raise ValueError(f"{out_path}: the weights file name must end in .weights.h5")
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    images, contrast, position = _cohort_arrays("train", num_subjects, seed)
    val_images, val_contrast, val_position = _cohort_arrays("val", num_subjects, seed)

    def augment(image, targets):
        image = tf.image.random_flip_left_right(image, seed=seed)
        scale = tf.random.uniform((), 0.9, 1.1, seed=seed)
        return tf.clip_by_value((image + 1.0) * scale - 1.0, -1.0, 1.0), targets

    targets = {"contrast": contrast, "position": position}
    dataset = (
        tf.data.Dataset.from_tensor_slices((images, targets))
        .shuffle(len(images), seed=seed)
        .map(augment)
        .batch(batch_size)
    )
    model = build_feature_extractor()
    # Cosine decay to 0: the last epochs settle the batch-norm statistics used at inference.
    steps = num_epochs * -(-len(images) // batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss={
            "contrast": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "position": keras.losses.MeanSquaredError(),
        },
        loss_weights={"contrast": 1.0, "position": 10.0},
        metrics={"contrast": ["accuracy"], "position": ["mae"]},
        jit_compile="auto",
    )
    model.fit(dataset, epochs=num_epochs, verbose=verbose)
    predictions = model.predict(val_images, batch_size=256, verbose=0)
    accuracy = float(np.mean(predictions["contrast"].argmax(axis=1) == val_contrast))
    position_mae = float(np.mean(np.abs(predictions["position"][:, 0] - val_position)))
    # Keras reads the format from the whole name: the temporary one must end the same way.
    with atomic_path(out_path, suffix=".weights.h5") as temporary:
        model.save_weights(temporary)
    return {
        "weights": str(out_path),
        "sha256": sha256_of(out_path),
        "val_contrast_accuracy": accuracy,
        "val_position_mae": position_mae,
    }


def inception_features(images, value_range=(-1.0, 1.0), batch_size: int = 32, timeout: float = 5.0):
    """Keras InceptionV3 ImageNet pool features (n, 2048), when online.

    Grey images are repeated to three channels and resized to 299x299 (the usual FID recipe;
    ImageNet features on MRI are exactly the pitfall FD-medgen avoids). The network is
    ``keras.applications.InceptionV3``, not the 2015 Inception graph of the TTUR / pytorch-fid
    reference code, so a Frechet distance of these features is FID-like but its values are not
    comparable with published FIDs (name it as such, e.g. "FD-InceptionV3 (Keras)").
    Needs the ImageNet weights: from the Keras cache, or downloaded; if neither works within
    ``timeout`` seconds, raises a one-line DataError instead of hanging. ``images`` are read as
    in :func:`extract_features`: a single (h, w, 1) slice gives features (1, 2048).
    """
    # Checked before any download. InceptionV3 expects [-1, 1].
    _check_batch_size(batch_size)
    images = _to_unit_range(images, value_range)
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    cached = keras_home / "models" / INCEPTION_WEIGHTS_URL.rsplit("/", 1)[-1]
    if not cached.is_file():
        import urllib.request

        try:
            request = urllib.request.Request(INCEPTION_WEIGHTS_URL, method="HEAD")
            urllib.request.urlopen(request, timeout=timeout).close()
        except Exception as error:  # noqa: BLE001 (any network failure means "offline")
            raise DataError(
                f"InceptionV3 ImageNet weights could not be downloaded from {INCEPTION_WEIGHTS_URL} "
                f"({type(error).__name__}); use FD-medgen (medgen_tf.features.extract_features)"
            ) from None
    try:
        model = keras.applications.InceptionV3(
            include_top=False, weights="imagenet", pooling="avg", input_shape=(299, 299, 3)
        )
    except Exception as error:  # noqa: BLE001
        raise DataError(
            f"InceptionV3 ImageNet weights could not be downloaded ({type(error).__name__}); "
            "use FD-medgen (medgen_tf.features.extract_features)"
        ) from None
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = tf.image.resize(images[start : start + batch_size], (299, 299))
        outputs.append(model(tf.repeat(batch, 3, axis=-1), training=False).numpy())
    return np.concatenate(outputs, axis=0).astype(np.float64)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train the FD-medgen feature extractor.")
    parser.add_argument("--train", action="store_true", help="train and write the weights")
    parser.add_argument(
        "--out", help=f"weights file to write (required with --train; shipped: {WEIGHTS_PATH})"
    )
    parser.add_argument("--epochs", dest="num_epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.train:
        parser.print_help()
        return 0
    if not args.out or not args.out.endswith(".weights.h5"):
        parser.error("--train needs --out FILE.weights.h5")
    result = train_feature_extractor(args.out, num_epochs=args.num_epochs, seed=args.seed)
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
