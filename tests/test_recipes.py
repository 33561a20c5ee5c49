"""The CLI's train/sample/demo commands through the recipes (quick mode: 8-subject cohort,
narrow networks; see medgen_tf.recipes)."""

import json

import numpy as np
import pytest
from PIL import Image

from medgen_tf import recipes
from medgen_tf.cli import main
from medgen_tf.training import latest_checkpoint


def test_recipe_registry_has_the_gan_family():
    assert {"dcgan", "cgan", "wgan-gp"} <= set(recipes.RECIPES)
    assert all(recipes.RECIPES[name].value_range == (-1.0, 1.0) for name in ("dcgan", "cgan"))


def test_train_sample_resume_through_the_cli(tmp_path, capsys):
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

    grid = tmp_path / "grid.png"
    assert main(["sample", str(run_dir), "--n", "16", "--out", str(grid)]) == 0
    assert np.asarray(Image.open(grid)).std() > 0

    # a second `train` into the same folder must not silently start over
    assert main(arguments + ["--epochs", "2"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(arguments + ["--epochs", "2", "--resume"]) == 0
    history = json.loads((run_dir / "history.json").read_text())
    assert len(history["d_loss"]) == 2 and np.isfinite(history["g_loss"]).all()
    assert latest_checkpoint(run_dir / "checkpoints").name == "epoch_0002"


def test_bad_spec_prints_one_line_and_fails(tmp_path, capsys):
    code = main(
        ["train", "dcgan", "--data", "nowhere:xyz", "--epochs", "1", "--out", str(tmp_path / "run")]
    )
    error = capsys.readouterr().err.strip()
    assert code != 0 and len(error.splitlines()) == 1 and "nowhere" in error


def test_sample_from_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["sample", str(tmp_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "config.json" in capsys.readouterr().err


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


def test_demo_writes_preview_samples_and_metrics(tmp_path):
    paths = recipes.demo(tmp_path / "demo")
    names = {path.name for path in paths}
    assert {"data_preview.png", "gan_samples.png", "metrics.json"} <= names
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["training_seconds"] > 0 and np.isfinite(metrics["final"]["d_loss"])
