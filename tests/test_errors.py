import numpy as np

from medgen_tf.errors import DataError, first_line, is_whole_number


def test_is_whole_number_takes_ints_and_numpy_integers_only():
    assert all(is_whole_number(value) for value in (0, -3, 10**20, np.int64(4), np.uint8(2)))
    # int() would make 2 of 2.5 and 1 of True without a word.
    rejected = (True, False, 2.0, 2.5, "2", None, np.float32(1), np.bool_(True))
    assert not any(is_whole_number(value) for value in rejected)


def test_first_line_keeps_the_first_line_or_names_the_type():
    assert first_line(ValueError("bad shape\n  traceback detail")) == "bad shape"
    assert first_line(DataError("")) == "DataError"
    assert issubclass(DataError, ValueError)
