import re
import warnings

import keras
import numpy as np
import pytest

from medgen_tf import DataError
from medgen_tf.data import make_dataset, steps_per_epoch


def _batches(dataset):
    return [np.asarray(batch) for batch in dataset]


def test_exactly_one_batch_of_examples_makes_one_full_batch():
    batches = _batches(make_dataset(np.arange(4, dtype=np.float32), batch_size=4, seed=0))
    assert len(batches) == 1 and sorted(batches[0].tolist()) == [0, 1, 2, 3]


def test_one_pass_covers_each_example_once_in_shuffled_order():
    values = np.arange(20, dtype=np.float32)
    batches = _batches(make_dataset(values, batch_size=5, seed=3))
    assert len(batches) == 4 and all(batch.shape == (5,) for batch in batches)
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == values.tolist()
    assert not np.array_equal(seen, values)


def test_epoch_order_depends_only_on_seed_and_epoch():
    values = np.arange(12, dtype=np.float32)
    full = _batches(make_dataset(values, batch_size=4, seed=1, num_epochs=3))
    resumed = _batches(make_dataset(values, batch_size=4, seed=1, initial_epoch=1, num_epochs=3))
    assert len(full) == 9 and len(resumed) == 6
    for expected, actual in zip(full[3:], resumed, strict=True):
        np.testing.assert_array_equal(expected, actual)
    # Epochs differ from each other, and another seed gives another order.
    assert not np.array_equal(np.concatenate(full[:3]), np.concatenate(full[3:6]))
    other = _batches(make_dataset(values, batch_size=4, seed=2, num_epochs=1))
    assert not np.array_equal(np.concatenate(full[:3]), np.concatenate(other))


def test_structures_stay_aligned():
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    labels = np.arange(10, dtype=np.int32)
    for images_batch, labels_batch in make_dataset(images, labels, batch_size=3, seed=0):
        np.testing.assert_array_equal(images_batch.numpy().ravel(), labels_batch.numpy())
    for batch in make_dataset({"t1": images, "t2": -images}, batch_size=3):
        np.testing.assert_array_equal(batch["t1"].numpy(), -batch["t2"].numpy())


def test_no_shuffle_and_remainder():
    values = np.arange(7)
    batches = _batches(make_dataset(values, batch_size=3, shuffle=False, drop_remainder=False))
    assert [batch.tolist() for batch in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    assert steps_per_epoch(7, 3) == 2 and steps_per_epoch(7, 3, drop_remainder=False) == 3


def test_bad_input_raises_data_error():
    with pytest.raises(DataError, match="fewer than batch_size=8"):
        make_dataset(np.zeros((5, 2)), batch_size=8)
    with pytest.raises(DataError, match="differ in length"):
        make_dataset(np.zeros((5, 2)), np.zeros(4), batch_size=2)


def test_one_pass_dataset_reshuffles_on_each_iteration_reproducibly():
    values = np.arange(16, dtype=np.float32)
    dataset = make_dataset(values, batch_size=4, seed=5)
    first, second = np.concatenate(_batches(dataset)), np.concatenate(_batches(dataset))
    assert sorted(second.tolist()) == values.tolist() and not np.array_equal(first, second)
    again = make_dataset(values, batch_size=4, seed=5)
    np.testing.assert_array_equal(np.concatenate(_batches(again)), first)
    np.testing.assert_array_equal(np.concatenate(_batches(again)), second)


@pytest.mark.parametrize(
    "options",
    [
        {"batch_size": 3},
        {"batch_size": 3, "drop_remainder": False},
        {"batch_size": 3, "shuffle": False},
        {"batch_size": 2, "num_epochs": 3},
        {"batch_size": 3, "initial_epoch": 1, "num_epochs": 3, "drop_remainder": False},
    ],
)
def test_dataset_states_the_number_of_batches_it_yields(options):
    dataset = make_dataset(np.arange(10, dtype=np.float32), **options)
    assert int(dataset.cardinality()) == len(_batches(dataset))


def test_fit_on_a_one_pass_dataset_knows_its_length_and_runs_every_epoch_without_warning():
    # Without a stated length, Keras' first epoch ran to the end of the data and warned
    # "Your input ran out of data; interrupting training", though nothing was interrupted.
    images = np.random.default_rng(0).normal(size=(12, 4)).astype("float32")
    dataset = make_dataset((images, images[:, :1]), batch_size=4, seed=0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    seen = []
    count = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(dataset, epochs=2, shuffle=False, verbose=0, callbacks=[count])
    assert [str(warning.message) for warning in caught] == []
    assert len(history.history["loss"]) == 2 and len(seen) == 2 * 3


@pytest.mark.parametrize(
    ("arrays", "options", "error", "message"),
    [
        (np.zeros((6, 2)), {"batch_size": 0}, ValueError, "batch_size=0: give a whole number >= 1"),
        (
            np.zeros((6, 2)),
            {"batch_size": -3},
            ValueError,
            "batch_size=-3: give a whole number >= 1",
        ),
        # 2.5 was a TypeError inside tf.data, "4" a comparison error, True batches of 1.
        (
            np.zeros((6, 2)),
            {"batch_size": 2.5},
            ValueError,
            "batch_size=2.5: give a whole number >= 1",
        ),
        (
            np.zeros((6, 2)),
            {"batch_size": "4"},
            ValueError,
            "batch_size='4': give a whole number >= 1",
        ),
        (
            np.zeros((6, 2)),
            {"batch_size": True},
            ValueError,
            "batch_size=True: give a whole number >= 1",
        ),
        (
            np.zeros((6, 2)),
            {"batch_size": 2, "num_epochs": 2.5},
            ValueError,
            "num_epochs=2.5: give a whole number >= 1",
        ),
        (
            np.zeros((6, 2)),
            {"batch_size": 2, "initial_epoch": -1},
            ValueError,
            "initial_epoch=-1: give a whole number >= 0",
        ),
        (
            np.zeros((6, 2)),
            {"batch_size": 2, "initial_epoch": 3, "num_epochs": 3},
            ValueError,
            "num_epochs=3 leaves no epoch after initial_epoch=3",
        ),
        (
            np.zeros((6, 2)),
            {"batch_size": 2, "initial_epoch": 4, "num_epochs": 2},
            ValueError,
            "num_epochs=2 leaves no epoch after initial_epoch=4",
        ),
        (
            np.zeros((0, 2)),
            {"batch_size": 1, "drop_remainder": False},
            DataError,
            "make_dataset: no examples",
        ),
        (
            {"images": np.zeros((0, 4)), "labels": np.zeros(0)},
            {"batch_size": 2, "drop_remainder": False},
            DataError,
            "make_dataset: no examples",
        ),
        (
            np.zeros((0, 2)),
            {"batch_size": 4},
            DataError,
            "make_dataset: 0 examples is fewer than batch_size=4; use a smaller batch size or "
            "more data",
        ),
        ({}, {"batch_size": 1}, DataError, "make_dataset: no arrays given"),
        ((), {"batch_size": 1}, DataError, "make_dataset: no arrays given"),
    ],
    ids=[
        "batch-0",
        "batch-negative",
        "batch-fraction",
        "batch-text",
        "batch-true",
        "num-epochs-fraction",
        "initial-epoch-negative",
        "num-epochs-equal-initial",
        "num-epochs-below-initial",
        "no-examples",
        "no-examples-dict",
        "no-examples-drop-remainder",
        "empty-dict",
        "empty-tuple",
    ],
)
def test_make_dataset_refuses_what_gives_no_batch_in_one_line(arrays, options, error, message):
    with pytest.raises(error, match=re.escape(message)) as raised:
        make_dataset(arrays, **options)
    assert str(raised.value) == message


def test_steps_per_epoch_refuses_a_batch_size_below_one():
    with pytest.raises(ValueError, match=r"^batch_size=0: give a whole number >= 1$"):
        steps_per_epoch(10, 0)
    assert steps_per_epoch(10, 1) == 10


def test_a_list_of_arrays_is_refused_not_read_as_rows_of_each_array():
    # Each image's rows became examples without a word: 16 batches of shape (4, 64, 1).
    images = [np.random.default_rng(0).random((64, 64, 1))] * 8
    message = (
        "make_dataset: arrays is a list of 8 arrays; give a tuple of parallel arrays, or "
        "np.stack(...) the list into one array of examples"
    )
    with pytest.raises(DataError, match=re.escape(message)) as raised:
        make_dataset(images, batch_size=4)
    assert str(raised.value) == message
    with pytest.raises(DataError, match=r"^make_dataset: labels is a list of 2 arrays"):
        make_dataset(np.zeros((8, 2)), [np.zeros(8), np.ones(8)], batch_size=4)
    # A list of numbers is one array, as before (labels given as a list).
    batches = list(make_dataset(np.arange(4.0), [0, 1, 2, 3], batch_size=2, shuffle=False))
    assert [labels.numpy().tolist() for _, labels in batches] == [[0, 1], [2, 3]]


def test_a_tuple_or_dict_with_labels_keeps_its_structure_and_stays_aligned():
    # (a, b) with labels was stacked by np.asarray into one array of 2 examples ("arrays differ
    # in length: {'array 0': 2, 'array 1': 8}"), and a dict with labels was an object array.
    values = np.arange(8, dtype=np.float32)
    first, second = values.reshape(8, 1), np.stack([values, values], axis=1)
    labels = values.astype(np.int32)
    for (left, right), batch_labels in make_dataset((first, second), labels, batch_size=4):
        assert left.shape == (4, 1) and right.shape == (4, 2) and batch_labels.shape == (4,)
        np.testing.assert_array_equal(left.numpy()[:, 0], batch_labels.numpy())
        np.testing.assert_array_equal(right.numpy()[:, 1], batch_labels.numpy())
    for images, batch_labels in make_dataset({"t1": first, "t2": -first}, labels, batch_size=4):
        assert sorted(images) == ["t1", "t2"]
        np.testing.assert_array_equal(images["t2"].numpy()[:, 0], -batch_labels.numpy())


@pytest.mark.parametrize(
    ("arrays", "labels", "message"),
    [
        (
            (np.zeros((8, 1)), np.zeros((7, 2))),
            np.zeros(8),
            "make_dataset: arrays differ in length (first dimension): "
            "{'arrays[0]': 8, 'arrays[1]': 7, 'labels': 8}",
        ),
        (
            {"t1": np.zeros((8, 1)), "pair": (np.zeros(8), np.zeros(5))},
            None,
            "make_dataset: arrays differ in length (first dimension): "
            "{\"arrays['t1']\": 8, \"arrays['pair'][0]\": 8, \"arrays['pair'][1]\": 5}",
        ),
        ({"t1": np.zeros((8, 1))}, np.zeros(3), "{\"arrays['t1']\": 8, 'labels': 3}"),
        ((np.zeros((8, 1)), None), None, "make_dataset: arrays[1] is None, not an array"),
        ({"t1": np.zeros((8, 1)), "t2": ()}, None, "arrays['t2'] is an empty tuple (no arrays)"),
        (np.zeros((2, 1)), [[0, 1], [1]], "make_dataset: labels is ragged (rows of different"),
        (np.float32(3.0), None, "make_dataset: arrays is a single value, not an array of"),
    ],
    ids=["tuple-labels", "nested-dict", "dict-labels", "none", "empty", "ragged", "scalar"],
)
def test_a_bad_leaf_is_named_by_its_path_in_one_line(arrays, labels, message):
    with pytest.raises(DataError, match=re.escape(message)) as raised:
        make_dataset(arrays, labels, batch_size=1)
    assert "\n" not in str(raised.value) and "dtype object" not in str(raised.value)


def test_more_batches_than_tf_data_counts_are_refused_in_one_line():
    # tf.data counts in int64: 10**20 epochs were "out-of-range integer to Tensor", a traceback.
    images = np.zeros((4, 8, 8, 1), np.float32)
    with pytest.raises(ValueError) as error:
        make_dataset(images, batch_size=2, num_epochs=10**20)
    assert str(error.value) == (
        f"num_epochs={10**20}: {2 * 10**20} batches in all, more than tf.data counts (2**62)"
    )
    assert make_dataset(images, batch_size=2, num_epochs=2**61).cardinality() == 2**62
