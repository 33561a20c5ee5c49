"""The TFDS catalog path: mock data, the offline source probe, TFDS's own errors."""

import functools
import json
import logging
import queue
import re
import socket
import sys
import threading
import types

import numpy as np
import pytest

from medgen_tf import DataError
from medgen_tf.data import tfds_catalog


def test_tfds_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(DataError, match=r"medgen-tf\[tfds\]"):
        tfds_catalog.load_tfds("pneumonia_mnist")


class _Connection:
    def close(self):
        pass


def _no_proxy(monkeypatch):
    # no_proxy too: set alone (common on campus machines) it once made the probe stand aside,
    # and the offline test then fell into TFDS's minutes of retries.
    for variable in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.upper(), raising=False)


def test_tfds_offline_is_one_line_at_once_naming_the_unreachable_source(
    monkeypatch, tmp_path, caplog
):
    pytest.importorskip("tensorflow_datasets")
    _no_proxy(monkeypatch)
    tried = []

    def unreachable(address, timeout):
        tried.append(address)
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    absl_level = logging.getLogger("absl").level
    with caplog.at_level(logging.WARNING), pytest.raises(DataError) as caught:
        tfds_catalog.load_tfds("pneumonia_mnist", data_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"tfds:pneumonia_mnist: not prepared in {tmp_path} and")
    # The one line is all a user sees: TFDS's warning about the unprepared folder is held back,
    # and the folder named is where a copied downloads/ folder would be looked for.
    assert "\n" not in message and f"folder to {tmp_path} (its downloads/" in message
    assert [record.getMessage() for record in caplog.records if record.name == "absl"] == []
    assert logging.getLogger("absl").level == absl_level
    assert "zenodo.org: Name or service not known" in message and "TFDS_DATA_DIR" in message
    # Every host of the dataset's URLs was tried, each once (not TFDS's ten retries).
    assert tried == [("zenodo.org", 443)]
    with pytest.raises(DataError, match="tfds:no_such_dataset_xyz: not a TFDS dataset"):
        tfds_catalog.load_tfds("no_such_dataset_xyz", data_dir=tmp_path)


def test_tfds_behind_a_proxy_is_not_probed_directly(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    _no_proxy(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")

    def unreachable(address, timeout):
        raise OSError("a direct connection fails behind a proxy")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    with tfds.testing.mock_data(num_examples=2):
        assert tfds_catalog.load_tfds("pneumonia_mnist", image_size=32)["images"].shape[0] == 2


def test_tfds_catalog_dataset_with_mock_data(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    # mock_data leaves the dataset unprepared, so the source check runs: let it connect.
    _no_proxy(monkeypatch)
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: _Connection())
    with tfds.testing.mock_data(num_examples=6):
        data = tfds_catalog.load_tfds("pneumonia_mnist", split="train", image_size=32)
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
def test_tfds_source_already_downloaded_prepares_offline(
    monkeypatch, tmp_path, layout, medmnist_npz
):
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
    medmnist_npz(source, counts=(5, 3, 4))
    if layout == "manual":
        # TFDS checks a manually placed file against the registered checksum: register this one.
        url_info = tfds.core.download.checksums.compute_url_info(source)
        builder_class = type(tfds.builder("pneumonia_mnist", data_dir=tmp_path))
        monkeypatch.setattr(builder_class, "url_infos", {PNEUMONIA_URL: url_info})
    else:
        resource.get_info_path(source).write_text(json.dumps({"urls": [PNEUMONIA_URL]}))
    data = tfds_catalog.load_tfds("pneumonia_mnist", data_dir=tmp_path, image_size=32)
    assert data["images"].shape == (5, 32, 32, 1)


def test_tfds_sources_count_as_local_only_when_each_is_complete(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.core.download import resource

    url_info = types.SimpleNamespace(checksum="0" * 64, filename=None)
    first, second = "https://example.org/a.npz", "https://example.org/b.npz"
    builder = types.SimpleNamespace(
        MANUAL_DOWNLOAD_INSTRUCTIONS=None,
        data_dir_root=tmp_path,
        name="toy",
        url_infos={first: url_info, f"{first}?download=1": url_info, second: url_info},
    )
    folder = tmp_path / "downloads" / "toy"
    folder.mkdir(parents=True)

    def download(url, complete=True):
        path = folder / resource.get_dl_fname(url, url_info.checksum)
        path.write_bytes(b"data")
        if complete:
            resource.get_info_path(path).write_text(json.dumps({"urls": [url]}))

    assert not tfds_catalog._source_already_local(builder)
    download(f"{first}?download=1")  # one source, under its alternate URL
    # The other source is still missing: offline, TFDS would retry it for minutes.
    assert not tfds_catalog._source_already_local(builder)
    download(second, complete=False)  # cut short: no .INFO beside it, TFDS downloads it again
    assert not tfds_catalog._source_already_local(builder)
    download(second)
    assert tfds_catalog._source_already_local(builder)


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
        tfds_catalog._check_sources_reachable("pneumonia_mnist", {url: None}, "/nowhere")
    assert "\n" not in str(caught.value)


class _FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _WaitsOnTheFakeClock(queue.Queue):
    """The probe's queue of answers, its waits timed on the fake clock: a wait lasts until the
    next scripted answer (``arrivals``, fake seconds), else its whole timeout, then is empty."""

    def __init__(self, clock, arrivals, waits):
        super().__init__()
        self.clock, self.arrivals, self.waits = clock, sorted(arrivals), waits

    def get(self, block=True, timeout=None):
        self.waits.append(timeout)
        assert block and timeout is not None, "the probe waits for an answer with no deadline"
        if self.arrivals and self.arrivals[0] <= self.clock.now + timeout:
            self.clock.now = max(self.clock.now, self.arrivals.pop(0))
            return super().get(timeout=60)  # not a bound: the answering thread puts it at once
        self.clock.now += timeout
        raise queue.Empty


@pytest.mark.parametrize(
    ("stall", "answer"),
    [("name-resolution", "Name or service not known"), ("each-address", "Connection refused")],
)
def test_tfds_probe_is_bounded_by_one_deadline(monkeypatch, stall, answer):
    # Name resolution has no timeout, and create_connection gives each address of a host the
    # full timeout: two hosts of four dropped addresses took eight timeouts. Timed on a fake
    # clock, which moves only while the caller waits: for an answer (the queue), or for an
    # attempt it makes itself (its thread), which then costs what that attempt would.
    _no_proxy(monkeypatch)
    clock, waits, release = _FakeClock(), [], threading.Event()
    caller = threading.current_thread()
    # a.example answers at 0.4 s; b and c never do within the call.
    arrivals = [0.4]

    def stalled(cost, error):
        if threading.current_thread() is caller:
            clock.now += cost
        else:
            release.wait(60)  # left behind by the probe until the test ends
        raise error

    if stall == "name-resolution":

        def lookup(host, *args, **kwargs):
            if host == "a.example":
                raise socket.gaierror(-2, "Name or service not known")
            # no timeout of its own: a silent nameserver, then the next one, and so on
            stalled(10.0, socket.gaierror(-3, "Temporary failure in name resolution"))

        monkeypatch.setattr(socket, "getaddrinfo", lookup)
    else:

        def connect(address, timeout):
            if address[0] == "a.example":
                raise ConnectionRefusedError(111, "Connection refused")
            stalled(4 * timeout, TimeoutError("timed out"))  # four addresses dropped

        monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.setattr(
        tfds_catalog,
        "queue",
        types.SimpleNamespace(
            Queue=lambda: _WaitsOnTheFakeClock(clock, arrivals, waits), Empty=queue.Empty
        ),
    )
    monkeypatch.setattr(
        tfds_catalog,
        "_unreachable_problem",
        functools.partial(tfds_catalog._unreachable_problem, clock=clock),
    )
    sources = {f"https://{host}.example/1.npz": None for host in ("a", "b", "c")}
    try:
        with pytest.raises(DataError) as caught:
            tfds_catalog._check_sources_reachable("x", sources, "/nowhere", timeout_seconds=0.5)
        waited = clock.now
    finally:
        release.set()  # let the attempts left behind finish
    # One deadline for all: the answer at 0.4 s, then the 0.1 s left, and the call returns
    # 0.5 s after it started, with the two silent hosts still trying.
    assert waits == pytest.approx([0.5, 0.1]) and waited == pytest.approx(0.5)
    message = str(caught.value)
    assert (
        f"(a.example: {answer}; b.example: no answer within 0.5 s; "
        "c.example: no answer within 0.5 s)" in message
    )


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
        tfds_catalog.load_tfds(name, data_dir=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"tfds:{name}: ") and re.search(reason, message)
    assert "\n" not in message
    assert "not a TFDS dataset" not in message and "Failed to construct" not in message
    # Only a name TFDS has not registered is called that.
    with pytest.raises(DataError, match=r"^tfds:no_such_dataset_xyz/cfg: not a TFDS dataset"):
        tfds_catalog.load_tfds("no_such_dataset_xyz/cfg", data_dir=tmp_path)


@pytest.mark.parametrize("name", ["malaria", "cats_vs_dogs"])
def test_tfds_images_of_different_sizes_load_padded_to_squares(monkeypatch, name):
    # malaria (in TFDS_MEDICAL) and cats_vs_dogs hold images of many sizes: np.stack of them
    # was a ValueError traceback "all input arrays must have the same shape".
    tfds = pytest.importorskip("tensorflow_datasets")
    _no_proxy(monkeypatch)
    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: _Connection())
    with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
        data = tfds_catalog.load_tfds(name, image_size=16)
    assert data["images"].shape == (4, 16, 16, 3) and data["labels"].shape == (4,)
    assert data["images"].min() >= -1.0 and data["images"].max() <= 1.0


def test_a_non_square_image_is_padded_with_black_to_keep_its_aspect():
    wide = np.full((1, 2, 4, 1), 255, np.uint8)
    (square,) = tfds_catalog.square_resized(wide, 4)
    np.testing.assert_array_equal(square[..., 0], [[0] * 4, [255] * 4, [255] * 4, [0] * 4])


@functools.cache
def _toy_builder_class(dataset_name):
    """A TFDS builder registered as ``dataset_name`` (once per process) that writes the
    ``examples`` set on the class, (image, label) pairs, as the ``features`` set on it."""
    tfds = pytest.importorskip("tensorflow_datasets")

    class Toy(tfds.core.GeneratorBasedBuilder):
        name = dataset_name
        VERSION = tfds.core.Version("1.0.0")
        examples, features = [], None

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=self.features)

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for index, (image, label) in enumerate(self.examples):
                yield index, {"image": image, "label": label}

    return Toy


def _prepared_toy(data_dir, name, image_feature, label_feature, examples):
    tfds = pytest.importorskip("tensorflow_datasets")
    builder_class = _toy_builder_class(name)
    builder_class.examples = examples
    builder_class.features = tfds.features.FeaturesDict(
        {"image": image_feature, "label": label_feature}
    )
    builder_class(data_dir=data_dir).download_and_prepare()


def test_uint16_images_are_scaled_by_their_full_range(tmp_path):
    # 12-bit CT/MR is often stored as uint16: divided by 255 like uint8, 65535 became 513.
    tfds = pytest.importorskip("tensorflow_datasets")
    levels = np.array([[0, 4095, 30000, 65535]] * 4, np.uint16)
    images = [np.roll(levels, shift, axis=1)[..., None] for shift in range(3)]
    _prepared_toy(
        tmp_path,
        "medgen_toy_uint16",
        tfds.features.Image(shape=(4, 4, 1), dtype=np.uint16),
        tfds.features.ClassLabel(names=["a", "b"]),
        [(image, index % 2) for index, image in enumerate(images)],
    )
    data = tfds_catalog.load_tfds("medgen_toy_uint16", data_dir=tmp_path, image_size=4)
    # Which example each is (TFDS may shuffle them): image k has 65535 in column (3 + k) % 4.
    order = (np.argmax(data["images"][:, 0, :, 0], axis=1) - 3) % 4
    assert sorted(order) == [0, 1, 2]
    expected = -1.0 + np.stack(images)[order].astype(np.float64) / 65535.0 * 2.0
    np.testing.assert_allclose(data["images"], expected, atol=1e-6)
    np.testing.assert_array_equal(data["labels"], order % 2)
    low, high = tfds_catalog.load_tfds(
        "medgen_toy_uint16", data_dir=tmp_path, image_size=4, value_range=(0.0, 1.0)
    )["images"][0, 0, [0, 3], 0]
    assert (low, high) == (0.0, 1.0)


def test_float_images_of_no_known_scale_are_one_line_errors(tmp_path):
    # Divided by 255 like uint8, float images in [0, 1] loaded as one flat grey.
    tfds = pytest.importorskip("tensorflow_datasets")
    ramp = np.linspace(0.0, 1.0, 16, dtype=np.float32).reshape(4, 4, 1)
    _prepared_toy(
        tmp_path,
        "medgen_toy_float",
        tfds.features.Image(shape=(4, 4, 1), dtype=np.float32),
        tfds.features.ClassLabel(names=["a"]),
        [(ramp, 0), (ramp[::-1], 0)],
    )
    with pytest.raises(DataError) as caught:
        tfds_catalog.load_tfds("medgen_toy_float", data_dir=tmp_path, image_size=4)
    assert str(caught.value) == (
        "tfds:medgen_toy_float: images have dtype float32, expected uint8 or uint16"
    )


def test_text_labels_become_class_indices_in_the_order_of_their_names(tmp_path):
    # A Text label feature (no ClassLabel names) was int(b"tumour"): a ValueError traceback.
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(0)
    names = ["tumour", "normal", "tumour", "œdème", "cyst"]
    images = rng.integers(0, 256, (len(names), 4, 4, 1), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(len(names))  # which example it is: TFDS shuffles them
    _prepared_toy(
        tmp_path,
        "medgen_toy_text_labels",
        tfds.features.Image(shape=(4, 4, 1)),
        tfds.features.Text(),
        list(zip(images, names, strict=True)),
    )
    data = tfds_catalog.load_tfds(
        "medgen_toy_text_labels", data_dir=tmp_path, image_size=4, value_range=(0.0, 255.0)
    )
    assert data["label_names"] == ["cyst", "normal", "tumour", "œdème"]
    assert data["labels"].dtype == np.int32
    order = np.rint(data["images"][:, 0, 0, 0]).astype(int)
    assert sorted(order) == list(range(len(names)))
    np.testing.assert_array_equal(data["labels"], np.array([2, 1, 2, 3, 0])[order])


@pytest.mark.parametrize(
    ("option", "problem"),
    [
        # Mapped 0..255 onto (1, -1), the images loaded inverted; onto (0, 0), all one value.
        ({"value_range": (1.0, -1.0)}, r"value_range must be \(low, high\) with high > low"),
        ({"value_range": (0.0, 0.0)}, r"value_range must be \(low, high\) with high > low"),
        # Onto (0, inf), NaN and inf images (0 * inf); onto (-inf, 1), NaN and -inf ones.
        ({"value_range": (0.0, float("inf"))}, r"value_range must be .* got \(0.0, inf\)"),
        ({"value_range": (float("-inf"), 1.0)}, r"value_range must be .* got \(-inf, 1.0\)"),
        # TensorFlow's "output dimensions must be positive" traceback, after reading the split.
        ({"image_size": 0}, "image_size must be at least 1, got 0"),
    ],
    ids=["reversed-range", "empty-range", "infinite-high", "infinite-low", "size-0"],
)
def test_a_value_range_or_image_size_that_cannot_hold_images_is_refused(tmp_path, option, problem):
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(0)
    _prepared_toy(
        tmp_path,
        "medgen_toy_options",
        tfds.features.Image(shape=(4, 4, 1)),
        tfds.features.ClassLabel(names=["a"]),
        [(rng.integers(0, 256, (4, 4, 1), dtype=np.uint8), 0) for _ in range(2)],
    )
    with pytest.raises(ValueError, match=problem) as error:
        tfds_catalog.load_tfds(
            "medgen_toy_options", data_dir=tmp_path, **{"image_size": 4, **option}
        )
    message = str(error.value)
    assert message.startswith("tfds:medgen_toy_options: ") and "\n" not in message


@pytest.mark.parametrize(
    ("kind", "labels", "problem"),
    [
        # int(array([0, 1])): a TypeError traceback.
        ("pairs", [[0, 1], [1, 1]], r"labels of shape \(2,\), expected one class index"),
        # int(0.7) is 0: a regression target became classes in silence.
        ("fractions", [0.7, 1.0], "fractional labels, expected class indices"),
        # TFDS's "no label" (-1, diabetic_retinopathy_detection's test split) loaded as is.
        ("unlabelled", [-1, 1], r"labels in \[-1, 1\], expected class indices 0..2\*\*31-1"),
        # The int32 cast wrapped 2**32 to 0, and made inf into -2**31.
        ("wrapping", [2**32, 1], r"labels in \[1, 4.29497e\+09\], expected class indices"),
        ("infinite", [np.inf, 1.0], "NaN or Inf labels"),
    ],
)
def test_labels_that_are_no_class_indices_are_one_line_errors(tmp_path, kind, labels, problem):
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(0)
    name = f"medgen_toy_{kind}"
    feature = {
        "pairs": tfds.features.Tensor(shape=(2,), dtype=np.int64),
        "unlabelled": tfds.features.ClassLabel(names=["a", "b"]),
        "wrapping": tfds.features.Scalar(dtype=np.int64),
    }.get(kind, tfds.features.Scalar(dtype=np.float32))
    _prepared_toy(
        tmp_path,
        name,
        tfds.features.Image(shape=(4, 4, 1)),
        feature,
        [(rng.integers(0, 256, (4, 4, 1), dtype=np.uint8), label) for label in labels],
    )
    with pytest.raises(DataError, match=problem) as error:
        tfds_catalog.load_tfds(name, data_dir=tmp_path, image_size=4)
    message = str(error.value)
    assert message.startswith(f"tfds:{name}: split 'train' has ") and "\n" not in message


def test_a_dataset_without_images_is_refused_before_it_is_prepared(tmp_path):
    # Checked after tfds.load, a text corpus was downloaded and prepared in full first.
    tfds = pytest.importorskip("tensorflow_datasets")

    class TextOnly(tfds.core.GeneratorBasedBuilder):
        name = "medgen_toy_text_only"
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict({"text": tfds.features.Text()})
            )

        def _split_generators(self, dl_manager):
            raise AssertionError("the dataset was prepared before it was refused")

        def _generate_examples(self):
            raise AssertionError("the dataset was prepared before it was refused")

    with pytest.raises(DataError) as error:
        tfds_catalog.load_tfds("medgen_toy_text_only", data_dir=tmp_path, image_size=4)
    assert str(error.value) == (
        "tfds:medgen_toy_text_only: no 'image' feature; not an image dataset"
    )
    assert not TextOnly(data_dir=tmp_path).is_prepared()


@pytest.mark.parametrize("max_examples", [0, -1])
def test_max_examples_below_one_is_refused(tmp_path, max_examples):
    # take(-1) is the whole split: max_examples=-1 loaded every example; 0 called the split
    # empty.
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(0)
    _prepared_toy(
        tmp_path,
        "medgen_toy_take",
        tfds.features.Image(shape=(4, 4, 1)),
        tfds.features.ClassLabel(names=["a"]),
        [(rng.integers(0, 256, (4, 4, 1), dtype=np.uint8), 0) for _ in range(3)],
    )
    with pytest.raises(ValueError) as error:
        tfds_catalog.load_tfds(
            "medgen_toy_take", data_dir=tmp_path, image_size=4, max_examples=max_examples
        )
    assert str(error.value) == (
        f"tfds:medgen_toy_take: max_examples must be at least 1 (or None), got {max_examples}"
    )
    data = tfds_catalog.load_tfds(
        "medgen_toy_take", data_dir=tmp_path, image_size=4, max_examples=2
    )
    assert len(data["images"]) == 2


def test_constant_images_are_treated_as_in_medmnist_files(tmp_path, caplog):
    # A split of images that are each one value is refused, as from the .npz
    # (medmnist.check_not_constant), but loaded here as blank images; one among others loads,
    # with a warning naming it.
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 6, 4, 3), dtype=np.uint8)  # not square: checked as read
    images[:, 0, 0, 0] = np.arange(4)  # which example it is: TFDS may shuffle them
    images[2, 1:] = images[2, 0, 0]  # pixel (0, 0) of it is (2, g, b): one colour everywhere
    images[2, 0] = images[2, 0, 0]
    _prepared_toy(
        tmp_path,
        "medgen_toy_constant",
        tfds.features.Image(shape=(6, 4, 3)),
        tfds.features.ClassLabel(names=["a"]),
        [(image, 0) for image in images],
    )
    # Where the constant one is among what TFDS gives back.
    dataset = tfds.load("medgen_toy_constant", split="train", data_dir=tmp_path)
    order = [int(example["image"][0, 0, 0]) for example in dataset.as_numpy_iterator()]
    colour = ", ".join(str(value) for value in images[2, 0, 0])
    with caplog.at_level("WARNING", logger="medgen_tf.data.tfds_catalog"):
        data = tfds_catalog.load_tfds("medgen_toy_constant", data_dir=tmp_path, image_size=4)
    assert len(data["images"]) == 4
    assert caplog.messages == [
        f"tfds:medgen_toy_constant: split 'train' image {order.index(2)} is constant (every "
        f"pixel is ({colour})), as are 1 of 4 images; they are kept"
    ]
    blank = np.zeros((3, 4, 4, 1), np.uint8)
    blank[1] = 7
    _prepared_toy(
        tmp_path,
        "medgen_toy_blank",
        tfds.features.Image(shape=(4, 4, 1)),
        tfds.features.ClassLabel(names=["a"]),
        [(image, 0) for image in blank],
    )
    with pytest.raises(DataError) as error:
        tfds_catalog.load_tfds("medgen_toy_blank", data_dir=tmp_path, image_size=4)
    first = tfds.load("medgen_toy_blank", split="train", data_dir=tmp_path)
    shown = int(next(first.as_numpy_iterator())["image"][0, 0, 0])
    assert str(error.value) == (
        "tfds:medgen_toy_blank: split 'train': all 3 images are constant (image 0: every pixel "
        f"is {shown}); nothing to learn from them"
    )


def test_images_of_other_than_one_or_three_channels_are_refused_as_in_medmnist_files(tmp_path):
    # RGBA loaded, though the package's image grids (viz.image_grid: sample grids, previews)
    # refuse 4 channels and a MedMNIST file of them is refused.
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(0)
    _prepared_toy(
        tmp_path,
        "medgen_toy_rgba",
        tfds.features.Image(shape=(4, 4, 4)),
        tfds.features.ClassLabel(names=["a"]),
        [(rng.integers(0, 256, (4, 4, 4), dtype=np.uint8), 0) for _ in range(2)],
    )
    with pytest.raises(DataError) as error:
        tfds_catalog.load_tfds("medgen_toy_rgba", data_dir=tmp_path, image_size=4)
    assert str(error.value) == (
        "tfds:medgen_toy_rgba: split 'train' has images of 4 channels, expected 1 (grey) or 3 (RGB)"
    )
