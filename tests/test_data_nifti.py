"""NIfTI loading: canonical orientation, 4-D handling, normalisation, slicing, bad input."""

import gzip
import warnings

import nibabel as nib
import numpy as np
import pytest

from medgen_tf import DataError
from medgen_tf.data import load_nifti_slices, load_volume
from medgen_tf.data.nifti import (
    _subject_keys,
    extract_slices,
    foreground_mask,
    in_plane_spacing,
    list_nifti_files,
    load_paired_nifti_slices,
    millimetre_true_size,
    normalize_intensity,
    pad_to_square,
    paired_nifti_files,
    resize_slices,
    sha256_of,
)


def _volume(shape=(12, 14, 10), seed=0):
    """A blob (foreground) on a zero background with a gradient, so flips are detectable."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    blob = (np.sum(grid**2, axis=0) < 0.7).astype(np.float32)
    return (blob * (2.0 + grid[0] + 0.5 * grid[1]) + 0.01 * rng.random(shape)).astype(np.float32)


def _save(array, path, affine=None):
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


def _one_line_naming(error, path):
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message


def test_load_returns_float32_volume_and_affine(tmp_path):
    array = _volume()
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    volume, loaded_affine = load_volume(_save(array, tmp_path / "a.nii.gz", affine))
    assert volume.dtype == np.float32 and volume.shape == array.shape
    np.testing.assert_allclose(volume, array)
    np.testing.assert_allclose(loaded_affine, affine)


def test_flipped_and_permuted_orientations_load_identically(tmp_path):
    array = _volume()
    reference, _ = load_volume(_save(array, tmp_path / "ras.nii", np.eye(4)))
    # Same anatomy stored left-right flipped (LAS): voxel index i now runs to the Left.
    las_affine = np.diag([-1.0, 1.0, 1.0, 1.0])
    las_affine[0, 3] = array.shape[0] - 1
    flipped, affine = load_volume(_save(array[::-1].copy(), tmp_path / "las.nii", las_affine))
    np.testing.assert_array_equal(flipped, reference)
    assert nib.aff2axcodes(affine) == ("R", "A", "S")
    # Axes stored in the order (z, y, x): a different on-disk layout, same brain.
    permuted_affine = np.zeros((4, 4))
    permuted_affine[0, 2] = permuted_affine[1, 1] = permuted_affine[2, 0] = permuted_affine[
        3, 3
    ] = 1
    transposed = np.ascontiguousarray(array.transpose(2, 1, 0))
    loaded, _ = load_volume(_save(transposed, tmp_path / "zyx.nii.gz", permuted_affine))
    np.testing.assert_array_equal(loaded, reference)


def test_four_d_needs_an_explicit_volume(tmp_path):
    volumes = np.stack([_volume(seed=s) * (s + 1) for s in range(3)], axis=-1)
    path = _save(volumes, tmp_path / "bold.nii.gz")
    with pytest.raises(DataError, match="3 volumes; pick one") as error:
        load_volume(path)
    _one_line_naming(error, path)
    # The message tells the user the spec syntax that picks a volume.
    assert f"nifti:{path}#N" in str(error.value)
    second, _ = load_volume(path, volume_index=1)
    np.testing.assert_allclose(second, volumes[..., 1])
    with pytest.raises(DataError, match="out of range"):
        load_volume(path, volume_index=3)
    single, _ = load_volume(_save(volumes[..., :1], tmp_path / "one.nii.gz"))
    assert single.shape == volumes.shape[:3]


def test_volume_index_on_a_3d_file_is_refused(tmp_path):
    path = _save(_volume(), tmp_path / "t1.nii.gz")
    load_volume(path, volume_index=0)  # a 3-D file is its own volume 0
    with pytest.raises(DataError, match="volume_index 2 given, but the image is 3-D") as error:
        load_volume(path, volume_index=2)
    _one_line_naming(error, path)


def _bad_files(tmp_path):
    good = _save(_volume(), tmp_path / "good.nii.gz")
    raw = good.read_bytes()
    cases = {}
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(raw[: len(raw) // 2])
    cases["truncated"] = (truncated, "unreadable or corrupt")
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(gzip.compress(b"this is not a NIfTI header" * 20))
    cases["corrupt"] = (garbage, "unreadable or corrupt")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    cases["not nifti name"] = (text, "not a NIfTI file")
    fake = tmp_path / "fake.nii"
    fake.write_text("hello, I am text")
    cases["not nifti content"] = (fake, "unreadable or corrupt")
    cases["2-D"] = (_save(np.ones((8, 8), np.float32), tmp_path / "flat.nii"), "2-D")
    cases["5-D"] = (_save(np.ones((4, 4, 4, 2, 2), np.float32), tmp_path / "five.nii"), "5-D")
    cases["all zero"] = (
        _save(np.zeros((6, 6, 6), np.float32), tmp_path / "zero.nii"),
        "constant volume",
    )
    cases["constant"] = (
        _save(np.full((6, 6, 6), 7.0, np.float32), tmp_path / "seven.nii"),
        "constant volume",
    )
    with_nan = _volume()
    with_nan[3, 3, 3] = np.nan
    cases["nan"] = (_save(with_nan, tmp_path / "nan.nii.gz"), "NaN or Inf")
    with_inf = _volume()
    with_inf[2, 2, 2] = np.inf
    cases["inf"] = (_save(with_inf, tmp_path / "inf.nii.gz"), "NaN or Inf")
    cases["missing"] = (tmp_path / "absent.nii.gz", "file not found")
    # A flipped byte in the gzip trailer's CRC: every voxel decodes, only the end check fails
    # (nibabel alone never reads that far and loaded such files).
    bad_crc = bytearray(gzip.compress(nib.Nifti1Image(_volume(), np.eye(4)).to_bytes()))
    bad_crc[-8] ^= 0xFF
    (tmp_path / "bad_crc.nii.gz").write_bytes(bytes(bad_crc))
    cases["crc"] = (tmp_path / "bad_crc.nii.gz", "corrupt NIfTI \\(gzip: CRC check failed")
    complex_volume = (_volume() + 1j * _volume(seed=1)).astype(np.complex64)
    cases["complex"] = (_save(complex_volume, tmp_path / "complex.nii"), "complex-valued")
    rgb = np.zeros((6, 6, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    cases["rgb"] = (_save(rgb, tmp_path / "rgb.nii"), "RGB or structured")
    empty = nib.Nifti1Image(np.zeros((6, 6, 6), np.float32), np.eye(4))
    empty.header.set_data_shape((6, 0, 6))
    (tmp_path / "empty.nii").write_bytes(empty.header.binaryblock + b"\0" * 4)
    cases["empty"] = (tmp_path / "empty.nii", "empty image")
    return cases


def test_every_bad_file_raises_one_line_data_error(tmp_path):
    for name, (path, problem) in _bad_files(tmp_path).items():
        with pytest.raises(DataError, match=problem) as error:
            load_volume(path)
        _one_line_naming(error, path)
        assert isinstance(error.value, ValueError), name


def test_a_size_claim_the_file_cannot_hold_is_refused_before_allocating(tmp_path):
    import tracemalloc

    header = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)).header
    header.set_data_shape((256, 256, 256))  # 64 MiB of float32 claimed, 1000 bytes present
    header.set_data_offset(352)
    raw = header.binaryblock + b"\0" * 4 + b"\1" * 1000
    plain, packed = tmp_path / "claim.nii", tmp_path / "claim.nii.gz"
    plain.write_bytes(raw)
    packed.write_bytes(gzip.compress(raw))
    for path in (plain, packed):
        tracemalloc.start()
        try:
            with pytest.raises(DataError) as error:
                load_volume(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert str(error.value) == (
            f"{path}: truncated NIfTI (header says {256**3 * 4} bytes of voxel data, "
            "the file holds 1000)"
        )
        assert peak < 8 * 2**20, f"{path}: {peak} bytes allocated for a refused file"


def test_sha256_mismatch_is_refused(tmp_path):
    path = _save(_volume(), tmp_path / "v.nii.gz")
    load_volume(path, expected_sha256=sha256_of(path))
    with pytest.raises(DataError, match="sha256 mismatch") as error:
        load_volume(path, expected_sha256="0" * 64)
    _one_line_naming(error, path)


def test_empty_folder_and_folder_without_nifti(tmp_path):
    with pytest.raises(DataError, match="no .nii or .nii.gz files") as error:
        load_nifti_slices(tmp_path)
    _one_line_naming(error, tmp_path)
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match="no .nii"):
        load_nifti_slices(tmp_path)


def test_normalisation_is_robust_to_a_hot_voxel():
    volume = _volume()
    hot = volume.copy()
    hot[6, 7, 5] = 1e6
    plain = normalize_intensity(volume, value_range=(0.0, 1.0))
    robust = normalize_intensity(hot, value_range=(0.0, 1.0))
    assert robust.min() == 0.0 and robust.max() == 1.0
    # One extreme voxel must not squash everything else towards zero.
    assert abs(np.median(robust[robust > 0]) - np.median(plain[plain > 0])) < 0.05
    symmetric = normalize_intensity(volume)
    assert symmetric.min() == -1.0 and symmetric.max() == 1.0


def test_a_few_padding_voxels_do_not_make_the_whole_volume_foreground():
    volume = _volume()
    padded = volume.copy()
    padded[0, 0, 0] = -32768.0  # an int16 export's padding value
    np.testing.assert_array_equal(foreground_mask(padded)[1:], foreground_mask(volume)[1:])
    assert foreground_mask(volume).mean() < 0.5


def test_a_padded_plane_or_a_quarter_of_padding_leaves_the_mask_and_slices_unchanged(tmp_path):
    # An int16 export: air 0..9 (a tenth of it exactly 0), the head 750..3250.
    clean = np.round(_volume(shape=(40, 48, 32)) * 1000).astype(np.int16)
    expected_mask = foreground_mask(clean.astype(np.float32))
    expected_slices = load_nifti_slices(_save(clean, tmp_path / "clean.nii.gz"), image_size=16)
    plane = clean.copy()
    plane[0] = -32768  # one out-of-field-of-view plane: 2.5 % of the voxels, all air
    quarter = clean.copy()
    quarter[:4] = quarter[-4:] = -32768  # 27 % padded, still only air
    quarter[:, :2] = quarter[:, -2:] = -32768
    assert 0.25 < np.mean(quarter == -32768) < 0.3
    for name, padded in {"plane": plane, "quarter": quarter}.items():
        # Over all voxels, the 0.5th percentile was -32768: air was foreground (97.5 % of the
        # volume for one plane) and blank slices were kept.
        np.testing.assert_array_equal(foreground_mask(padded.astype(np.float32)), expected_mask)
        slices = load_nifti_slices(_save(padded, tmp_path / f"{name}.nii.gz"), image_size=16)
        np.testing.assert_array_equal(slices, expected_slices)


def test_a_minimum_at_or_above_zero_is_the_air_level_as_before():
    from medgen_tf.data import subject_volumes

    # Air written as exact zeros (many voxels at the minimum) is not padding: the mask is the
    # plain robust-percentile one, bit for bit.
    def plain_mask(volume):
        low, high = np.percentile(volume, (0.5, 99.5))
        return volume > low + 0.1 * (high - low)

    cohort = subject_volumes(0, voxel_size=4.0)
    blob = _volume(shape=(40, 48, 32))
    volumes = {
        "noisy blob": blob,
        "blob on exact zeros": np.where(blob > 0.5, blob, 0.0),
        "int16 blob": np.round(blob * 1000).astype(np.int16).astype(np.float32),
        **{f"cohort {c}": cohort[c] for c in ("t1", "t2", "pd")},
        "cohort t2 on exact zeros": np.where(cohort["mask"] > 0, cohort["t2"], 0.0),
    }
    for name, volume in volumes.items():
        mask = foreground_mask(volume)
        np.testing.assert_array_equal(mask, plain_mask(volume), err_msg=name)
        assert 0.05 < mask.mean() < 0.5, name


def test_one_volume_of_a_4d_file_equals_that_volume_saved_alone(tmp_path):
    series = np.stack([_volume(seed=index) for index in range(3)], axis=-1)
    affine = np.diag([-2.0, 1.0, 1.5, 1.0])  # LAS: reoriented after the volume is cut out
    _save(series, tmp_path / "series.nii.gz", affine)
    _save(series[..., 1], tmp_path / "one.nii.gz", affine)
    from_series, series_affine = load_volume(tmp_path / "series.nii.gz", volume_index=1)
    alone, alone_affine = load_volume(tmp_path / "one.nii.gz")
    np.testing.assert_array_equal(from_series, alone)
    np.testing.assert_array_equal(series_affine, alone_affine)
    last, _ = load_volume(tmp_path / "series.nii.gz", volume_index=-1)
    np.testing.assert_array_equal(last, load_volume(tmp_path / "series.nii.gz", 2)[0])


def test_slicing_drops_empty_slices_and_orients_for_display():
    volume = np.zeros((10, 12, 8), np.float32)
    volume[2:8, 3:11, 2:6] = 1.0
    volume[2:8, 10, 2:6] = 2.0  # the most anterior row is brighter
    # The foreground x = 2:8 is symmetric under x -> 9 - x, so a left-right mirror would not
    # show: mark one column on the right side (x = 7; RAS x grows towards the Right).
    volume[7, 3:11, 2:6] = 3.0
    slices, kept = extract_slices(volume, axis=2)
    np.testing.assert_array_equal(kept, [2, 3, 4, 5])
    assert slices.shape == (4, 12, 10)
    # Anterior (high y) ends up in the top rows.
    assert slices[0, 1, 5] == 2.0
    # Neurological display: the patient's Right on the right, i.e. column index equals x.
    for image in slices:
        assert (image == 3.0).any(axis=0).nonzero()[0].tolist() == [7]


def test_extract_slices_keeps_the_slices_with_a_quarter_of_the_largest_area():
    # Axial slices whose masks cover 0, 10, 24, 25, 26, 100, 50 and 0 voxels.
    areas = [0, 10, 24, 25, 26, 100, 50, 0]
    mask = np.zeros((10, 10, len(areas)), bool)
    for index, area in enumerate(areas):
        mask[..., index].flat[:area] = True
    volume = mask.astype(np.float32)
    np.testing.assert_array_equal(extract_slices(volume, mask=mask)[1], [3, 4, 5, 6])
    np.testing.assert_array_equal(extract_slices(volume, mask=mask, min_foreground=0.5)[1], [5, 6])


def test_pad_to_square_pads_the_short_side_evenly_the_odd_pixel_last():
    wide = np.ones((2, 3, 6), np.float32)
    padded = pad_to_square(wide, fill_value=-1.0)
    assert padded.shape == (2, 6, 6)
    np.testing.assert_array_equal(padded[0, :, 0], [-1, 1, 1, 1, -1, -1])
    tall = pad_to_square(np.ones((1, 6, 3), np.float32), fill_value=0.0)
    np.testing.assert_array_equal(tall[0, 0], [0, 1, 1, 1, 0, 0])


def test_in_plane_spacing_gives_rows_then_columns_of_each_plane():
    affine = np.diag([0.9, 1.2, 3.0, 1.0])  # x, y, z voxel sizes in mm
    # After extract_slices' rot90, rows run along the second in-plane axis.
    assert in_plane_spacing(affine) == pytest.approx((1.2, 0.9))  # axial: y, x
    assert in_plane_spacing(affine, axis=1) == pytest.approx((3.0, 0.9))  # coronal: z, x
    assert in_plane_spacing(affine, axis=0) == pytest.approx((3.0, 1.2))  # sagittal: z, y


def test_millimetre_true_size_spans_the_grid_with_the_long_side_in_mm():
    # 100 rows of 2 mm (200 mm) by 50 columns of 3 mm (150 mm): rows fill the grid.
    assert millimetre_true_size((100, 50), (2.0, 3.0), 64) == (64, 48)
    assert millimetre_true_size((50, 100), (3.0, 2.0), 64) == (48, 64)
    # A sliver keeps at least one pixel.
    assert millimetre_true_size((1, 200), (1.0, 1.0), 16) == (1, 16)


def test_resize_pads_to_square_and_keeps_range():
    slices = np.random.default_rng(0).random((3, 20, 30)).astype(np.float32)
    resized = resize_slices(slices, 16, fill_value=0.0)
    assert resized.shape == (3, 16, 16, 1)
    assert resized.min() >= 0.0 and resized.max() <= 1.0
    # Shape and range alone cannot tell padding from stretching: a 20x30 slice of ones padded
    # with 0 to 30x30 and shrunk to 16x16 has ~2.7 zero rows at the top and at the bottom,
    # about 16 * 20 / 30 = 10.7 bright rows in between, and no padding along the columns.
    ones = resize_slices(np.ones((1, 20, 30), np.float32), 16, fill_value=0.0)[0, ..., 0]
    assert (ones[[0, 1, -2, -1]] < 0.01).all()
    assert (ones[4:12] > 0.99).all()
    assert (ones[:, 8] > 0.5).sum() in (10, 11)


def test_folder_of_volumes_to_slices(tmp_path):
    from medgen_tf.data import load_spec

    folder, alone = tmp_path / "t1", tmp_path / "alone"
    folder.mkdir()
    alone.mkdir()
    # Two recognisable scans: "a" is 10 axial slices deep, 50x brighter, its gradient along
    # +x; "b" is 6 slices deep with the gradient reversed. Written b first: the order of the
    # sorted names, not of creation, numbers the files.
    first = _volume(shape=(12, 14, 10), seed=2)
    second = _volume(shape=(12, 14, 6), seed=1)[::-1].copy()
    _save(second, folder / "b.nii.gz")
    _save(first * 50, folder / "a.nii")
    (folder / "notes.txt").write_text("ignored")
    images, sources = load_nifti_slices(folder, image_size=32, return_sources=True)
    assert images.shape[1:] == (32, 32, 1) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert sources.dtype == np.int32
    # Each file's slices, in order: a.nii's first (index 0), then b.nii.gz's (index 1). Per-
    # volume normalisation: a's slices are those of the same scan at 1x, loaded on its own.
    expected_first = load_nifti_slices(_save(first, alone / "first.nii"), image_size=32)
    expected_second = load_nifti_slices(_save(second, alone / "second.nii"), image_size=32)
    assert len(expected_first) != len(expected_second)
    assert sources.tolist() == [0] * len(expected_first) + [1] * len(expected_second)
    np.testing.assert_allclose(images[sources == 0], expected_first, atol=1e-5)
    np.testing.assert_allclose(images[sources == 1], expected_second, atol=1e-5)
    assert not np.allclose(expected_first[0], expected_second[0], atol=0.1)
    # The data spec turns the file index into a label named after that file.
    data = load_spec(f"nifti:{folder}", image_size=32)
    assert data["label_names"] == ["a.nii", "b.nii.gz"]
    np.testing.assert_array_equal(data["labels"], sources)
    np.testing.assert_array_equal(data["images"], images)


def test_simulated_subject_round_trips_through_nifti(tmp_path):
    from medgen_tf.data import subject_volumes

    volumes = subject_volumes(0, contrasts=("t2",), voxel_size=4.0)
    path = _save(volumes["t2"], tmp_path / "sub0_T2w.nii.gz", volumes["affine"])
    loaded, affine = load_volume(path)
    np.testing.assert_allclose(loaded, volumes["t2"], atol=1e-6)
    np.testing.assert_allclose(affine, volumes["affine"])
    images = load_nifti_slices(path, image_size=28)
    assert images.shape[1:] == (28, 28, 1) and len(images) > 5


def _sphere(path, zooms, field_mm=40.0, radius_mm=6.0):
    """A bright ball (2) of ``radius_mm`` inside a dimmer box (1) on air (0), in a cube of
    ``field_mm`` sampled with voxel sizes ``zooms`` (x, y, z) in mm."""
    shape = [round(field_mm / zoom) for zoom in zooms]
    centres = [
        (np.arange(n) + 0.5) * zoom - field_mm / 2 for n, zoom in zip(shape, zooms, strict=True)
    ]
    x, y, z = np.meshgrid(*centres, indexing="ij")
    inside_box = np.max(np.abs(np.stack([x, y, z])), axis=0) < 0.4 * field_mm
    volume = inside_box.astype(np.float32) + (x**2 + y**2 + z**2 < radius_mm**2)
    return _save(volume.astype(np.float32), path, np.diag([*zooms, 1.0]))


def _ball_extent(images):
    """Rows and columns covered by the ball (values above the box's -1) in its widest slice."""
    ball = images[..., 0] > 0.0
    widest = ball[np.argmax(ball.sum(axis=(1, 2)))]
    return int(widest.any(axis=1).sum()), int(widest.any(axis=0).sum())


def test_anisotropic_voxels_keep_a_sphere_round_isotropic_unchanged(tmp_path):
    # 2 x 1 x 1 mm voxels: 20 samples across x, 40 across y, for the same 40 mm.
    images = load_nifti_slices(_sphere(tmp_path / "aniso.nii.gz", (2.0, 1.0, 1.0)), image_size=40)
    rows, columns = _ball_extent(images)
    # 40 mm field on 40 pixels: the 12 mm ball is ~12 px across in both directions.
    assert abs(rows - columns) <= 2, (rows, columns)
    assert 10 <= rows <= 14 and 10 <= columns <= 14, (rows, columns)
    isotropic = load_nifti_slices(_sphere(tmp_path / "iso.nii.gz", (1.0, 1.0, 1.0)), 40)
    assert abs(np.array(_ball_extent(isotropic)) - (rows, columns)).max() <= 2
    # Square pixels of any size must give exactly the pad-and-resize slices (no resampling).
    path = _sphere(tmp_path / "iso15.nii.gz", (1.5, 1.5, 1.5), field_mm=48.0)
    volume, _ = load_volume(path)
    mask = foreground_mask(volume)
    slices, _ = extract_slices(normalize_intensity(volume, mask=mask), mask=mask)
    expected = np.clip(resize_slices(slices, 24, fill_value=-1.0), -1.0, 1.0)
    np.testing.assert_array_equal(load_nifti_slices(path, image_size=24), expected)


def test_a_one_voxel_thick_volume_is_refused_with_the_axis_that_slices_it(tmp_path):
    slab = _save(_volume(shape=(12, 14, 10))[5:6], tmp_path / "sagittal.nii.gz")
    with pytest.raises(DataError, match="1 voxel thick along axis 0") as error:
        load_nifti_slices(slab, image_size=16)
    _one_line_naming(error, slab)
    assert (
        "one sagittal slice: cut it along axis 0 (in Python, load_nifti_slices(..., axis=0))"
        in (str(error.value))
    )
    assert load_nifti_slices(slab, image_size=16, axis=0).shape == (1, 16, 16, 1)
    line = _save(_volume(shape=(12, 14, 10))[5:6, 7:8], tmp_path / "line.nii.gz")
    with pytest.raises(DataError, match="no axis gives 2-D images"):
        load_nifti_slices(line, image_size=16)
    # One axial slice cut along the axial axis is one ordinary image.
    axial = _save(_volume(shape=(12, 14, 10))[..., 5:6], tmp_path / "axial.nii.gz")
    assert load_nifti_slices(axial, image_size=16).shape == (1, 16, 16, 1)


def _raw_nifti(image, path, offset):
    # Written byte by byte: nibabel's save would rewrite pixdim from the affine.
    header = image.header
    header.set_data_offset(offset)
    padding = b"\0" * (offset - len(header.binaryblock))
    path.write_bytes(
        gzip.compress(
            header.binaryblock + padding + image.get_fdata().astype(np.float32).tobytes(order="F")
        )
    )
    return path


@pytest.mark.parametrize(
    "sizes, shown", [((0, 0, 0), "(0, 0, 0)"), ((2, -2, 2), "(2, -2, 2)"), ((2, 2, np.nan), "nan")]
)
@pytest.mark.parametrize("qform_code", [0, 1])
def test_a_zero_negative_or_nan_voxel_size_is_refused_in_one_line(
    tmp_path, capfd, caplog, sizes, shown, qform_code
):
    def write(name, sform_code):
        image = nib.Nifti1Image(_volume(), np.diag([2.0, 2.0, 2.0, 1.0]))
        image.header.set_qform(np.diag([2.0, 2.0, 2.0, 1.0]) if qform_code else None, qform_code)
        image.header.set_sform(np.diag([2.0, 2.0, 2.0, 1.0]) if sform_code else None, sform_code)
        image.header["pixdim"][1:4] = sizes
        return _raw_nifti(image, tmp_path / name, 352)

    # Without an sform, the geometry comes from pixdim (through the qform or not): refused.
    path = write("nogeometry.nii.gz", sform_code=0)
    capfd.readouterr()
    with pytest.raises(DataError, match="voxel size pixdim") as error:
        load_volume(path)
    _one_line_naming(error, path)
    assert shown in str(error.value)
    # With an sform, the affine comes from it and pixdim is not used: the file is fine.
    volume, affine = load_volume(write("sform.nii.gz", sform_code=1))
    assert volume.shape == _volume().shape and np.allclose(np.abs(np.diag(affine))[:3], 2.0)
    # nibabel's own "setting 0 dims to 1" line must not reach the terminal either. It goes
    # through logging to a handler bound to stderr at import, which capfd alone does not see.
    assert caplog.messages == []
    assert capfd.readouterr().err == ""


def test_the_voxel_size_check_reads_nifti2_headers_and_only_the_spatial_sizes(tmp_path):
    # NIfTI-2's header is 540 bytes, all of which the check reads.
    image = nib.Nifti2Image(_volume(), np.diag([2.0, 2.0, 2.0, 1.0]))
    image.header.set_sform(None, 0)
    image.header["pixdim"][1:4] = 0
    path = _raw_nifti(image, tmp_path / "nifti2.nii.gz", 544)
    with pytest.raises(DataError, match=r"voxel size pixdim\[1:4\] = \(0, 0, 0\)") as error:
        load_volume(path)
    _one_line_naming(error, path)
    # A 4-D series whose time step (pixdim[4]) was never set: only the three spatial sizes count.
    series = np.stack([_volume(), _volume(seed=1)], axis=-1)
    image = nib.Nifti1Image(series, np.diag([2.0, 2.0, 2.0, 1.0]))
    image.header.set_qform(np.diag([2.0, 2.0, 2.0, 1.0]), 1)
    image.header.set_sform(None, 0)
    image.header["pixdim"][4] = 0
    volume, _ = load_volume(_raw_nifti(image, tmp_path / "series.nii.gz", 352), volume_index=1)
    np.testing.assert_allclose(volume, _volume(seed=1), atol=1e-6)


def _sform_only(path, affine):
    # nibabel cannot store a singular affine as a qform (it decomposes it), only as an sform.
    header = nib.Nifti1Image(_volume(), np.eye(4)).header
    header.set_sform(affine, code=1)
    header.set_qform(None, code=0)
    nib.save(nib.Nifti1Image(_volume(), None, header), str(path))
    return path


def _affine(rotation=None, translation=(0.0, 0.0, 0.0)):
    affine = np.eye(4)
    if rotation is not None:
        affine[:3, :3] = rotation
    affine[:3, 3] = translation
    return affine


@pytest.mark.parametrize(
    "affine, problem",
    [
        # Two voxel axes along one world direction: loaded without a word, and reoriented and
        # sliced by an orientation the file does not have.
        (_affine([[1, 1, 0], [1, 1, 0], [0, 0, 1]]), "not invertible"),
        # Was "unreadable or corrupt NIfTI (Cannot drop coordinates when applying orientation
        # to data)".
        (_affine(np.diag([1.0, 1.0, 0.0])), "not invertible"),
        # The same with an offset: the translation column must not make up the missing rank.
        (_affine(np.diag([1.0, 1.0, 0.0]), translation=(-90.0, 126.0, -72.0)), "not invertible"),
        # Was "unreadable or corrupt NIfTI (SVD did not converge)".
        (_affine(np.diag([1.0, np.nan, 1.0])), "NaN or Inf"),
        # Was loaded, and translate copied it into its output.
        (_affine(translation=(np.inf, 0.0, 0.0)), "NaN or Inf"),
    ],
    ids=["rank-2", "zero-column", "zero-column-offset", "nan", "inf-offset"],
)
def test_a_voxel_to_world_affine_that_is_not_invertible_is_refused_in_one_line(
    tmp_path, affine, problem
):
    path = _sform_only(tmp_path / "odd.nii.gz", affine)
    with pytest.raises(DataError, match=f"affine .*{problem}") as error:
        load_volume(path)
    _one_line_naming(error, path)
    # A scaled, rotated, sheared but invertible one still loads.
    sheared = _affine([[0.0, 2.0, 0.3], [0.5, 0.0, 0.0], [0.0, 0.1, 3.0]], (5.0, -4.0, 2.0))
    volume, _ = load_volume(_sform_only(tmp_path / "sheared.nii.gz", sheared))
    assert volume.shape[0] == _volume().shape[1]


def test_a_scale_factor_overflowing_float32_gives_only_the_one_line(tmp_path, capfd):
    image = nib.Nifti1Image(np.round(_volume() * 100).astype(np.int16), np.eye(4))
    image.header["scl_slope"], image.header["scl_inter"] = np.float32(1e38), 0
    path = tmp_path / "huge_slope.nii.gz"
    nib.save(image, str(path))
    capfd.readouterr()
    # pytest would catch numpy's RuntimeWarning before it reached stderr: record it here.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match="voxels beyond float32's range") as error:
            load_volume(path)
    _one_line_naming(error, path)
    assert [str(warning.message) for warning in caught] == []
    assert capfd.readouterr().err == ""


def test_finite_voxels_beyond_float32_are_not_called_nan_or_inf(tmp_path):
    # They were "8000 NaN or Inf voxels", for a file that holds none: the cast to float32 made
    # the Inf. A file with real NaN voxels is still called so.
    volume = _volume().astype(np.float64)
    volume[:2] = 1e300
    path = _save(volume, tmp_path / "float64.nii.gz")
    with pytest.raises(DataError, match=r": \d+ voxels beyond float32's range") as error:
        load_volume(path)
    _one_line_naming(error, path)
    volume = _volume().astype(np.float64)
    volume[0, 0, 0] = np.nan
    # FSL and SPM write NaN outside a mask: the message says what to do about it.
    with pytest.raises(
        DataError,
        match=r": 1 NaN or Inf voxels; if NaN marks the background, "
        r"replace it with 0 \(e\.g\. np\.nan_to_num\) and save the file again$",
    ):
        load_volume(_save(volume, tmp_path / "nan.nii.gz"))


def test_constant_foreground_is_refused(tmp_path):
    # A binary mask (or a label file) has one foreground value: normalising it would give
    # all-background slices, silently.
    mask = (_volume() > 1.0).astype(np.float32)
    for name, array in {"mask.nii.gz": mask, "labels.nii.gz": mask * 5.0}.items():
        path = _save(array, tmp_path / name)
        with pytest.raises(DataError, match="foreground intensity is constant") as error:
            load_nifti_slices(path, image_size=16)
        _one_line_naming(error, path)


@pytest.mark.parametrize(
    "bad_range", [(1.0, -1.0), (0.0, 0.0), (0.0, float("nan")), (-float("inf"), 1.0)]
)
def test_a_reversed_empty_or_non_finite_value_range_is_refused_before_reading(tmp_path, bad_range):
    from medgen_tf.data import load_spec

    # (1, -1) and (0, 0) gave every image one constant value, without a word. The paths do not
    # exist: the range is refused before any file is read.
    missing = tmp_path / "missing.nii.gz"
    match = r"value_range must be \(low, high\) with high > low"
    with pytest.raises(ValueError, match=match):
        normalize_intensity(_volume(), value_range=bad_range)
    with pytest.raises(ValueError, match=match):
        load_nifti_slices(missing, image_size=16, value_range=bad_range)
    with pytest.raises(ValueError, match=match):
        load_paired_nifti_slices(missing, missing, image_size=16, value_range=bad_range)
    path = _save(_volume(), tmp_path / "sub-01_T1w.nii.gz")
    with pytest.raises(ValueError, match=match):
        load_spec(f"nifti:{path}", image_size=16, value_range=bad_range)


def test_hidden_files_in_a_folder_are_not_scans(tmp_path):
    import nibabel as nib

    volume = np.zeros((8, 8, 8), np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(tmp_path / "scan.nii.gz"))
    # What an interrupted atomic write or a macOS copy leaves behind.
    (tmp_path / ".scan_a2b.nii.abc123.nii.gz").write_bytes(b"truncated")
    (tmp_path / "._scan.nii.gz").write_bytes(b"resource fork")
    assert [path.name for path in list_nifti_files(tmp_path)] == ["scan.nii.gz"]


def test_subject_keys_drop_what_a_folder_shares_back_to_a_separator(tmp_path):
    def keys(*names):
        return _subject_keys([tmp_path / name for name in names])

    assert keys("sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz") == ["01", "02"]
    assert keys("sub-1_T2w.nii", "sub-10_T2w.nii") == ["1", "10"]
    assert keys("IXI002-Guys-0828-T1.nii.gz", "IXI012-HH-1211-T1.nii.gz") == [
        "IXI002-Guys-0828",
        "IXI012-HH-1211",
    ]
    assert keys("only_T1w.nii.gz") == ["only_T1w"]


def _subject_volume(path, level):
    volume = np.zeros((12, 12, 12), np.float32)
    volume[3:9, 3:9, 3:9] = level + np.arange(6, dtype=np.float32)  # not constant: normalisable
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(path))


def test_paired_folders_match_subjects_by_name_and_refuse_a_missing_one(tmp_path):
    t1, t2 = tmp_path / "t1", tmp_path / "t2"
    t1.mkdir()
    t2.mkdir()
    for subject in ("01", "02", "03"):
        _subject_volume(t1 / f"sub-{subject}_T1w.nii.gz", 100.0)
    for subject in ("01", "03", "04"):  # sub-02's T2 is missing, sub-04 has no T1
        _subject_volume(t2 / f"sub-{subject}_T2w.nii.gz", 300.0)
    # Same count, same grid: by sorted position sub-02 would pair with sub-03's T2.
    with pytest.raises(DataError, match="no partner for sub-02_T1w.nii.gz") as error:
        load_paired_nifti_slices(t1, t2, image_size=8)
    assert "\n" not in str(error.value) and str(t2) in str(error.value)
    assert "1 of 3 files unmatched" in str(error.value)

    (t2 / "sub-04_T2w.nii.gz").rename(t2 / "sub-02_T2w.nii.gz")
    pairs = paired_nifti_files(t1, t2)
    assert [(a.name, b.name) for a, b in pairs] == [
        (f"sub-{s}_T1w.nii.gz", f"sub-{s}_T2w.nii.gz") for s in ("01", "02", "03")
    ]
    images_a, images_b, sources = load_paired_nifti_slices(t1, t2, image_size=8)
    assert len(images_a) == len(images_b) == len(sources) and sorted(set(sources)) == [0, 1, 2]


def test_paired_folders_pair_dcm2niix_names_and_name_two_files_of_one_subject(tmp_path):
    t1, t2 = tmp_path / "t1", tmp_path / "t2"
    t1.mkdir()
    t2.mkdir()
    # dcm2niix's default names: protocol, acquisition time and series number differ between a
    # subject's T1 and T2 (and here one extension is upper case).
    for subject, time, series in (("sub01", "120000", 3), ("sub02", "093000", 2)):
        _subject_volume(t1 / f"{subject}_T1_MPRAGE_20190101{time}_{series}.nii.gz", 100.0)
    _subject_volume(t2 / "sub01_T2_SPACE_20190101120900_5.NII.GZ", 300.0)
    _subject_volume(t2 / "sub02_T2_SPACE_20190101094100_4.nii.gz", 300.0)
    pairs = [(a.name[:5], b.name[:5]) for a, b in paired_nifti_files(t1, t2)]
    assert pairs == [("sub01", "sub01"), ("sub02", "sub02")]

    (t2 / "sub02_T2_SPACE_20190101094100_4.nii.gz").rename(
        t2 / "sub01_T2_SPACE_20190101120900_5.nii"
    )
    with pytest.raises(DataError, match="name the same subject") as error:
        paired_nifti_files(t1, t2)
    message = str(error.value)
    assert "\n" not in message and "_5.NII.GZ and sub01_T2_SPACE_20190101120900_5.nii" in message


def test_one_file_per_folder_of_two_bids_subjects_is_refused(tmp_path):
    # sub-01's T1 and sub-02's T2, one per folder, on one grid, loaded as a pair.
    t1, t2 = tmp_path / "t1", tmp_path / "t2"
    t1.mkdir()
    t2.mkdir()
    _subject_volume(t1 / "sub-01_T1w.nii.gz", 100.0)
    _subject_volume(t2 / "sub-02_T2w.nii.gz", 300.0)
    with pytest.raises(
        DataError, match="subject sub-02, but its partner sub-01_T1w.nii.gz is sub-01"
    ) as error:
        load_paired_nifti_slices(t1, t2, image_size=8)
    assert "\n" not in str(error.value)
    (t2 / "sub-02_T2w.nii.gz").rename(t2 / "sub-01_T2w.nii.gz")
    assert [(a.name, b.name) for a, b in paired_nifti_files(t1, t2)] == [
        ("sub-01_T1w.nii.gz", "sub-01_T2w.nii.gz")
    ]
    # Names without a BIDS label say nothing about the subject: one file each still pairs.
    (t2 / "sub-01_T2w.nii.gz").rename(t2 / "t2.nii.gz")
    assert len(paired_nifti_files(t1, t2)) == 1


def test_names_whose_parts_pair_the_files_in_two_ways_are_refused(tmp_path):
    # The first part that told a folder's files apart won: here the date, which pairs subA's
    # T1 with subB's T2, though the subject part pairs them the other way.
    t1, t2 = tmp_path / "t1", tmp_path / "t2"
    t1.mkdir()
    t2.mkdir()
    for name in ("20240101_subA_T1.nii", "20240102_subB_T1.nii"):
        _subject_volume(t1 / name, 100.0)
    for name in ("20240101_subB_T2.nii", "20240102_subA_T2.nii"):
        _subject_volume(t2 / name, 300.0)
    with pytest.raises(
        DataError, match="the file names pair up in 2 ways: name part 1 pairs"
    ) as error:
        paired_nifti_files(t1, t2)
    assert "\n" not in str(error.value) and "part 2 with 20240102_subA_T2.nii" in str(error.value)
    # Once the dates agree with the subjects, both parts give one pairing.
    (t2 / "20240101_subB_T2.nii").rename(t2 / "x.nii")
    (t2 / "20240102_subA_T2.nii").rename(t2 / "20240101_subA_T2.nii")
    (t2 / "x.nii").rename(t2 / "20240102_subB_T2.nii")
    pairs = [(a.name, b.name) for a, b in paired_nifti_files(t1, t2)]
    assert pairs == [
        ("20240101_subA_T1.nii", "20240101_subA_T2.nii"),
        ("20240102_subB_T1.nii", "20240102_subB_T2.nii"),
    ]


@pytest.mark.parametrize("volume_index", [1.5, True, "1"])
def test_a_volume_index_that_is_no_whole_number_is_refused(tmp_path, volume_index):
    # 1.5 was volume 1, True was volume 1, and "1" was called a corrupt file.
    path = _save(np.stack([_volume(), _volume() + 1.0], axis=-1), tmp_path / "two.nii.gz")
    with pytest.raises(ValueError) as error:
        load_volume(path, volume_index=volume_index)
    assert str(error.value) == (
        f"volume_index must be a whole number or None, got {volume_index!r}"
    )
    assert load_volume(path, volume_index=np.int64(1))[0].shape == _volume().shape


def test_a_file_without_orientation_is_loaded_with_a_warning(tmp_path, caplog):
    # nibabel flips x for it (ANALYZE's radiological storage); the header cannot say whether
    # that is right, and the loader claimed RAS "whatever the scanner wrote".
    image = nib.Nifti1Image(_volume(), None)
    assert (int(image.header["qform_code"]), int(image.header["sform_code"])) == (0, 0)
    path = tmp_path / "analyze_like.nii.gz"
    nib.save(image, str(path))
    with caplog.at_level("WARNING", logger="medgen_tf.data.nifti"):
        volume, _ = load_volume(path)
    assert volume.shape == _volume().shape
    assert caplog.messages == [
        f"{path}: no orientation in the header (qform and sform codes 0): read in ANALYZE's "
        "radiological order, as nibabel does; left and right may be swapped"
    ]
    caplog.clear()
    with caplog.at_level("WARNING", logger="medgen_tf.data.nifti"):
        load_volume(_save(_volume(), tmp_path / "oriented.nii.gz"))
    assert caplog.messages == []
