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
