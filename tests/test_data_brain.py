"""The simulated brain cohort: physics, splits, determinism, cache and data integrity."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from medgen_tf import DataError, config
from medgen_tf.data import brain, brain_slices, subject_volumes

SMALL = {"num_subjects": 5, "image_size": 32, "slices_per_subject": 6}


def _tissue_means(volumes, contrast):
    return {
        tissue: float(volumes[contrast][volumes[tissue] > 0.85].mean())
        for tissue in ("wm", "gm", "csf")
    }


def test_pure_tissue_signals_follow_mr_physics():
    t1 = brain.tissue_signals("t1")
    t2 = brain.tissue_signals("t2")
    pd = brain.tissue_signals("pd")
    assert t1["wm"] > t1["gm"] > t1["csf"]
    assert t2["csf"] > t2["gm"] > t2["wm"]
    assert pd["csf"] > pd["gm"] > pd["wm"]
    # Spin-echo equation at a known point: TR = T1, TE = T2 gives PD (1 - 1/e) / e.
    value = brain.spin_echo_signal(1000.0, 100.0, 0.8, 1000.0, 100.0)
    assert value == pytest.approx(0.8 * (1 - np.exp(-1)) * np.exp(-1))


@pytest.mark.parametrize("t1_source", ["template", "simulated"])
def test_subject_contrast_ordering_by_tissue(t1_source):
    volumes = subject_volumes(1, seed=0, voxel_size=3.0, return_tissue=True, t1_source=t1_source)
    t1, t2 = _tissue_means(volumes, "t1"), _tissue_means(volumes, "t2")
    assert t1["wm"] > t1["gm"] > t1["csf"]
    assert t2["csf"] > t2["gm"] > t2["wm"]
    assert volumes["t1"].shape == volumes["mask"].shape == (66, 78, 63)
    assert np.allclose(np.diag(volumes["affine"])[:3], 3.0)


def test_slices_shapes_ranges_and_labels():
    data = brain_slices(
        ("t1", "t2", "pd"), split="all", value_range=(-1.0, 1.0), return_labels=True, **SMALL
    )
    count = 5 * 6
    for contrast in ("t1", "t2", "pd"):
        assert data[contrast].shape == (count, 32, 32, 1)
        assert data[contrast].dtype == np.float32
        assert data[contrast].min() >= -1.0 and data[contrast].max() <= 1.0
    assert data["subject"].dtype == np.int32 and set(data["subject"]) == set(range(5))
    assert data["position"].min() == 0.0 and data["position"].max() == 1.0
    assert data["mask"].shape == (count, 32, 32, 1)
    # Paired anatomy: every contrast is bright inside the shared brain mask, dark outside.
    inside = data["mask"][..., 0] > 0.5
    for contrast in ("t1", "t2", "pd"):
        assert data[contrast][..., 0][inside].mean() > data[contrast][..., 0][~inside].mean() + 0.5
    unit = brain_slices(("t1",), split="all", value_range=(0.0, 1.0), **SMALL)["t1"]
    np.testing.assert_allclose(unit * 2 - 1, data["t1"], atol=1e-5)


def test_splits_are_subject_disjoint():
    assert [len(v) for k, v in brain.split_subjects(32).items() if k != "all"] == [24, 4, 4]
    subjects = {
        split: set(
            brain_slices(
                ("t1",),
                split=split,
                return_labels=True,
                num_subjects=8,
                image_size=32,
                slices_per_subject=3,
            )["subject"]
        )
        for split in ("train", "val", "test")
    }
    assert not subjects["train"] & subjects["val"]
    assert not subjects["train"] & subjects["test"]
    assert not subjects["val"] & subjects["test"]
    assert subjects["train"] | subjects["val"] | subjects["test"] == set(range(8))


def test_deterministic_by_seed():
    first = brain_slices(("t2",), split="all", use_cache=False, **SMALL)["t2"]
    again = brain_slices(("t2",), split="all", use_cache=False, **SMALL)["t2"]
    other = brain_slices(("t2",), split="all", use_cache=False, seed=1, **SMALL)["t2"]
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).mean() > 0.01
    # Subject i does not depend on the cohort size.
    bigger = brain_slices(
        ("t2",), split="all", use_cache=False, num_subjects=6, image_size=32, slices_per_subject=6
    )["t2"]
    np.testing.assert_array_equal(first, bigger[: len(first)])


def test_subjects_differ_in_anatomy():
    data = brain_slices(("t1",), split="all", return_labels=True, **SMALL)
    masks = data["mask"][..., 0]
    first, second = masks[data["subject"] == 0], masks[data["subject"] == 1]
    assert np.mean(first != second) > 0.01


def _six_slices(image_size):
    return brain_slices(
        ("t1", "t2"),
        split="all",
        image_size=image_size,
        num_subjects=3,
        slices_per_subject=2,
        use_cache=False,
    )


@pytest.mark.parametrize("image_size", [28, 32, 64, 128, 256])
def test_image_sizes(image_size):
    data, reference = _six_slices(image_size), _six_slices(64)
    assert data["t1"].shape == data["t2"].shape == (6, image_size, image_size, 1)

    # The same slices of the same subjects at every size, not just arrays of the right shape
    # (a blank, flipped, shuffled or wrong-contrast resize passed the shape check): shrunk to
    # 28 px, each slice matches the 64 px one (correlation 0.98 or more when written).
    def shrunk(images):
        return tf.image.resize(images, (28, 28), method="area").numpy().reshape(len(images), -1)

    for contrast in ("t1", "t2"):
        images = data[contrast]
        assert np.isfinite(images).all()
        assert images.min() == pytest.approx(-1.0, abs=0.01) and images.max() > 0.99
        pairs = zip(shrunk(images), shrunk(reference[contrast]), strict=True)
        correlations = [np.corrcoef(a, b)[0, 1] for a, b in pairs]
        assert min(correlations) > 0.95, (contrast, correlations)


def test_cache_is_reused_and_rebuilt_when_corrupt(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(tmp_path / "cache"))
    # The simulation is deterministic, so equal arrays alone cannot tell a cache hit from a
    # rebuild: count the builds.
    builds = []
    real_build = brain.build_cohort

    def counting_build(*args, **kwargs):
        builds.append(args)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(brain, "build_cohort", counting_build)
    first = brain_slices(("t1", "t2"), split="all", **SMALL)
    assert len(builds) == 1
    files = list((tmp_path / "cache").glob("brain_cohort_*.npz"))
    assert len(files) == 1
    assert not list((tmp_path / "cache").glob("*.tmp"))
    cached = brain_slices(("t1", "t2"), split="all", **SMALL)
    assert len(builds) == 1, "the second load rebuilt the cohort instead of reading the cache"
    np.testing.assert_allclose(cached["t1"], first["t1"], atol=1e-4)

    files[0].write_bytes(b"not an npz at all")
    with caplog.at_level("WARNING"):
        rebuilt = brain_slices(("t1", "t2"), split="all", **SMALL)
    assert len(builds) == 2
    # One line, and no advice to load pickles from a damaged file.
    assert "not a .npz archive); rebuilding" in caplog.text and "allow_pickle" not in caplog.text
    np.testing.assert_allclose(rebuilt["t2"], first["t2"], atol=1e-4)
    with np.load(files[0], allow_pickle=False) as archive:
        assert "cache_key" in archive

    # A well-formed archive whose key does not match (stale parameters) is rebuilt too.
    with np.load(files[0], allow_pickle=False) as archive:
        contents = {name: archive[name] for name in archive.files}
    contents["cache_key"] = np.array("stale")
    contents["t1"] = np.zeros_like(contents["t1"])
    np.savez(files[0], **contents)
    again = brain_slices(("t1",), split="all", **SMALL)
    assert len(builds) == 3
    np.testing.assert_allclose(again["t1"], first["t1"], atol=1e-4)


def test_a_cache_that_cannot_be_written_costs_a_rebuild_not_the_load(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(blocker / "cache"))
    with caplog.at_level("WARNING", logger="medgen_tf.data.brain"):
        slices = brain_slices(("t1",), split="all", **SMALL)
    assert len(slices["t1"]) > 0 and "not written" in caplog.text


def test_the_cache_file_gets_the_usual_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(tmp_path / "cache"))
    umask = os.umask(0o022)
    try:
        brain_slices(("t1",), split="all", **SMALL)
    finally:
        os.umask(umask)
    (cached,) = (tmp_path / "cache").glob("brain_cohort_*.npz")
    assert cached.stat().st_mode & 0o777 == 0o644  # readable by the other users of a shared cache


def test_tampered_template_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "data"
    shutil.copytree(config.data_dir(), copy)
    path = copy / brain.TEMPLATE_FILES["gm"][0]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    monkeypatch.setenv("MEDGEN_DATA_DIR", str(copy))
    with pytest.raises(DataError, match="sha256 mismatch") as error:
        brain_slices(("t1",), **SMALL)
    assert path.name in str(error.value) and "\n" not in str(error.value)


def test_missing_template_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDGEN_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="missing"):
        brain.load_template()


def test_bad_arguments():
    with pytest.raises(DataError, match="unknown contrast"):
        brain_slices(("t3",), **SMALL)
    with pytest.raises(DataError, match="unknown split"):
        brain_slices(("t1",), split="validation", **SMALL)
    with pytest.raises(ValueError, match="num_subjects"):
        brain_slices(("t1",), num_subjects=2, image_size=32)
    # Before any cohort is built: a reversed or empty range, or an infinite bound (every
    # slice 0, or NaN), cannot hold the slices.
    for value_range in [(1.0, -1.0), (0.0, 0.0), (0.0, float("inf")), (float("-inf"), 1.0)]:
        with pytest.raises(ValueError, match="value_range must be") as error:
            brain_slices(("t1",), value_range=value_range, **SMALL)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"num_subjects": 2}, r"num_subjects must be a whole number >= 3 \(one per split\), got 2"),
        ({"num_subjects": 0}, "num_subjects must be a whole number >= 3"),
        ({"num_subjects": -1}, "num_subjects must be a whole number >= 3"),
        ({"num_subjects": 4.0}, "num_subjects must be a whole number >= 3 .*got 4.0"),
        ({"slices_per_subject": 0}, "slices_per_subject must be a whole number >= 1, got 0"),
        ({"slices_per_subject": -2}, "slices_per_subject must be a whole number >= 1, got -2"),
        ({"slices_per_subject": 2.5}, "slices_per_subject must be a whole number >= 1"),
    ],
)
def test_bad_counts_are_refused_before_anything_is_built_or_cached(
    tmp_path, monkeypatch, arguments, message
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(cache))
    size = {"num_subjects": 4, "image_size": 16, "slices_per_subject": 2, **arguments}
    with pytest.raises(ValueError, match=message) as error:
        brain_slices(("t1",), split="all", **size)
    assert "\n" not in str(error.value)
    assert not cache.exists() or not any(cache.iterdir())


@pytest.mark.parametrize("function", [brain.load_cohort, brain.build_cohort])
def test_the_cohort_builders_refuse_bad_counts_by_name(tmp_path, monkeypatch, function):
    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="num_subjects must be a whole number >= 1, got 0"):
        function(num_subjects=0, image_size=16, slices_per_subject=2)
    with pytest.raises(ValueError, match="slices_per_subject must be a whole number >= 1"):
        function(num_subjects=1, image_size=16, slices_per_subject=-2)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize("function", [brain.load_cohort, brain.build_cohort])
def test_the_cohort_builders_refuse_a_fractional_size_or_a_negative_seed(
    tmp_path, monkeypatch, function
):
    # image_size 16.5 made 17 x 17 slices in silence; seed -1 was numpy's "expected
    # non-negative integer", naming no argument.
    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(tmp_path / "cache"))
    small = {"num_subjects": 1, "image_size": 16, "slices_per_subject": 2}
    with pytest.raises(ValueError, match=r"image_size must be a whole number >= 8, got 16.5"):
        function(**{**small, "image_size": 16.5})
    with pytest.raises(ValueError, match="seed must be a whole number >= 0, got -1"):
        function(**small, seed=-1)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_numpy_integers_build_and_cache_the_same_cohort(tmp_path, monkeypatch):
    # They passed the checks, then json.dumps (the cache key) refused them: a TypeError.
    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(tmp_path / "cache"))
    small = {"num_subjects": 1, "image_size": 16, "slices_per_subject": 2, "seed": 3}
    cohort = brain.load_cohort(**{name: np.int64(value) for name, value in small.items()})
    assert len(list((tmp_path / "cache").iterdir())) == 1
    again = brain.load_cohort(**small)  # the same key: read from the cache
    assert len(list((tmp_path / "cache").iterdir())) == 1
    np.testing.assert_array_equal(cohort["t1"], again["t1"])


@pytest.mark.parametrize("voxel_size", [0, 0.0, -2.0, float("nan"), True])
def test_a_voxel_size_that_is_not_a_positive_number_is_refused(voxel_size):
    for function in (subject_volumes, brain.subject_bias_field):
        with pytest.raises(ValueError, match="voxel_size must be a number of mm > 0"):
            function(voxel_size=voxel_size)


def test_bias_field_is_smooth_and_near_one():
    field = brain.subject_bias_field(3, seed=0, voxel_size=6.0)
    assert field.shape == (33, 39, 32)
    assert 0.6 < field.min() < 1.0 < field.max() < 1.6
    # Slowly varying: neighbouring voxels 6 mm apart differ by a few percent at most.
    assert np.abs(np.diff(field, axis=0)).max() < 0.05


@pytest.mark.parametrize("xdg", ["", "relative/cache"])
def test_an_empty_or_relative_xdg_cache_home_is_ignored(monkeypatch, xdg):
    monkeypatch.delenv("MEDGEN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert config.cache_dir() == Path.home() / ".cache" / "medgen_tf"
    monkeypatch.setenv("XDG_CACHE_HOME", "/srv/cache")
    assert str(config.cache_dir()) == "/srv/cache/medgen_tf"


@pytest.mark.parametrize(
    "protocols, message",
    [
        ({"t2": (float("nan"), 100.0)}, r"protocols\['t2'\] must have a finite TR > 0"),
        ({"t2": (0.0, 100.0)}, r"protocols\['t2'\] must have a finite TR > 0"),
        ({"t2": (4000.0, -100.0)}, r"protocols\['t2'\] must have a finite TR > 0 and TE >= 0"),
        ({"t2": 4000.0}, r"protocols\['t2'\] must be \(TR ms, TE ms\)"),
        ({"flair": (9000.0, 100.0)}, "protocols: unknown contrast 'flair'"),
        ([("t2", (4000.0, 100.0))], "protocols must be a dict"),
    ],
    ids=["nan", "zero-tr", "negative-te", "one-number", "unknown-contrast", "not-a-dict"],
)
def test_a_protocol_that_is_no_spin_echo_is_refused_before_anything_is_cached(
    tmp_path, monkeypatch, protocols, message
):
    # A NaN or TR of 0 rendered every image as background (-1 everywhere), a negative TE was
    # accepted, and load_cohort wrote that cohort to the cache.
    cache = tmp_path / "cache"
    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(cache))
    size = {"num_subjects": 4, "image_size": 16, "slices_per_subject": 2}
    for call in (
        lambda: brain.load_cohort(protocols=protocols, **size),
        lambda: brain.build_cohort(protocols=protocols, **size),
        lambda: subject_volumes(protocols=protocols, voxel_size=8.0),
        lambda: brain.tissue_signals("t2", protocols),
    ):
        with pytest.raises(ValueError, match=message) as error:
            call()
        assert "\n" not in str(error.value)
    assert not cache.exists() or not any(cache.iterdir())
    # Whole numbers and lists are protocols too, and the same as the defaults' floats.
    assert brain.tissue_signals("t2", {"t2": [4000, 100]}) == brain.tissue_signals("t2")


def test_editing_the_template_a_caller_got_changes_no_later_cohort():
    # load_template shared its arrays with the in-process cache: thresholding the GM map a
    # learner got changed every cohort built later, and the disk cache written from it.
    size = {"num_subjects": 3, "image_size": 16, "slices_per_subject": 2, "seed": 4}
    before = brain.build_cohort(**size)
    maps, affine = brain.load_template()
    maps["gm"][maps["gm"] < 0.5] = 0.0
    maps["csf"] *= 0
    affine[0, 3] += 10
    after = brain.build_cohort(**size)
    for name in brain.CONTRASTS:
        np.testing.assert_array_equal(before[name], after[name])
    fresh, fresh_affine = brain.load_template()
    assert fresh["csf"].max() > 0 and not np.array_equal(fresh_affine, affine)
