"""MedMNIST .npz layout and checked downloads (wiring only: no network here)."""

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from medgen_tf import DataError
from medgen_tf.data import medmnist


def test_grey_npz_loads_in_value_range(tmp_path, medmnist_npz):
    path = medmnist_npz(tmp_path / "toymnist.npz")
    data = medmnist.load_medmnist(path, split="train", value_range=(-1.0, 1.0))
    assert data["images"].shape == (10, 28, 28, 1) and data["images"].dtype == np.float32
    assert data["images"].min() >= -1.0 and data["images"].max() <= 1.0
    assert data["labels"].shape == (10,) and data["labels"].dtype == np.int32
    with np.load(path) as archive:
        expected = archive["train_images"][..., None] / 255.0 * 2 - 1
    np.testing.assert_allclose(data["images"], expected, atol=1e-6)
    test = medmnist.load_medmnist(path, split="test", value_range=(0.0, 1.0))
    assert len(test["images"]) == 6 and test["images"].min() >= 0.0


def test_rgb_npz_resized(tmp_path, medmnist_npz):
    path = medmnist_npz(tmp_path / "colour.npz", size=64, channels=3)
    data = medmnist.load_medmnist(path, split="val", image_size=32)
    assert data["images"].shape == (4, 32, 32, 3)


def test_missing_keys_raise(tmp_path, medmnist_npz):
    path = medmnist_npz(tmp_path / "broken.npz", drop=("val_labels",))
    medmnist.load_medmnist(path, split="train")
    with pytest.raises(DataError, match="missing key") as error:
        medmnist.load_medmnist(path, split="val")
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    images = np.empty(2, dtype=object)
    images[:] = [np.zeros((28, 28)), np.zeros((28, 28))]
    np.savez(path, train_images=images, train_labels=np.zeros((2, 1)))
    with pytest.raises(DataError, match="pickle"):
        medmnist.load_medmnist(path)


def test_junk_npz_is_called_damaged_without_advice_to_allow_pickles(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(DataError) as error:
        medmnist.load_medmnist(junk)
    message = str(error.value)
    assert message == f"{junk}: not a .npz archive (truncated or damaged)"
    assert "pickle" not in message


def test_not_an_npz_and_mismatched_lengths(tmp_path):
    bogus = tmp_path / "bogus.npz"
    bogus.write_bytes(b"plain text")
    with pytest.raises(DataError, match="not a .npz archive"):
        medmnist.load_medmnist(bogus)
    path = tmp_path / "lengths.npz"
    np.savez(path, train_images=np.zeros((3, 28, 28), np.uint8), train_labels=np.zeros((2, 1)))
    with pytest.raises(DataError, match="3 images but 2 labels"):
        medmnist.load_medmnist(path)


def test_names_sizes_and_licences():
    assert medmnist.file_name("pneumoniamnist", 28) == "pneumoniamnist.npz"
    assert medmnist.file_name("pneumoniamnist", 64) == "pneumoniamnist_64.npz"
    assert medmnist.licence("dermamnist") == "CC BY-NC 4.0"
    assert medmnist.licence("pneumoniamnist") == "CC BY 4.0"
    for md5s, _, _ in medmnist.DATASETS.values():
        assert sorted(md5s) == list(medmnist.SIZES)
        assert all(len(value) == 32 for value in md5s.values())
    with pytest.raises(DataError, match="unknown dataset"):
        medmnist.load_medmnist("mnistmnist")
    with pytest.raises(DataError, match="size must be one of"):
        medmnist.download("breastmnist", size=32)


def test_download_is_md5_checked_and_licence_shown(tmp_path, monkeypatch, capsys, medmnist_npz):
    import keras

    calls = {}

    def fake_get_file(fname, origin, file_hash, hash_algorithm, cache_dir, cache_subdir):
        calls.update(fname=fname, origin=origin, file_hash=file_hash, algorithm=hash_algorithm)
        return str(medmnist_npz(tmp_path / fname))

    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    medmnist._licences_shown.discard("dermamnist")
    data = medmnist.load_medmnist("dermamnist", size=64)
    assert calls["fname"] == "dermamnist_64.npz"
    assert calls["origin"] == f"{medmnist.ZENODO}/dermamnist_64.npz?download=1"
    assert calls["file_hash"] == "b70a2f5635c6199aeaa28c31d7202e1f"
    assert calls["algorithm"] == "md5"
    assert "CC BY-NC 4.0" in capsys.readouterr().out
    assert data["label_names"][4] == "melanoma"


def test_a_first_download_lands_in_the_package_cache(tmp_path, monkeypatch, medmnist_npz):
    # keras.utils.get_file saves to /tmp/.keras when cache_dir is not writable, as a folder
    # not made yet is not: the first download missed the cache on a fresh machine.
    import keras

    def fake_get_file(fname, origin, file_hash, hash_algorithm, cache_dir, cache_subdir):
        assert os.access(cache_dir, os.W_OK), "get_file would fall back to /tmp/.keras"
        return str(medmnist_npz(Path(cache_dir) / cache_subdir / fname))

    cache = tmp_path / "fresh" / "cache"
    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(cache))
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    assert medmnist.download("breastmnist") == cache / "medmnist" / "breastmnist.npz"


def test_a_cache_folder_that_cannot_be_made_leaves_the_download_to_keras(
    tmp_path, monkeypatch, medmnist_npz, caplog
):
    # A read-only home: get_file falls back to /tmp/.keras, which the mkdir must not prevent.
    import keras

    blocked = tmp_path / "a file"
    blocked.write_text("")
    fallback = tmp_path / "fallback"

    def fake_get_file(fname, origin, file_hash, hash_algorithm, cache_dir, cache_subdir):
        return str(medmnist_npz(fallback / fname))

    fallback.mkdir()
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    with caplog.at_level("WARNING", logger="medgen_tf.data.medmnist"):
        path = medmnist.download("breastmnist", cache_dir=blocked)
    assert path == fallback / "breastmnist.npz"
    assert len(caplog.messages) == 1
    assert caplog.messages[0].startswith(
        f"medmnist:breastmnist@28: cannot make the cache folder {blocked} ("
    )


def test_failed_download_is_a_data_error(monkeypatch, tmp_path):
    import keras

    def offline(**kwargs):
        raise OSError("network unreachable")

    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(DataError, match="download failed"):
        medmnist.load_medmnist("breastmnist")


def _flip_byte(path, offset):
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("compressed", [False, True])
def test_corrupt_archive_is_a_one_line_data_error(tmp_path, compressed):
    path = tmp_path / "damaged.npz"
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, size=(10, 28, 28), dtype=np.uint8),
        "train_labels": np.zeros((10, 1), np.uint8),
    }
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    # One flipped byte inside train_images' data: the zip directory still opens, the member
    # fails its CRC (stored) or its deflate stream (compressed) only when read.
    _flip_byte(path, path.stat().st_size // 3)
    with pytest.raises(DataError, match="corrupt .npz archive") as error:
        medmnist.load_medmnist(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def _arrays_npz(path, images, labels):
    np.savez(path, train_images=images, train_labels=labels)
    return path


@pytest.mark.parametrize(
    ("images", "labels", "problem"),
    [
        (np.zeros((0, 28, 28), np.uint8), np.zeros((0, 1), np.uint8), "has 0 images"),
        (np.zeros((3, 28, 28), np.uint8), np.zeros((3, 0), np.uint8), "no label column"),
        (np.zeros((3, 28, 40), np.uint8), np.zeros((3, 1), np.uint8), "28x40, not square"),
        # was "zero-size array to reduction operation minimum which has no identity", no file
        (np.zeros((3, 0, 0), np.uint8), np.zeros((3, 1), np.uint8), "0x0 pixels"),
        (np.linspace(0, 2, 3 * 28 * 28).reshape(3, 28, 28), np.zeros((3, 1)), r"in \[0, 2\]"),
        (np.full((3, 28, 28), np.nan, np.float32), np.zeros((3, 1)), "NaN or Inf"),
        (np.full((3, 28, 28), 300, np.int64), np.zeros((3, 1)), "expected 0..255"),
        (np.zeros((3, 28, 28), np.uint8), np.full((3, 1), np.nan), "labels has NaN"),
        (np.zeros((3, 28, 28), np.uint8), np.array([["a"], ["b"], ["c"]]), "expected integers"),
        (np.zeros((3, 28, 28), np.uint8), np.array(5), "labels is a single value"),
        (np.zeros((3, 28, 28), np.uint8), np.array([[0.7], [1.9], [-0.5]]), "fractional"),
        (np.zeros((3, 28, 28), np.uint8), np.array([[-3], [1], [7]]), r"in \[-3, 7\]"),
        (np.zeros((3, 28, 28), np.uint8), np.array([[2**40], [1], [7]]), r"0\.\.2\*\*31-1"),
    ],
    ids=[
        "empty",
        "no-label-column",
        "non-square",
        "0x0-images",
        "float>1",
        "nan",
        "int>255",
        "nan-labels",
        "text-labels",
        "0-d-labels",
        "fractional-labels",
        "negative-labels",
        "labels>=2**31",
    ],
)
def test_malformed_arrays_are_one_line_data_errors(tmp_path, images, labels, problem):
    path = _arrays_npz(tmp_path / "odd.npz", images, labels)
    with pytest.raises(DataError, match=problem) as error:
        medmnist.load_medmnist(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_member_that_is_no_npy_array_is_a_one_line_data_error(tmp_path):
    # numpy hands such a member back as bytes: "'bytes' object has no attribute 'ndim'".
    path = tmp_path / "foreign.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("train_images", b"not an array")
        labels = io.BytesIO()
        np.save(labels, np.zeros((2, 1), np.uint8))
        archive.writestr("train_labels.npy", labels.getvalue())
    with pytest.raises(DataError) as error:
        medmnist.load_medmnist(path)
    assert str(error.value) == (
        f"{path}: train_images is not a .npy array (a damaged or foreign .npz)"
    )


def test_npy_renamed_npz_is_a_one_line_data_error(tmp_path):
    path = tmp_path / "renamed.npz"
    with open(path, "wb") as file:  # np.save would append .npy to the name
        np.save(file, np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError, match="single .npy array") as error:
        medmnist.load_medmnist(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_upper_case_npz_suffix_is_a_path_and_names_keep_their_case(tmp_path, medmnist_npz):
    path = medmnist_npz(tmp_path / "scans.npz").rename(tmp_path / "Scans.NPZ")
    data = medmnist.load_medmnist(path)
    assert data["images"].shape == (10, 28, 28, 1) and data["name"] == "Scans"
    with pytest.raises(DataError, match="medmnist:MnistMNIST: unknown dataset"):
        medmnist.load_medmnist("MnistMNIST")


def test_multi_label_and_whole_float_labels_load(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    multi = np.array([[0, 1, 1], [1, 0, 0], [0, 0, 1]], np.uint8)  # ChestMNIST-style (n, k)
    data = medmnist.load_medmnist(_arrays_npz(tmp_path / "multi.npz", images, multi))
    np.testing.assert_array_equal(data["labels"], [0, 1, 0])
    whole = np.array([[0.0], [1.0], [6.0]])
    data = medmnist.load_medmnist(_arrays_npz(tmp_path / "whole.npz", images, whole))
    np.testing.assert_array_equal(data["labels"], [0, 1, 6])


def test_float_images_in_unit_range_are_not_divided_again(tmp_path):
    pixels = np.random.default_rng(1).random((4, 28, 28)).astype(np.float32)
    path = _arrays_npz(tmp_path / "floats.npz", pixels, np.zeros((4, 1)))
    data = medmnist.load_medmnist(path, value_range=(-1.0, 1.0))
    np.testing.assert_allclose(data["images"][..., 0], pixels * 2 - 1, atol=1e-6)


def _cached_official(medmnist_npz, monkeypatch, tmp_path, name="breastmnist", size=28):
    import keras

    def no_network(**kwargs):
        raise AssertionError("a cached file must not be downloaded again")

    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(keras.utils, "get_file", no_network)
    local = tmp_path / "cache" / "medmnist" / medmnist.file_name(name, size)
    local.parent.mkdir(parents=True)
    return medmnist_npz(local)


def _expect_md5(monkeypatch, name, size, md5):
    md5s, label_names, terms = medmnist.DATASETS[name]
    monkeypatch.setitem(medmnist.DATASETS, name, ({**md5s, size: md5}, label_names, terms))


def test_cached_file_md5_is_checked_locally(monkeypatch, tmp_path, medmnist_npz):
    import hashlib

    local = _cached_official(medmnist_npz, monkeypatch, tmp_path)
    _expect_md5(monkeypatch, "breastmnist", 28, hashlib.md5(local.read_bytes()).hexdigest())
    data = medmnist.load_medmnist("breastmnist")
    assert data["images"].shape == (10, 28, 28, 1)
    # The same file, altered after it was cached (here: the published md5 no longer matches).
    _expect_md5(monkeypatch, "breastmnist", 28, "0" * 32)
    with pytest.raises(DataError, match="md5 mismatch.*delete it") as error:
        medmnist.load_medmnist("breastmnist")
    assert str(local) in str(error.value) and "\n" not in str(error.value)


def test_cached_file_changed_on_disk_is_rehashed(monkeypatch, tmp_path, medmnist_npz):
    import hashlib

    local = _cached_official(medmnist_npz, monkeypatch, tmp_path, size=64)
    _expect_md5(monkeypatch, "breastmnist", 64, hashlib.md5(local.read_bytes()).hexdigest())
    medmnist.load_medmnist("breastmnist", size=64)
    medmnist_npz(local, seed=1)  # a different file now sits where the verified one was
    with pytest.raises(DataError, match="md5 mismatch"):
        medmnist.load_medmnist("breastmnist", size=64)


def _one_line(error):
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("read", [medmnist.read_npz, medmnist.load_medmnist])
def test_an_unknown_split_is_refused_naming_the_file_and_the_splits(tmp_path, medmnist_npz, read):
    path = medmnist_npz(tmp_path / "toymnist.npz")
    with pytest.raises(DataError, match="unknown split") as error:
        read(path, split="validation")
    assert _one_line(error) == (
        f"{path}: unknown split 'validation'; choose from ('train', 'val', 'test')"
    )


@pytest.mark.parametrize("read", [medmnist.read_npz, medmnist.load_medmnist])
def test_a_missing_npz_is_file_not_found(tmp_path, read):
    path = tmp_path / "absent" / "toymnist.npz"
    with pytest.raises(DataError, match="file not found") as error:
        read(path, split="test")
    assert _one_line(error) == f"{path}: file not found"


@pytest.mark.parametrize(
    "shape",
    [(3, 28, 28, 2), (3, 28, 28, 4), (3, 28, 28, 3, 1), (3, 28)],
    ids=["2-channels", "4-channels", "5-d", "2-d"],
)
def test_images_with_a_wrong_channel_count_or_rank_are_refused(tmp_path, shape):
    path = _arrays_npz(tmp_path / "odd.npz", np.zeros(shape, np.uint8), np.zeros((3, 1)))
    with pytest.raises(DataError, match="expected") as error:
        medmnist.load_medmnist(path)
    assert _one_line(error) == (
        f"{path}: train_images has shape {shape}, expected (n, s, s), (n, s, s, 1) or (n, s, s, 3)"
    )
    # One grey channel and three colour channels are the two that load.
    for channels in (1, 3):
        good = _arrays_npz(
            tmp_path / f"good{channels}.npz",
            np.random.default_rng(0).integers(0, 256, (3, 28, 28, channels), dtype=np.uint8),
            np.zeros((3, 1)),
        )
        assert medmnist.load_medmnist(good)["images"].shape == (3, 28, 28, channels)


@pytest.mark.parametrize(
    ("split", "index", "channels", "value", "dtype", "shown"),
    [
        ("train", 2, None, 0, np.uint8, "0"),  # float 0..1 images cast to uint8: all 0
        ("test", 0, 3, (255, 0, 0), np.uint8, "(255, 0, 0)"),  # one colour everywhere
        ("val", 1, 1, 1.0, np.float32, "1"),
    ],
    ids=["grey-black", "rgb-red", "float-white"],
)
def test_a_split_of_constant_images_is_refused_and_a_few_among_others_load_with_a_warning(
    tmp_path, medmnist_npz, caplog, split, index, channels, value, dtype, shown
):
    # Images whose pixels are all one value carry nothing to learn; a split of them (float 0..1
    # images cast to uint8: all 0) loaded as blank images, while a NIfTI volume of one value is
    # refused. A few blank frames among real images are data, not a bug: they load, named.
    path = medmnist_npz(tmp_path / "flat.npz", channels=channels)
    arrays = dict(np.load(path))
    images = arrays[f"{split}_images"].astype(dtype)
    if dtype == np.float32:
        images = images / np.float32(255.0)
    original = images.copy()
    images[index] = value
    images[index + 1] = value  # a second one: the first is named, and how many there are
    arrays[f"{split}_images"] = images
    np.savez(path, **arrays)
    with caplog.at_level("WARNING", logger="medgen_tf.data.medmnist"):
        assert len(medmnist.load_medmnist(path, split=split)["images"]) == len(images)
    assert caplog.messages == [
        f"{path}: {split}_images[{index}] is constant (every pixel is {shown}), as are 2 of "
        f"{len(images)} images; they are kept"
    ]
    images[:] = value
    arrays[f"{split}_images"] = images
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="constant") as error:
        medmnist.load_medmnist(path, split=split)
    assert _one_line(error) == (
        f"{path}: all {len(images)} {split}_images are constant ({split}_images[0]: every pixel "
        f"is {shown}); nothing to learn from them"
    )
    # One pixel of another value is enough to load without a warning.
    images[:] = original
    caplog.clear()
    arrays[f"{split}_images"] = images
    np.savez(path, **arrays)
    with caplog.at_level("WARNING", logger="medgen_tf.data.medmnist"):
        assert len(medmnist.load_medmnist(path, split=split)["images"]) == len(images)
    assert caplog.messages == []


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        # Mapped 0..255 onto (1, -1), the images loaded inverted; onto (0, 0), all one value.
        ({"value_range": (1.0, -1.0)}, r"value_range must be \(low, high\) with high > low"),
        ({"value_range": (0.0, 0.0)}, r"value_range must be \(low, high\) with high > low"),
        # Onto (0, inf), NaN and inf images (0 * inf); onto (-inf, 1), NaN and -inf ones.
        ({"value_range": (0.0, float("inf"))}, r"value_range must be .* got \(0.0, inf\)"),
        ({"value_range": (float("-inf"), 1.0)}, r"value_range must be .* got \(-inf, 1.0\)"),
        # TensorFlow's "output dimensions must be positive" traceback, naming no file.
        ({"image_size": 0}, "image_size must be at least 1, got 0"),
        ({"image_size": -3}, "image_size must be at least 1, got -3"),
    ],
    ids=[
        "reversed-range",
        "empty-range",
        "infinite-high",
        "infinite-low",
        "size-0",
        "size-negative",
    ],
)
def test_a_value_range_or_image_size_that_cannot_hold_images_is_refused(
    tmp_path, medmnist_npz, option, problem
):
    path = medmnist_npz(tmp_path / "toymnist.npz")
    with pytest.raises(ValueError, match=problem) as error:
        medmnist.load_medmnist(path, **option)
    assert _one_line(error).startswith(f"{path}: ")
