"""MedMNIST .npz layout, checked downloads (wiring only: no network here) and the tfds path."""

import json
import re
import socket
import sys
import threading
import time

import numpy as np
import pytest

from medgen_tf import DataError
from medgen_tf.data import medmnist


def _write_npz(path, size=28, channels=None, counts=(10, 4, 6), drop=(), seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), counts, strict=True):
        shape = (count, size, size) if channels is None else (count, size, size, channels)
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, size=(count, 1)).astype(np.uint8)
    for key in drop:
        arrays.pop(key)
    np.savez(path, **arrays)
    return path


def test_grey_npz_loads_in_value_range(tmp_path):
    path = _write_npz(tmp_path / "toymnist.npz")
    data = medmnist.load_medmnist(path, split="train", value_range=(-1.0, 1.0))
    assert data["images"].shape == (10, 28, 28, 1) and data["images"].dtype == np.float32
    assert data["images"].min() >= -1.0 and data["images"].max() <= 1.0
    assert data["labels"].shape == (10,) and data["labels"].dtype == np.int32
    with np.load(path) as archive:
        expected = archive["train_images"][..., None] / 255.0 * 2 - 1
    np.testing.assert_allclose(data["images"], expected, atol=1e-6)
    test = medmnist.load_medmnist(path, split="test", value_range=(0.0, 1.0))
    assert len(test["images"]) == 6 and test["images"].min() >= 0.0


def test_rgb_npz_resized(tmp_path):
    path = _write_npz(tmp_path / "colour.npz", size=64, channels=3)
    data = medmnist.load_medmnist(path, split="val", image_size=32)
    assert data["images"].shape == (4, 32, 32, 3)


def test_missing_keys_raise(tmp_path):
    path = _write_npz(tmp_path / "broken.npz", drop=("val_labels",))
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


def test_not_an_npz_and_mismatched_lengths(tmp_path):
    bogus = tmp_path / "bogus.npz"
    bogus.write_bytes(b"plain text")
    with pytest.raises(DataError, match="not a readable .npz"):
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


def test_download_is_md5_checked_and_licence_shown(tmp_path, monkeypatch, capsys):
    import keras

    calls = {}

    def fake_get_file(fname, origin, file_hash, hash_algorithm, cache_dir, cache_subdir):
        calls.update(fname=fname, origin=origin, file_hash=file_hash, algorithm=hash_algorithm)
        return str(_write_npz(tmp_path / fname))

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


def test_failed_download_is_a_data_error(monkeypatch, tmp_path):
    import keras

    def offline(**kwargs):
        raise OSError("network unreachable")

    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(DataError, match="download failed"):
        medmnist.load_medmnist("breastmnist")


def test_tfds_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DataError, match=r"medgen-tf\[tfds\]"):
        medmnist.load_tfds("pneumonia_mnist")


class _Connection:
    def close(self):
        pass


def _no_proxy(monkeypatch):
    # no_proxy too: set alone (common on campus machines) it once made the probe stand aside,
    # and the offline test then fell into TFDS's minutes of retries.
    for variable in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.upper(), raising=False)


def test_tfds_offline_is_one_line_at_once_naming_the_unreachable_source(monkeypatch, tmp_path):
    pytest.importorskip("tensorflow_datasets")
    _no_proxy(monkeypatch)
    tried = []

    def unreachable(address, timeout):
        tried.append(address)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with pytest.raises(DataError) as caught:
        medmnist.load_tfds("pneumonia_mnist", data_dir=tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("tfds:pneumonia_mnist: not prepared in")
    assert "zenodo.org: Name or service not known" in message and "TFDS_DATA_DIR" in message
    # Every host of the dataset's URLs was tried, each once (not TFDS's ten retries).
    assert tried == [("zenodo.org", 443)]
    with pytest.raises(DataError, match="tfds:no_such_dataset_xyz: not a TFDS dataset"):
        medmnist.load_tfds("no_such_dataset_xyz", data_dir=tmp_path)


def test_tfds_behind_a_proxy_is_not_probed_directly(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    _no_proxy(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")

    def unreachable(address, timeout):
        raise OSError("a direct connection fails behind a proxy")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with tfds.testing.mock_data(num_examples=2):
        assert medmnist.load_tfds("pneumonia_mnist", image_size=32)["images"].shape[0] == 2


def test_tfds_catalog_dataset_with_mock_data(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    # mock_data leaves the dataset unprepared, so the source check runs: let it connect.
    _no_proxy(monkeypatch)
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: _Connection())
    with tfds.testing.mock_data(num_examples=6):
        data = medmnist.load_tfds("pneumonia_mnist", split="train", image_size=32)
    assert data["images"].shape == (6, 32, 32, 1)
    assert data["images"].min() >= -1.0 and data["images"].max() <= 1.0
    assert data["labels"].shape == (6,) and set(data["labels"]) <= {0, 1}
    assert [name.lower() for name in data["label_names"]] == ["normal", "pneumonia"]


PNEUMONIA_URL = "https://zenodo.org/records/10519652/files/pneumoniamnist.npz"


def _offline(monkeypatch):
    _no_proxy(monkeypatch)

    def unreachable(address, timeout):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)


@pytest.mark.parametrize("layout", ["dataset-folder", "legacy-folder", "manual"])
def test_tfds_source_already_downloaded_prepares_offline(monkeypatch, tmp_path, layout):
    # The download finished but preparation did not (killed, disk full), or downloads/ was
    # copied from a connected machine: TFDS prepares it with no network, so no refusal.
    tfds = pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.core.download import resource

    _offline(monkeypatch)
    downloads = tmp_path / "downloads"
    checksum = "e1792d3f03751cb101e99f19a63b3c1941436c988665f47853417b05be250cd8"
    file_name = resource.get_dl_fname(PNEUMONIA_URL, checksum)
    source = {
        "dataset-folder": downloads / "pneumonia_mnist" / file_name,
        "legacy-folder": downloads / file_name,
        "manual": downloads / "manual" / "pneumoniamnist.npz",
    }[layout]
    source.parent.mkdir(parents=True)
    _write_npz(source, counts=(5, 3, 4))
    if layout == "manual":
        # TFDS checks a manually placed file against the registered checksum: register this one.
        url_info = tfds.core.download.checksums.compute_url_info(source)
        builder_class = type(tfds.builder("pneumonia_mnist", data_dir=tmp_path))
        monkeypatch.setattr(builder_class, "url_infos", {PNEUMONIA_URL: url_info})
    else:
        resource.get_info_path(source).write_text(json.dumps({"urls": [PNEUMONIA_URL]}))
    data = medmnist.load_tfds("pneumonia_mnist", data_dir=tmp_path, image_size=32)
    assert data["images"].shape == (5, 32, 32, 1)


@pytest.mark.parametrize(
    ("environment", "url"),
    [
        ({"no_proxy": "localhost,127.0.0.1"}, "https://zenodo.org/x.npz"),
        ({"NO_PROXY": "localhost"}, "https://zenodo.org/x.npz"),
        ({"http_proxy": "http://proxy.example:3128"}, "https://zenodo.org/x.npz"),
        (
            {"https_proxy": "http://proxy.example:3128", "no_proxy": "zenodo.org"},
            "https://zenodo.org/x.npz",
        ),
    ],
    ids=["no_proxy-only", "NO_PROXY-only", "proxy-for-another-scheme", "host-bypasses-proxy"],
)
def test_tfds_probe_still_runs_when_no_proxy_applies(monkeypatch, environment, url):
    # getproxies() reports no_proxy as {"no": ...}; only a proxy the URL would go through
    # makes a direct connection meaningless.
    _offline(monkeypatch)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(DataError, match="zenodo.org: Name or service not known") as caught:
        medmnist._check_sources_reachable("pneumonia_mnist", {url: None}, "/nowhere")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("stall", ["name-resolution", "each-address"])
def test_tfds_probe_is_bounded_by_one_deadline(monkeypatch, stall):
    # Name resolution has no timeout, and create_connection gives each address of a host the
    # full timeout: two hosts of four dropped addresses took eight timeouts.
    _no_proxy(monkeypatch)
    release = threading.Event()

    if stall == "name-resolution":

        def hanging_lookup(*args, **kwargs):
            release.wait(3.0)
            raise socket.gaierror(-3, "Temporary failure in name resolution")

        monkeypatch.setattr(socket, "getaddrinfo", hanging_lookup)
    else:

        def dropped_addresses(address, timeout):
            for _ in range(4):
                if release.wait(timeout):
                    break
            raise TimeoutError("timed out")

        monkeypatch.setattr(socket, "create_connection", dropped_addresses)
    sources = {"https://a.example/1.npz": None, "https://b.example/2.npz": None}
    started = time.monotonic()
    try:
        with pytest.raises(DataError) as caught:
            medmnist._check_sources_reachable("x", sources, "/nowhere", timeout_seconds=0.5)
        elapsed = time.monotonic() - started
    finally:
        release.set()  # let the attempts left behind finish
    assert elapsed < 2.0, f"the probe took {elapsed:.1f} s with timeout_seconds=0.5"
    message = str(caught.value)
    assert "a.example: no answer within 0.5 s; b.example: no answer within 0.5 s" in message


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("pneumonia_mnist:9.9.9", "cannot be loaded at version 9.9.9, only: 1.0.0"),
        ("mnist/no_such_config", "BuilderConfig no_such_config not found"),
        ("imagenet2012_corrupted/fog_9", r"closely match: fog_1:[\d.]+, fog_2:[\d.]+, "),
    ],
    ids=["unknown-version", "unknown-config", "config-suggestions"],
)
def test_tfds_unknown_version_or_config_gives_tfds_reason(tmp_path, name, reason):
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DataError) as caught:
        medmnist.load_tfds(name, data_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"tfds:{name}: ") and re.search(reason, message)
    assert "\n" not in message
    assert "not a TFDS dataset" not in message and "Failed to construct" not in message
    # Only a name TFDS has not registered is called that.
    with pytest.raises(DataError, match=r"^tfds:no_such_dataset_xyz/cfg: not a TFDS dataset"):
        medmnist.load_tfds("no_such_dataset_xyz/cfg", data_dir=tmp_path)


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


def test_npy_renamed_npz_is_a_one_line_data_error(tmp_path):
    path = tmp_path / "renamed.npz"
    with open(path, "wb") as file:  # np.save would append .npy to the name
        np.save(file, np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError, match="single .npy array") as error:
        medmnist.load_medmnist(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_upper_case_npz_suffix_is_a_path_and_names_keep_their_case(tmp_path):
    path = _write_npz(tmp_path / "scans.npz").rename(tmp_path / "Scans.NPZ")
    data = medmnist.load_medmnist(path)
    assert data["images"].shape == (10, 28, 28, 1) and data["name"] == "Scans"
    with pytest.raises(DataError, match="medmnist:MnistMNIST: unknown dataset"):
        medmnist.load_medmnist("MnistMNIST")


def test_multi_label_and_whole_float_labels_load(tmp_path):
    images = np.zeros((3, 28, 28), np.uint8)
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


def _cached_official(monkeypatch, tmp_path, name="breastmnist", size=28):
    import keras

    def no_network(**kwargs):
        raise AssertionError("a cached file must not be downloaded again")

    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(keras.utils, "get_file", no_network)
    local = tmp_path / "cache" / "medmnist" / medmnist.file_name(name, size)
    local.parent.mkdir(parents=True)
    return _write_npz(local)


def _expect_md5(monkeypatch, name, size, md5):
    md5s, label_names, terms = medmnist.DATASETS[name]
    monkeypatch.setitem(medmnist.DATASETS, name, ({**md5s, size: md5}, label_names, terms))


def test_cached_file_md5_is_checked_locally(monkeypatch, tmp_path):
    import hashlib

    local = _cached_official(monkeypatch, tmp_path)
    _expect_md5(monkeypatch, "breastmnist", 28, hashlib.md5(local.read_bytes()).hexdigest())
    data = medmnist.load_medmnist("breastmnist")
    assert data["images"].shape == (10, 28, 28, 1)
    # The same file, altered after it was cached (here: the published md5 no longer matches).
    _expect_md5(monkeypatch, "breastmnist", 28, "0" * 32)
    with pytest.raises(DataError, match="md5 mismatch.*delete it") as error:
        medmnist.load_medmnist("breastmnist")
    assert str(local) in str(error.value) and "\n" not in str(error.value)


def test_cached_file_changed_on_disk_is_rehashed(monkeypatch, tmp_path):
    import hashlib

    local = _cached_official(monkeypatch, tmp_path, size=64)
    _expect_md5(monkeypatch, "breastmnist", 64, hashlib.md5(local.read_bytes()).hexdigest())
    medmnist.load_medmnist("breastmnist", size=64)
    _write_npz(local, seed=1)  # a different file now sits where the verified one was
    with pytest.raises(DataError, match="md5 mismatch"):
        medmnist.load_medmnist("breastmnist", size=64)
