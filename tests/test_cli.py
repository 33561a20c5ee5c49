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
        # A slip of the keyboard: the data load asked for 3.49 TiB and failed with a traceback
        # (numpy's _ArrayMemoryError), after the model's own checks had accepted the size.
        (["train", "vae", "--image-size", "100000", "--out", "RUN"], "--image-size"),
        (["data", "preview", "--image-size", "100000", "--out", "RUN/grid.png"], "--image-size"),
        # Drawn in one call: a segmentation fault (exit 139) under a memory limit, else the OOM
        # killer; a latent size of 10**9 was a ResourceExhaustedError traceback.
        (["sample", "RUN", "--n", "1000000", "--out", "RUN/grid.png"], "--n"),
        (["train", "dcgan", "--latent-dim", "1000000000", "--out", "RUN"], "--latent-dim"),
        # float() takes "nan" and "inf"; an infinite weight made every loss inf, then NaN.
        *(
            (
                ["train", "cyclegan", "--identity-weight", weight, "--out", "RUN"],
                "--identity-weight",
            )
            for weight in ("-0.5", "nan", "inf", "half")
        ),
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
    "arguments",
    [
        ["train", "dcgan", "--out", "RUN"],
        ["sample", "RUN", "--out", "RUN/grid.png"],
        ["evaluate", "RUN"],
    ],
)
@pytest.mark.parametrize("seed", [str(2**32), str(2**63), "-1"])
def test_a_seed_outside_0_to_2_to_the_32_is_a_one_line_usage_error(
    tmp_path, capsys, arguments, seed
):
    # Keras takes seeds below 2**32 in train (set_random_seed) and below 2**63 in sample and
    # evaluate (keras.random); beyond, each failed with a traceback.
    run_dir = tmp_path / "run"
    arguments = [argument.replace("RUN", str(run_dir)) for argument in arguments]
    with pytest.raises(SystemExit) as caught:
        main([*arguments, "--seed", seed])
    assert caught.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(error)
    assert error[-1].endswith(
        f"error: argument --seed: must be an integer from 0 to 4294967295 (2**32 - 1), got {seed}"
    )
    assert not run_dir.exists()


def test_the_largest_seed_is_accepted():
    from medgen_tf import cli

    parsed = cli._build_parser().parse_args(["sample", "RUN", "--seed", str(2**32 - 1)])
    assert parsed.seed == 2**32 - 1


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


CYCLEGAN_RULE = (
    "image_size={} (--image-size) is not supported: it must be a multiple of 4 and at least 24."
)


@pytest.mark.parametrize(
    "model, size, problem",
    [
        # 18 halves once, to 9: the generator cannot reach it by doubling a 4-7 pixel start.
        ("dcgan", "18", "image_size=18 (--image-size) is not supported"),
        # 36 -> 18 -> 9: a start above 7
        ("cgan", "36", "image_size=36 (--image-size) is not supported"),
        (
            "vae",
            "17",
            "image_size (--image-size) must be even and above 8 (e.g. 28, 32, 64), got 17",
        ),
        # The generator's rule (a multiple of 4) and the PatchGAN's (at least 24) in one message,
        # whichever of them a size breaks: not one at a time.
        ("cyclegan", "18", CYCLEGAN_RULE.format(18)),
        ("cyclegan", "20", CYCLEGAN_RULE.format(20)),
        ("cyclegan", "30", CYCLEGAN_RULE.format(30)),
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


def test_the_cyclegan_check_builds_no_network():
    # It used to build a throwaway generator and PatchGAN: Keras' automatic layer names went on
    # counting, so the real generator's layers were named reflection_padding2d_2 and so on (in
    # summary() and in the saved files).
    import keras

    from medgen_tf import recipes
    from medgen_tf.models.cyclegan import build_resnet_generator

    def names():
        return [layer.name for layer in build_resnet_generator(24, 1, 1, 1).layers]

    keras.backend.clear_session()
    fresh = names()
    keras.backend.clear_session()
    recipes.RECIPES["cyclegan"].check({"image_size": 24})
    assert names() == fresh


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


@pytest.mark.parametrize(
    "arguments, option",
    [
        (["train", "dcgan", "--out", ""], "--out"),
        (["translate", "RUN", "--input", "NII", "--out", ""], "--out"),
        (["translate", "RUN", "--input", "", "--out", "OUT"], "--input"),
        (["translate", "", "--input", "NII", "--out", "OUT"], "run_dir"),
        (["sample", "", "--out", "OUT/grid.png"], "run_dir"),
        (["sample", "RUN", "--out", ""], "--out"),
        (["evaluate", ""], "run_dir"),
        (["data", "preview", "--out", ""], "--out"),
        (["demo", "--out", ""], "--out"),
    ],
)
def test_an_empty_path_is_a_one_line_usage_error(tmp_path, capsys, monkeypatch, arguments, option):
    # An empty argument (an unset variable: --out "$RUN") is no path. pathlib reads it as the
    # current folder: translate --out "" wrote its volumes there, and --input "" translated
    # every NIfTI file there; sample and preview --out "" were a ValueError traceback
    # "PosixPath('.') has an empty name".
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scan.nii.gz").write_bytes(b"")
    arguments = [
        a.replace("RUN", str(tmp_path / "run"))
        .replace("OUT", str(tmp_path / "out"))
        .replace("NII", str(tmp_path / "scan.nii.gz"))
        for a in arguments
    ]
    with pytest.raises(SystemExit) as caught:
        main(arguments)
    assert caught.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(error)
    assert error[-1].endswith(f"error: argument {option}: empty path (an unset variable?)")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["scan.nii.gz"]


@pytest.mark.parametrize(
    "arguments, spec",
    [
        (["train", "dcgan", "--data", ""], ""),
        (["train", "cyclegan", "--data-a", ""], ""),
        (["train", "cyclegan", "--data-b", " "], " "),
    ],
)
def test_an_empty_data_spec_is_refused_as_data_preview_refuses_it(
    tmp_path, capsys, arguments, spec
):
    # An unset variable (--data "$DATA") trained on the built-in brain cohort in silence: the
    # default replaced every false value, not only a missing one.
    run_dir = tmp_path / "run"
    options = ["--image-size", "32", "--epochs", "1", "--batch-size", "64", "--out", str(run_dir)]
    assert main([*arguments, *options]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "Traceback" not in error[0]
    assert error[0].startswith(f"medgen-tf: error: data spec {spec!r}: empty; use brain[")
    assert not run_dir.exists()


@pytest.mark.parametrize("command", ["sample", "preview"])
@pytest.mark.parametrize("out", ["/", "..", ".", "figs/", "figs"])
def test_an_image_out_that_names_no_file_is_one_line(tmp_path, capsys, monkeypatch, command, out):
    # Was a ValueError traceback "PosixPath('/') has an empty name"; ".." wrote "...png";
    # "figs/" (pathlib drops the slash) wrote figs.png, and so did "figs" of an existing folder.
    monkeypatch.chdir(tmp_path)
    if out == "figs":
        (tmp_path / "figs").mkdir()
    arguments = {
        "sample": ["sample", str(tmp_path / "run"), "--out", out],
        "preview": ["data", "preview", "--image-size", "16", "--out", out],
    }[command]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and f"--out {out}: names a folder, not an image file" in error[0]
    assert [path.name for path in tmp_path.iterdir()] == (["figs"] if out == "figs" else [])
    assert not (tmp_path / "figs").exists() or list((tmp_path / "figs").iterdir()) == []


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
def test_mixed_precision_on_a_cpu_warns_in_one_line_and_still_trains(
    tmp_path, capsys, monkeypatch, gpu
):
    from medgen_tf import cli, recipes

    calls = []
    monkeypatch.setattr(cli, "_gpu_visible", lambda: gpu)
    monkeypatch.setattr(recipes, "train", lambda **options: calls.append(options) or tmp_path)
    assert main(["train", "dcgan", "--mixed-precision", "--out", str(tmp_path / "run")]) == 0
    assert calls and calls[0]["mixed_precision"] is True  # a warning, not a refusal
    error = capsys.readouterr().err.strip().splitlines()
    if gpu:
        assert error == []
    else:
        assert len(error) == 1 and error[0].startswith("medgen-tf: warning: --mixed-precision")
        assert "6 to over 100 times slower" in error[0]
    calls.clear()
    assert main(["train", "dcgan", "--out", str(tmp_path / "run")]) == 0
    assert capsys.readouterr().err.strip() == ""


@pytest.mark.parametrize(
    "command, arguments, said",
    [
        (
            "train",
            ["train", "dcgan", "--out", "RUN"],
            "medgen-tf: interrupted; the same command with --resume continues from the last "
            "complete epoch",
        ),
        ("sample", ["sample", "RUN", "--out", "RUN/grid.png"], "medgen-tf: interrupted"),
    ],
)
def test_ctrl_c_is_one_line_and_exit_code_130(
    tmp_path, capsys, monkeypatch, command, arguments, said
):
    # Ctrl-C during train was a 51-line traceback through TensorFlow's frames.
    from medgen_tf import recipes

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recipes, command, interrupted)
    arguments = [argument.replace("RUN", str(tmp_path / "run")) for argument in arguments]
    try:
        code = main(arguments)
    except KeyboardInterrupt:
        pytest.fail("the interrupt left main as a traceback")
    assert code == 130
    assert capsys.readouterr().err.strip().splitlines() == [said]
