"""The data-spec grammar, two-domain loading and the preview grid."""

import re
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from medgen_tf import DataError
from medgen_tf.data import brain_slices, load_domains, load_spec, preview_grid, subject_volumes
from medgen_tf.data.spec import parse_spec


def _npz(path, channels=None, count=8):
    rng = np.random.default_rng(0)
    shape = (count, 28, 28) if channels is None else (count, 28, 28, channels)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = np.arange(count).reshape(-1, 1) % 2
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("spec", ["", "mri:t1", "nifti:", "medmnist", "tfds:"])
def test_unknown_or_incomplete_specs(spec):
    with pytest.raises(DataError, match="data spec") as error:
        parse_spec(spec)
    assert "\n" not in str(error.value)


def test_brain_pools_contrasts_with_contrast_labels():
    data = load_spec("brain", image_size=32, split="val", num_subjects=8)
    assert data["label_names"] == ["T1w", "T2w", "PD"]
    counts = np.bincount(data["labels"])
    assert len(counts) == 3 and counts[0] == counts[1] == counts[2]
    assert data["images"].shape == (len(data["labels"]), 32, 32, 1)
    assert data["images"].dtype == np.float32 and data["name"] == "brain"
    # Equal counts cannot catch images and labels out of step: each label must pick exactly the
    # slices of its contrast, as the cohort itself gives them.
    cohort = brain_slices(("t1", "t2", "pd"), split="val", image_size=32, num_subjects=8)
    for label, contrast in enumerate(("t1", "t2", "pd")):
        np.testing.assert_array_equal(data["images"][data["labels"] == label], cohort[contrast])


def test_brain_single_contrast_has_region_labels():
    data = load_spec(
        "brain:t2", image_size=32, split="test", value_range=(0.0, 1.0), num_subjects=8
    )
    assert data["label_names"] == ["inferior", "middle", "superior"]
    assert set(data["labels"]) == {0, 1, 2}
    assert data["images"].min() >= 0.0
    # Each label is the tercile of the slice's axial position (0 inferior, 1 superior), for the
    # same slices, in the same order, as the cohort returns them.
    cohort = brain_slices(
        ("t2",),
        split="test",
        image_size=32,
        value_range=(0.0, 1.0),
        num_subjects=8,
        return_labels=True,
    )
    np.testing.assert_array_equal(data["images"], cohort["t2"])
    np.testing.assert_array_equal(data["labels"], np.digitize(cohort["position"], [1 / 3, 2 / 3]))
    with pytest.raises(DataError, match="unknown contrast"):
        load_spec("brain:flair")


def test_nifti_and_medmnist_specs(tmp_path):
    volumes = subject_volumes(2, contrasts=("pd",), voxel_size=4.0)
    folder = tmp_path / "pd"
    folder.mkdir()
    nib.save(nib.Nifti1Image(volumes["pd"], volumes["affine"]), str(folder / "s2.nii.gz"))
    data = load_spec(f"nifti:{folder}", image_size=28)
    assert data["images"].shape[1:] == (28, 28, 1) and data["label_names"] == ["s2.nii.gz"]
    with pytest.raises(DataError, match="does not exist"):
        load_spec(f"nifti:{tmp_path / 'absent'}")

    path = _npz(tmp_path / "toy.npz")
    data = load_spec(f"medmnist:{path}", image_size=32, split="test")
    assert data["images"].shape == (8, 32, 32, 1) and set(data["labels"]) == {0, 1}
    with pytest.raises(DataError, match="size must be one of"):
        load_spec("medmnist:pneumoniamnist@100")
    # A size on a file used to be dropped without a word.
    with pytest.raises(DataError, match="own size") as error:
        load_spec(f"medmnist:{path}@64")
    assert "\n" not in str(error.value)
    # A folder with an "@" in its name: cut at the first "@", the path was "a size".
    at_folder = tmp_path / "run@2"
    at_folder.mkdir()
    data = load_spec(f"medmnist:{_npz(at_folder / 'toy.npz')}", image_size=32, split="test")
    assert data["images"].shape == (8, 32, 32, 1)
    # An "@" with no size meant 28 without a word.
    with pytest.raises(DataError, match="no size after '@'"):
        load_spec("medmnist:pneumoniamnist@")


def test_a_medmnist_name_with_or_without_a_size_loads_that_file(monkeypatch):
    # The documented NAME[@SIZE]: a name alone is the 28 px file (once read as a size).
    from medgen_tf.data import medmnist

    asked = []

    def load(name, split, size, image_size, value_range):
        asked.append((name, size))
        return {"images": np.zeros((1, 28, 28, 1), np.float32), "labels": None}

    monkeypatch.setattr(medmnist, "load_medmnist", load)
    for spec in ("medmnist:PneumoniaMNIST", "medmnist:pneumoniamnist@64"):
        assert load_spec(spec)["name"] == spec
    assert asked == [("PneumoniaMNIST", 28), ("pneumoniamnist", 64)]


def test_domains_of_different_sizes_are_refused(tmp_path):
    grey, rgb = _npz(tmp_path / "grey.npz"), _npz(tmp_path / "rgb.npz", channels=3)
    with pytest.raises(DataError, match="image shapes differ") as error:
        load_domains(f"medmnist:{grey}", f"medmnist:{rgb}", image_size=28)
    assert "\n" not in str(error.value)
    small = _npz(tmp_path / "small.npz", count=5)
    domain_a, domain_b = load_domains(f"medmnist:{grey}", f"medmnist:{small}", image_size=28)
    assert len(domain_a["images"]) == 8 and len(domain_b["images"]) == 5
    with pytest.raises(DataError, match="paired domains need the same count"):
        load_domains(f"medmnist:{grey}", f"medmnist:{small}", image_size=28, paired=True)
    t1, t2 = load_domains(
        "brain:t1", "brain:t2", image_size=32, split="val", paired=True, num_subjects=8
    )
    assert t1["images"].shape == t2["images"].shape


@pytest.mark.parametrize("spec_b", ["brain:t2", "brain"])
def test_unpaired_brain_domains_share_no_subject(spec_b):
    # paired=False gave two brain contrasts of the same subjects, row for row: "unpaired"
    # domains that were perfectly paired.
    paired_t1, paired_t2 = load_domains(
        "brain:t1", "brain:t2", image_size=32, split="val", paired=True, num_subjects=16
    )
    domain_a, domain_b = load_domains(
        "brain:t1", spec_b, image_size=32, split="val", num_subjects=16
    )
    subjects = np.unique(paired_t1["subject"])
    assert len(subjects) == 2
    assert set(domain_a["subject"]) == {subjects[0]} and set(domain_b["subject"]) == {subjects[1]}
    np.testing.assert_array_equal(
        domain_a["images"], paired_t1["images"][paired_t1["subject"] == subjects[0]]
    )
    if spec_b == "brain:t2":
        rows = paired_t2["subject"] == subjects[1]
        np.testing.assert_array_equal(domain_b["images"], paired_t2["images"][rows])
    for domain in (domain_a, domain_b):
        assert len(domain["labels"]) == len(domain["images"]) == len(domain["subject"])


@pytest.fixture
def drawn_rows(monkeypatch):
    """The rows (and options) that preview_grid hands to viz.compare_rows, one entry per call;
    the figure is still drawn and saved."""
    from medgen_tf import viz

    calls = []
    original = viz.compare_rows

    def recording(rows, *args, **kwargs):
        calls.append(({label: np.asarray(images) for label, images in rows.items()}, kwargs))
        return original(rows, *args, **kwargs)

    monkeypatch.setattr(viz, "compare_rows", recording)
    return calls


def _rows_of(data, label):
    return data["images"][data["labels"] == label]


def test_preview_grid_of_the_cohort_shows_each_subjects_three_contrasts_in_columns(
    tmp_path, drawn_rows
):
    out = preview_grid(
        "brain", tmp_path / "grid.png", image_size=32, num_columns=4, num_subjects=16
    )
    assert out == tmp_path / "grid.png" and out.read_bytes()[:4] == b"\x89PNG"
    ((rows, options),) = drawn_rows
    # One row per contrast, in this order, one column per subject.
    assert list(rows) == ["T1w (real template)", "T2w (sim.)", "PD (sim.)"]
    assert all(images.shape == (4, 32, 32, 1) for images in rows.values())
    assert options["value_range"] == (-1.0, 1.0)
    data = brain_slices(
        ("t1", "t2", "pd"), split="train", image_size=32, num_subjects=16, return_labels=True
    )
    subjects = []
    for column in range(4):
        (index,) = np.flatnonzero(
            (data["t1"] == rows["T1w (real template)"][column]).all(axis=(1, 2, 3))
        )
        # The three contrasts of a column are one slice of one subject, from its middle third.
        np.testing.assert_array_equal(rows["T2w (sim.)"][column], data["t2"][index])
        np.testing.assert_array_equal(rows["PD (sim.)"][column], data["pd"][index])
        assert 1 / 3 <= data["position"][index] <= 2 / 3
        subjects.append(int(data["subject"][index]))
    assert len(set(subjects)) == 4
    assert options["title"] == f"brain cohort: subjects {', '.join(map(str, subjects))}"


def _ball_file(path, centre):
    grid = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij")).astype(np.float32)
    distance = np.sqrt(sum((grid[axis] - centre[axis]) ** 2 for axis in range(3)))
    # Intensity ramps along y and z, so no two axial slices are the same image.
    volume = np.where(distance < 5, 2.0 + grid[1] / 16 + grid[2] / 8, 0.0).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(path))


def test_preview_grid_of_other_specs_has_one_row_per_label_named_up_to_six(tmp_path, drawn_rows):
    # NIfTI: a label per file, each row named after its file and holding that file's slices.
    folder = tmp_path / "scans"
    folder.mkdir()
    _ball_file(folder / "b.nii.gz", (8, 8, 8))
    _ball_file(folder / "a.nii", (6, 9, 7))
    preview_grid(f"nifti:{folder}", tmp_path / "nifti.png", image_size=16, num_columns=3)
    data = load_spec(f"nifti:{folder}", image_size=16)
    rows, options = drawn_rows[-1]
    assert list(rows) == ["a.nii", "b.nii.gz"]
    for label, name in enumerate(("a.nii", "b.nii.gz")):
        members = _rows_of(data, label)
        assert len(rows[name]) == 3
        shown = [np.flatnonzero((members == image).all(axis=(1, 2, 3))) for image in rows[name]]
        assert all(len(found) == 1 for found in shown) and len({int(f[0]) for f in shown}) == 3
    assert options["title"] == f"nifti:{folder}: {len(data['images'])} images, 16x16"

    # A .npz (no label names) with 8 classes of 2 images: rows "0" to "5" only, each holding
    # both images of its class.
    rng = np.random.default_rng(1)
    eight = tmp_path / "eight.npz"
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, (16, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(16) % 8).reshape(-1, 1)
    np.savez(eight, **arrays)
    preview_grid(f"medmnist:{eight}", tmp_path / "eight.png", image_size=28)
    data = load_spec(f"medmnist:{eight}", image_size=28)
    rows, _ = drawn_rows[-1]
    assert list(rows) == [str(label) for label in range(6)]
    for label in range(6):
        np.testing.assert_array_equal(rows[str(label)], _rows_of(data, label))

    # One class only: a single row of num_columns distinct images.
    for split in ("train", "val", "test"):
        arrays[f"{split}_labels"] = np.zeros((16, 1), np.int64)
    one = tmp_path / "one.npz"
    np.savez(one, **arrays)
    out = preview_grid(f"medmnist:{one}", tmp_path / "sub" / "one.png", image_size=28)
    assert out.read_bytes()[:4] == b"\x89PNG"
    data = load_spec(f"medmnist:{one}", image_size=28)
    rows, _ = drawn_rows[-1]
    assert list(rows) == ["images"] and rows["images"].shape == (6, 28, 28, 1)
    shown = [
        np.flatnonzero((data["images"] == image).all(axis=(1, 2, 3))) for image in rows["images"]
    ]
    assert all(len(found) == 1 for found in shown) and len({int(f[0]) for f in shown}) == 6


def _four_d(path, count=3):
    """Volumes that differ: ball v is shifted by 3 v voxels along x, so slices tell them apart."""
    grid = np.stack(np.meshgrid(*[np.arange(16)] * 3, indexing="ij")).astype(np.float32)
    volumes = []
    for index in range(count):
        distance = np.sqrt((grid[0] - 5 - 3 * index) ** 2 + (grid[1] - 8) ** 2 + (grid[2] - 8) ** 2)
        volumes.append(np.where(distance < 5, 2.0 + grid[1] / 16, 0.0))
    nib.save(nib.Nifti1Image(np.stack(volumes, axis=-1).astype(np.float32), np.eye(4)), str(path))
    return path


@pytest.mark.parametrize("spec, size", [("brain", 4), ("brain:t2", 7)])
def test_a_brain_image_size_below_the_cohort_minimum_is_one_line_naming_the_spec(
    tmp_path, spec, size
):
    expected = (
        f"data spec {spec!r}: image size {size} is too small; the brain cohort needs at least "
        "8 pixels"
    )
    with pytest.raises(DataError) as error:
        load_spec(spec, image_size=size)
    assert str(error.value) == expected
    with pytest.raises(DataError) as error:
        preview_grid(spec, tmp_path / "grid.png", image_size=size)
    assert str(error.value) == expected
    # The CLI accepts --image-size 4 for a preview, so it is this check that keeps the
    # traceback away from the terminal.
    result = subprocess.run(
        [sys.executable, "-m", "medgen_tf.cli", "data", "preview", "--data", spec]
        + ["--image-size", str(size), "--out", str(tmp_path / "cli.png")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("medgen-tf:")]
    assert errors == [f"medgen-tf: error: {expected}"]
    assert not list(tmp_path.iterdir())


def test_nifti_spec_picks_a_volume_of_a_4d_file(tmp_path):
    from medgen_tf.data import load_nifti_slices

    path = _four_d(tmp_path / "bold.nii.gz")
    with pytest.raises(DataError, match="3 volumes") as error:
        load_spec(f"nifti:{path}", image_size=16)
    assert f"nifti:{path}#N" in str(error.value) and "\n" not in str(error.value)
    first = load_spec(f"nifti:{path}#0", image_size=16)
    last = load_spec(f"nifti:{path}#2", image_size=16)
    np.testing.assert_array_equal(
        last["images"], load_nifti_slices(path, image_size=16, volume_index=2)
    )
    assert first["label_names"] == ["bold.nii.gz"] and first["name"] == f"nifti:{path}#0"
    assert not np.array_equal(first["images"], last["images"])
    with pytest.raises(DataError, match="out of range for 3 volumes"):
        load_spec(f"nifti:{path}#3", image_size=16)
    with pytest.raises(DataError, match="whole number"):
        load_spec(f"nifti:{path}#last", image_size=16)


@pytest.mark.parametrize(
    "make_spec",
    [
        lambda path: f"nifti:{path}.nii.gz",
        lambda path: f"nifti:{path}.nii.gz#0",
        lambda path: f"nifti:{path}/",
        lambda path: f"medmnist:{path}.npz",
        lambda path: f"{path}.nii.gz",  # a bare path: no kind prefix
    ],
    ids=["nifti", "nifti#0", "nifti-folder", "medmnist", "bare"],
)
def test_missing_path_says_it_does_not_exist(tmp_path, make_spec):
    missing = tmp_path / "missing"
    with pytest.raises(DataError, match="does not exist") as error:
        load_spec(make_spec(missing))
    assert str(missing) in str(error.value) and "\n" not in str(error.value)


def test_bare_existing_path_names_the_kind_to_use(tmp_path):
    path = _npz(tmp_path / "toy.npz")
    with pytest.raises(DataError, match=f"medmnist:{path}"):
        parse_spec(str(path))


@pytest.mark.parametrize("spec", ["nifit:/data/scan.nii.gz", "medmnst:data/x.npz", "brian:t1"])
def test_a_mistyped_kind_is_named_as_such_not_as_a_missing_file(spec):
    with pytest.raises(DataError, match="unknown kind") as error:
        parse_spec(spec)
    assert "does not exist" not in str(error.value)


def _paired_subject(folder, shift):
    """T1-like and T2-like volumes of one subject on one grid; the T2's head lies ``shift``
    slices higher, so slices chosen per volume would start at different positions."""
    folder.mkdir(exist_ok=True)
    texture = np.random.default_rng(0).uniform(0.0, 50.0, (8, 8, 8)).astype(np.float32)
    t1 = np.zeros((16, 16, 16), np.float32)
    t2 = np.zeros_like(t1)
    t1[4:12, 4:12, 3:11] = 100.0 + texture
    t2[4:12, 4:12, 3 + shift : 11 + shift] = 300.0 - texture
    nib.save(nib.Nifti1Image(t1, np.eye(4)), str(folder / "t1.nii.gz"))
    nib.save(nib.Nifti1Image(t2, np.eye(4)), str(folder / "t2.nii.gz"))
    return folder / "t1.nii.gz", folder / "t2.nii.gz"


def test_paired_nifti_domains_are_cut_on_the_same_slices(tmp_path):
    t1, t2 = _paired_subject(tmp_path / "subject", shift=1)
    domain_a, domain_b = load_domains(f"nifti:{t1}", f"nifti:{t2}", image_size=16, paired=True)
    assert domain_a["images"].shape == domain_b["images"].shape
    # Row by row, both are the same axial position: both are blank, or both hold the head.
    head_a = (domain_a["images"] > -1.0).any(axis=(1, 2, 3))
    head_b = (domain_b["images"] > -1.0).any(axis=(1, 2, 3))
    assert head_a[:-1].all() and head_b[1:].all()  # the union of the two heads: 9 slices
    assert len(head_a) == 9 and not head_a[-1] and not head_b[0]
    # Unpaired, each volume keeps its own slices: 8 each, one position apart.
    unpaired_a, unpaired_b = load_domains(f"nifti:{t1}", f"nifti:{t2}", image_size=16)
    assert len(unpaired_a["images"]) == len(unpaired_b["images"]) == 8

    moved = tmp_path / "moved.nii.gz"
    nib.save(
        nib.Nifti1Image(np.asarray(nib.load(str(t2)).dataobj), np.diag([2.0, 1, 1, 1])), str(moved)
    )
    with pytest.raises(DataError, match="not on the voxel grid of its pair") as error:
        load_domains(f"nifti:{t1}", f"nifti:{moved}", image_size=16, paired=True)
    assert "\n" not in str(error.value) and str(moved) in str(error.value)
    folder = tmp_path / "two"
    _paired_subject(folder, shift=0)
    with pytest.raises(DataError, match="1 vs 2 NIfTI files"):
        load_domains(f"nifti:{t1}", f"nifti:{folder}", image_size=16, paired=True)


def test_a_tilde_in_a_spec_path_is_the_home_folder(tmp_path, monkeypatch):
    # A shell expands ~ only at the start of a word, so "--data nifti:~/scans" reached the spec
    # as written and was refused with "~/scans: does not exist" although the folder existed.
    monkeypatch.setenv("HOME", str(tmp_path))
    t1, t2 = _paired_subject(tmp_path / "subject", shift=0)
    four_d = _four_d(tmp_path / "bold.nii.gz")
    npz = _npz(tmp_path / "toy.npz")
    for tilde, written in (
        ("nifti:~/subject", f"nifti:{t1.parent}"),
        ("nifti:~/subject/t2.nii.gz", f"nifti:{t2}"),
        ("nifti:~/bold.nii.gz#1", f"nifti:{four_d}#1"),
        ("medmnist:~/toy.npz", f"medmnist:{npz}"),
    ):
        expected = load_spec(written, image_size=16, split="test")
        data = load_spec(tilde, image_size=16, split="test")
        np.testing.assert_array_equal(data["images"], expected["images"])
        assert data["label_names"] == expected["label_names"] and data["name"] == tilde
    domain_a, domain_b = load_domains(
        "nifti:~/subject/t1.nii.gz", "nifti:~/subject/t2.nii.gz", image_size=16, paired=True
    )
    assert domain_a["images"].shape == domain_b["images"].shape
    with pytest.raises(DataError, match=re.escape(f"a path needs its kind, e.g. medmnist:{npz}")):
        parse_spec("~/toy.npz")
    with pytest.raises(DataError, match="does not exist") as error:
        load_spec("nifti:~/absent")
    assert str(error.value).startswith(f"{tmp_path / 'absent'}: does not exist")
