import numpy as np
import pytest

from medgen_tf.errors import (
    DataError,
    check_value_range,
    check_whole_at_least,
    first_line,
    is_whole_number,
)


def test_is_whole_number_takes_ints_and_numpy_integers_only():
    assert all(is_whole_number(value) for value in (0, -3, 10**20, np.int64(4), np.uint8(2)))
    # int() would make 2 of 2.5 and 1 of True without a word.
    rejected = (True, False, 2.0, 2.5, "2", None, np.float32(1), np.bool_(True))
    assert not any(is_whole_number(value) for value in rejected)


def test_first_line_keeps_the_first_line_or_names_the_type():
    assert first_line(ValueError("bad shape\n  traceback detail")) == "bad shape"
    assert first_line(DataError("")) == "DataError"
    # Keras' "Could not locate class" puts the file's whole model config on its first line.
    reason = first_line(TypeError("Could not locate class 'VAE'. " + "x" * 16000 + "\nmore"))
    assert len(reason) == 200 and reason.startswith("Could not locate class 'VAE'. x")
    assert reason.endswith("x...")
    assert first_line(ValueError("y" * 200)) == "y" * 200
    assert issubclass(DataError, ValueError)


def test_first_line_skips_blank_lines_to_the_reason():
    # "\nshape ..." gave only the type's name, "   \nreal reason" three spaces.
    assert (
        first_line(ValueError("\nshape (3,) does not match (4,)"))
        == "shape (3,) does not match (4,)"
    )
    assert first_line(ValueError("   \nreal reason")) == "real reason"
    assert first_line(ValueError(" \n \n")) == "ValueError"


@pytest.mark.parametrize("value_range", [1, (0,), (0, 1, 2), ("a", "b"), None])
def test_a_value_range_that_is_no_pair_of_numbers_is_one_line(value_range):
    # Python's own unpacking errors came out: "not enough values to unpack (expected 2, got 1)".
    with pytest.raises(DataError) as error:
        check_value_range([0.5], value_range, error=DataError)
    assert str(error.value) == (
        f"value_range must be (low, high) with high > low, got {value_range!r}"
    )
    assert check_value_range([0.5], np.array([0, 1])) == (0.0, 1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_images_with_nan_or_inf_are_refused_by_the_range_check(bad):
    # NaN fails every comparison, so NaN images passed as inside the range.
    with pytest.raises(ValueError) as error:
        check_value_range(np.array([0.5, bad]), (0, 1), name="fakes.npy")
    assert str(error.value) == "fakes.npy: NaN or Inf values"


def test_check_whole_at_least_takes_the_minimum_and_refuses_below_it_in_one_line():
    check_whole_at_least("batch_size", 1, 1)
    check_whole_at_least("seed", np.int64(0), 0)
    for value in (0, 2.5, True, "3"):
        with pytest.raises(ValueError, match=r"^batch_size=.*: give a whole number >= 1$"):
            check_whole_at_least("batch_size", value, 1)


def test_check_value_range_allows_its_slack_and_no_more_on_either_side():
    # (0, 255) is 255 wide: the default slack of 1 % is 2.55 below 0 and above 255.
    assert check_value_range(np.array([-2.5, 257.5]), (0, 255)) == (0.0, 255.0)
    for outside in ([-2.6, 100.0], [0.0, 257.6]):
        with pytest.raises(ValueError, match=r"^images: values span"):
            check_value_range(np.array(outside), (0, 255))
    # Exactly at the margin is still in: (0, 100) gives a margin of 1.0, exact in floats.
    assert check_value_range(np.array([-1.0, 101.0]), (0, 100)) == (0.0, 100.0)
    with pytest.raises(ValueError, match=r"^value_range must be \(low, high\) with high > low"):
        check_value_range(np.zeros(2), (1, 1))
    # A slack of 10 % of (-1, 1): 0.2 either side.
    check_value_range(np.array([-1.19, 1.19]), (-1, 1), slack=0.1)
    with pytest.raises(ValueError, match=r"^predicted: values span \[-1.21, 0\]"):
        check_value_range(np.array([-1.21, 0.0]), (-1, 1), name="predicted", slack=0.1)
