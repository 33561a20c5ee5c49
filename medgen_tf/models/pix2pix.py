"""Paired translation (pix2pix, Isola et al. 2017): the upper reference for CycleGAN.

Taught in ``notebooks/03_cyclegan.ipynb``. Give it the networks CycleGAN uses
(:mod:`medgen_tf.models.cyclegan` builders), so that the only difference from CycleGAN is the
supervision: here every input comes with its true target.
"""

from __future__ import annotations

import copy

import keras
import tensorflow as tf
from keras import ops

try:
    from medgen_tf import losses
    from medgen_tf.models.layers import (
        FusedAdam,
        build_optimizer,
        check_batch_structure,
        check_compile_arguments,
        check_fit_data,
        check_image_batch,
        check_numpy_images,
        engine_compile_arguments,
        is_real_number,
        loss_scaled,
        predict_images,
    )
except ModuleNotFoundError as error:  # lifted into a project without medgen_tf: the neighbours
    if not (error.name or "").startswith("medgen_tf"):
        raise
    import losses
    from layers import (
        FusedAdam,
        build_optimizer,
        check_batch_structure,
        check_compile_arguments,
        check_fit_data,
        check_image_batch,
        check_numpy_images,
        engine_compile_arguments,
        is_real_number,
        loss_scaled,
        predict_images,
    )

__all__ = ["Pix2Pix"]


@keras.saving.register_keras_serializable(package="medgen_tf")
class Pix2Pix(keras.Model):
    """Paired image-to-image translation: L1 to the true target, optionally plus a PatchGAN.

    The generator minimises ``l1_weight * |G(a) - b|`` (+ the non-saturating adversarial loss
    of a conditional PatchGAN that sees ``[a, G(a)]`` against ``[a, b]``, Isola et al. 2017,
    lambda_L1 = 100). With ``discriminator=None`` it is plain L1 regression. Batches are
    ``(images_a, images_b)`` of the SAME subjects and slices: the paired data CycleGAN lacks.
    ``evaluate`` and ``fit(validation_data=...)`` report the same losses, without any update.

    Args:
        generator: image-to-image model (``cyclegan.build_resnet_generator``).
        discriminator: ``None``, or a PatchGAN whose input has the channels of ``a`` and ``b``
            stacked (``build_patchgan_discriminator(size, channels=2)`` for one-channel MR).
        l1_weight: lambda_L1 (100 in the paper), at least 0.

    Example:
        >>> import tensorflow as tf
        >>> from medgen_tf.models.cyclegan import build_patchgan_discriminator, build_resnet_generator
        >>> from medgen_tf.models.pix2pix import Pix2Pix
        >>> model = Pix2Pix(build_resnet_generator(32, base_filters=4),
        ...                 build_patchgan_discriminator(32, channels=2, base_filters=4))
        >>> model.compile()
        >>> model.fit(tf.data.Dataset.from_tensor_slices((t1, t2)).batch(8))  # doctest: +SKIP

        In a project this file was lifted into, beside ``cyclegan.py``, the imports read
        ``from cyclegan import ...`` and ``from pix2pix import Pix2Pix``.

    Notebook: ``notebooks/03_cyclegan.ipynb`` (the paired reference that CycleGAN is scored
    against).
    """

    def __init__(self, generator, discriminator=None, l1_weight=100.0, **kwargs):
        super().__init__(**kwargs)
        if discriminator is not None:
            # D judges an input stacked with its target: a D built for the target's channels
            # alone fails at the first step, inside the traced graph.
            a_channels = generator.inputs[0].shape[-1]
            b_channels = generator.outputs[0].shape[-1]
            d_channels = discriminator.inputs[0].shape[-1]
            known = None not in (a_channels, b_channels, d_channels)
            if known and d_channels != a_channels + b_channels:
                raise ValueError(
                    f"The discriminator's channel count ({d_channels}) differs from that of an "
                    f"input stacked with its target ({a_channels + b_channels}): build it with "
                    f"channels={a_channels + b_channels}."
                )
        if not (is_real_number(l1_weight) and 0 <= l1_weight < float("inf")):
            raise ValueError(f"l1_weight must be finite and >= 0, got {l1_weight!r}.")
        self.generator, self.discriminator = generator, discriminator
        self.l1_weight = float(l1_weight)
        names = ["g_loss", "l1_loss"] + (["g_adversarial_loss", "d_loss"] if discriminator else [])
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.generator_optimizer = self.discriminator_optimizer = None
        self.built = True

    def compile(
        self, generator_optimizer=None, discriminator_optimizer=None, jit_compile="auto", **kwargs
    ):
        # No model.optimizer: Keras' own default would be an RMSprop that trains nothing, yet
        # LearningRateScheduler and ReduceLROnPlateau would adjust it, silently.
        if "optimizer" in kwargs:
            raise ValueError(
                "Pix2Pix trains two networks: pass generator_optimizer and discriminator_optimizer."
            )
        check_compile_arguments(
            "Pix2Pix",
            kwargs,
            {
                "generator_optimizer": generator_optimizer,
                "discriminator_optimizer": discriminator_optimizer,
            },
        )
        super().compile(optimizer=None, jit_compile=jit_compile, **kwargs)

        def adam(name):
            return FusedAdam(learning_rate=2e-4, beta_1=0.5, name=name)

        self.generator_optimizer = loss_scaled(
            generator_optimizer or adam("generator_adam"), self.generator
        )
        build_optimizer(
            self.generator_optimizer,
            self.generator.trainable_variables,
            "Pix2Pix",
            "generator_optimizer",
        )
        if self.discriminator is not None:
            self.discriminator_optimizer = loss_scaled(
                discriminator_optimizer or adam("discriminator_adam"), self.discriminator
            )
            build_optimizer(
                self.discriminator_optimizer,
                self.discriminator.trainable_variables,
                "Pix2Pix",
                "discriminator_optimizer",
            )

    def get_compile_config(self):
        # With compile overridden, Keras needs these two methods to restore both optimizers
        # (and, from the weights file, their state) when a .keras file is loaded.
        if not self.compiled:
            return {}
        return {
            "generator_optimizer": keras.saving.serialize_keras_object(self.generator_optimizer),
            # None without a discriminator; it deserializes back to None.
            "discriminator_optimizer": keras.saving.serialize_keras_object(
                self.discriminator_optimizer
            ),
            **engine_compile_arguments(super().get_compile_config()),
        }

    def compile_from_config(self, config):
        # A LossScaleOptimizer comes back as one; loss_scaled does not wrap it a second time.
        self.compile(
            generator_optimizer=keras.saving.deserialize_keras_object(
                config["generator_optimizer"]
            ),
            discriminator_optimizer=keras.saving.deserialize_keras_object(
                config["discriminator_optimizer"]
            ),
            **engine_compile_arguments(config),
        )

    @property
    def optimizers(self):
        """``[generator_optimizer]`` (and the discriminator's), for checkpointing."""
        return [o for o in (self.generator_optimizer, self.discriminator_optimizer) if o]

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def translate(self, images, batch_size=32):
        """Translate a numpy batch a -> b."""
        return predict_images(self.generator, images, batch_size)

    def _unpack(self, data):
        check_batch_structure(data, "Pix2Pix", "(images_a, images_b) pairs")
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError("Pix2Pix expects batches of (images_a, images_b) pairs.")
        inputs = getattr(self.generator, "inputs", None)  # None for a subclassed generator
        input_shape = tuple(inputs[0].shape[1:]) if inputs else None
        check_image_batch(data[0], "Pix2Pix", "[-1, 1]", "input images", input_shape)
        check_image_batch(data[1], "Pix2Pix", "[-1, 1]", "target images")
        sizes = [images.shape[0] if images.shape.rank else None for images in data]
        if None not in sizes and sizes[0] != sizes[1]:
            raise ValueError(
                f"Pix2Pix expects (images_a, images_b) pairs, one target per input: got batches "
                f"of {sizes[0]} inputs and {sizes[1]} targets."
            )
        # Without a discriminator nothing else compares the target with the output, and the L1
        # term would broadcast a 3-channel target against a 1-channel output without an error.
        self._check_targets_match_output(data[1])
        return data[0], data[1]

    def fit(self, x=None, y=None, *args, **kwargs):
        check_fit_data(self, x, y, kwargs.get("validation_data"), "Pix2Pix.fit")
        return super().fit(x, y, *args, **kwargs)

    def check_training_data(self, data, context):
        """Refuse, in one line starting with ``context``, numpy ``(images_a, images_b)`` pairs
        holding NaN or lying outside [-1, 1] (the generator ends in tanh). ``fit`` calls it on
        numpy input, :func:`medgen_tf.training.fit` on the arrays it batches; shapes and dtypes
        are checked when the step is traced, before anything trains."""
        if isinstance(data, (tuple, list)) and len(data) == 2:
            for images, what in zip(data, ("input images", "target images"), strict=True):
                check_numpy_images(images, "Pix2Pix", context, what)

    def _check_targets_match_output(self, targets):
        outputs = getattr(self.generator, "outputs", None)  # None for a subclassed generator
        if not outputs or targets.shape.rank != 4 or len(outputs[0].shape) != 4:
            return
        output_shape = tuple(outputs[0].shape[1:])
        target_shape = tuple(targets.shape[1:])
        for output_side, target_side in zip(output_shape, target_shape, strict=True):
            if None not in (output_side, target_side) and output_side != target_side:
                raise ValueError(
                    f"Pix2Pix: target images of shape (height, width, channels) = "
                    f"{target_shape} do not match the generator's output {output_shape}; "
                    "resize the targets or build the generator for them."
                )

    def train_step(self, data):
        real_a, real_b = self._unpack(data)
        values = {}
        g_variables = self.generator.trainable_variables
        with tf.GradientTape() as tape:
            fake_b = self.generator(real_a, training=True)
            l1 = ops.mean(ops.abs(ops.cast(real_b, "float32") - fake_b))
            g_loss = self.l1_weight * l1
            if self.discriminator is not None:
                fake_pair = ops.concatenate([ops.cast(real_a, fake_b.dtype), fake_b], axis=-1)
                adversarial = losses.non_saturating_generator_loss(
                    self.discriminator(fake_pair, training=True)
                )
                g_loss = g_loss + adversarial
                values["g_adversarial_loss"] = adversarial
            scaled = self.generator_optimizer.scale_loss(losses.scale_for_replicas(g_loss))
        gradients = tape.gradient(scaled, g_variables)
        self.generator_optimizer.apply_gradients(zip(gradients, g_variables, strict=True))
        values.update(g_loss=g_loss, l1_loss=l1)

        if self.discriminator is not None:
            d_variables = self.discriminator.trainable_variables
            real_pair = ops.concatenate([real_a, real_b], axis=-1)
            fake_pair = ops.concatenate(
                [ops.cast(real_a, "float32"), ops.stop_gradient(fake_b)], -1
            )
            with tf.GradientTape() as tape:
                # Halved, as in the paper, so D learns more slowly than G.
                d_loss = 0.5 * losses.non_saturating_discriminator_loss(
                    self.discriminator(real_pair, training=True),
                    self.discriminator(fake_pair, training=True),
                )
                scaled = self.discriminator_optimizer.scale_loss(losses.scale_for_replicas(d_loss))
            gradients = tape.gradient(scaled, d_variables)
            self.discriminator_optimizer.apply_gradients(zip(gradients, d_variables, strict=True))
            values["d_loss"] = d_loss
        return self._update_trackers(values)

    def test_step(self, data):
        # train_step's losses without any update: with no step in between, one D pass on the
        # fakes serves both G's adversarial loss and D's loss.
        real_a, real_b = self._unpack(data)
        fake_b = self.generator(real_a, training=False)
        l1 = ops.mean(ops.abs(ops.cast(real_b, "float32") - fake_b))
        values = {"g_loss": self.l1_weight * l1, "l1_loss": l1}
        if self.discriminator is not None:
            real_pair = ops.concatenate([real_a, real_b], axis=-1)
            fake_pair = ops.concatenate([ops.cast(real_a, fake_b.dtype), fake_b], axis=-1)
            fake_logits = self.discriminator(fake_pair, training=False)
            adversarial = losses.non_saturating_generator_loss(fake_logits)
            values["g_loss"] = values["g_loss"] + adversarial
            values["g_adversarial_loss"] = adversarial
            values["d_loss"] = 0.5 * losses.non_saturating_discriminator_loss(
                self.discriminator(real_pair, training=False), fake_logits
            )
        return self._update_trackers(values)

    def _update_trackers(self, values):
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def get_config(self):
        config = super().get_config()
        config.update(
            generator=keras.saving.serialize_keras_object(self.generator),
            discriminator=None
            if self.discriminator is None
            else keras.saving.serialize_keras_object(self.discriminator),
            l1_weight=self.l1_weight,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing pops the nested configs: keep the caller's
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        if config.get("discriminator") is not None:
            config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)
