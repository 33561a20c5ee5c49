import os
import re
import sys
from pathlib import Path

import pytest

from medgen_tf.errors import DataError
from medgen_tf.files import PARTIAL_MIN_AGE_SECONDS, abandoned_partial, atomic_path, check_generator


def test_atomic_path_replaces_the_file_on_success(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with atomic_path(target) as temporary:
        assert temporary.parent == target.parent
        assert temporary.name.endswith(".json")
        temporary.write_text('{"new": 1}')
        assert not target.exists()
    assert target.read_text() == '{"new": 1}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "volume.nii.gz"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        assert temporary.name.endswith(".nii.gz")
        temporary.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["volume.nii.gz"]


def test_a_failed_write_removes_the_folders_it_made_and_only_those(tmp_path):
    existing = tmp_path / "existing"  # empty, but the user's
    existing.mkdir()
    target = existing / "new" / "deeper" / "model.keras"
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("Keras could not save the model")
    assert existing.is_dir() and list(existing.iterdir()) == []
    with atomic_path(target) as temporary:
        temporary.write_text("whole")
    assert target.read_text() == "whole"


def test_atomic_path_gives_new_files_the_usual_mode_and_keeps_an_existing_ones(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.png"
        with atomic_path(fresh) as temporary:
            temporary.write_bytes(b"png")
        assert fresh.stat().st_mode & 0o777 == 0o644  # not mkstemp's owner-only 0o600
        existing = tmp_path / "shared.json"
        existing.write_text("{}")
        existing.chmod(0o664)
        with atomic_path(existing) as temporary:
            temporary.write_text("[]")
        assert existing.stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(umask)


def test_atomic_path_writes_through_a_symlink(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    with atomic_path(link) as temporary:
        temporary.write_text("new")
    assert link.is_symlink() and real.read_text() == "new"


@pytest.mark.parametrize(
    "name",
    [
        "s" * 234 + ".keras",
        "volume_" + "x" * 226 + ".nii.gz",  # the stem alone is 233 characters
        "gan_lr0.0002_beta0.5_" + "b" * 208 + ".weights.h5",  # dots: 219 characters of suffixes
        "\u00e9" * 120 + ".json",  # 125 characters, 245 bytes: the limit counts bytes
    ],
    ids=["keras", "nii.gz", "dotted", "utf-8"],
)
def test_a_name_that_open_can_write_is_not_too_long_for_atomic_path(tmp_path, name):
    # The temporary name added about 25 characters to the whole stem: a 240-character name
    # that open() writes fine failed with "[Errno 36] File name too long" naming the user's path.
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    if len(os.fsencode(name)) > name_max:
        pytest.skip(f"this file system allows names of {name_max} bytes")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / name).write_text("open() writes it")
    target = tmp_path / name
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path  # beside the target: one file system, one rename
        assert temporary.name.startswith(f".partial_{os.getpid()}_{name[:20]}")
        # The end of the name, which writers read the format from: .weights.h5, .nii.gz
        assert temporary.name.endswith("".join(Path(name).suffixes[-2:]))
        assert len(os.fsencode(temporary.name)) <= name_max
        temporary.write_text("new")
    assert target.read_text() == "new"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([name, "plain"])


def test_read_run_config_reads_both_layouts_and_names_a_damaged_file(tmp_path):
    import json

    from medgen_tf import DataError
    from medgen_tf.files import read_run_config

    assert read_run_config(tmp_path, required=False) is None
    with pytest.raises(DataError, match="no config.json"):
        read_run_config(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"config": {"model": "vae"}, "engine": {"seed": 3}}))
    assert read_run_config(tmp_path) == {"config": {"model": "vae"}, "engine": {"seed": 3}}
    path.write_text(json.dumps({"model": "vae", "seed": 5}))  # flat: settings only
    assert read_run_config(tmp_path) == {"config": {"model": "vae", "seed": 5}, "engine": {}}
    for junk in (b"\xff\xfe binary", b"{not json", b"[1, 2]", b'{"config": 3}'):
        path.write_bytes(junk)
        with pytest.raises(DataError) as error:
            read_run_config(tmp_path)
        assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_a_failed_write_names_the_path_asked_for_not_the_temporary_file(tmp_path):
    target = tmp_path / "grid.png"
    with pytest.raises(OSError) as caught, atomic_path(target) as temporary:
        raise OSError(28, "No space left on device", str(temporary))
    assert caught.value.filename == str(target) and caught.value.errno == 28
    # Errors about other files pass through unchanged.
    with pytest.raises(OSError) as caught, atomic_path(target):
        raise FileNotFoundError(2, "No such file or directory", "/elsewhere/input.nii")
    assert caught.value.filename == "/elsewhere/input.nii"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_a_temporary_file_that_cannot_be_created_is_reported_under_the_path_asked_for():
    # /proc takes no new files, whoever runs the test (a read-only folder would not stop root).
    with pytest.raises(OSError) as caught, atomic_path("/proc/medgen_preview.png"):
        pass
    assert caught.value.filename == "/proc/medgen_preview.png"


@pytest.mark.skipif(os.name != "posix", reason="PIDs are checked on POSIX only")
def test_a_temporary_file_is_abandoned_once_old_and_its_writer_gone(tmp_path, exited_pid):
    dead, alive = exited_pid, os.getpid()
    files = {}
    for label, pid in (("dead", dead), ("alive", alive)):
        files[label] = tmp_path / f".partial_{pid}_metrics.abcd1234.json"
        files[label].write_text("{")
    written = files["dead"].stat().st_mtime
    later = written + PARTIAL_MIN_AGE_SECONDS + 1
    assert abandoned_partial(files["dead"], now=later)
    # Too recent: its writer may live where its PID cannot be looked up.
    assert not abandoned_partial(files["dead"], now=written + PARTIAL_MIN_AGE_SECONDS - 5)
    assert not abandoned_partial(files["alive"], now=later)
    # Names that are not atomic_path's, or whose PID cannot be one, are kept, without an error.
    for name in (
        "metrics.json",
        ".partial_metrics.abcd1234.json",
        ".partial_\u00b2_x.abcd1234.json",
        ".partial_99999999999999999999_x.abcd1234.json",
        ".partial_2147483648_x.abcd1234.json",
    ):
        odd = tmp_path / name
        odd.write_text("{")
        assert not abandoned_partial(odd, now=later), name
    assert not abandoned_partial(tmp_path / f".partial_{dead}_gone.json", now=later)


def test_load_keras_file_names_a_missing_truncated_or_damaged_model(tmp_path):
    import zipfile

    import keras

    from medgen_tf.errors import DataError
    from medgen_tf.files import load_keras_file

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    good = tmp_path / "model.keras"
    model.save(good)
    assert load_keras_file(good).count_params() == 8

    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    damaged = tmp_path / "damaged.keras"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, b"{" if item.filename == "config.json" else data)
    cases = {
        tmp_path / "missing.keras": "no such model file",
        truncated: "not a .keras archive",  # Keras itself says "File not found"
        damaged: "damaged .keras model",
    }
    for path, problem in cases.items():
        with pytest.raises(DataError, match=problem) as error:
            load_keras_file(path)
        assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_check_generator_takes_noise_to_images_and_names_the_file_of_anything_else():
    import keras

    generator = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8 * 8), keras.layers.Reshape((8, 8, 1))]
    )
    check_generator(generator, "run/generator.keras")
    discriminator = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    encoder = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])  # noise, no images
    unbuilt = keras.Model()  # no inputs to read
    refused = ((discriminator, r"\(None, 8, 8, 1\)"), (encoder, r"\(None, 4\)"), (unbuilt, "none"))
    for model, inputs in refused:
        with pytest.raises(DataError) as raised:
            check_generator(model, "run/generator.keras")
        message = str(raised.value)
        assert "\n" not in message
        assert message.startswith("run/generator.keras: not a generator (its inputs: ")
        assert re.search(inputs, message), message
