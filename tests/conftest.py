"""Shared test setup: quick mode, a private data cache, quiet TensorFlow."""

import os
import subprocess
import sys
import textwrap

os.environ.setdefault("MEDGEN_QUICK", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
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


@pytest.fixture
def load_compiled():
    """``load(path)``: a ``.keras`` file loaded with its compile state. Fails if Keras warns that
    ``compile()`` was not called: a model that overrides ``compile`` without
    ``compile_from_config`` comes back without its optimizers."""
    import warnings

    import keras

    def load(path):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            restored = keras.saving.load_model(path)
        assert not [w for w in caught if "compile()" in str(w.message)]
        return restored

    return load


@pytest.fixture
def assert_optimizer_state_equal():
    """``check(restored, original, iterations)``: the step count, and every optimizer variable
    (Adam's moments) equal to the original's."""
    import numpy as np

    def check(restored, original, iterations):
        assert int(restored.iterations) == iterations
        for restored_variable, variable in zip(restored.variables, original.variables, strict=True):
            np.testing.assert_array_equal(restored_variable.numpy(), variable.numpy())

    return check


@pytest.fixture
def unchanged_by():
    """``run(call, variables)``: ``call()``'s result, after checking that it left every one of
    ``variables`` as it was."""
    import keras
    import numpy as np

    def run(call, variables):
        before = [keras.ops.convert_to_numpy(variable).copy() for variable in variables]
        result = call()
        for variable, old in zip(variables, before, strict=True):
            np.testing.assert_array_equal(
                keras.ops.convert_to_numpy(variable), old, err_msg=variable.path
            )
        return result

    return run


@pytest.fixture
def medmnist_npz():
    """Writes a small .npz in the MedMNIST layout: random uint8 images, 0/1 labels per split."""

    def write(path, size=28, channels=None, counts=(10, 4, 6), drop=(), seed=0):
        rng = np.random.default_rng(seed)
        arrays = {}
        for split, count in zip(("train", "val", "test"), counts, strict=True):
            shape = (count, size, size) if channels is None else (count, size, size, channels)
            arrays[f"{split}_images"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
            arrays[f"{split}_labels"] = rng.integers(0, 2, size=(count, 1)).astype(np.uint8)
        for key in drop:
            arrays.pop(key)
        np.savez(path, **arrays)
        return path

    return write


@pytest.fixture
def record_calls(monkeypatch):
    """``record(module, name)`` wraps ``module.name`` for the test and returns the list of the
    first arguments it is called with (as numpy arrays): what a command really drew or scored."""

    def record(module, name):
        seen = []
        original = getattr(module, name)

        def recording(first, *args, **kwargs):
            seen.append(np.asarray(first))
            return original(first, *args, **kwargs)

        monkeypatch.setattr(module, name, recording)
        return seen

    return record


@pytest.fixture
def exited_pid():
    """The PID of a process that has just exited: what a writer killed mid-write leaves."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


_TWO_LOGICAL_CPUS = """
import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""


@pytest.fixture
def two_cpu_python():
    """``run(script) -> stdout``: the script in a fresh interpreter whose CPU is split into two
    logical devices (for ``MirroredStrategy``), with ``np`` and ``tf`` imported. Logical devices
    must be set before TensorFlow starts, hence the fresh interpreter."""

    def run(script, timeout=180):
        source = _TWO_LOGICAL_CPUS + textwrap.dedent(script)
        command = [sys.executable, "-c", source]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=True
        ).stdout

    return run
