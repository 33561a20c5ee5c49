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
    # Keras' "Could not locate class" puts the file's whole model config on its first line.
    reason = first_line(TypeError("Could not locate class 'VAE'. " + "x" * 16000 + "\nmore"))
    assert len(reason) == 200 and reason.startswith("Could not locate class 'VAE'. x")
    assert reason.endswith("x...")
    assert first_line(ValueError("y" * 200)) == "y" * 200
    assert issubclass(DataError, ValueError)
