"""medgen_tf.notebook.setup and the quick-mode switch it returns."""

import random

import numpy as np
import pytest

from medgen_tf import config
from medgen_tf.notebook import setup


def test_setup_reads_quick_mode_at_each_call(monkeypatch):
    # QUICK is read once at import: %env MEDGEN_QUICK=1 and a re-run of Setup gave a full run.
    monkeypatch.setenv("MEDGEN_QUICK", "1")
    assert setup(seed=0) is True
    monkeypatch.setenv("MEDGEN_QUICK", "0")
    assert setup(seed=0) is False


def test_setup_seeds_python_and_numpy_alike_and_takes_numpy_integers():
    setup(seed=np.int64(3))  # Keras refused numpy integers
    first = (random.random(), np.random.rand())
    setup(seed=3)
    assert (random.random(), np.random.rand()) == first


@pytest.mark.parametrize("seed", [True, -1, 1.5, "0"])
def test_setup_refuses_a_seed_that_is_no_whole_number(seed):
    with pytest.raises(ValueError) as error:
        setup(seed=seed)
    assert str(error.value) == f"seed={seed!r}: give a whole number >= 0"


@pytest.mark.parametrize(
    ("value", "quick"),
    [("1", True), (" YES ", True), ("on", True), ("0", False), ("", False), ("off", False)],
)
def test_quick_mode_values_are_read_without_a_warning(monkeypatch, recwarn, value, quick):
    monkeypatch.setenv("MEDGEN_QUICK", value)
    assert config.quick_mode() is quick
    assert not recwarn.list


@pytest.mark.parametrize("value", ["2", "y"])
def test_an_unknown_quick_mode_value_is_off_with_a_warning(monkeypatch, value):
    # "2" or "y" ran the full course without a word.
    monkeypatch.setenv("MEDGEN_QUICK", value)
    with pytest.warns(UserWarning, match=f"MEDGEN_QUICK={value!r} is none of"):
        assert config.quick_mode() is False


def test_setup_refuses_a_seed_keras_cannot_take_before_importing_tensorflow():
    with pytest.raises(ValueError) as error:
        setup(seed=2**32)  # numpy's "Seed must be between 0 and 2**32 - 1" came after the import
    assert str(error.value) == "seed=4294967296: give a whole number from 0 to 2**32 - 1"
    setup(seed=2**32 - 1)
