"""The CLI's train/sample/demo commands through the recipes (quick mode: 8-subject cohort,
narrow networks; see medgen_tf.recipes)."""

import dataclasses
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from medgen_tf import recipes, viz
from medgen_tf.cli import main
from medgen_tf.training import latest_checkpoint


def test_recipe_registry_has_the_gan_family():
    assert {"dcgan", "cgan", "wgan-gp"} <= set(recipes.RECIPES)
    assert all(recipes.RECIPES[name].value_range == (-1.0, 1.0) for name in ("dcgan", "cgan"))


def test_train_sample_resume_through_the_cli(tmp_path, capsys, record_calls):
    run_dir = tmp_path / "run"
    arguments = [
        "train",
        "dcgan",
        "--data",
        "brain",
        "--image-size",
        "32",
        "--batch-size",
        "16",
        "--out",
        str(run_dir),
    ]
    assert main(arguments + ["--epochs", "1"]) == 0
    for name in (
        "config.json",
        "history.json",
        "samples/epoch_001.png",
        "generator.keras",
        "loss_curves.png",
    ):
        assert (run_dir / name).is_file(), name
    assert latest_checkpoint(run_dir / "checkpoints").name == "epoch_0001"
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["model"] == "dcgan" and config["image_size"] == 32
    # Only what shaped the run: CycleGAN's two domains are not a DCGAN's settings.
    assert config["data"] == "brain" and config["latent_dim"] == 128
    assert "data_a" not in config and "data_b" not in config

    # The PNG's std alone proves nothing (the grid's white padding, matplotlib's border and the
    # title make even all-black tiles vary): record the images the command puts in the grid.
    gridded = record_calls(viz, "save_image_grid")
    grid = tmp_path / "grid.png"
    assert main(["sample", str(run_dir), "--n", "16", "--out", str(grid)]) == 0
    assert np.asarray(Image.open(grid)).std() > 0
    (images,) = gridded
    assert images.shape == (16, 32, 32, 1)
    # The default seed-0 draws from the saved generator, each with structure, all different.
    # Reference computed here, not through recipe.draw: the saved generator on
    # keras.random.normal noise of that seed (what `sample --seed N` draws).
    generator = keras.saving.load_model(run_dir / "generator.keras", compile=False)

    def expected(seed):
        noise = keras.random.normal((16, config["latent_dim"]), seed=seed)
        return keras.ops.convert_to_numpy(generator(noise, training=False))

    np.testing.assert_allclose(images, expected(0), atol=1e-6)
    assert (images.std(axis=(1, 2, 3)) > 0.01).all()
    assert images.std(axis=0).mean() > 0.01
    # --seed chooses the noise: another seed, other images; the same seed, the same images.
    for _ in range(2):
        assert main(["sample", str(run_dir), "--n", "16", "--out", str(grid), "--seed", "3"]) == 0
    _, seed_3, seed_3_again = gridded
    np.testing.assert_allclose(seed_3, expected(3), atol=1e-6)
    np.testing.assert_array_equal(seed_3_again, seed_3)
    assert np.abs(seed_3 - images).mean() > 0.01

    # a second `train` into the same folder must not silently start over
    assert main(arguments + ["--epochs", "2"]) == 2
    assert "--resume" in capsys.readouterr().err
    # nor continue on other data or settings (the later flag wins in argparse)
    written = (run_dir / "config.json").read_text()
    for flags, difference in (
        (["--batch-size", "8"], "batch_size 8 (run: 16)"),
        (["--seed", "5"], "seed 5 (run: 0)"),
        (["--data", "brain:t2"], "data 'brain:t2' (run: 'brain')"),
        (["--image-size", "16"], "image_size 16 (run: 32)"),
    ):
        assert main(arguments + ["--epochs", "2", "--resume", *flags]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and difference in error[0] and "config.json" in error[0]
        # batch_size is both a recipe and an engine setting: said once.
        assert error[0].count("batch_size") <= 1
    assert (run_dir / "config.json").read_text() == written
    assert main(arguments + ["--epochs", "2", "--resume"]) == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["d_loss"]) == 2 and np.isfinite(history["g_loss"]).all()
    assert latest_checkpoint(run_dir / "checkpoints").name == "epoch_0002"

    # With its checkpoints gone, the finished run is still not trained over, with or without
    # --resume: its generator and history stay as they are.
    shutil.rmtree(run_dir / "checkpoints")
    finished = {name: (run_dir / name).read_bytes() for name in ("generator.keras", "history.json")}
    for extra, problem in (([], "already holds a run"), (["--resume"], "nothing to resume")):
        assert main(arguments + ["--epochs", "3", *extra]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and problem in error[0] and "generator.keras" in error[0]
    assert {name: (run_dir / name).read_bytes() for name in finished} == finished


def test_bad_spec_prints_one_line_and_fails(tmp_path, capsys):
    code = main(
        ["train", "dcgan", "--data", "nowhere:xyz", "--epochs", "1", "--out", str(tmp_path / "run")]
    )
    error = capsys.readouterr().err.strip()
    assert code != 0 and len(error.splitlines()) == 1 and "nowhere" in error


def test_sample_from_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["sample", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "config.json" in capsys.readouterr().err


def test_sample_names_a_damaged_generator_and_a_model_name_that_is_not_one(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"config": {"model": "dcgan"}}))
    (tmp_path / "generator.keras").write_bytes(b"PK\x03\x04 cut short")
    for model, problem in (("dcgan", "not a .keras archive"), (["dcgan"], "unknown model")):
        (tmp_path / "config.json").write_text(json.dumps({"config": {"model": model}}))
        assert main(["sample", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and problem in error[0]
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("model", ["cgan", "wgan-gp"])
def test_other_gan_recipes_build_and_draw(tmp_path, model):
    config = {
        "data": "brain:t1",
        "image_size": 32,
        "latent_dim": 16,
        "seed": 0,
        "num_subjects": 8,
        "base_filters": 8,
    }
    recipe = recipes.RECIPES[model]
    arrays = recipe.load_data(config)
    built = recipe.build(config)
    images = recipe.sample_fn(built, config)
    assert images.shape == (64, 32, 32, 1) and np.abs(images).max() <= 1.0
    if model == "cgan":
        assert config["num_classes"] == 3 and len(arrays) == 2
    recipe.export(built, tmp_path)
    drawn = recipe.draw(tmp_path, config, 4, 0)
    assert drawn.shape == (4, 32, 32, 1)
    # The generator says its own input sizes: an edited or bare config.json draws the same.
    np.testing.assert_allclose(recipe.draw(tmp_path, {"model": model}, 4, 0), drawn, atol=1e-6)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("dcgan", {"loss": "non_saturating", "n_critic": 1, "norm": None, "adam": (2e-4, 0.999)}),
        ("cgan", {"loss": "non_saturating", "n_critic": 1, "norm": None, "adam": (2e-4, 0.999)}),
        # Gulrajani et al.: 5 critic steps, lambda 10, Adam(1e-4, 0.5, 0.9), no batch norm.
        ("wgan-gp", {"loss": "wgan_gp", "n_critic": 5, "norm": "layer", "adam": (1e-4, 0.9)}),
    ],
    ids=["dcgan", "cgan", "wgan-gp"],
)
def test_each_gan_recipe_builds_the_model_its_name_says(model, expected):
    # The recipes were only seen to build something that draws images of the right shape: a
    # wgan-gp recipe that built a DCGAN (loss "non_saturating") passed every test.
    from medgen_tf.models.gan import ConditionalGAN

    config = {"image_size": 16, "latent_dim": 8, "seed": 3, "base_filters": 4, "num_classes": 3}
    built = recipes.RECIPES[model].build(config)
    assert built.loss_name == expected["loss"]
    assert built.is_wasserstein == (expected["loss"] == "wgan_gp")
    assert built.n_critic == expected["n_critic"] and built.gradient_penalty_weight == 10.0
    assert isinstance(built, ConditionalGAN) == (model == "cgan")
    if model == "cgan":
        assert built.num_classes == 3
    assert built.latent_dim == 8 and built.seed == 3
    layer_types = {type(layer).__name__ for layer in built.discriminator.layers}
    assert "BatchNormalization" not in layer_types
    assert ("LayerNormalization" in layer_types) == (expected["norm"] == "layer")
    learning_rate, beta_2 = expected["adam"]
    for optimizer in built.optimizers:
        assert float(optimizer.learning_rate) == pytest.approx(learning_rate)
        assert (optimizer.beta_1, optimizer.beta_2) == (0.5, beta_2)


@pytest.mark.parametrize("model", ["dcgan", "cgan", "vae"])
def test_recipes_train_on_an_rgb_npz_whose_classes_are_unnamed(tmp_path, medmnist_npz, model):
    # An RGB MedMNIST-layout file (dermamnist is one): the networks were built for 1 channel,
    # and a cgan counted the classes from the names a local .npz does not have.
    path = medmnist_npz(tmp_path / "rgb.npz", size=16, channels=3, counts=(8, 2, 2))
    config = {"model": model, "data": f"medmnist:{path}", "image_size": 16, "latent_dim": 8}
    config |= {"seed": 0, "num_subjects": 8, "base_filters": 8}
    recipe = recipes.RECIPES[model]
    arrays = recipe.load_data(config)
    built = recipe.build(config)
    if model == "cgan":
        assert config["num_classes"] == 2 and config["label_names"] == ["0", "1"]
    built.fit(
        *(arrays if isinstance(arrays, tuple) else (arrays,)), batch_size=4, epochs=1, verbose=0
    )
    assert recipe.sample_fn(built, config).shape == (64, 16, 16, 3)
    recipe.export(built, tmp_path)
    assert recipe.draw(tmp_path, config, 4, 0).shape == (4, 16, 16, 3)


def test_demo_writes_preview_samples_and_metrics(tmp_path, monkeypatch):
    paths = recipes.demo(tmp_path / "demo")
    names = {path.name for path in paths}
    assert {"data_preview.png", "gan_samples.png", "metrics.json"} <= names
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["training_seconds"] > 0 and np.isfinite(metrics["final"]["d_loss"])
    # A demo interrupted while it trains leaves the last complete run whole (it was deleted
    # before training began), and the next demo replaces it.
    run_dir = tmp_path / "demo" / "gan_run"
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    real_train = recipes.train

    def train_then_interrupt(*args, **kwargs):
        real_train(*args, **{**kwargs, "num_epochs": 1})
        raise KeyboardInterrupt

    monkeypatch.setattr(recipes, "train", train_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        recipes.demo(tmp_path / "demo")
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == before
    monkeypatch.undo()
    recipes.demo(tmp_path / "demo")
    assert (run_dir / "history.json").is_file()
    assert not (tmp_path / "demo" / ".gan_run.partial").exists()


def test_a_damaged_checkpoint_through_the_cli_names_it_and_the_way_out(tmp_path, capsys):
    run_dir = tmp_path / "run"
    arguments = ["train", "dcgan", "--data", "brain:t1", "--image-size", "16", "--batch-size"]
    arguments += ["64", "--latent-dim", "8", "--out", str(run_dir)]
    assert main(arguments + ["--epochs", "2"]) == 0
    capsys.readouterr()
    state = run_dir / "checkpoints" / "epoch_0002" / "state.npz"
    state.write_bytes(b"junk")
    assert main(arguments + ["--epochs", "3", "--resume"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(state) in error[0]
    assert f"delete the folder {state.parent} to resume from epoch_0001" in error[0]


def test_an_export_replaces_the_model_only_when_complete(tmp_path, monkeypatch):
    import keras

    config = {"image_size": 16, "latent_dim": 8, "seed": 0, "base_filters": 8}
    recipe = recipes.RECIPES["dcgan"]
    recipe.export(recipe.build(config), tmp_path)
    exported = (tmp_path / "generator.keras").read_bytes()

    def crash_mid_write(self, path, *args, **kwargs):
        Path(path).write_bytes(b"the first bytes of a file")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        recipe.export(recipe.build(config), tmp_path)
    assert (tmp_path / "generator.keras").read_bytes() == exported
    assert sorted(path.name for path in tmp_path.iterdir()) == ["generator.keras"]


@pytest.mark.parametrize(
    "model, flags, named",
    [
        ("cyclegan", ["--latent-dim", "7"], "latent_dim (--latent-dim)"),
        ("cyclegan", ["--data", "brain:pd"], "data (--data)"),
        ("dcgan", ["--data-a", "brain:t2"], "data_a (--data-a)"),
        ("vae", ["--data-b", "brain:t1"], "data_b (--data-b)"),
        ("dcgan", ["--identity-weight", "0"], "identity_weight (--identity-weight)"),
    ],
)
def test_an_option_the_model_does_not_use_is_refused(tmp_path, capsys, model, flags, named):
    # It used to run and be recorded in config.json (and compared on resume) as if used.
    run_dir = tmp_path / "run"
    assert main(["train", model, *flags, "--epochs", "1", "--out", str(run_dir)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and named in error[0] and model in error[0]
    assert not run_dir.exists()


def test_a_cgan_on_labels_that_are_no_class_indices_is_refused_before_anything_is_built(
    tmp_path, capsys, medmnist_npz
):
    # A local .npz has no class names, so its classes were 0 .. the largest label: labels
    # {0, 5000} on 12 images built label embeddings of 5001 classes (almost all without an
    # image) and trained; labels up to 2**31 - 1 were a MemoryError traceback while naming
    # the 2**31 classes.
    path = medmnist_npz(tmp_path / "ids.npz", size=16, counts=(12, 4, 4))
    arrays = dict(np.load(path))
    arrays["train_labels"] = np.array([[0], [5000]] * 6)
    np.savez(path, **arrays)
    run_dir = tmp_path / "run"
    arguments = ["train", "cgan", "--data", f"medmnist:{path}", "--image-size", "16"]
    assert main([*arguments, "--batch-size", "4", "--epochs", "1", "--out", str(run_dir)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"medmnist:{path}" in error[0]
    assert "labels go up to 5000 (5001 classes) for 12 images" in error[0]
    assert not run_dir.exists()


def _save_no_generator(kind, path):
    from medgen_tf.models.gan import build_discriminator
    from medgen_tf.models.vae import build_vae

    if kind == "discriminator":
        build_discriminator(32, base_filters=4).save(path)
    else:
        build_vae(32, latent_dim=8, base_filters=4).save(path)


_NO_GENERATOR_CONFIG = {"model": "dcgan", "data": "brain:t1", "image_size": 32, "num_subjects": 8}


@pytest.mark.parametrize("kind", ["discriminator", "vae"])
@pytest.mark.parametrize("command", ["sample", "evaluate"])
def test_a_model_file_that_is_no_generator_is_one_line_naming_it(tmp_path, capsys, command, kind):
    # A discriminator saved as generator.keras (a slip when exporting by hand) was called
    # with noise and gave Keras' multi-line "Exception encountered when calling
    # Functional.call()" traceback.
    _save_no_generator(kind, tmp_path / "generator.keras")
    (tmp_path / "config.json").write_text(json.dumps({"config": _NO_GENERATOR_CONFIG}))
    arguments = {
        "sample": ["sample", str(tmp_path), "--out", str(tmp_path / "x.png")],
        "evaluate": ["evaluate", str(tmp_path), "--n", "20"],
    }[command]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"{tmp_path / 'generator.keras'}: not a generator" in error[0]
    assert len(error[0]) < 300
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.json", "generator.keras"]


def test_a_vae_saved_as_the_generator_is_named_in_one_line_by_a_fresh_process(tmp_path):
    # `sample` registered only the GAN classes before loading: in a process that had not
    # imported the VAE (any real command line), Keras' "Could not locate class 'VAE'" came out
    # as a 16 KB "one-line" error holding the file's whole config. In this process the VAE is
    # registered by building it, hence the fresh interpreter.
    import os
    import subprocess
    import sys

    _save_no_generator("vae", tmp_path / "generator.keras")
    (tmp_path / "config.json").write_text(json.dumps({"config": _NO_GENERATOR_CONFIG}))
    result = subprocess.run(
        [sys.executable, "-m", "medgen_tf.cli", "sample", str(tmp_path), "--out", "x.png"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=Path(__file__).resolve().parents[1],  # the package under test, not an installed one
        timeout=300,
    )
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and len(error[0]) < 300
    assert error[0].startswith(f"medgen-tf: error: {tmp_path / 'generator.keras'}: not a generator")


def test_sample_refuses_a_number_of_samples_that_is_no_count(tmp_path):
    # In Python (the CLI's --n checks its own): num_samples=-1 was TensorFlow's multi-line
    # InvalidArgumentError "Dimension -1 must be >= 0" from the noise draw, 0 a ValueError
    # from the image grid that named neither the argument nor the call.
    from medgen_tf.models.gan import build_generator

    build_generator(8, 32, base_filters=4).save(tmp_path / "generator.keras")
    (tmp_path / "config.json").write_text(json.dumps({"config": {"model": "dcgan"}}))
    for num_samples in (0, -1, 2.5):
        with pytest.raises(ValueError, match=rf"num_samples={num_samples}: .*at least 1"):
            recipes.sample(tmp_path, num_samples=num_samples, out=tmp_path / "x.png")
    # seed=1.5 drew with seed 1 and titled the grid "seed 1.5".
    for seed in (1.5, True, "1"):
        with pytest.raises(ValueError, match=r"^seed=.*: give a whole number$"):
            recipes.sample(tmp_path, num_samples=2, out=tmp_path / "x.png", seed=seed)
    assert not (tmp_path / "x.png").exists()
    assert recipes.sample(tmp_path, num_samples=2, out=tmp_path / "x.png") == tmp_path / "x.png"
    assert (tmp_path / "x.png").is_file()


def test_train_refuses_fractional_sizes_instead_of_truncating_them(tmp_path):
    # From Python, train() cast its settings with int(): image_size=32.7 trained at 32 px and
    # num_epochs=1.5 one epoch, and config.json recorded the truncated values as asked for
    # (the engine's own check for a whole num_epochs never saw the 1.5).
    for setting, value in (
        ("image_size", 32.7),
        ("num_epochs", 1.5),
        ("batch_size", 8.5),
        ("seed", 0.5),
        ("image_size", True),
    ):
        options = {"image_size": 32, "num_epochs": 1, "batch_size": 8, "seed": 0, setting: value}
        with pytest.raises(ValueError, match=rf"^{setting}={value!r}: give a whole number"):
            recipes.train("dcgan", run_dir=tmp_path / "run", verbose=0, **options)
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "model, setting, value, message",
    [
        ("dcgan", "batch_size", 0, "batch_size=0: give a whole number >= 1"),
        ("dcgan", "num_epochs", 0, "num_epochs=0: give a whole number >= 1"),
        ("dcgan", "seed", -1, "seed=-1: give a whole number >= 0"),
        ("vae", "latent_dim", 0, "latent_dim=0: give a whole number >= 1, or None"),
        ("dcgan", "latent_dim", -5, "latent_dim=-5: give a whole number >= 1, or None"),
        ("dcgan", "latent_dim", 2.5, "latent_dim=2.5: give a whole number >= 1, or None"),
        ("cyclegan", "batch_size", 0, "batch_size=0: give a whole number >= 1"),
    ],
)
def test_train_refuses_sizes_that_cannot_train_before_loading_any_data(
    tmp_path, monkeypatch, model, setting, value, message
):
    # batch_size=0 was a ZeroDivisionError after the data had loaded, latent_dim=0 trained
    # (and recorded) the default 512, a negative seed was numpy's "expected non-negative
    # integer" from inside the cohort.
    from medgen_tf.data import spec

    monkeypatch.setattr(spec, "load_spec", lambda *a, **k: pytest.fail("data were loaded"))
    options = {"image_size": 32, "num_epochs": 1, "batch_size": 8, "seed": 0, setting: value}
    with pytest.raises(ValueError, match=f"^{message}") as raised:
        recipes.train(model, run_dir=tmp_path / "run", verbose=0, **options)
    assert "\n" not in str(raised.value) and not (tmp_path / "run").exists()


def test_an_export_left_behind_by_an_interrupted_resume_is_refused(tmp_path, capsys, monkeypatch):
    # A resume stopped after its epochs but before the export kept the earlier generator.keras;
    # sample and evaluate used it in silence, and evaluate's metrics.json then scored it as
    # the run's model.
    run_dir = tmp_path / "run"
    arguments = [
        "train",
        "dcgan",
        "--image-size",
        "16",
        "--batch-size",
        "16",
        "--out",
        str(run_dir),
    ]
    assert main(arguments + ["--epochs", "1"]) == 0
    assert json.loads((run_dir / "export.json").read_text()) == {"epoch": 1}
    exported = (run_dir / "generator.keras").read_bytes()
    recipe = recipes.RECIPES["dcgan"]

    def interrupted(model, folder):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setitem(recipes.RECIPES, "dcgan", dataclasses.replace(recipe, export=interrupted))
        assert main(arguments + ["--epochs", "3", "--resume"]) == 130
    assert (run_dir / "generator.keras").read_bytes() == exported
    assert latest_checkpoint(run_dir / "checkpoints").name == "epoch_0003"
    capsys.readouterr()
    for command in (
        ["sample", str(run_dir), "--out", str(tmp_path / "grid.png")],
        ["evaluate", str(run_dir), "--n", "8"],
    ):
        assert main(command) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert error == [
            f"medgen-tf: error: {run_dir / 'generator.keras'}: the model of epoch 1, but the run "
            "has trained on to epoch 3 (a --resume interrupted or stopped by the NaN guard); "
            "finish it with the same train command and --resume, or delete export.json to use "
            "this earlier model"
        ]
    assert not (tmp_path / "grid.png").exists() and not (run_dir / "metrics.json").exists()
    # Finished with the same command: exported again, and sampled.
    assert main(arguments + ["--epochs", "3", "--resume"]) == 0
    assert json.loads((run_dir / "export.json").read_text()) == {"epoch": 3}
    assert main(["sample", str(run_dir), "--out", str(tmp_path / "grid.png")]) == 0


def test_train_leaves_a_config_json_it_did_not_write(tmp_path, capsys):
    # A lone config.json is replaced as the remains of a run that failed before its first
    # epoch; one of the user's own project was replaced too.
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "config.json").write_text('{"lr": 0.1, "note": "my own settings"}')
    command = ["train", "dcgan", "--image-size", "16", "--epochs", "1", "--out", str(folder)]
    assert main(command) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        f"medgen-tf: error: {folder / 'config.json'}: a config.json that no medgen-tf run wrote "
        '(no "engine" section); nothing was changed: train into another folder'
    ]
    assert sorted(path.name for path in folder.iterdir()) == ["config.json"]
    assert json.loads((folder / "config.json").read_text())["note"] == "my own settings"


@pytest.mark.parametrize("epochs", ["1000001", "99999999999999999999"])
def test_an_epoch_count_beyond_what_can_run_is_refused_before_any_folder_is_made(
    tmp_path, capsys, monkeypatch, epochs
):
    # 10**20 epochs were tf.data's "out-of-range integer" traceback, after the run folder was
    # made (and left empty).
    def trains(*args, **kwargs):
        raise AssertionError("the command began a run of that many epochs")

    monkeypatch.setattr(recipes, "train", trains)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_code:
        main(["train", "dcgan", "--image-size", "16", "--epochs", epochs, "--out", str(out)])
    assert exit_code.value.code == 2
    assert "--epochs: must be an integer from 1 to 1000000" in capsys.readouterr().err
    assert not out.exists()
