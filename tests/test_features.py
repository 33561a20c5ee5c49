"""medgen_tf.features: the shipped FD-medgen extractor and the offline FID error."""

import socket

import numpy as np
import pytest
import tensorflow as tf

from medgen_tf import DataError, features, metrics
from medgen_tf.data import brain_slices
from medgen_tf.data.nifti import sha256_of


def test_committed_weights_match_recorded_sha256():
    assert features.WEIGHTS_PATH.stat().st_size <= 2 * 1024 * 1024
    assert features.sha256_of(features.WEIGHTS_PATH) == features.WEIGHTS_SHA256


def test_tampered_weights_are_refused(tmp_path):
    copy = tmp_path / "extractor.weights.h5"
    copy.write_bytes(features.WEIGHTS_PATH.read_bytes() + b"\0")
    with pytest.raises(DataError, match="does not match"):
        features.load_feature_extractor(copy)
    with pytest.raises(DataError, match="not found"):
        features.load_feature_extractor(tmp_path / "missing.weights.h5")


def test_weights_rewritten_at_the_same_path_are_loaded_again(tmp_path):
    # Unchecked (weights being trained), the cache was keyed on the path alone: a retrained
    # (here: broken) file returned the model loaded from the earlier one.
    copy = tmp_path / "mine.weights.h5"
    copy.write_bytes(features.WEIGHTS_PATH.read_bytes())
    first = features.load_feature_extractor(copy, expected_sha256=None)
    assert features.load_feature_extractor(copy, expected_sha256=None) is first
    copy.write_bytes(b"garbage")
    with pytest.raises(DataError, match="not weights of the feature extractor"):
        features.load_feature_extractor(copy, expected_sha256=None)


def test_weights_that_are_no_weights_file_are_one_line_naming_it(tmp_path):
    # Unchecked (expected_sha256=None), a junk file was h5py's OSError, which named no file.
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"not an HDF5 file")
    with pytest.raises(DataError) as caught:
        features.load_feature_extractor(junk, expected_sha256=None)
    message = str(caught.value)
    assert message.startswith(f"{junk}: not weights of the feature extractor (OSError: ")
    assert "\n" not in message


def test_feature_shape_value_range_and_resizing():
    generator = np.random.default_rng(0)
    images = generator.uniform(-1, 1, (5, 64, 64, 1)).astype(np.float32)
    values = features.extract_features(images)
    assert values.shape == (5, features.FEATURE_DIM) and values.dtype == np.float64
    # The same images given in [0, 1] must map to the same features.
    np.testing.assert_allclose(
        features.extract_features((images + 1) / 2, value_range=(0.0, 1.0)), values, atol=1e-5
    )
    assert features.extract_features(images[:, ::2, ::2]).shape == (5, features.FEATURE_DIM)
    with pytest.raises(DataError, match="grey images"):
        features.extract_features(np.zeros((2, 64, 64, 3)))


def test_a_single_slice_is_one_image_as_in_metrics():
    images = np.random.default_rng(1).uniform(-1, 1, (3, 64, 64, 1)).astype(np.float32)
    batch = features.extract_features(images)
    # (h, w, 1) used to be read as 64 images of 64 x 1 pixels: 64 rows of features.
    single = features.extract_features(images[0])
    assert single.shape == (1, features.FEATURE_DIM)
    np.testing.assert_allclose(single, batch[:1], atol=1e-5)
    assert isinstance(metrics.ssim(images[0], images[0], data_range=2.0), float)  # one image
    # A stack without the channel axis is still n images.
    np.testing.assert_allclose(features.extract_features(images[..., 0]), batch, atol=1e-5)


def test_inception_features_read_a_single_slice_as_one_image(monkeypatch, tmp_path):
    # A stand-in network (the ImageNet weights are a download): its input is the mean per image.
    cached = tmp_path / "models" / features.INCEPTION_WEIGHTS_URL.rsplit("/", 1)[-1]
    cached.parent.mkdir()
    cached.touch()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def fake_inception(**kwargs):
        return lambda batch, training: tf.reduce_mean(batch, axis=(1, 2))

    monkeypatch.setattr(features.keras.applications, "InceptionV3", fake_inception)
    image = np.random.default_rng(2).uniform(-1, 1, (64, 64, 1)).astype(np.float32)
    values = features.inception_features(image)
    assert values.shape == (1, 3)
    np.testing.assert_allclose(values, features.inception_features(image[None]), atol=1e-6)


def test_features_separate_contrasts_of_unseen_subjects():
    data = brain_slices(("t1", "t2", "pd"), split="test", image_size=64, num_subjects=8)
    per_contrast = {c: features.extract_features(data[c]) for c in ("t1", "t2", "pd")}
    centroids = np.stack([per_contrast[c].mean(axis=0) for c in ("t1", "t2", "pd")])
    for index, contrast in enumerate(("t1", "t2", "pd")):
        nearest = metrics.pairwise_distances(per_contrast[contrast], centroids).argmin(axis=1)
        assert np.mean(nearest == index) > 0.95
    # Two halves of one contrast are far closer in FD-medgen than two contrasts.
    t1 = per_contrast["t1"]
    within = metrics.frechet_distance(t1[0::2], t1[1::2])
    between = metrics.frechet_distance(t1, per_contrast["t2"])
    assert between > 10 * within


def test_inception_features_fail_cleanly_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached weights

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    # Whatever this machine's network, the download attempt must turn into one DataError line.
    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(DataError, match="could not be downloaded") as raised:
        features.inception_features(np.zeros((1, 64, 64, 1)), timeout=2.0)
    assert "\n" not in str(raised.value)


def test_training_the_extractor_never_defaults_to_the_shipped_weights(capsys):
    import inspect

    from medgen_tf import features

    # Writing over them would break every score checked against WEIGHTS_SHA256.
    assert inspect.signature(features.train_feature_extractor).parameters["out_path"].default is (
        inspect.Parameter.empty
    )
    with pytest.raises(SystemExit) as caught:
        features.main(["--train"])
    assert caught.value.code == 2 and "--train needs --out" in capsys.readouterr().err


def test_a_weights_name_keras_would_refuse_is_refused_before_training(tmp_path, capsys):
    from medgen_tf import features

    with pytest.raises(SystemExit) as caught:
        features.main(["--train", "--out", str(tmp_path / "extractor.h5")])
    assert caught.value.code == 2 and "FILE.weights.h5" in capsys.readouterr().err
    # num_subjects=0 would fail at once inside training: the name check comes first.
    with pytest.raises(ValueError, match=r"extractor\.h5: .* must end in \.weights\.h5"):
        features.train_feature_extractor(tmp_path / "extractor.h5", num_subjects=0)
    assert list(tmp_path.iterdir()) == []


def test_the_extractor_trains_and_writes_any_weights_name_keras_accepts(tmp_path, monkeypatch):
    # Op determinism would stay on for every later test in this process; not what is tested.
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism", lambda: None)
    # ".weights.h5" alone is a name Keras accepts; the temporary file must end the same way,
    # or save_weights refuses it after the training.
    out_path = tmp_path / ".weights.h5"
    result = features.train_feature_extractor(out_path, num_epochs=1, num_subjects=3, verbose=0)
    assert result["weights"] == str(out_path) and result["sha256"] == sha256_of(out_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == [".weights.h5"]


def test_images_outside_the_value_range_are_refused_not_clipped():
    images = np.random.default_rng(2).uniform(-1, 1, (4, 64, 64, 1)).astype(np.float32)
    eight_bit = np.round((images + 1) * 127.5).astype(np.uint8)
    # 8-bit slices with the default value_range (-1, 1) were clipped to white: features of four
    # blank images, silently (a Frechet distance of them is a wrong number, not an error).
    with pytest.raises(
        DataError, match=r"^images: values span \[0, 255\], outside value_range \(-1, 1\)"
    ):
        features.extract_features(eight_bit)
    np.testing.assert_allclose(
        features.extract_features(eight_bit, value_range=(0, 255)),
        features.extract_features(images),
        atol=0.02,
    )
    # A NaN pixel gave NaN features; an empty value range divided by zero.
    with_nan = images.copy()
    with_nan[1, 5, 5, 0] = np.nan
    with pytest.raises(DataError, match="1 NaN or Inf"):
        features.extract_features(with_nan)
    with pytest.raises(DataError, match="value_range"):
        features.extract_features(images, value_range=(1.0, 1.0))
    # No images: numpy's "need at least one array to concatenate".
    with pytest.raises(DataError, match="no images"):
        features.extract_features(np.zeros((0, 64, 64, 1), np.float32))


@pytest.mark.parametrize("batch_size", [0, -4, 2.5])
def test_a_batch_size_below_one_is_one_line(batch_size):
    # 0 was Python's "range() arg 3 must not be zero"; -4 numpy's "need at least one array to
    # concatenate"; 2.5 passed int() and failed in range().
    images = np.zeros((2, 64, 64, 1), np.float32)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        features.extract_features(images, batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        features.inception_features(images, batch_size=batch_size)
