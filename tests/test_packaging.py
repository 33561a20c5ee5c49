"""The package's metadata: pins, extras, the console script and environment.yml agree."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the dev extra installs tomli
    import tomli as tomllib

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
    result = subprocess.run(
        [sys.executable, "-m", "medgen_tf.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "train" in result.stdout and "demo" in result.stdout


def test_version_is_exposed():
    assert medgen_tf.__version__ == _pyproject()["project"]["version"]
