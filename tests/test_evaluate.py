"""medgen_tf.evaluate and `medgen-tf evaluate` on tiny trained runs."""

import json
import math
from pathlib import Path

import keras
import numpy as np
import pytest

from medgen_tf import DataError, cli, viz
from medgen_tf import evaluate as evaluate_module
from medgen_tf.data import load_spec
from medgen_tf.evaluate import evaluate_run, evaluate_samples
from medgen_tf.models.gan import GAN, ConditionalGAN, build_discriminator, build_generator
from medgen_tf.models.vae import build_decoder, build_vae

SPEC = {"data": "brain:t1", "image_size": 32, "num_subjects": 8}


def _real(split):
    return load_spec("brain:t1", image_size=32, split=split, num_subjects=8)["images"]


def _all_numbers_finite(value):
    if isinstance(value, dict):
        return all(_all_numbers_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_all_numbers_finite(item) for item in value)
    return not isinstance(value, float) or math.isfinite(value)


def _write_config(run_dir, model):
    (run_dir / "config.json").write_text(json.dumps({"config": {"model": model, **SPEC}}))


def test_evaluate_command_on_a_tiny_trained_gan(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    gan = GAN(build_generator(16, 32, base_filters=8), build_discriminator(32, base_filters=8))
    gan.compile()
    gan.fit(_real("train")[:64], batch_size=32, epochs=1, verbose=0)
    gan.generator.save(tmp_path / "generator.keras")
    _write_config(tmp_path, "dcgan")

    assert cli.main(["evaluate", str(tmp_path), "--n", "40"]) == 0
    assert "metrics.json" in capsys.readouterr().out
    report = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("fd_medgen", "kid", "precision_recall"):
        assert set(report[key]) == {"generated", "real_floor"}
    assert set(report["kid"]["generated"]) == {"mean", "std"}
    assert report["kid"]["real_floor"]["std"] > 0  # subsets must differ
    assert report["num_samples"] == 40 and report["model"] == "gan"
    assert report["memorization"]["closest_pairs"]
    assert _all_numbers_finite(report)
    # One epoch of a tiny GAN is far from the data: well above the real-vs-real floor.
    assert report["fd_medgen"]["generated"] > 2 * report["fd_medgen"]["real_floor"]
    assert (tmp_path / "evaluation.png").stat().st_size > 1000


def _prior_images_from_logits(decoder, num_samples, latent_dim, seed=0):
    """Reference images in [-1, 1]: a Bernoulli decoder's logits on the prior draws of ``seed``
    (as VAE.sample and `medgen-tf sample` draw them), through a numpy sigmoid and 2 m - 1."""
    z = keras.random.normal((num_samples, latent_dim), seed=seed)
    logits = keras.ops.convert_to_numpy(decoder(z)).astype(np.float64)
    return 2.0 / (1.0 + np.exp(-logits)) - 1.0


def test_evaluate_run_samples_a_vae_decoder(tmp_path, record_calls):
    decoder = build_decoder(32, latent_dim=4, base_filters=8)  # Bernoulli: outputs logits
    decoder.save(tmp_path / "decoder.keras")
    _write_config(tmp_path, "vae")
    scored = record_calls(evaluate_module, "evaluate_samples")
    report = json.loads(evaluate_run(tmp_path, num_samples=20).read_text())
    assert report["model"] == "vae" and report["num_samples"] == 20
    assert _all_numbers_finite(report)
    # What was scored must be the decoder's prior samples as images in [-1, 1]: the logits go
    # through a sigmoid (pixel means in [0, 1]) and then 2 m - 1. Reference: the same draws
    # as VAE.sample and `medgen-tf sample` (seed 0 is evaluate_run's default), mapped in numpy.
    (generated,) = scored
    np.testing.assert_allclose(generated, _prior_images_from_logits(decoder, 20, 4), atol=1e-5)
    assert generated.min() >= -1.0 and generated.max() <= 1.0


@pytest.mark.parametrize("name", ["vae.keras", "model.keras"])
def test_evaluate_run_samples_a_whole_vae_in_minus_one_to_one(tmp_path, record_calls, name):
    keras.utils.set_random_seed(0)
    vae = build_vae(32, latent_dim=4, base_filters=4, seed=0)  # Bernoulli: logits
    # Logits far from 0, so the pixel means reach both ends of [0, 1]: samples left in [0, 1]
    # (or mapped by 2 m, or m - 1) would show in the range checks below, not only in the
    # comparison with the reference.
    logits = vae.decoder.get_layer("logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel * 200.0, bias])
    vae.save(tmp_path / name)
    _write_config(tmp_path, "vae")
    scored = record_calls(evaluate_module, "evaluate_samples")
    report = json.loads(evaluate_run(tmp_path, num_samples=20).read_text())
    assert report["model"] == "vae" and report["num_samples"] == 20
    assert _all_numbers_finite(report)
    # The model's prior samples (seed 0 is evaluate_run's default), as images in [-1, 1]:
    # computed here from the decoder, not through VAE.sample, and mapped in numpy.
    (generated,) = scored
    np.testing.assert_allclose(generated, _prior_images_from_logits(vae.decoder, 20, 4), atol=1e-5)
    assert generated.min() >= -1.0 and generated.max() <= 1.0
    assert generated.min() < -0.5 and generated.max() > 0.5


@pytest.mark.parametrize("model", ["dcgan", "cgan", "vae"])
def test_evaluate_samples_the_images_that_sample_draws_for_the_same_seed(
    tmp_path, record_calls, model
):
    # `sample --seed 3` and `evaluate --seed 3` on one run must be the same images: evaluate
    # drew its noise with numpy, `sample` (like GAN.generate and VAE.sample) with keras.random.
    keras.utils.set_random_seed(0)
    if model == "vae":
        # `sample` draws from vae.keras; evaluate takes a decoder.keras beside it first.
        vae = build_vae(32, latent_dim=4, base_filters=4, seed=0)  # Bernoulli: logits
        vae.save(tmp_path / "vae.keras")
        vae.decoder.save(tmp_path / "decoder.keras")
    else:
        classes = 3 if model == "cgan" else None
        build_generator(16, 32, base_filters=8, num_classes=classes).save(
            tmp_path / "generator.keras"
        )
    _write_config(tmp_path, model)
    sample, kind, _ = evaluate_module.load_sampler(tmp_path)
    assert kind == ("vae" if model == "vae" else "gan")
    drawn = record_calls(viz, "save_image_grid")
    for seed in ("3", "4"):
        grid = str(tmp_path / "grid.png")
        assert cli.main(["sample", str(tmp_path), "--n", "12", "--seed", seed, "--out", grid]) == 0
    if model == "cgan":  # `sample`'s labels: the classes in turn
        np.testing.assert_allclose(sample(12, 3, np.arange(12) % 3), drawn[0], atol=1e-6)
    for seed, images in zip((3, 4), drawn, strict=True):
        # A VAE's `sample` images are pixel means in [0, 1]; evaluate's are in [-1, 1]. A
        # conditional sampler given no labels takes `sample`'s.
        expected = 2.0 * images - 1.0 if model == "vae" else images
        np.testing.assert_allclose(sample(12, seed), expected, atol=1e-6)
    # The seed does choose the images, so the comparisons above see the noise.
    assert np.abs(drawn[0] - drawn[1]).max() > 1e-3


def _conditional_generator_run(run_dir, npz_path, name):
    """A 3-class conditional generator (or a whole ConditionalGAN) scored on a local .npz."""
    keras.utils.set_random_seed(0)
    generator = build_generator(8, 32, base_filters=4, num_classes=3)
    discriminator = build_discriminator(32, base_filters=4, num_classes=3)
    gan = ConditionalGAN(generator, discriminator)
    (generator if name == "generator.keras" else gan).save(run_dir / name)
    config = {"model": "cgan", "data": f"medmnist:{npz_path}", "image_size": 32}
    (run_dir / "config.json").write_text(json.dumps({"config": config}))
    return gan


@pytest.mark.parametrize("name", ["generator.keras", "model.keras"])
def test_a_conditional_run_is_sampled_for_the_classes_it_was_trained_on(
    tmp_path, monkeypatch, medmnist_npz, record_calls, name
):
    npz_path = medmnist_npz(tmp_path / "local.npz", size=32, counts=(20, 4, 10))
    arrays = dict(np.load(npz_path))
    # The generator knows classes 0-2; the training split holds only class 1 (test: 0 and 1).
    arrays["train_labels"] = np.ones_like(arrays["train_labels"])
    np.savez(npz_path, **arrays)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    gan = _conditional_generator_run(run_dir, npz_path, name)

    requested = []
    load_sampler = evaluate_module.load_sampler

    def recording_load_sampler(path):
        sample, kind, num_classes = load_sampler(path)

        def recording_sample(num_samples, seed, labels=None):
            requested.append((num_samples, seed, labels))
            return sample(num_samples, seed, labels)

        return recording_sample, kind, num_classes

    monkeypatch.setattr(evaluate_module, "load_sampler", recording_load_sampler)
    scored = record_calls(evaluate_module, "evaluate_samples")
    report = json.loads(evaluate_run(run_dir, num_samples=10, seed=0).read_text())
    assert report["model"] == "gan" and report["num_samples"] == 10
    assert _all_numbers_finite(report)
    # Labels drawn from the training labels: all class 1, never a class the data lack.
    ((num_samples, seed, labels),) = requested
    assert (num_samples, seed) == (10, 0)
    np.testing.assert_array_equal(labels, np.ones(10))
    # The images scored are the model's for those labels.
    (generated,) = scored

    def reference(labels):
        # The spec, for both files: the trained model's own generate for the seed and labels.
        return gan.generate(10, seed=0, labels=labels)

    class_1 = np.ones(10, np.int32)
    np.testing.assert_allclose(generated, reference(class_1), atol=1e-6)
    assert generated.min() >= -1.0 and generated.max() <= 1.0
    # Another class gives other images, so the comparison above does see the labels.
    assert np.abs(reference(class_1 - 1) - generated).max() > 1e-4


def _whole_model_run(run_dir, name):
    """A whole VAE (vae.keras) or a whole unconditional GAN (model.keras) in ``run_dir``."""
    keras.utils.set_random_seed(0)
    if name == "vae.keras":
        model = build_vae(32, latent_dim=4, base_filters=4, seed=0)
    else:
        model = GAN(build_generator(8, 32, base_filters=4), build_discriminator(32, base_filters=4))
    model.save(run_dir / name)
    _write_config(run_dir, "vae" if name == "vae.keras" else "dcgan")


@pytest.mark.parametrize("name", ["vae.keras", "model.keras"])
def test_a_numpy_integer_seed_evaluates_as_the_same_python_int(tmp_path, record_calls, name):
    # keras.random refuses a numpy integer seed ("must be either an integer or an instance of
    # SeedGenerator"), and json.dumps cannot write one into metrics.json.
    _whole_model_run(tmp_path, name)
    scored = record_calls(evaluate_module, "evaluate_samples")
    reports = []
    for seed in (3, np.int64(3)):
        reports.append(json.loads(evaluate_run(tmp_path, num_samples=20, seed=seed).read_text()))
    assert reports[0] == reports[1] and reports[1]["seed"] == 3
    np.testing.assert_array_equal(scored[0], scored[1])
    sample, _, _ = evaluate_module.load_sampler(tmp_path)
    np.testing.assert_array_equal(sample(6, np.int64(3)), sample(6, 3))


@pytest.mark.parametrize(
    "name",
    ["generator.keras", "conditional generator.keras", "decoder.keras", "vae.keras", "model.keras"],
)
def test_a_sampler_asked_for_no_images_gives_an_empty_array_of_their_shape(tmp_path, name):
    if name.endswith("generator.keras"):
        classes = 3 if name.startswith("conditional") else None
        build_generator(8, 32, base_filters=4, num_classes=classes).save(
            tmp_path / "generator.keras"
        )
    elif name == "decoder.keras":
        build_decoder(32, latent_dim=4, base_filters=4).save(tmp_path / name)
    else:
        _whole_model_run(tmp_path, name)
    sample, _, _ = evaluate_module.load_sampler(tmp_path)
    images = sample(0, 0)
    assert images.shape == (0, 32, 32, 1) and images.dtype == np.float32


def test_copied_training_slices_score_like_real_data_and_are_flagged():
    train, test = _real("train"), _real("test")
    copies = train[:48] + 0.0
    results = evaluate_samples(copies, train, test, num_samples=48)
    assert results["memorization"]["fraction_flagged"] == 1.0
    assert results["memorization"]["generated_to_train"]["median"] == 0.0
    noise = np.random.default_rng(0).uniform(-1, 1, copies.shape).astype(np.float32)
    noisy = evaluate_samples(noise, train, test, num_samples=48)
    assert noisy["memorization"]["fraction_flagged"] == 0.0
    assert noisy["fd_medgen"]["generated"] > 10 * results["fd_medgen"]["generated"]


def test_memorisation_indices_are_those_of_the_generated_images_as_given():
    # The generated set was shuffled before the check: "generated #17 is a copy" named an
    # image of an order no command showed.
    train, test = _real("train"), _real("test")
    generated = np.random.default_rng(0).uniform(-1, 1, (24, *train.shape[1:]))
    generated = generated.astype(np.float32)
    generated[[3, 17]] = train[[5, 9]]
    results = evaluate_samples(generated, train, test, num_samples=24)
    assert results["memorization"]["flagged_indices"] == [3, 17]
    pairs = {pair[0]: pair[1] for pair in results["memorization"]["closest_pairs"]}
    assert (pairs[3], pairs[17]) == (5, 9)


def test_kid_subsets_differ_at_the_smallest_n():
    # Subsets of max(k + 2, n // 2) rows were the whole set for every n up to 11: a std of 0
    # reported as a spread.
    train, test = _real("train"), _real("test")
    results = evaluate_samples(test[:5], train, test[5:], num_samples=5)
    assert results["num_samples"] == 5
    # Round-off made the old std about 1e-15, not 0.
    assert results["kid"]["generated"]["std"] > 1e-6
    assert results["kid"]["real_floor"]["std"] > 1e-6


def test_evaluate_refuses_a_folder_without_a_model(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert "no generator.keras" in capsys.readouterr().err
    with pytest.raises(DataError, match="not found"):
        evaluate_run(tmp_path / "missing")


def test_evaluate_of_a_cyclegan_run_says_it_translates_rather_than_samples(tmp_path, capsys):
    (tmp_path / "generator_ab.keras").write_bytes(b"a CycleGAN generator")
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1
    assert "a CycleGAN run translates images (medgen-tf translate)" in error


def test_compare_feature_sets_scores_each_set_against_one_reference():
    from medgen_tf.evaluate import compare_feature_sets, format_score_table

    rng = np.random.default_rng(0)
    reference = rng.normal(size=(200, 8))
    candidates = {
        "same distribution": rng.normal(size=(200, 8)),
        "shifted": rng.normal(size=(200, 8)) + 2.0,
        "collapsed": np.repeat(rng.normal(size=(4, 8)), 50, axis=0),
    }
    scores = compare_feature_sets(reference, candidates, k=3, seed=0)
    assert list(scores) == list(candidates)
    same, shifted, collapsed = scores.values()
    assert same["fd_medgen"] < 0.5 < shifted["fd_medgen"]
    assert abs(same["kid_mean"]) < 3 * same["kid_std"] + 0.05 < shifted["kid_mean"]
    assert same["precision"] > 0.8 and same["recall"] > 0.8
    assert shifted["precision"] < 0.1 and collapsed["recall"] < 0.1
    # The same reference, the same seed: the numbers of a set do not depend on its neighbours.
    alone = compare_feature_sets(reference, {"shifted": candidates["shifted"]}, k=3, seed=0)
    assert alone["shifted"] == shifted
    table = format_score_table(scores).splitlines()
    assert len(table) == 4 and "FD-medgen" in table[0] and "KID x 1e3" in table[0]
    assert table[2].startswith("shifted") and f"{shifted['fd_medgen']:.3f}" in table[2]


def _vae_run(run_dir, **config):
    build_decoder(32, latent_dim=4, base_filters=8).save(run_dir / "decoder.keras")
    (run_dir / "config.json").write_text(json.dumps({"config": {"model": "vae", **SPEC, **config}}))


def test_evaluate_scores_against_the_cohort_the_run_was_trained_on(tmp_path, monkeypatch):
    import medgen_tf.data

    _vae_run(tmp_path, seed=5)  # trained with --seed 5: its cohort was simulated from seed 5
    calls = []

    class Loaded(Exception):
        pass

    def recording_load_spec(spec, **options):
        calls.append(options)
        if options["split"] == "test":
            raise Loaded  # both splits chosen: the rest of the evaluation is not the point
        return load_spec(spec, **options)

    monkeypatch.setattr(medgen_tf.data, "load_spec", recording_load_spec)
    with pytest.raises(Loaded):
        evaluate_run(tmp_path, num_samples=20, seed=1)
    assert [(call["split"], call["seed"]) for call in calls] == [("train", 5), ("test", 5)]


def test_evaluate_refuses_a_cohort_size_other_than_the_runs(tmp_path):
    _vae_run(tmp_path)  # an 8-subject cohort: subjects 0-5 train, 6 val, 7 test
    # In a 16-subject cohort the run's test subject 7 is training data and 14-15 are "test".
    with pytest.raises(DataError, match="num_subjects=16: the run was trained on a 8-subject"):
        evaluate_run(tmp_path, num_samples=20, num_subjects=16)
    assert not (tmp_path / "metrics.json").exists()


def test_evaluate_refuses_nifti_data_which_have_no_held_out_split(tmp_path, capsys):
    import nibabel as nib

    scans = tmp_path / "scans"
    scans.mkdir()
    volume = np.zeros((32, 32, 16), np.float32)
    volume[6:26, 6:26, 2:14] = np.random.default_rng(0).uniform(100, 400, (20, 20, 12))
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(scans / "subject.nii.gz"))
    _vae_run(tmp_path, data=f"nifti:{scans}")
    assert cli.main(["evaluate", str(tmp_path), "--n", "8"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no held-out split" in error[0] and "nifti:" in error[0]
    assert not (tmp_path / "metrics.json").exists()


def test_a_crash_while_writing_the_report_keeps_the_previous_one(tmp_path, monkeypatch):
    import matplotlib.figure

    _vae_run(tmp_path)
    evaluate_run(tmp_path, num_samples=20)
    report = (tmp_path / "metrics.json").read_bytes()
    figure = (tmp_path / "evaluation.png").read_bytes()

    def write_text_then_crash(path, text, *args, **kwargs):
        path.write_bytes(text[:20].encode())
        raise OSError("disk full")

    def savefig_then_crash(figure, path, *args, **kwargs):
        Path(path).write_bytes(b"\x89PNG and no more")
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_text", write_text_then_crash)
        with pytest.raises(OSError, match="disk full"):
            evaluate_run(tmp_path, num_samples=20, seed=1)
    assert (tmp_path / "metrics.json").read_bytes() == report
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig_then_crash)
    with pytest.raises(OSError, match="disk full"):
        evaluate_run(tmp_path, num_samples=20, seed=1)
    assert (tmp_path / "evaluation.png").read_bytes() == figure
    # The scores of seed 1 were written before the figure failed: they replaced the pair's
    # metrics.json beside seed 0's figure.
    assert (tmp_path / "metrics.json").read_bytes() == report
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]


def _npz_run(run_dir, npz_path):
    build_generator(16, 16, base_filters=8).save(run_dir / "generator.keras")
    config = {"model": "dcgan", "data": f"medmnist:{npz_path}", "image_size": 16}
    (run_dir / "config.json").write_text(json.dumps({"config": config}))


@pytest.mark.parametrize(
    "test_split, arguments, problem",
    [
        ("repeats train", [], "test split: every test sample is also in train"),
        # 4 of its 6 images copied from train: the memorisation ratio's reference (the median
        # test-to-train distance) was 0, and its NaN was blamed on "the generator's samples".
        ("mostly repeats train", [], "test split: 4 of the 6 test images scored are also in train"),
        ("3 images", [], "the test split has 3 images; evaluation needs at least 5"),
        ("6 images", ["--n", "3"], "num_samples=3 (--n): evaluation needs at least 5"),
    ],
)
def test_unusable_data_for_evaluate_is_one_line_naming_it(
    tmp_path, capsys, medmnist_npz, test_split, arguments, problem
):
    npz_path = medmnist_npz(tmp_path / "local.npz", size=16, counts=(12, 4, 6))
    arrays = dict(np.load(npz_path))
    if test_split == "repeats train":
        arrays["test_images"], arrays["test_labels"] = (
            arrays["train_images"],
            arrays["train_labels"],
        )
    elif test_split == "mostly repeats train":
        for key in ("images", "labels"):
            arrays[f"test_{key}"][:4] = arrays[f"train_{key}"][:4]
    elif test_split == "3 images":
        arrays["test_images"], arrays["test_labels"] = (
            arrays["test_images"][:3],
            arrays["test_labels"][:3],
        )
    np.savez(npz_path, **arrays)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _npz_run(run_dir, npz_path)
    assert cli.main(["evaluate", str(run_dir), *arguments]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and problem in error[0]
    if not arguments:
        assert f"medmnist:{npz_path}" in error[0]
    assert not (run_dir / "metrics.json").exists()


def test_evaluate_refuses_a_run_folder_without_its_config(tmp_path, capsys):
    # Without config.json evaluate guessed brain at 64 px and failed on a shape mismatch.
    build_generator(16, 32, base_filters=8).save(tmp_path / "generator.keras")
    assert cli.main(["evaluate", str(tmp_path), "--n", "20"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "no config.json" in error[0] and str(tmp_path) in error[0]
    assert not (tmp_path / "metrics.json").exists()


def test_a_report_on_other_data_claims_no_simulated_cohort(tmp_path, medmnist_npz):
    # num_subjects 32 and data_seed 3 were written for a MedMNIST run, which has neither.
    _npz_run(tmp_path, medmnist_npz(tmp_path / "local.npz", size=16, counts=(12, 4, 6)))
    report = json.loads(evaluate_run(tmp_path, num_samples=6).read_text())
    assert (report["num_subjects"], report["data_seed"]) == (None, None)
    assert report["real_floor"] == "train vs test split, same n"


def test_samples_with_nan_are_blamed_on_the_run(tmp_path, capsys):
    # "generated images: ... NaN" named no run or model file.
    decoder = build_decoder(32, latent_dim=4, base_filters=8)
    decoder.layers[-1].set_weights(
        [np.full_like(w, np.nan) for w in decoder.layers[-1].get_weights()]
    )
    decoder.save(tmp_path / "decoder.keras")
    (tmp_path / "config.json").write_text(json.dumps({"config": {"model": "vae", **SPEC}}))
    assert cli.main(["evaluate", str(tmp_path), "--n", "20"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1
    assert error[0].startswith(f"medgen-tf: error: {tmp_path}: generated images: ")
    assert "did training diverge?" in error[0]


def test_a_missing_extractor_is_not_blamed_on_the_data(tmp_path, capsys, medmnist_npz, monkeypatch):
    from medgen_tf import features

    missing = tmp_path / "gone.weights.h5"
    monkeypatch.setattr(features, "WEIGHTS_PATH", missing)
    monkeypatch.setattr(features, "_LOADED", {})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _npz_run(run_dir, medmnist_npz(tmp_path / "local.npz", size=16, counts=(12, 4, 6)))
    assert cli.main(["evaluate", str(run_dir)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"{missing}: feature extractor weights not found" in error[0]
    assert "data 'medmnist:" not in error[0]


@pytest.mark.parametrize(
    "setting, value",
    [
        ("image_size", "abc"),
        ("image_size", 32.7),
        ("image_size", True),
        ("num_subjects", "x"),
        ("num_subjects", 1),
        ("seed", "x"),
        ("seed", -5),
        ("data", 5),
        ("data", ["brain:t1"]),
    ],
)
def test_a_run_config_with_a_setting_of_the_wrong_type_is_one_line_naming_it(
    tmp_path, capsys, setting, value
):
    # A hand-edited config.json gave tracebacks ("invalid literal for int() with base 10:
    # 'abc'", "num_subjects must be at least 3", "expected non-negative integer"), and an
    # image_size of 32.7 was evaluated at 32 without a word.
    build_generator(16, 32, base_filters=8).save(tmp_path / "generator.keras")
    config = {"model": "dcgan", **SPEC, setting: value}
    (tmp_path / "config.json").write_text(json.dumps({"config": config}))
    assert cli.main(["evaluate", str(tmp_path), "--n", "20"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1
    assert f"{tmp_path / 'config.json'}: {setting} {value!r}" in error[0]
    assert not (tmp_path / "metrics.json").exists()


def test_a_conditional_generator_with_fewer_classes_than_the_data_is_one_line(tmp_path, capsys):
    # Labels drawn from data with more classes than the generator's label embedding were an
    # InvalidArgumentError traceback "indices[1] = 2 is not in [0, 2)" from Embedding.call().
    build_generator(8, 32, base_filters=4, num_classes=2).save(tmp_path / "generator.keras")
    _write_config(tmp_path, "cgan")  # brain:t1: 3 region classes
    assert cli.main(["evaluate", str(tmp_path), "--n", "20"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"medgen-tf: error: {tmp_path}: ")
    assert "the generator knows 2 classes, but data 'brain:t1' has labels up to 2" in error[0]
    assert not (tmp_path / "metrics.json").exists()


def test_the_kid_header_names_the_scale_the_values_were_multiplied_by():
    # A kid_scale that is no power of ten was labelled with the nearest one: kid_scale=500
    # printed 0.002 as "1.00" under "KID x 1e3" (which says 2.00).
    from medgen_tf.evaluate import format_score_table

    row = {"n": 10, "fd_medgen": 1.0, "kid_mean": 0.002, "kid_std": 0.001}
    row.update(precision=0.5, recall=0.5)
    for kid_scale, header, shown in (
        (1000, "KID x 1e3", "2.00 +- 1.00"),
        (500, "KID x 500", "1.00 +- 0.50"),
        (1, "KID", "0.00 +- 0.00"),
        (0.01, "KID x 1e-2", "0.00 +- 0.00"),
    ):
        title, line = format_score_table({"x": row}, kid_scale=kid_scale).splitlines()
        assert title.split("  ")[-3].strip() == header and shown in line
    for kid_scale in (0, -1000):
        with pytest.raises(ValueError, match=f"kid_scale must be positive, got {kid_scale}"):
            format_score_table({"x": row}, kid_scale=kid_scale)


def test_evaluate_samples_names_the_set_whose_image_shape_differs():
    # Generated 28 px images against 32 px slices went through the feature extractor (which
    # resizes) and failed in the memorisation check, reported as the test split's fault:
    # "test split: generated, train and test must have the same dimension".
    rng = np.random.default_rng(0)
    train, test = rng.uniform(-1, 1, (2, 20, 32, 32, 1)).astype("float32")
    generated = rng.uniform(-1, 1, (20, 28, 28, 1)).astype("float32")
    for arrays, problem in (
        ((generated, train, test), "generated images are (28, 28, 1), train images (32, 32, 1)"),
        ((train, train, generated), "test images are (28, 28, 1), train images (32, 32, 1)"),
    ):
        with pytest.raises(DataError) as raised:
            evaluate_samples(*arrays)
        assert str(raised.value).startswith(problem) and "\n" not in str(raised.value)


@pytest.mark.parametrize("name", ["vae.keras", "model.keras"])
def test_a_model_file_with_nothing_to_sample_is_named(tmp_path, capsys, name):
    # A model without sample() or generate() (here a decoder) saved as vae.keras or
    # model.keras was skipped, and evaluate said the folder had "no generator.keras,
    # decoder.keras, vae.keras or model.keras to sample from".
    build_decoder(32, latent_dim=4, base_filters=8).save(tmp_path / name)
    _write_config(tmp_path, "vae")
    assert cli.main(["evaluate", str(tmp_path), "--n", "20"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"{tmp_path / name}: a Functional with neither" in error[0]
    assert not (tmp_path / "metrics.json").exists()


def test_compare_feature_sets_names_the_set_it_cannot_score():
    # One unusable set among several (as notebook 04 compares) failed with the metric's own
    # words only, e.g. "features_a and features_b must have the same dimension": which set?
    from medgen_tf.evaluate import compare_feature_sets

    rng = np.random.default_rng(0)
    reference = rng.normal(size=(40, 8))
    for name, features, problem in (
        ("other width", rng.normal(size=(40, 4)), "must have the same dimension"),
        ("too few", rng.normal(size=(3, 8)), "k must be in"),
    ):
        candidates = {"fine": rng.normal(size=(40, 8)), name: features}
        with pytest.raises(ValueError, match=f"^{name}: .*{problem}") as raised:
            compare_feature_sets(reference, candidates, k=3)
        assert "\n" not in str(raised.value)


def test_compare_feature_sets_blames_a_bad_reference_on_the_reference():
    # Its faults were reported as the first candidate's, under an internal name:
    # "gen: features_a contain NaN or inf".
    from medgen_tf.evaluate import compare_feature_sets

    rng = np.random.default_rng(0)
    reference = rng.normal(size=(30, 4))
    with_nan = reference.copy()
    with_nan[0, 0] = np.nan
    candidates = {"gen": rng.normal(size=(30, 4))}
    for bad_reference, problem in ((with_nan, "contain NaN"), (reference[:1], r"n >= 2")):
        with pytest.raises(ValueError, match=f"^reference .*{problem}"):
            compare_feature_sets(bad_reference, candidates)


def test_evaluate_run_refuses_a_number_of_samples_that_is_no_whole_number(tmp_path):
    # int() truncated it: num_samples=20.9 scored 20 samples, and the report said 20.
    build_decoder(32, latent_dim=4, base_filters=8).save(tmp_path / "decoder.keras")
    _write_config(tmp_path, "vae")
    for num_samples in (20.9, 6.5):
        with pytest.raises(DataError, match=rf"^num_samples={num_samples} \(--n\): .*whole"):
            evaluate_run(tmp_path, num_samples=num_samples)
    assert not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("which", [0, 1, 2], ids=["generated", "train", "test"])
def test_evaluate_samples_names_the_set_that_holds_nan(which):
    # A NaN in the train images was reported as "test split: train contain NaN or inf", one in
    # the test images as "images: 1 NaN or Inf values; did training diverge?".
    rng = np.random.default_rng(0)
    arrays = list(rng.uniform(-1, 1, (3, 20, 32, 32, 1)).astype("float32"))
    arrays[which][4, 3, 3, 0] = np.nan
    name = ("generated", "train", "test")[which]
    with pytest.raises(DataError, match=f"^{name} images: 1 NaN or Inf values; ") as raised:
        evaluate_samples(*arrays)
    assert ("did training diverge?" in str(raised.value)) == (name == "generated")


def test_comparing_or_tabulating_no_feature_sets_is_refused():
    from medgen_tf.evaluate import compare_feature_sets

    reference = np.random.default_rng(0).normal(size=(40, 8))
    with pytest.raises(ValueError, match="compare_feature_sets got no candidates"):
        compare_feature_sets(reference, {})
    with pytest.raises(ValueError, match="format_score_table got no scores"):
        evaluate_module.format_score_table({})
