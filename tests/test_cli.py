"""The command line's own checks: numbers out of range and damaged run folders are one-line
errors, never tracebacks, and write nothing."""

import pytest

from medgen_tf.cli import main


@pytest.mark.parametrize(
    "arguments, option",
    [
        (["train", "dcgan", "--image-size", "2", "--out", "RUN"], "--image-size"),
        (["train", "dcgan", "--batch-size", "0", "--out", "RUN"], "--batch-size"),
        (["train", "vae", "--epochs", "0", "--out", "RUN"], "--epochs"),
        (["train", "vae", "--latent-dim", "-8", "--out", "RUN"], "--latent-dim"),
        (["train", "dcgan", "--seed", "-1", "--out", "RUN"], "--seed"),
        (["evaluate", "RUN", "--n", "0"], "--n"),
        (["sample", "RUN", "--n", "-3", "--out", "RUN/grid.png"], "--n"),
        (["data", "preview", "--image-size", "0", "--out", "RUN/grid.png"], "--image-size"),
    ],
)
def test_out_of_range_numbers_are_one_line_usage_errors(tmp_path, capsys, arguments, option):
    run_dir = tmp_path / "run"
    arguments = [argument.replace("RUN", str(run_dir)) for argument in arguments]
    with pytest.raises(SystemExit) as caught:
        main(arguments)
    assert caught.value.code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert f"error: argument {option}:" in error.strip().splitlines()[-1]
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "content", [b'{"config": {"model": "dcg', b"\x00\xff\xfe binary", b"[1, 2]", b'{"config": 3}']
)
@pytest.mark.parametrize("command", ["sample", "translate"])
def test_a_damaged_run_config_is_one_line_naming_it(tmp_path, capsys, command, content):
    (tmp_path / "config.json").write_bytes(content)
    out = tmp_path / "out"
    arguments = {
        "sample": ["sample", str(tmp_path), "--out", str(out / "grid.png")],
        "translate": ["translate", str(tmp_path), "--input", "brain:t1", "--out", str(out)],
    }[command]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(tmp_path / "config.json") in error[0]
    assert not out.exists()


@pytest.mark.parametrize(
    "model, size, problem",
    [
        # 18 halves once, to 9: the generator cannot reach it by doubling a 4-7 pixel start.
        ("dcgan", "18", "image_size=18 is not supported"),
        ("cgan", "36", "image_size=36 is not supported"),  # 36 -> 18 -> 9: a start above 7
        ("vae", "17", "image_size must be even and above 8 (e.g. 28, 32, 64), got 17"),
        ("cyclegan", "18", "image_size must be divisible by 4 (two stride-2 steps), got 18"),
        ("cyclegan", "20", "image_size=20 is too small for the PatchGAN"),
    ],
)
def test_an_image_size_the_model_cannot_build_is_refused_before_the_data_load(
    tmp_path, capsys, monkeypatch, model, size, problem
):
    # It used to be refused only when the networks were built, after the data load (about
    # 13 s of simulating a cohort on a 2-core CPU). A loader that records its calls shows
    # that none was made.
    import dataclasses

    from medgen_tf import recipes

    loaded = []

    def load_data(config):
        loaded.append(config["image_size"])
        raise AssertionError("the data were loaded before the image size was checked")

    recipe = recipes.RECIPES[model]
    monkeypatch.setitem(recipes.RECIPES, model, dataclasses.replace(recipe, load_data=load_data))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("the learner's own file")
    assert main(["train", model, "--image-size", size, "--epochs", "1", "--out", str(run_dir)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "Traceback" not in error[0]
    assert error[0].startswith(f"medgen-tf: error: model {model!r}: {problem}")
    assert loaded == []
    assert [path.name for path in run_dir.iterdir()] == ["notes.txt"]


def test_an_output_path_through_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    out = blocker / "grid.png"
    assert main(["data", "preview", "--image-size", "16", "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "Traceback" not in error[0] and str(blocker) in error[0]
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize(
    "command, model, name",
    [("evaluate", "dcgan", "generator.keras"), ("translate", "cyclegan", "generator_ab.keras")],
)
def test_a_truncated_exported_model_is_one_line_naming_it(tmp_path, capsys, command, model, name):
    import json

    import keras

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    inputs = keras.Input((16, 16, 1))
    keras.Model(inputs, keras.layers.Identity()(inputs)).save(run_dir / name)
    whole = (run_dir / name).read_bytes()
    (run_dir / name).write_bytes(whole[: len(whole) // 2])  # a copy or a save cut short
    config = {"model": model, "data": "brain:t1", "data_a": "brain:t1", "data_b": "brain:t2"}
    (run_dir / "config.json").write_text(json.dumps({"config": config}))
    out = tmp_path / "out"
    arguments = {
        "evaluate": ["evaluate", str(run_dir), "--n", "8"],
        "translate": ["translate", str(run_dir), "--input", "brain:t1", "--out", str(out)],
    }[command]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(run_dir / name) in error[0] and "not found" not in error[0]
    assert not out.exists() and not (run_dir / "metrics.json").exists()


@pytest.mark.parametrize(
    "arguments, extension",
    [
        (["sample", "RUN", "--n", "4", "--out", "OUT/x.foo"], "foo"),
        (["data", "preview", "--image-size", "16", "--out", "OUT/preview.png.gz"], "gz"),
        (["data", "preview", "--image-size", "16", "--out", "OUT/needs_latex.pgf"], "pgf"),
    ],
)
def test_an_unsupported_image_format_is_refused_before_any_work(
    tmp_path, capsys, arguments, extension
):
    # The run folder does not exist: the format is checked before the run is even read.
    arguments = [
        a.replace("RUN", str(tmp_path / "run")).replace("OUT", str(tmp_path / "out"))
        for a in arguments
    ]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"unsupported image format {extension!r} (use .png, " in error[0]
    assert arguments[-1] in error[0]
    assert not (tmp_path / "out").exists()


def test_preview_without_an_extension_names_the_file_it_wrote(tmp_path, capsys):
    assert main(["data", "preview", "--image-size", "16", "--out", str(tmp_path / "grid")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'grid.png'}"
    assert [path.name for path in tmp_path.iterdir()] == ["grid.png"]


def test_train_help_gives_each_models_latent_dim_default_and_every_option_a_text(capsys):
    from medgen_tf import recipes

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    gan_default = {
        recipes.RECIPES[name].default_latent_dim for name in ("dcgan", "cgan", "wgan-gp")
    }
    vae_default = recipes.RECIPES["vae"].default_latent_dim
    assert len(gan_default) == 1
    assert f"GANs (default {gan_default.pop()}), VAE (default {vae_default})" in text
    for option, shown in [
        ("--image-size N", "pixels (64)"),
        ("--epochs N", "(10)"),
        ("--batch-size N", "(32)"),
        ("--seed N", "(0)"),
        ("--out DIR", "run folder"),
    ]:
        assert f"{option} {shown}" in text
    assert "give the run's settings again" in text and "MEDGEN_QUICK=1" in text
