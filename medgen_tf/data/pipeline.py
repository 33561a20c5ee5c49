"""In-memory arrays to a batched, prefetched ``tf.data.Dataset`` with reproducible order.

Our datasets are small enough to sit in memory, so the pipeline is: the arrays as one tensor
each, a permutation of the indices per epoch, a gather per batch, prefetch. The permutation of
epoch ``e`` is a *stateless* shuffle seeded by ``(seed, e)``: a run resumed at epoch ``k`` sees
exactly the batches the uninterrupted run saw from epoch ``k`` on.

Example:
    >>> dataset = make_dataset(images, batch_size=32, seed=0)  # doctest: +SKIP
    >>> dataset = make_dataset(images, labels, batch_size=32)  # (images, labels) batches
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from medgen_tf.errors import DataError, check_whole_at_least

__all__ = ["make_dataset", "steps_per_epoch"]


def steps_per_epoch(num_examples: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Number of batches in one epoch of ``num_examples`` examples."""
    check_whole_at_least("batch_size", batch_size, 1)
    if drop_remainder:
        return num_examples // batch_size
    return math.ceil(num_examples / batch_size)


def _as_structure(arrays, labels):
    """Validate ``arrays`` (an array, or tuples and dicts of arrays, nested) and ``labels``, and
    return their structure, as numpy arrays, with its number of examples."""
    if isinstance(arrays, (dict, tuple, list)) and not arrays:
        raise DataError("make_dataset: no arrays given")
    leaves = []
    structure = _converted(arrays, "arrays", leaves)
    if labels is not None:
        structure = (structure, _converted(labels, "labels", leaves))
    lengths = {name: value.shape[0] for name, value in leaves}
    if len(set(lengths.values())) != 1:
        raise DataError(f"make_dataset: arrays differ in length (first dimension): {lengths}")
    return structure, next(iter(lengths.values()))


def _converted(value, name, leaves):
    """``value`` with every leaf a numpy array, each also appended to ``leaves`` as
    ``(name, array)``, named by its path (``arrays[0]['t1']``); DataError naming a bad leaf."""
    if isinstance(value, dict):
        if not value:
            raise DataError(f"make_dataset: {name} is an empty dict (no arrays)")
        return {key: _converted(item, f"{name}[{key!r}]", leaves) for key, item in value.items()}
    if isinstance(value, tuple):
        if not value:
            raise DataError(f"make_dataset: {name} is an empty tuple (no arrays)")
        return tuple(
            _converted(item, f"{name}[{index}]", leaves) for index, item in enumerate(value)
        )
    if isinstance(value, list):
        held = {_kind_in_list(item) for item in value} - {None}
        if held:
            # Ambiguous: tf.data stacks such a list into one array of examples, Keras takes it
            # for parallel inputs, and np.asarray made each array's rows examples without a word.
            raise DataError(
                f"make_dataset: {name} is a list of {len(value)} {'/'.join(sorted(held))}; give "
                "a tuple of parallel arrays, or np.stack(...) the list into one array of examples"
            )
    try:
        array = np.asarray(value)
    except ValueError:  # numpy's "inhomogeneous shape": nested lists of unequal lengths
        raise DataError(
            f"make_dataset: {name} is ragged (rows of different lengths); give a numeric array"
        ) from None
    if array.dtype.kind in "OMmV":
        # TensorFlow's own refusal ("Failed to convert a NumPy array to a Tensor (Unsupported
        # object type NoneType)") names neither the array nor the cause.
        if array.ndim == 0:
            held = "None" if value is None else f"a {type(value).__name__}"
            raise DataError(f"make_dataset: {name} is {held}, not an array")
        raise DataError(
            f"make_dataset: {name} has dtype {array.dtype}; give numeric arrays (an object "
            "array holds ragged rows or None)"
        )
    if array.ndim == 0:
        raise DataError(f"make_dataset: {name} is a single value, not an array of examples")
    leaves.append((name, array))
    return array


def _kind_in_list(item):
    """What makes a list item more than a number: "arrays", "tuples" or "dicts" (else None)."""
    if isinstance(item, dict):
        return "dicts"
    if isinstance(item, tuple):
        return "tuples"
    return "arrays" if len(getattr(item, "shape", ())) > 0 else None


def epoch_permutation(num_examples: int, seed: int, epoch) -> tf.Tensor:
    """The index order of epoch ``epoch``: a stateless shuffle seeded by ``(seed, epoch)``."""
    indices = tf.range(num_examples, dtype=tf.int64)
    stateless_seed = tf.stack([tf.cast(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_shuffle(indices, seed=stateless_seed)


#: The most batches (and epochs) one dataset may hold: tf.data counts them in int64.
MAX_BATCHES = 2**62


def make_dataset(
    arrays,
    labels=None,
    *,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    initial_epoch: int = 0,
    num_epochs: int | None = None,
    drop_remainder: bool = True,
) -> tf.data.Dataset:
    """Batches of in-memory arrays, shuffled per epoch by a stateless seed, prefetched.

    Args:
        arrays: an array, a tuple of arrays or a dict of arrays (tuples and dicts may nest),
            all of equal length; batches have the same structure. A list of numbers is one
            array; a list of arrays is refused, since it reads two ways (stack it into one
            array of examples with ``np.stack``, or give a tuple of parallel arrays).
        labels: optional array (or a structure like ``arrays``); batches are then
            ``(arrays, labels)`` tuples.
        batch_size: examples per batch.
        shuffle: shuffle within each epoch (the order of epoch ``e`` depends only on
            ``(seed, e)``); False keeps the original order.
        seed: shuffle seed.
        initial_epoch: first epoch to produce (a resumed run passes the epoch it resumes at).
        num_epochs: None gives one pass per iteration, reshuffled each time the dataset is
            iterated (as ``keras.Model.fit`` does every epoch; the sequence of orders is fixed
            by ``seed`` together with TensorFlow's global seed, as ``keras.utils.
            set_random_seed`` sets it, and is not tied to epoch numbers, so not resumable
            mid-run); an
            integer gives epochs ``initial_epoch .. num_epochs - 1`` back to back, each in the
            order fixed by ``(seed, epoch)`` (what :func:`medgen_tf.training.fit` uses, with
            ``steps_per_epoch``, so resumed runs see the same batches).
        drop_remainder: drop the last incomplete batch of each epoch (GAN/VAE steps assume
            full batches; it also keeps shapes static for XLA).

    Raises:
        DataError: arrays of unequal length, a list of arrays, a leaf that is not a numeric
            array (named by its path, e.g. ``arrays[0]`` or ``arrays['t1']``), or fewer
            examples than ``batch_size`` while ``drop_remainder`` (every epoch would be empty).
    """
    structure, num_examples = _as_structure(arrays, labels)
    # 2.5 was a TypeError inside tf.data, "4" a comparison error, True batches of 1.
    check_whole_at_least("batch_size", batch_size, 1)
    check_whole_at_least("initial_epoch", initial_epoch, 0)
    if num_epochs is not None:
        check_whole_at_least("num_epochs", num_epochs, 1)
    if drop_remainder and num_examples < batch_size:
        raise DataError(
            f"make_dataset: {num_examples} examples is fewer than batch_size={batch_size}; "
            "use a smaller batch size or more data"
        )
    if num_examples == 0:
        raise DataError("make_dataset: no examples")
    last_epoch = initial_epoch + 1 if num_epochs is None else num_epochs
    if last_epoch <= initial_epoch:
        raise ValueError(
            f"num_epochs={num_epochs} leaves no epoch after initial_epoch={initial_epoch}"
        )

    num_batches = (last_epoch - initial_epoch) * steps_per_epoch(
        num_examples, batch_size, drop_remainder
    )
    if last_epoch > MAX_BATCHES or num_batches > MAX_BATCHES:
        # tf.data counts in int64: beyond it, "out-of-range integer to Tensor", a traceback.
        raise ValueError(
            f"num_epochs={num_epochs}: {num_batches} batches in all, more than tf.data counts "
            "(2**62)"
        )

    tensors = tf.nest.map_structure(tf.constant, structure)
    if num_epochs is None and shuffle:
        # one key per iteration, new each time the dataset is iterated, same sequence every run
        epochs = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    else:
        epochs = tf.data.Dataset.range(initial_epoch, last_epoch)

    def batches_of_epoch(epoch):
        if shuffle:
            order = epoch_permutation(num_examples, seed, epoch)
        else:
            order = tf.range(num_examples, dtype=tf.int64)
        return tf.data.Dataset.from_tensor_slices(order).batch(
            batch_size, drop_remainder=drop_remainder
        )

    def gather(batch_indices):
        return tf.nest.map_structure(lambda tensor: tf.gather(tensor, batch_indices), tensors)

    dataset = epochs.flat_map(batches_of_epoch)
    # flat_map hides the length from tf.data. Stated here, it lets `fit` show "8/8" rather than
    # "Unknown", and spares its first epoch the "Your input ran out of data" warning.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)
