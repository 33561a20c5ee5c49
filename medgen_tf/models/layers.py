"""The few pieces Keras lacks, shared by the model files.

A model module imports only keras, tensorflow, numpy, ``medgen_tf.losses`` and this file,
so copying a model into another project means copying at most three files.
"""

from __future__ import annotations

import keras


def loss_scaled(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Wrap ``optimizer`` in a ``LossScaleOptimizer`` when the global policy computes in float16.

    Keras only does this by itself inside the built-in ``compile``; a GAN's overridden
    ``compile`` must do it by hand, and its ``train_step`` must take gradients of
    ``optimizer.scale_loss(loss)`` (a no-op on a plain optimizer).
    """
    if keras.mixed_precision.global_policy().compute_dtype == "float16" and not isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer
    ):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
