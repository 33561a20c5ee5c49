"""Shared test setup: quick mode, a private data cache, quiet TensorFlow."""

import os

os.environ.setdefault("MEDGEN_QUICK", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own cohort cache so tests never touch ~/.cache."""
    cache = tmp_path_factory.getbasetemp() / "medgen_cache"
    monkeypatch.setenv("MEDGEN_CACHE_DIR", str(cache))


@pytest.fixture
def strip_seed_states():
    """``strip(weights_path)``: delete the seed-generator states from a ``.weights.h5`` file, as
    files written before those states were saved look; returns the deleted entries."""
    import h5py

    def strip(weights_path):
        with h5py.File(weights_path, "a") as file:
            names = []
            file.visit(names.append)
            stale = [name for name in names if name.endswith("seed_generator_state")]
            for name in stale:
                del file[name]
        return stale

    return strip
