import re
import warnings

import keras
import numpy as np
import pytest

from medgen_tf import DataError
from medgen_tf.data import make_dataset, steps_per_epoch


def _batches(dataset):
    return [np.asarray(batch) for batch in dataset]


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
        (np.zeros((6, 2)), {"batch_size": 0}, ValueError, "batch_size must be positive, got 0"),
        (np.zeros((6, 2)), {"batch_size": -3}, ValueError, "batch_size must be positive, got -3"),
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
    with pytest.raises(ValueError, match=r"^batch_size must be positive, got 0$"):
        steps_per_epoch(10, 0)
    assert steps_per_epoch(10, 1) == 10
