"""medgen_tf.translation on NIfTI files: intensity scaling as in training, header, atomic writes.

A stand-in identity generator makes the output the model's input, rescaled to [0, 1], so each
test reads off what the model was fed.
"""

import json
import logging
import re
import shutil

import keras
import nibabel as nib
import numpy as np
import pytest

from medgen_tf import DataError
from medgen_tf.data.brain import _unit_scale
from medgen_tf.data.nifti import foreground_mask
from medgen_tf.translation import (
    GENERATOR_FILES,
    SYNTHETIC_DESCRIPTION,
    normalize_for_model,
    recipe_export,
    run_intensity,
    train_cyclegan,
    translate_nifti,
    translate_run,
)

SIZE = 32
AIR, CSF, WM = 0.0, 150.0, 1000.0
CSF_VOXEL = (16, 20, 2)  # the middle of the CSF block, far from any edge


def _identity_generator():
    inputs = keras.Input((SIZE, SIZE, 1))
    return keras.Model(inputs, keras.layers.Identity()(inputs))


def _toy_volume():
    """Air around a white-matter block holding a dark CSF block: uniform regions, so resizing
    to the model's side and back leaves their middles unchanged."""
    volume = np.full((40, 40, 4), AIR, np.float32)
    volume[4:36, 4:36, :] = WM
    volume[10:22, 10:30, :] = CSF
    return volume


def _write_volume(path, volume):
    image = nib.Nifti1Image(volume, np.diag([1.0, 1.0, 2.0, 1.0]))
    image.header["cal_min"], image.header["cal_max"] = 0.0, 1000.0  # a scanner's display window
    image.header["descrip"] = b"T1w MPRAGE TR=2300"  # what the scanner says it acquired
    image.header.set_intent("estimate", (), name="T1")
    nib.save(image, str(path))
    return path


def test_cohort_scaling_is_the_cohorts_and_keeps_dark_tissue_off_the_air_value():
    volume = _toy_volume()
    cohort = normalize_for_model(volume, "cohort")
    # What data.brain does to the built-in cohort, mapped to [-1, 1] as brain: specs are.
    expected = 2.0 * _unit_scale(volume, foreground_mask(volume)) - 1.0
    np.testing.assert_allclose(cohort, expected, atol=1e-6)
    assert cohort[0, 0, 0] == -1.0 and cohort[CSF_VOXEL] == pytest.approx(2 * CSF / WM - 1)
    # Percentiles send the darkest foreground (CSF here) to the air's -1.
    assert normalize_for_model(volume, "percentiles")[CSF_VOXEL] == pytest.approx(-1.0)
    with pytest.raises(DataError, match="intensity 'zscore'"):
        normalize_for_model(volume, "zscore")


def test_translate_nifti_feeds_the_training_scaling_and_sets_the_display_range(tmp_path):
    path = _write_volume(tmp_path / "toy.nii.gz", _toy_volume())
    generator = _identity_generator()
    outputs = {}
    for intensity in ("cohort", "percentiles"):
        out_path, _, _ = translate_nifti(
            generator, path, tmp_path / f"{intensity}.nii.gz", intensity=intensity
        )
        output = nib.load(str(out_path))
        outputs[intensity] = output.get_fdata()
        assert (output.header["cal_min"], output.header["cal_max"]) == (0.0, 1.0)
        # A generated volume must not describe itself as the acquired T1.
        assert output.header["descrip"].item() == SYNTHETIC_DESCRIPTION
        assert output.header.get_intent() == ("none", (), "")
        assert 0.0 <= outputs[intensity].min() and outputs[intensity].max() <= 1.0
    # The identity model returns its input: CSF at CSF / WM for cohort, at the air's 0 else.
    assert outputs["cohort"][CSF_VOXEL] == pytest.approx(CSF / WM, abs=0.02)
    assert outputs["percentiles"][CSF_VOXEL] == pytest.approx(0.0, abs=0.02)
    assert outputs["cohort"][0, 0, 0] == pytest.approx(0.0, abs=1e-6)


def _run_folder(path, data_a, data_b="nifti:/data/t2"):
    path.mkdir()
    generator = _identity_generator()
    for name in GENERATOR_FILES.values():
        generator.save(path / name)
    config = {"config": {"model": "cyclegan", "data_a": data_a, "data_b": data_b}}
    (path / "config.json").write_text(json.dumps(config))
    return path


def test_translate_run_scales_as_the_source_domain_of_the_run(tmp_path):
    volume_path = _write_volume(tmp_path / "toy.nii.gz", _toy_volume())
    run_dir = _run_folder(tmp_path / "run", data_a="brain:t1")
    assert run_intensity(run_dir, "a2b") == "cohort"
    assert run_intensity(run_dir, "b2a") == "percentiles"

    def csf_value(direction, **options):
        written = translate_run(
            run_dir, str(volume_path), direction, out_dir=tmp_path / direction, **options
        )
        return nib.load(str(written[0])).get_fdata()[CSF_VOXEL]

    assert csf_value("a2b") == pytest.approx(CSF / WM, abs=0.02)  # data_a is brain:t1
    assert csf_value("b2a") == pytest.approx(0.0, abs=0.02)  # data_b is a nifti: spec
    assert csf_value("b2a", intensity="cohort") == pytest.approx(CSF / WM, abs=0.02)

    other = _run_folder(tmp_path / "other", data_a="medmnist:organamnist")
    with pytest.raises(DataError, match="intensity='cohort' or 'percentiles'") as raised:
        translate_run(other, str(volume_path), "a2b", out_dir=tmp_path / "other_out")
    assert "\n" not in str(raised.value) and "--intensity" in str(raised.value)
    # What the command line's --intensity passes: the run on other data translates.
    from medgen_tf import recipes

    written = recipes.translate(
        other, str(volume_path), "a2b", out_dir=tmp_path / "other_out", intensity="percentiles"
    )
    assert nib.load(str(written[0])).get_fdata()[CSF_VOXEL] == pytest.approx(0.0, abs=0.02)
    for junk in (b"\xff\xfe binary", b'{"config": 3}'):
        (other / "config.json").write_bytes(junk)
        with pytest.raises(DataError, match="config.json: not"):
            run_intensity(other, "a2b")
    (other / "config.json").unlink()
    with pytest.raises(DataError, match="config.json: not found"):
        run_intensity(other, "a2b")


def test_a_failed_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = _write_volume(tmp_path / "toy.nii.gz", _toy_volume())
    out_path = tmp_path / "out" / "toy_a2b.nii.gz"
    out_path.parent.mkdir()
    out_path.write_bytes(b"previous result")

    def crash_midway(image, filename):
        with open(filename, "wb") as handle:
            handle.write(b"half a volume")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        translate_nifti(_identity_generator(), path, out_path, intensity="cohort")
    assert out_path.read_bytes() == b"previous result"
    assert [file.name for file in out_path.parent.iterdir()] == [out_path.name]

    class CrashingGenerator:
        def save(self, filename):
            with open(filename, "wb") as handle:
                handle.write(b"half a model")
            raise OSError("disk full")

    class StandIn:
        generator_ab = generator_ba = CrashingGenerator()

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / GENERATOR_FILES["a2b"]).write_bytes(b"previous model")
    with pytest.raises(OSError, match="disk full"):
        recipe_export(StandIn(), run_dir)
    assert (run_dir / GENERATOR_FILES["a2b"]).read_bytes() == b"previous model"
    assert [file.name for file in run_dir.iterdir()] == [GENERATOR_FILES["a2b"]]


class _RecordingIdentity:
    """An identity 'generator' that keeps what it was fed, to look at the model's view."""

    inputs = [keras.KerasTensor((None, SIZE, SIZE, 1))]

    def __init__(self):
        self.fed = []

    def __call__(self, images, training=False):
        self.fed.append(np.asarray(images))
        return images


def test_anisotropic_voxels_reach_the_model_as_training_shapes_them_and_come_back(tmp_path):
    # A 24 mm ball scanned with 2 x 1 x 1 mm voxels: 12 voxels across along x, 24 along y.
    x, y, z = np.meshgrid(
        (np.arange(20) - 9.5) * 2.0, np.arange(40) - 19.5, np.arange(4) - 1.5, indexing="ij"
    )
    # A gentle gradient inside: a constant foreground would be refused as a mask file.
    volume = np.where(x**2 + y**2 < 12.0**2, WM + 10.0 * y, AIR).astype(np.float32)
    path = tmp_path / "aniso.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([2.0, 1.0, 1.0, 1.0])), str(path))
    generator = _RecordingIdentity()
    out_path, _, _ = translate_nifti(generator, path, tmp_path / "out.nii.gz", intensity="cohort")

    fed = np.concatenate(generator.fed)[2, ..., 0] > 0.0  # a middle slice, as the model saw it
    rows, columns = np.nonzero(fed)
    height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
    assert abs(int(height) - int(width)) <= 1, (height, width)  # round, not a 2:1 ellipse
    assert height >= 0.5 * SIZE  # the ball's 24 mm of the 40 mm field of view
    back = nib.load(str(out_path)).get_fdata()
    assert back.shape == volume.shape
    inside, returned = volume > 0, back > 0.5
    assert (inside & returned).sum() / (inside | returned).sum() > 0.9


def test_a_constant_volume_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "mask.nii.gz"
    mask = np.zeros((16, 16, 4), np.float32)
    mask[4:12, 4:12] = 1.0
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(path))
    for intensity in ("cohort", "percentiles"):
        with pytest.raises(DataError, match="mask.nii.gz: foreground intensity is constant"):
            translate_nifti(_identity_generator(), path, tmp_path / "out.nii.gz", intensity)
    assert not (tmp_path / "out.nii.gz").exists()


def test_one_volume_of_a_4d_file_translates_as_that_volume_alone(tmp_path):
    volume = _toy_volume()
    series_path = tmp_path / "series.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([volume, 0.5 * volume], -1), np.eye(4)), str(series_path))
    alone_path = _write_volume(tmp_path / "alone.nii.gz", 0.5 * volume)
    run_dir = _run_folder(tmp_path / "run", data_a="brain:t1")
    # What the message asks for: the 4-D file alone is refused, PATH#N is taken.
    with pytest.raises(DataError, match="4-D image with 2 volumes") as refused:
        translate_run(run_dir, str(series_path), "a2b", out_dir=tmp_path / "out")
    # The data spec nifti:PATH#N would give only a PNG grid here.
    assert f"--input {series_path}#N (N from 0 to 1)" in str(refused.value)
    assert "nifti:" not in str(refused.value)
    written = translate_run(run_dir, f"{series_path}#1", "a2b", out_dir=tmp_path / "out")
    assert written[0] == tmp_path / "out" / "series_vol1_a2b.nii.gz"
    picked = nib.load(str(written[0])).get_fdata()
    alone = nib.load(str(translate_run(run_dir, str(alone_path), "a2b", tmp_path / "b")[0]))
    assert picked.shape == volume.shape
    np.testing.assert_allclose(picked, alone.get_fdata(), atol=1e-6)


def test_a_bad_file_in_a_folder_is_refused_before_any_output_is_written(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    _write_volume(folder / "a.nii.gz", _toy_volume())
    whole = _write_volume(folder / "z.nii.gz", _toy_volume()).read_bytes()
    (folder / "z.nii.gz").write_bytes(whole[: len(whole) // 2])  # a copy cut short
    run_dir = _run_folder(tmp_path / "run", data_a="brain:t1")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "a_a2b.nii.gz").write_bytes(b"an earlier translation")
    with pytest.raises(DataError, match="z.nii.gz: unreadable or corrupt"):
        translate_run(run_dir, str(folder), "a2b", out_dir=out_dir)
    assert [file.name for file in out_dir.iterdir()] == ["a_a2b.nii.gz"]
    assert (out_dir / "a_a2b.nii.gz").read_bytes() == b"an earlier translation"

    # A refused input leaves no empty output folder (nor the parents made for it) behind.
    for source in (folder / "z.nii.gz", tmp_path / "missing.nii.gz", "brain:t7"):
        with pytest.raises(DataError):
            translate_run(run_dir, str(source), "a2b", out_dir=tmp_path / "new" / "out")
        assert not (tmp_path / "new").exists()


def test_a_one_voxel_thick_volume_is_refused_before_translating_stripes(tmp_path):
    # One sagittal slice, shape (1, y, z): axial slices of it are 1-pixel stripes.
    path = _write_volume(tmp_path / "sagittal.nii.gz", np.transpose(_toy_volume(), (2, 0, 1))[:1])
    run_dir = _run_folder(tmp_path / "run", data_a="brain:t1")
    for source in (path, tmp_path):  # the file alone, and in a folder
        with pytest.raises(DataError, match="1 voxel thick along axis 0") as error:
            translate_run(run_dir, str(source), "a2b", out_dir=tmp_path / "out")
        assert "\n" not in str(error.value) and "sagittal.nii.gz" in str(error.value)
    assert not (tmp_path / "out").exists()


def test_a_scan_without_voxel_sizes_is_one_line_with_nothing_else_on_stderr(
    tmp_path, capfd, caplog
):
    image = nib.Nifti1Image(_toy_volume(), np.eye(4))
    image.header.set_qform(None, code=0)
    image.header.set_sform(None, code=0)
    image.header.set_data_offset(352)
    image.header["pixdim"][1:4] = 0  # no geometry at all
    path = tmp_path / "scan.nii"
    path.write_bytes(image.header.binaryblock + b"\0" * 4 + _toy_volume().tobytes())
    run_dir = _run_folder(tmp_path / "run", data_a="brain:t1")
    capfd.readouterr()
    with pytest.raises(DataError, match="voxel size pixdim") as error:
        translate_run(run_dir, str(path), "a2b", out_dir=tmp_path / "out")
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    # nibabel's "setting 0 dims to 1" came first, from the 4-D check before load_volume's.
    assert not [message for message in caplog.messages if "pixdim" in message]
    assert capfd.readouterr().err == ""


def test_two_inputs_with_one_output_name_are_refused_before_writing(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    _write_volume(folder / "a.nii", _toy_volume())
    _write_volume(folder / "a.nii.gz", 0.5 * _toy_volume())
    run_dir = _run_folder(tmp_path / "run", data_a="brain:t1")
    with pytest.raises(DataError, match="a_a2b.nii.gz would replace that of"):
        translate_run(run_dir, str(folder), "a2b", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cyclegan_trains_on_rgb_domains_and_translate_checks_the_channels(tmp_path, medmnist_npz):
    from medgen_tf import recipes

    # RGB MedMNIST layout (dermamnist): (n, h, w, 3) uint8 images.
    rgb = f"medmnist:{medmnist_npz(tmp_path / 'rgb.npz', size=24, channels=3, counts=(4, 2, 4))}"
    run_dir = recipes.train(
        "cyclegan",
        data_a=rgb,
        data_b=rgb,
        image_size=24,
        num_epochs=1,
        batch_size=2,
        run_dir=tmp_path / "run",
        verbose=0,
    )
    assert json.loads((run_dir / "config.json").read_text())["config"]["channels"] == 3
    written = translate_run(run_dir, rgb, "a2b", out_dir=tmp_path / "out", num_images=2)
    assert [path.name for path in written] == ["a2b.png"]

    # A grey input for the RGB model, an RGB input for a grey one: one line, nothing written.
    volume_path = _write_volume(tmp_path / "toy.nii.gz", _toy_volume())
    grey_run = _run_folder(tmp_path / "grey_run", data_a="brain:t1")
    for run, source, problem in (
        (
            run_dir,
            str(volume_path),
            f"{volume_path}: NIfTI volumes give 1-channel slices, but "
            "the model translates 3-channel images",
        ),
        (grey_run, rgb, f"{rgb}: 3-channel images, but the model translates 1-channel images"),
    ):
        with pytest.raises(DataError) as refused:
            translate_run(run, source, "a2b", out_dir=tmp_path / "refused", intensity="cohort")
        assert str(refused.value) == problem
        assert not (tmp_path / "refused").exists()


class _InterruptAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt  # after the engine's checkpoint of epoch 1, as a Ctrl-C would


def _tiny_run_options(num_epochs=2, info=None):
    """``train_cyclegan`` options for a 24 px run of two 2-image batches, on ready domains."""
    images = np.random.default_rng(0).uniform(-1, 1, (4, 24, 24, 1)).astype("float32")
    return dict(
        image_size=24,
        num_epochs=num_epochs,
        batch_size=2,
        base_filters=2,
        num_residual_blocks=1,
        seed=0,
        verbose=0,
        domains=(images, images[::-1].copy(), info or {"spec_a": "a", "spec_b": "b"}),
    )


@pytest.fixture(scope="module")
def run_stopped_after_its_first_epoch(tmp_path_factory):
    """A run folder with epoch 1's checkpoint, as Ctrl-C after that epoch leaves it; each test
    copies it rather than training its own."""
    run_dir = tmp_path_factory.mktemp("widths") / "run"
    with pytest.raises(KeyboardInterrupt):
        train_cyclegan(run_dir, callbacks=[_InterruptAfterFirstEpoch()], **_tiny_run_options())
    return run_dir


@pytest.mark.parametrize(
    "recorded",
    [
        # As train_cyclegan recorded them before the builders took base_filters.
        {"filters": 2, "discriminator_filters": None},
        # Between the rename and the width used being recorded: None for "as base_filters".
        {"base_filters": 2, "discriminator_base_filters": None},
        # Both names (an old run resumed by hand-edited settings): the new name wins.
        {
            "filters": 8,
            "discriminator_filters": 8,
            "base_filters": 2,
            "discriminator_base_filters": 2,
        },
    ],
    ids=["old keys", "discriminator width None", "old and new keys"],
)
def test_an_older_runs_recorded_widths_resume_and_are_still_checked(
    tmp_path, recorded, run_stopped_after_its_first_epoch
):
    from medgen_tf.training import latest_checkpoint

    options = _tiny_run_options()
    run_dir = shutil.copytree(run_stopped_after_its_first_epoch, tmp_path / "run")
    config_path = run_dir / "config.json"
    stored = json.loads(config_path.read_text())
    # The width built is recorded, not the default None.
    assert stored["config"]["base_filters"] == 2
    assert stored["config"]["discriminator_base_filters"] == 2
    # The run folder as an older train_cyclegan wrote it.
    widths = ("base_filters", "discriminator_base_filters")
    stored["config"] = {
        **{key: value for key, value in stored["config"].items() if key not in widths},
        **recorded,
    }
    config_path.write_text(json.dumps(stored, indent=2))
    written = config_path.read_text()
    # Read as this version records them: another width is still refused, before anything runs.
    for change, difference in (
        (dict(base_filters=4), "base_filters 4 (run: 2)"),
        (dict(base_filters=8), "base_filters 8 (run: 2)"),
        (dict(discriminator_base_filters=4), "discriminator_base_filters 4 (run: 2)"),
    ):
        with pytest.raises(DataError, match=re.escape(difference)):
            train_cyclegan(run_dir, resume=True, **{**options, **change})
    assert config_path.read_text() == written
    # With the run's own widths, the discriminator's named explicitly, it resumes from its
    # checkpoint and finishes.
    history = train_cyclegan(run_dir, resume=True, **options, discriminator_base_filters=2)
    assert all(len(values) == 2 for values in history.values())
    assert latest_checkpoint(run_dir / "checkpoints").name == "epoch_0002"
    config = json.loads(config_path.read_text())["config"]
    assert config["base_filters"] == 2 and config["discriminator_base_filters"] == 2
    assert "filters" not in config and "discriminator_filters" not in config
    assert all((run_dir / name).exists() for name in GENERATOR_FILES.values())


def test_train_cyclegan_trains_and_records_the_identity_weight_asked_for(
    tmp_path, run_stopped_after_its_first_epoch
):
    options = _tiny_run_options(1)
    history = train_cyclegan(tmp_path / "run", identity_weight=0, **options)
    assert history.model.identity_weight == 0.0
    # At 0 no identity pass is run, and the term reports 0 (the default's is positive).
    assert history["identity_loss"] == [0.0]
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert config["identity_weight"] == 0.0
    # A run recorded before the setting existed trained with the paper's 0.5: a resume with
    # another weight is refused before anything runs, and one with 0.5 continues.
    run_dir = shutil.copytree(run_stopped_after_its_first_epoch, tmp_path / "old")
    config_path = run_dir / "config.json"
    stored = json.loads(config_path.read_text())
    assert stored["config"].pop("identity_weight") == 0.5
    config_path.write_text(json.dumps(stored, indent=2))
    with pytest.raises(DataError, match=re.escape("identity_weight 0.0 (run: 0.5)")):
        train_cyclegan(run_dir, resume=True, **_tiny_run_options(), identity_weight=0.0)
    history = train_cyclegan(run_dir, resume=True, **_tiny_run_options())
    assert len(history["identity_loss"]) == 2 and history.model.identity_weight == 0.5


@pytest.mark.parametrize("value", [-0.5, float("nan"), float("inf"), "half", "0.5", True, np.True_])
def test_train_cyclegan_refuses_an_identity_weight_before_the_folder(tmp_path, value):
    with pytest.raises(ValueError, match=rf"^identity_weight={re.escape(repr(value))}: give a "):
        train_cyclegan(tmp_path / "run", identity_weight=value, **_tiny_run_options(1))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("source", ["volume", "brain:t1"])
def test_a_generator_file_that_translates_no_images_is_one_line_naming_it(tmp_path, source):
    # A noise-to-image generator (or any model that is no image-to-image network) saved as
    # generator_ab.keras was called with slices: Keras' multi-line "Exception encountered
    # when calling Functional.call()" traceback.
    from medgen_tf.models.gan import build_generator

    run_dir = _run_folder(tmp_path / "run", data_a="brain:t1")
    build_generator(8, SIZE, base_filters=4).save(run_dir / GENERATOR_FILES["a2b"])
    volume_path = _write_volume(tmp_path / "toy.nii.gz", _toy_volume())
    source = str(volume_path) if source == "volume" else source
    with pytest.raises(DataError) as raised:
        translate_run(run_dir, source, "a2b", out_dir=tmp_path / "out")
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{run_dir / GENERATOR_FILES['a2b']}: not an image-to-image")
    assert not (tmp_path / "out").exists()


def test_a_number_of_images_that_is_no_count_is_one_line_naming_it(tmp_path, medmnist_npz):
    # num_images=0 reached generator.predict with no images: UnboundLocalError ("batch_outputs")
    # from inside Keras; -1 a numpy ValueError on linspace's sample count.
    run_dir = _run_folder(tmp_path / "run", data_a="brain:t1")
    spec = f"medmnist:{medmnist_npz(tmp_path / 'gray.npz', size=SIZE)}"
    for num_images in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=rf"num_images={num_images}: .*whole number") as raised:
            translate_run(run_dir, spec, "a2b", out_dir=tmp_path / "out", num_images=num_images)
        assert "\n" not in str(raised.value)
        assert not (tmp_path / "out").exists()
    assert translate_run(run_dir, spec, "a2b", out_dir=tmp_path / "out", num_images=2) == [
        tmp_path / "out" / "a2b.png"
    ]


def test_a_brain_domain_beside_another_kind_comes_from_the_cohort_asked_for(tmp_path, medmnist_npz):
    # With one brain spec and one of another kind, num_subjects was dropped: domain A came
    # from the default 32-subject cohort (1152 slices at 32 px) while the cyclegan recipe
    # recorded the 8 subjects of quick mode in config.json.
    from medgen_tf.data import load_spec
    from medgen_tf.translation import unpaired_domains

    spec = f"medmnist:{medmnist_npz(tmp_path / 'gray.npz', size=SIZE)}"
    images_a, images_b, info = unpaired_domains("brain:t1", spec, SIZE, seed=0, num_subjects=8)
    cohort = load_spec("brain:t1", image_size=SIZE, seed=0, num_subjects=8)["images"]
    assert info["num_images_a"] == len(cohort) and info["num_images_b"] == 10
    np.testing.assert_array_equal(images_a, cohort)
    assert images_b.shape == images_a.shape


def test_a_run_trained_on_ready_domains_records_their_specs(tmp_path):
    # Given domains=, train_cyclegan recorded its default data_a/data_b ("brain:t1",
    # "brain:t2") in config.json, not the specs the images came from: translate then scaled
    # NIfTI inputs for a run trained on nifti: data as the cohort ("cohort", not "percentiles").
    info = {"spec_a": "nifti:scans/t1", "spec_b": "nifti:scans/t2"}
    run_dir = tmp_path / "run"
    train_cyclegan(run_dir, **_tiny_run_options(num_epochs=1, info=info))
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert (config["data_a"], config["data_b"]) == ("nifti:scans/t1", "nifti:scans/t2")
    assert run_intensity(run_dir, "a2b") == run_intensity(run_dir, "b2a") == "percentiles"


def test_an_output_that_would_replace_an_input_is_refused_before_writing(tmp_path):
    # Translating a folder into itself: a.nii.gz's output a_a2b.nii.gz replaced the input of
    # that name (a scan, or an earlier run's output) before it was read, and that file was
    # then "translated" from the fresh output.
    folder = tmp_path / "scans"
    folder.mkdir()
    _write_volume(folder / "a.nii.gz", _toy_volume())
    kept = _write_volume(folder / "a_a2b.nii.gz", 0.5 * _toy_volume()).read_bytes()
    run_dir = _run_folder(tmp_path / "run", data_a="brain:t1")
    with pytest.raises(DataError, match=r"a\.nii\.gz: its output .*a_a2b\.nii\.gz is an input"):
        translate_run(run_dir, str(folder), "a2b", out_dir=folder)
    assert (folder / "a_a2b.nii.gz").read_bytes() == kept
    assert sorted(path.name for path in folder.iterdir()) == ["a.nii.gz", "a_a2b.nii.gz"]


class _PoisonGeneratorAB(keras.callbacks.Callback):
    """Stands in for a diverging run: NaN weights in generator_ab after the first batch."""

    def on_train_batch_end(self, batch, logs=None):
        weight = self.model.generator_ab.trainable_variables[0]
        weight.assign(np.full(weight.shape, np.nan, np.float32))


def test_a_diverged_cyclegan_run_exports_no_generator_and_nan_is_never_translated(tmp_path):
    # The NaN guard stopped the run, yet train_cyclegan saved both generators, and translate
    # then wrote a volume of NaN voxels without a word.
    run_dir = tmp_path / "run"
    with pytest.raises(DataError, match=r"^run folder .*run: NaN guard: .* is nan at epoch 1"):
        train_cyclegan(run_dir, callbacks=[_PoisonGeneratorAB()], **_tiny_run_options(1))
    assert not any((run_dir / name).exists() for name in GENERATOR_FILES.values())
    assert not (run_dir / "domains.json").exists()
    inputs = keras.Input((SIZE, SIZE, 1))
    poisoned = keras.Model(inputs, keras.layers.Lambda(lambda x: x * np.float32(np.nan))(inputs))
    path = _write_volume(tmp_path / "scan.nii.gz", _toy_volume())
    with pytest.raises(DataError, match=r"scan\.nii\.gz: the generator gave \d+ NaN or Inf values"):
        translate_nifti(poisoned, path, tmp_path / "out.nii.gz")
    assert not (tmp_path / "out.nii.gz").exists()


def test_ready_domains_of_another_size_than_image_size_are_refused_before_the_folder(tmp_path):
    # They failed inside fit's first step, leaving config.json for a run that never trained.
    options = _tiny_run_options(1)
    options["image_size"] = 32
    with pytest.raises(
        DataError, match=r"domains: images of \[\(24, 24\)\] pixels, but image_size=32"
    ):
        train_cyclegan(tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()


def test_a_pooled_brain_domain_shares_no_subject_with_the_other():
    # "brain:t1" against the pooled "brain" gave domain B every image of domain A.
    from medgen_tf.translation import unpaired_domains

    images_a, images_b, info = unpaired_domains("brain:t1", "brain", SIZE, seed=0, num_subjects=8)
    assert set(info["subjects_a"]).isdisjoint(info["subjects_b"]) and info["subjects_b"]
    shared = (images_a[:, None] == images_b[None]).all(axis=(2, 3, 4))
    assert not shared.any()
    assert info["num_images_b"] == 3 * info["num_images_a"]


@pytest.mark.parametrize("setting, value", [("batch_size", 0), ("seed", -1), ("batch_size", 2.5)])
def test_train_cyclegan_refuses_a_batch_size_or_seed_that_cannot_train(tmp_path, setting, value):
    # batch_size=0 was a ZeroDivisionError, a negative seed numpy's error from the cohort.
    options = {**_tiny_run_options(1), setting: value}
    with pytest.raises(ValueError, match=rf"^{setting}={value!r}: give a whole number >= "):
        train_cyclegan(tmp_path / "run", **options)
    assert not (tmp_path / "run").exists()


def test_a_data_spec_scaled_otherwise_than_the_runs_data_is_refused(tmp_path):
    # translate with a nifti: spec ignored the run's scaling (and any intensity, 'bogus'
    # included): a cohort-trained model got percentile-scaled slices, CSF at the air's -1.
    volume_path = _write_volume(tmp_path / "toy.nii.gz", _toy_volume())
    run_dir = _run_folder(tmp_path / "run", data_a="brain:t1")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"intensity 'bogus': use one of"):
        translate_run(run_dir, "brain:t1", "a2b", out_dir=out, num_images=2, intensity="bogus")
    with pytest.raises(
        DataError, match=r"nifti: spec is scaled by 'percentiles', but the run's"
    ) as raised:
        translate_run(run_dir, f"nifti:{volume_path}", "a2b", out_dir=out, num_images=2)
    assert "\n" not in str(raised.value)
    with pytest.raises(
        DataError, match=r"brain: spec is scaled by 'cohort', not intensity='percentiles'"
    ):
        translate_run(
            run_dir, "brain:t1", "a2b", out_dir=out, num_images=2, intensity="percentiles"
        )
    assert not out.exists()
    # b2a's source (data_b) is a nifti: spec: a nifti: spec is scaled as its data were.
    written = translate_run(run_dir, f"nifti:{volume_path}", "b2a", out_dir=out, num_images=2)
    assert [path.name for path in written] == ["b2a.png"]


def test_a_header_without_orientation_is_warned_about_once_per_file(tmp_path, caplog):
    # Every input is read twice (checked, then translated): the warning came twice.
    folder = tmp_path / "scans"
    folder.mkdir()
    for name in ("a", "b"):
        nib.save(nib.Nifti1Image(_toy_volume(), None), str(folder / f"{name}.nii.gz"))
    run_dir = _run_folder(tmp_path / "run", data_a="brain:t1")
    with caplog.at_level("WARNING", logger="medgen_tf.data.nifti"):
        written = translate_run(run_dir, str(folder), "a2b", out_dir=tmp_path / "out")
    assert len(written) == 4
    assert [message.split(":")[0] for message in caplog.messages] == [
        str(folder / "a.nii.gz"),
        str(folder / "b.nii.gz"),
    ]
    assert all("no orientation in the header" in message for message in caplog.messages)
    assert not logging.getLogger("medgen_tf.data.nifti").filters
    caplog.clear()
    with caplog.at_level("WARNING", logger="medgen_tf.data.nifti"):
        translate_run(run_dir, str(folder / "a.nii.gz"), "a2b", out_dir=tmp_path / "again")
    assert len(caplog.messages) == 1  # a new command warns again
