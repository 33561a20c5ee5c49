"""One call for a notebook's Setup cell: quiet TensorFlow start-up, seeds, quick mode.

TensorFlow 2.21 writes its C++ start-up notes (oneDNN, CUDA probing) straight to the process's
stderr before ``TF_CPP_MIN_LOG_LEVEL`` is read, and ipykernel forwards that file descriptor into
the notebook. ``setup`` mutes descriptor 2 only while TensorFlow imports and initialises, and
sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless it is set already) for the rest of the process: later
C++ INFO and WARNING lines stay hidden, errors still show. A fatal error inside the import (a
CPU without the instructions the TensorFlow wheel was built for, say) ends the process with
its message muted too: ``python -c "import tensorflow"`` in a terminal shows it.

Example:
    >>> from medgen_tf.notebook import setup
    >>> QUICK = setup(seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import os

from medgen_tf.config import SEED_MAX, quick_mode
from medgen_tf.errors import check_whole_at_least


def import_tensorflow_quietly() -> None:
    """Import and initialise TensorFlow with descriptor 2 muted (also used by the CLI).

    An import error still surfaces: its traceback is printed after stderr is restored.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    saved_stderr = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.constant(0.0)  # device probing happens here, still muted
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)


def setup(seed: int = 0) -> bool:
    """Import TensorFlow quietly, seed Python/NumPy/TF/Keras, and return the quick-mode switch.

    ``MEDGEN_QUICK`` is read at each call, so ``%env MEDGEN_QUICK=1`` and a re-run of the Setup
    cell give a smoke run without restarting the kernel.
    """
    check_whole_at_least("seed", seed, 0)
    if seed > SEED_MAX:  # else numpy's message, after TensorFlow's import
        raise ValueError(f"seed={seed!r}: give a whole number from 0 to 2**32 - 1")
    import_tensorflow_quietly()
    import keras

    keras.utils.set_random_seed(int(seed))  # Keras refuses numpy integers
    return quick_mode()
