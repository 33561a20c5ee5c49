"""The package's metadata (pins, extras, the console script, environment.yml) and its wheel."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

import medgen_tf

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower()


def test_pins_match_what_we_test_on():
    import keras
    import tensorflow as tf

    dependencies = _pyproject()["project"]["dependencies"]
    assert "tensorflow==2.21.*" in dependencies
    assert "keras==3.15.*" in dependencies
    assert tf.__version__.startswith("2.21.")
    assert keras.__version__.startswith("3.15.")


def test_extras_have_the_documented_names():
    extras = _pyproject()["project"]["optional-dependencies"]
    assert {"notebooks", "tfds", "dev"} <= set(extras)
    assert "nbval" in {_name(r) for r in extras["notebooks"]}
    assert {"pytest", "ruff"} <= {_name(r) for r in extras["dev"]}


def test_the_dev_extra_installs_the_tfds_extra_rather_than_repeating_its_bound():
    # One bound for tensorflow-datasets, in the tfds extra; pip resolves the self-reference.
    project = _pyproject()["project"]
    dev = project["optional-dependencies"]["dev"]
    assert f"{project['name']}[tfds]" in dev
    assert "tensorflow-datasets" not in {_name(r) for r in dev}


def test_environment_yml_lists_the_same_dependencies():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "conda-forge" in environment["channels"]
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    pinned = {r for r in pip_section if not r.startswith("-e")}
    assert pinned == set(_pyproject()["project"]["dependencies"])
    editable = [r for r in pip_section if r.startswith("-e")]
    assert editable, "environment.yml must install the package itself"
    extras = re.search(r"\[(.*)\]", editable[0]).group(1).split(",")
    assert {"dev", "notebooks"} <= set(extras)


def test_console_script_answers_help():
    scripts = _pyproject()["project"]["scripts"]
    assert scripts["medgen-tf"] == "medgen_tf.cli:main"
    # python -m medgen_tf is the same command, for when the script is not on PATH.
    result = subprocess.run(
        [sys.executable, "-m", "medgen_tf", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "train" in result.stdout and "demo" in result.stdout
    # Written for users: no reStructuredText markup from a developer docstring.
    assert "Generative models for medical imaging" in result.stdout and "``" not in result.stdout
    sample_help = subprocess.run(
        [sys.executable, "-m", "medgen_tf", "sample", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "image to write: .png, .pdf, ... (samples.png)" in " ".join(sample_help.stdout.split())


def test_version_is_exposed():
    assert medgen_tf.__version__ == _pyproject()["project"]["version"]


def test_the_wheel_carries_the_template_and_weights_and_finds_them_once_installed(tmp_path):
    # A source checkout reads data/; an installed wheel has only what it carries. Built from
    # a clean copy (a build/ folder left in the checkout would leak its files into the wheel),
    # without build isolation, so no network is needed: the dev extra provides setuptools.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        source.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    for name in ("medgen_tf", "data"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("medgen_tf-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    shipped = sorted(p.name for p in (ROOT / "data").iterdir() if p.suffix == ".gz")
    assert len(shipped) == 3
    for name in [*shipped, "NOTICE", "README.md"]:
        packed = (tmp_path / "site" / "medgen_tf" / "template" / name).read_bytes()
        assert packed == (ROOT / "data" / name).read_bytes(), name
    assert "medgen_tf/weights/feature_extractor.weights.h5" in names
    # The template is not MIT: the metadata names its licence too, and carries its notice.
    metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
    with zipfile.ZipFile(wheel) as archive:
        fields = archive.read(metadata).decode().splitlines()
    assert "License-Expression: MIT AND LicenseRef-MNI-ICBM152" in fields
    assert "License-File: data/NOTICE" in fields
    # The unpacked wheel, run from elsewhere with no MEDGEN_DATA_DIR, loads the template
    # (sha256-checked) from inside itself.
    environment = {k: v for k, v in os.environ.items() if k != "MEDGEN_DATA_DIR"}
    environment["PYTHONPATH"] = str(tmp_path / "site")
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import medgen_tf; from medgen_tf import config; from medgen_tf.data import brain; "
            "maps, _ = brain.load_template(); print(medgen_tf.__file__); print(config.data_dir()); "
            "print(maps['t1'].shape)",
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stderr[-2000:]
    package_file, data_dir, shape = found.stdout.split("\n")[:3]
    assert Path(package_file).is_relative_to(tmp_path / "site")
    assert Path(data_dir) == tmp_path / "site" / "medgen_tf" / "template"
    assert shape == "(197, 233, 189)"
    # MEDGEN_DATA_DIR still wins over the template the wheel carries.
    elsewhere = shutil.copytree(ROOT / "data", tmp_path / "elsewhere")
    overridden = subprocess.run(
        [sys.executable, "-c", "from medgen_tf import config; print(config.data_dir())"],
        cwd=tmp_path,
        env={**environment, "MEDGEN_DATA_DIR": str(elsewhere)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert Path(overridden.stdout.strip()) == elsewhere, overridden.stderr[-2000:]


def test_the_source_distribution_holds_what_its_own_tests_read(tmp_path):
    import tarfile

    # From the tracked files alone, plus a stray run output: the checkout's own egg-info and
    # untracked files would hide what the manifest leaves out. An unpacked sdist has no git.
    listing = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listing.returncode != 0 or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the tracked files are the reference)")
    tracked = listing.stdout.splitlines()
    source = tmp_path / "source"
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    (source / "notebooks" / "outputs").mkdir()
    (source / "notebooks" / "outputs" / "run.png").write_bytes(b"a run's picture")
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import setuptools.build_meta as b; b.build_sdist({str(tmp_path)!r})",
        ],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (sdist,) = tmp_path.glob("medgen_tf-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    tracked = [
        name
        for name in tracked
        if name.startswith(("tests/", "benchmarks/", "notebooks/", "data/", "docs/"))
    ]
    assert set(tracked) <= names, sorted(set(tracked) - names)[:5]
    assert {"environment.yml", "Makefile", "conftest.py", "tests/conftest.py"} <= names
    # Run outputs a notebook wrote next to itself are not part of the course.
    assert not [name for name in names if name.startswith("notebooks/outputs/")]


# ---- a model file lifted into another project --------------------------------------------------

_LIFTED_SETUP = """
import importlib.util
assert importlib.util.find_spec("medgen_tf") is None, "medgen_tf is importable: not a lift"
import keras, numpy as np
rng = np.random.default_rng(0)
a, b = (rng.uniform(-1, 1, (4, 32, 32, 1)).astype("float32") for _ in range(2))
"""

# model file -> (the files copied beside it, the snippet that builds `model`, fits one step and
# defines `probe(m)`, a deterministic output to compare after the round trip)
_LIFTS = {
    "gan": (
        [],
        """
import gan
model = gan.GAN(gan.build_generator(8, 32, base_filters=4), gan.build_discriminator(32, base_filters=4))
model.compile()
model.fit(a, batch_size=4, verbose=0)
probe = lambda m: m.generate(2, seed=0)
""",
    ),
    "vae": (
        [],
        """
import vae
model = vae.build_vae(32, latent_dim=4, base_filters=4, seed=0)
model.compile()
model.fit((a + 1) / 2, batch_size=4, verbose=0)
probe = lambda m: keras.ops.convert_to_numpy(m.reconstruct((a + 1) / 2))
""",
    ),
    "cyclegan": (
        [],
        """
import cyclegan
networks = [cyclegan.build_resnet_generator(32, base_filters=4, num_residual_blocks=1, name=f"g{i}")
            for i in range(2)]
networks += [cyclegan.build_patchgan_discriminator(32, base_filters=4, name=f"d{i}") for i in range(2)]
model = cyclegan.CycleGAN(*networks, pool_size=2, seed=0)
model.compile()
model.fit(a, b, batch_size=4, verbose=0)
probe = lambda m: m.translate(a)
""",
    ),
    "pix2pix": (
        ["cyclegan.py"],
        """
import cyclegan, pix2pix
model = pix2pix.Pix2Pix(
    cyclegan.build_resnet_generator(32, base_filters=4, num_residual_blocks=1),
    cyclegan.build_patchgan_discriminator(32, channels=2, base_filters=4),
)
model.compile()
model.fit(a, b, batch_size=4, verbose=0)
probe = lambda m: m.translate(a)
""",
    ),
}

_ROUND_TRIP = """
model.save("model.keras")
loaded = keras.saving.load_model("model.keras")
assert type(loaded) is type(model), type(loaded)
np.testing.assert_array_equal(probe(loaded), probe(model))
print("lifted and round-tripped")
"""


@pytest.mark.parametrize("name", sorted(_LIFTS))
def test_a_model_file_lifted_with_losses_and_layers_trains_and_round_trips(tmp_path, name):
    # What README and layers.py promise: the model file, losses.py and layers.py (and
    # cyclegan.py for Pix2Pix's networks), unchanged, in a project where medgen_tf is not
    # installed. -S skips site-packages and so the editable install; PYTHONPATH gives back
    # the third-party packages only.
    import sysconfig

    extra, snippet = _LIFTS[name]
    for file in [
        f"models/{name}.py",
        "losses.py",
        "models/layers.py",
        *map("models/".__add__, extra),
    ]:
        shutil.copy2(ROOT / "medgen_tf" / file, tmp_path)
    environment = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    result = subprocess.run(
        [sys.executable, "-S", "-c", _LIFTED_SETUP + snippet + _ROUND_TRIP],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "lifted and round-tripped" in result.stdout


# ---- the test command ----------------------------------------------------------------------------

_CELLS_AFTER_THE_FIRST = 4


def _notebook_that_needs_its_own_first_cell(path, name):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(f"{name} = 0")]
    notebook.cells += [
        nbformat.v4.new_code_cell(f"{name} += 1  # a NameError in any kernel but the first's")
        for _ in range(_CELLS_AFTER_THE_FIRST)
    ]
    nbformat.write(notebook, path)


def test_make_test_spreads_the_tests_over_the_workers_and_keeps_each_notebook_whole(tmp_path):
    # make test runs `pytest -n 2 --dist load`; the root conftest.py's scheduler makes a notebook
    # one unit (its cells share one kernel) and every test a unit of its own. Plain xdist
    # `load` would deal the cells out one by one and fail them.
    recipe = re.search(r"^test:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe and "-n 2 --dist load " in recipe.group(1)
    shutil.copy2(ROOT / "conftest.py", tmp_path)
    for name in ("first", "second"):
        _notebook_that_needs_its_own_first_cell(tmp_path / f"{name}.ipynb", name)
    # Tests long enough that both workers are free before the last is handed out.
    (tmp_path / "test_one_file.py").write_text(
        "import os, pathlib, time\n\n"
        + "".join(
            f"def test_{index}():\n"
            "    time.sleep(1.5)\n"
            f"    pathlib.Path('ran_{index}').write_text(os.environ['PYTEST_XDIST_WORKER'])\n\n"
            for index in range(4)
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "load", "-p", "no:cacheprovider"]
        + ["-q", "--nbval-lax", "--nbval-current-env", "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"{4 + 2 * (1 + _CELLS_AFTER_THE_FIRST)} passed" in result.stdout
    workers = {path.read_text() for path in tmp_path.glob("ran_*")}
    assert workers == {"gw0", "gw1"}  # one file's tests, on both workers
