"""DCGAN generator/discriminator builders and the GAN / conditional GAN training models.

Taught in ``notebooks/01_gan.ipynb``. The losses live in :mod:`medgen_tf.losses`.
"""

from __future__ import annotations

import copy

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

try:
    from medgen_tf import losses
    from medgen_tf.models.layers import (
        FusedAdam,
        MaximumLeakyReLU,
        build_optimizer,
        check_batch_structure,
        check_compile_arguments,
        check_count_argument,
        check_fit_data,
        check_image_batch,
        check_image_size_argument,
        check_numpy_images,
        engine_compile_arguments,
        has_batch_norm,
        is_real_number,
        loss_scaled,
    )
except ModuleNotFoundError as error:  # lifted into a project without medgen_tf: the neighbours
    if not (error.name or "").startswith("medgen_tf"):
        raise
    import losses
    from layers import (
        FusedAdam,
        MaximumLeakyReLU,
        build_optimizer,
        check_batch_structure,
        check_compile_arguments,
        check_count_argument,
        check_fit_data,
        check_image_batch,
        check_image_size_argument,
        check_numpy_images,
        engine_compile_arguments,
        has_batch_norm,
        is_real_number,
        loss_scaled,
    )

__all__ = ["GAN", "ConditionalGAN", "build_discriminator", "build_generator", "default_optimizers"]


def _upsampling_plan(image_size):
    """Start side and number of stride-2 upsamplings: 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4)."""
    start, steps = int(image_size), 0
    while start % 2 == 0 and start // 2 >= 4:
        start, steps = start // 2, steps + 1
    if steps < 2 or start > 7:
        raise ValueError(
            f"image_size={image_size} is not supported: it must halve at least twice down to a "
            "side between 4 and 7 (e.g. 28, 32, 64, 128)."
        )
    return start, steps


def build_generator(
    latent_dim=128,
    image_size=64,
    channels=1,
    base_filters=64,
    num_classes=None,
    embedding_dim=32,
    name="generator",
):
    """DCGAN generator: noise (and a class label) -> image in [-1, 1] (Radford et al. 2015).

    Dense -> Reshape to a 4x4 (7x7 for 28) map -> Conv2DTranspose(stride 2) + BatchNorm + ReLU
    blocks that double the side and halve the filters -> a last stride-2 Conv2DTranspose to
    ``channels`` with tanh, computed in float32 so mixed precision never clips the output.
    With ``num_classes``, inputs are ``[noise, labels]``: an embedding of the label is joined to
    the noise, so every layer can use the class.

    Args:
        latent_dim: length of the noise vector.
        image_size: side of the square images; it must halve at least twice down to a side
            between 4 and 7 (28, 32, 64, 128, ...).
        channels: image channels (1 for MR).
        base_filters: filters of the last upsampling block; each earlier block has twice as
            many.
        num_classes: a number of classes for a conditional generator; None for a plain one.
        embedding_dim: length of the label embedding.
        name: the model's name.

    Example:
        >>> import keras
        >>> from medgen_tf.models.gan import build_generator
        >>> generator = build_generator(latent_dim=16, image_size=32, base_filters=8)
        >>> tuple(generator(keras.random.normal((2, 16), seed=0)).shape)
        (2, 32, 32, 1)

    Notebook: ``notebooks/01_gan.ipynb``.
    """
    start, steps = _upsampling_plan(check_image_size_argument(image_size, "build_generator"))
    # latent_dim=0 built a generator that ignores its noise: every sample the same image.
    noise = keras.Input(
        (check_count_argument(latent_dim, "latent_dim", "build_generator"),), name="noise"
    )
    inputs, x = [noise], noise
    if num_classes:
        labels = keras.Input((), dtype="int32", name="labels")
        embedded = layers.Embedding(num_classes, embedding_dim, name="label_embedding")(labels)
        x = layers.Concatenate(name="noise_and_label")([noise, embedded])
        inputs.append(labels)
    filters = base_filters * 2 ** (steps - 1)
    # No bias before BatchNorm: its shift makes one redundant.
    x = layers.Dense(start * start * filters, use_bias=False, name="project")(x)
    x = layers.Reshape((start, start, filters))(x)
    # momentum 0.9 (Keras default 0.99): the moving statistics used by sampling must follow a
    # generator that changes every step, or early samples come out washed out.
    x = layers.BatchNormalization(momentum=0.9, name="project_bn")(x)
    x = layers.ReLU()(x)
    for block in range(steps - 1):
        filters //= 2
        x = layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", use_bias=False, name=f"upsample_{block}"
        )(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"upsample_{block}_bn")(x)
        x = layers.ReLU()(x)
    x = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", name="to_image")(x)
    images = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs if num_classes else noise, images, name=name)


def build_discriminator(
    image_size=64,
    channels=1,
    base_filters=64,
    num_classes=None,
    normalization=None,
    name="discriminator",
):
    """DCGAN discriminator: image (and a class label) -> one unbounded logit, no sigmoid.

    Strided 4x4 convolutions with LeakyReLU(0.2) halve the side down to 4x4, then Flatten and
    Dense(1) in float32. The logit goes to a loss ``from_logits`` (stable, and it is what
    WGAN-GP and hinge need). ``normalization``: None (default; right for every loss),
    ``"batch"`` (DCGAN paper; not for WGAN-GP: the penalty is per sample) or ``"layer"``:
    Keras ``LayerNormalization`` on the channel axis, which standardises each pixel of each
    image over its channels, with a learned per-channel scale and offset. It is per sample, so
    the WGAN-GP penalty stays valid, but it is not the layer norm of Gulrajani et al.'s code,
    which standardises each sample over all its channels, rows and columns at once. With
    ``num_classes``, inputs are ``[images, labels]``: an embedding of the label is reshaped to
    one extra image channel, so the first convolution already sees which class the image
    claims to be.

    Args:
        image_size: side of the square images.
        channels: image channels (1 for MR).
        base_filters: filters of the first convolution; each next one has twice as many, up to
            eight times.
        num_classes: a number of classes for a conditional discriminator; None for a plain one.
        normalization: None, ``"batch"`` or ``"layer"``, as above.
        name: the model's name.

    Example:
        >>> from keras import ops
        >>> from medgen_tf.models.gan import build_discriminator
        >>> discriminator = build_discriminator(image_size=32, base_filters=8)
        >>> tuple(discriminator(ops.zeros((2, 32, 32, 1))).shape)
        (2, 1)

    Notebook: ``notebooks/01_gan.ipynb``.
    """
    image_size = check_image_size_argument(image_size, "build_discriminator")
    if normalization not in (None, "batch", "layer"):
        raise ValueError(f"normalization must be None, 'batch' or 'layer', got {normalization!r}.")
    images = keras.Input((image_size, image_size, channels), name="images")
    inputs, x = [images], images
    if num_classes:
        labels = keras.Input((), dtype="int32", name="labels")
        label_map = layers.Embedding(num_classes, image_size * image_size, name="label_embedding")(
            labels
        )
        label_map = layers.Reshape((image_size, image_size, 1))(label_map)
        x = layers.Concatenate(name="image_and_label")([images, label_map])
        inputs.append(labels)
    side, block, filters = image_size, 0, base_filters
    while side > 4:
        x = layers.Conv2D(filters, 4, strides=2, padding="same", name=f"downsample_{block}")(x)
        # The first block stays unnormalised, as in DCGAN.
        if block > 0 and normalization == "batch":
            x = layers.BatchNormalization(name=f"downsample_{block}_bn")(x)
        elif block > 0 and normalization == "layer":
            # Over the channels of each pixel (axis -1), not over C, H, W as in Gulrajani et
            # al.'s code; kept because trained critics and notebook 01's results depend on it.
            x = layers.LayerNormalization(name=f"downsample_{block}_ln")(x)
        # maximum(x, 0.2 x), not keras LeakyReLU: TF 2.21's grappler fails on the fused
        # Conv2D+BiasAdd+LeakyRelu of a training graph ("remapper failed" on every trace).
        # The biases stay: without them or a normalisation, D lost the image's absolute level
        # and the generator's backgrounds stayed grey.
        x = MaximumLeakyReLU(0.2, name=f"downsample_{block}_leaky_relu")(x)
        side, block, filters = (side + 1) // 2, block + 1, min(filters * 2, base_filters * 8)
    x = layers.Flatten()(x)
    logits = layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(inputs if num_classes else images, logits, name=name)


def _loss_key(loss):
    # The spelling get_adversarial_loss accepts: "WGAN-GP" must turn on the penalty too.
    return str(loss).lower().replace("-", "_")


def default_optimizers(loss="non_saturating"):
    """``(d_optimizer, g_optimizer)``: Adam(2e-4, beta_1=0.5) (Radford et al. 2015), or for
    WGAN-GP Adam(1e-4, beta_1=0.5, beta_2=0.9) (Gulrajani et al. 2017: their MNIST and
    CIFAR-10 scripts; the paper's Algorithm 1 has beta_1=0). ``loss`` is matched
    as :func:`medgen_tf.losses.get_adversarial_loss` matches it: any case, dashes or
    underscores. Both are :class:`FusedAdam`: Keras' Adam, updated by one kernel per weight."""
    if _loss_key(loss) == "wgan_gp":
        settings = dict(learning_rate=1e-4, beta_1=0.5, beta_2=0.9)
    else:
        settings = dict(learning_rate=2e-4, beta_1=0.5)
    return (
        FusedAdam(name="d_adam", **settings),
        FusedAdam(name="g_adam", **settings),
    )


@keras.saving.register_keras_serializable(package="medgen_tf")
class GAN(keras.Model):
    """Adversarial training of a generator against a discriminator (Goodfellow et al. 2014).

    Each ``train_step`` updates D ``n_critic`` times on the real batch and fresh fakes, then G
    once against the updated D, on the fakes of D's last step (their generator pass is reused:
    G has not changed since, so its gradient is exact and a second generator pass is saved).
    D's step judges the real and fake batches in one pass over both stacked, as the keras.io
    DCGAN example does, or in two when D has batch norm, whose statistics would mix them. The
    stacked pass assumes every other layer judges each image alone; for a D with a layer that
    looks across the batch (a minibatch-stddev layer), pass ``joint_discriminator_pass=False``.
    Losses come from :mod:`medgen_tf.losses`, on logits, in float32; gradients are taken of
    ``optimizer.scale_loss(scale_for_replicas(loss))`` so mixed precision and ``tf.distribute``
    give the global-batch mean. Noise comes from a ``SeedGenerator`` (model state, so it changes
    every step; its state is saved with the weights, in training checkpoints, ``.keras`` files
    and ``save_weights`` alike). ``evaluate`` and ``fit(validation_data=...)`` report the same
    losses and accuracies on held-out images, without any update. Calling the model maps
    noise to images.

    Args:
        generator, discriminator: Keras models (see ``build_generator``/``build_discriminator``).
        latent_dim: noise size; read from the generator when None.
        loss: "non_saturating", "least_squares", "hinge" or "wgan_gp" (any case, "-" or "_").
        label_smoothing: one-sided smoothing of the real target (0.1 -> 0.9), in [0, 1); not
            for wgan_gp (a critic has no target), ignored by hinge.
        n_critic: D updates per G update, None or at least 1 (None: 5 for wgan_gp, else 1).
            The critic steps reuse the step's real batch, as the keras.io WGAN-GP example does.
        gradient_penalty_weight: lambda of WGAN-GP (10, Gulrajani et al. 2017), >= 0.
        seed: seed of the noise SeedGenerator.
        joint_discriminator_pass: judge the real and fake batches in one stacked D pass;
            None: unless D has batch norm. Saved with the model.

    Example:
        >>> from medgen_tf.models.gan import GAN, build_discriminator, build_generator
        >>> from medgen_tf.models.gan import default_optimizers
        >>> gan = GAN(build_generator(8, 32, base_filters=4), build_discriminator(32, base_filters=4))
        >>> gan.compile(*default_optimizers())
        >>> gan.fit(images_dataset, epochs=5)  # doctest: +SKIP
        >>> samples = gan.generate(16, seed=0)

    Notebook: ``notebooks/01_gan.ipynb`` (the article's broken GAN, then this one on brain MRI).
    """

    def __init__(
        self,
        generator,
        discriminator,
        latent_dim=None,
        loss="non_saturating",
        label_smoothing=0.0,
        n_critic=None,
        gradient_penalty_weight=10.0,
        seed=None,
        joint_discriminator_pass=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.generator, self.discriminator = generator, discriminator
        noise_size = generator.inputs[0].shape[-1]
        if latent_dim is not None and noise_size is not None and int(latent_dim) != noise_size:
            raise ValueError(
                f"latent_dim={latent_dim} differs from the generator's noise input ({noise_size})."
            )
        self.latent_dim = int(latent_dim or noise_size)
        # Caught here rather than at the first train step, deep inside a traced graph.
        fake_shape = tuple(generator.outputs[0].shape[1:])
        judged_shape = tuple(discriminator.inputs[0].shape[1:])
        if None not in fake_shape + judged_shape and fake_shape != judged_shape:
            raise ValueError(
                f"The generator makes images of shape {fake_shape} but the discriminator "
                f"takes {judged_shape}; build both with the same image_size and channels."
            )
        self.loss_name = _loss_key(loss)
        self.d_loss_fn, self.g_loss_fn = losses.get_adversarial_loss(self.loss_name)
        self.is_wasserstein = self.loss_name == "wgan_gp"
        if self.is_wasserstein and has_batch_norm(discriminator):
            raise ValueError(
                "loss='wgan_gp' needs a critic without batch norm (its gradient penalty is per "
                "sample): build it with normalization=None or 'layer'."
            )
        # None, True or the text "0.1" are not weights (float() of None was a bare TypeError).
        if not (is_real_number(label_smoothing) and 0.0 <= label_smoothing < 1.0):
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}.")
        if self.is_wasserstein and float(label_smoothing):
            raise ValueError(
                f"label_smoothing must be 0 with loss='wgan_gp' (a critic's scores have no "
                f"target to smooth), got {label_smoothing}."
            )
        self.label_smoothing = float(label_smoothing)
        # Real and fake batches share one discriminator pass unless batch norm would mix them.
        # An argument, so a reloaded model keeps a choice made for a batch-wide layer.
        if joint_discriminator_pass and has_batch_norm(discriminator):
            raise ValueError(
                "joint_discriminator_pass=True with a batch-norm discriminator would mix the "
                "real and fake batches' statistics; leave it None."
            )
        self.joint_discriminator_pass_argument = joint_discriminator_pass
        self.joint_discriminator_pass = (
            not has_batch_norm(discriminator)
            if joint_discriminator_pass is None
            else bool(joint_discriminator_pass)
        )
        if n_critic is None:
            n_critic = 5 if self.is_wasserstein else 1
        self.n_critic = check_count_argument(n_critic, "n_critic (or None)", type(self).__name__)
        # NaN made every d_loss NaN; a negative weight rewards the steep gradients it penalises.
        penalty_weight = gradient_penalty_weight
        if not (is_real_number(penalty_weight) and 0.0 <= penalty_weight < float("inf")):
            raise ValueError(
                f"gradient_penalty_weight must be finite and >= 0, got {penalty_weight!r}."
            )
        self.gradient_penalty_weight = float(gradient_penalty_weight)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        # A least-squares D aims at 0/1, so its decision boundary is 0.5; the others at 0.
        self.decision_threshold = 0.5 if self.loss_name == "least_squares" else 0.0
        names = ["d_loss", "g_loss", "d_accuracy_real", "d_accuracy_fake"]
        if self.is_wasserstein:
            names += ["gradient_penalty", "wasserstein_distance"]
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}
        self.d_optimizer = self.g_optimizer = None
        self.build()

    def build(self, input_shape=None):
        """Mark the wrapper built (its sub-models are functional, hence already built), so
        ``fit`` does not trace ``call`` on an image batch and weights can be saved or restored
        before any training."""
        self.built = True

    def compile(self, d_optimizer=None, g_optimizer=None, jit_compile="auto", **kwargs):
        if d_optimizer is None or g_optimizer is None:
            default_d, default_g = default_optimizers(self.loss_name)
            d_optimizer, g_optimizer = d_optimizer or default_d, g_optimizer or default_g
        # No model.optimizer: Keras' own default would be an RMSprop that trains nothing, yet
        # LearningRateScheduler and ReduceLROnPlateau would adjust it, silently.
        if "optimizer" in kwargs:
            raise ValueError("A GAN trains two networks: pass d_optimizer and g_optimizer.")
        check_compile_arguments(
            type(self).__name__, kwargs, {"d_optimizer": d_optimizer, "g_optimizer": g_optimizer}
        )
        super().compile(optimizer=None, jit_compile=jit_compile, **kwargs)
        self.d_optimizer = loss_scaled(d_optimizer, self.discriminator)
        self.g_optimizer = loss_scaled(g_optimizer, self.generator)
        # Slots now, not lazily inside the traced step: tf.distribute cannot create mirrored
        # variables there, and a restore needs them to exist or Adam's moments restart.
        self.build_optimizers()

    def get_compile_config(self):
        # With compile overridden, Keras needs these two methods to restore both optimizers
        # (and, from the weights file, their state) when a .keras file is loaded.
        if not self.compiled:
            return {}
        return {
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            **engine_compile_arguments(super().get_compile_config()),
        }

    def compile_from_config(self, config):
        # A LossScaleOptimizer comes back as one; loss_scaled does not wrap it a second time.
        self.compile(
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
            **engine_compile_arguments(config),
        )

    @property
    def optimizers(self):
        """Both optimizers, for checkpointing: ``[d_optimizer, g_optimizer]``."""
        return [self.d_optimizer, self.g_optimizer]

    def build_optimizers(self):
        """Create both optimizers' slots (``compile`` does it; call again after swapping one)."""
        for name, network in (("d_optimizer", self.discriminator), ("g_optimizer", self.generator)):
            build_optimizer(
                getattr(self, name), network.trainable_variables, type(self).__name__, name
            )

    @property
    def metrics(self):
        return list(self.trackers.values())

    # Keras saves no SeedGenerator state with the weights (.keras, save_weights); saving it
    # here makes a reloaded model continue the noise sequence, as a training checkpoint
    # (which holds model.variables) already did.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        store["seed_generator_state"] = keras.ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store):
        # Files written before the state was saved lack it: their noise starts from the seed.
        if "seed_generator_state" in store:
            self.seed_generator.state.assign(store["seed_generator_state"])
        # The rest is what save_own_variables' super() wrote: the model's own weights (none
        # here; a subclass's add_weight in build), which would otherwise keep their initial value.
        super().load_own_variables(
            {key: store[key] for key in store.keys() if key != "seed_generator_state"}
        )

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def sample_noise(self, batch_size):
        """Fresh noise from the model's SeedGenerator, distinct on every replica.

        Under ``tf.distribute`` every replica holds the same generator state, so each draws the
        noise of the global batch and keeps its own slice (:func:`losses.draw_per_replica`).
        """
        return losses.draw_per_replica(
            lambda shape: keras.random.normal(shape, seed=self.seed_generator),
            (batch_size, self.latent_dim),
        )

    def _image_shape(self):
        return tuple(self.discriminator.inputs[0].shape[1:])

    def fit(self, x=None, y=None, *args, **kwargs):
        # Keras never looks at numpy input's values; the in-graph label checks of
        # ConditionalGAN vanish under XLA (jit_compile="auto" on a GPU).
        check_fit_data(self, x, y, kwargs.get("validation_data"), f"{type(self).__name__}.fit")
        return super().fit(x, y, *args, **kwargs)

    def check_training_data(self, data, context):
        """Refuse, in one line, numpy training images that are not 4-D float of the networks'
        size, or hold NaN, or lie outside [-1, 1] (the generator ends in tanh: 8-bit images
        trained without a word toward targets it cannot reach). ``fit`` calls it on numpy
        input, :func:`medgen_tf.training.fit` on the arrays it batches; a dataset's batches
        get the shape and dtype checks when the step is traced."""
        images = data[0] if isinstance(data, (tuple, list)) and data else data
        check_numpy_images(images, type(self).__name__, context, image_shape=self._image_shape())

    # Hooks the conditional model overrides.
    takes_labels = False

    def _unpack(self, data):
        check_batch_structure(data, type(self).__name__, "images (or (images,))")
        images = data[0] if isinstance(data, (tuple, list)) else data
        check_image_batch(images, type(self).__name__, "[-1, 1]", image_shape=self._image_shape())
        return images, None

    def _generator_inputs(self, noise, labels):
        return noise

    def _discriminator_inputs(self, images, labels):
        return images

    def _discriminator_step(self, real_images, fake_images, labels):
        d_variables = self.discriminator.trainable_variables
        with tf.GradientTape() as tape:
            real_logits, fake_logits = self._discriminator_logits(real_images, fake_images, labels)
            d_loss = self.d_loss_fn(real_logits, fake_logits, self.label_smoothing)
            extra = {}
            if self.is_wasserstein:
                critic_inputs = None if labels is None else [labels]
                penalty = losses.gradient_penalty(
                    self.discriminator,
                    real_images,
                    fake_images,
                    seed=self.seed_generator,
                    critic_inputs=critic_inputs,
                )
                extra = {"gradient_penalty": penalty, "wasserstein_distance": -d_loss}
                d_loss = d_loss + self.gradient_penalty_weight * penalty
            scaled = self.d_optimizer.scale_loss(losses.scale_for_replicas(d_loss))
        gradients = tape.gradient(scaled, d_variables)
        self.d_optimizer.apply_gradients(zip(gradients, d_variables, strict=True))
        return d_loss, real_logits, fake_logits, extra

    def _discriminator_logits(self, real_images, fake_images, labels):
        if not self.joint_discriminator_pass:
            # Batch norm would mix real and fake statistics in one batch: two passes.
            real_logits = self.discriminator(
                self._discriminator_inputs(real_images, labels), training=True
            )
            fake_logits = self.discriminator(
                self._discriminator_inputs(fake_images, labels), training=True
            )
            return real_logits, fake_logits
        # One pass over the real and fake batches stacked: the same logits when each image is
        # judged alone, and half the kernel launches. On the project's 2-core CPU the whole step
        # ran a few per cent faster at most (benchmarks/README.md); it is the keras.io idiom.
        batch_size = ops.shape(real_images)[0]
        images = ops.concatenate([real_images, ops.cast(fake_images, real_images.dtype)], axis=0)
        both_labels = None if labels is None else ops.concatenate([labels, labels], axis=0)
        logits = self.discriminator(self._discriminator_inputs(images, both_labels), training=True)
        return logits[:batch_size], logits[batch_size:]

    def _generator_step(self, generator_tape, fake_images, labels):
        g_variables = self.generator.trainable_variables
        # Back onto the tape that recorded the generator pass: D's forward pass on the same fakes
        # (with D's new weights) joins it, so the gradient reaches G's weights.
        with generator_tape:
            fake_logits = self.discriminator(
                self._discriminator_inputs(fake_images, labels), training=True
            )
            g_loss = self.g_loss_fn(fake_logits)
            scaled = self.g_optimizer.scale_loss(losses.scale_for_replicas(g_loss))
        gradients = generator_tape.gradient(scaled, g_variables)
        self.g_optimizer.apply_gradients(zip(gradients, g_variables, strict=True))
        return g_loss

    def train_step(self, data):
        real_images, labels = self._unpack(data)
        batch_size = ops.shape(real_images)[0]
        for _ in range(self.n_critic):
            noise = self.sample_noise(batch_size)
            # One generator pass serves both updates (as in PyTorch's DCGAN example): G does not
            # change during D's step, so G's gradient on these fakes is exact, and a second
            # generator pass on new noise (about 12 % of a 64 px step on a CPU) is saved.
            with tf.GradientTape() as generator_tape:
                fake_images = self.generator(self._generator_inputs(noise, labels), training=True)
            d_loss, real_logits, fake_logits, extra = self._discriminator_step(
                real_images, tf.stop_gradient(fake_images), labels
            )
        g_loss = self._generator_step(generator_tape, fake_images, labels)
        return self._update_trackers(d_loss, g_loss, real_logits, fake_logits, extra)

    def test_step(self, data):
        # train_step's losses and accuracies on fresh noise, without any update. D does not
        # change in between here, so G's loss reuses the logits D gave the fakes. The noise
        # comes from the training SeedGenerator, so validating moves its state on: a run
        # repeats exactly with the same validation data, not with and without it.
        real_images, labels = self._unpack(data)
        noise = self.sample_noise(ops.shape(real_images)[0])
        fake_images = self.generator(self._generator_inputs(noise, labels), training=False)
        real_logits = self.discriminator(
            self._discriminator_inputs(real_images, labels), training=False
        )
        fake_logits = self.discriminator(
            self._discriminator_inputs(fake_images, labels), training=False
        )
        d_loss = self.d_loss_fn(real_logits, fake_logits, self.label_smoothing)
        extra = {}
        if self.is_wasserstein:
            # Computed, not skipped, so d_loss means what it means in training. It needs only
            # D's gradient with respect to its input; D stays in inference mode.
            penalty = losses.gradient_penalty(
                lambda inputs, training: self.discriminator(inputs, training=False),
                real_images,
                fake_images,
                seed=self.seed_generator,
                critic_inputs=None if labels is None else [labels],
            )
            extra = {"gradient_penalty": penalty, "wasserstein_distance": -d_loss}
            d_loss = d_loss + self.gradient_penalty_weight * penalty
        g_loss = self.g_loss_fn(fake_logits)
        return self._update_trackers(d_loss, g_loss, real_logits, fake_logits, extra)

    def _update_trackers(self, d_loss, g_loss, real_logits, fake_logits, extra):
        threshold = self.decision_threshold
        values = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_accuracy_real": ops.mean(
                ops.cast(ops.cast(real_logits, "float32") > threshold, "float32")
            ),
            "d_accuracy_fake": ops.mean(
                ops.cast(ops.cast(fake_logits, "float32") <= threshold, "float32")
            ),
            **extra,
        }
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def generate(self, num_samples, seed=0, labels=None):
        """``num_samples`` images in [-1, 1] (numpy) from noise fixed by the integer ``seed``."""
        # int() made 2.7 into 2 samples without a word.
        num_samples = check_count_argument(
            num_samples, "num_samples", f"{type(self).__name__}.generate", minimum=0
        )
        if labels is not None and not self.takes_labels:
            # A plain generator has no label input: the labels were dropped without a word.
            raise ValueError(
                f"{type(self).__name__}.generate takes no labels (an unconditional generator); "
                "use a ConditionalGAN to draw given classes."
            )
        noise = keras.random.normal((num_samples, self.latent_dim), seed=seed)
        if labels is not None:
            labels = ops.convert_to_tensor(labels, dtype="int32")
        images = self.generator(self._generator_inputs(noise, labels), training=False)
        return ops.convert_to_numpy(images)

    def get_config(self):
        config = super().get_config()
        config.update(
            generator=keras.saving.serialize_keras_object(self.generator),
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            latent_dim=self.latent_dim,
            loss=self.loss_name,
            label_smoothing=self.label_smoothing,
            n_critic=self.n_critic,
            gradient_penalty_weight=self.gradient_penalty_weight,
            seed=self.seed,
            joint_discriminator_pass=self.joint_discriminator_pass_argument,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing pops the nested configs: keep the caller's
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _pair(data):
    return isinstance(data, (tuple, list)) and len(data) >= 2


def _embedded_classes(network):
    # The size of the label Embedding (build_generator/build_discriminator have one each).
    for layer in network.layers:
        if isinstance(layer, layers.Embedding):
            return int(layer.input_dim)
    return None


def _class_labels(labels, context):
    """Integer class labels of shape (batch,) from (batch,) or (batch, 1); others refused."""
    if getattr(labels.shape, "rank", 0) is None:
        return ops.cast(ops.reshape(labels, (-1,)), "int32")  # unknown rank: cannot tell
    shape = tuple(labels.shape)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] in (1, None))):
        raise ValueError(
            f"{context} integer class labels of shape (batch,) or (batch, 1), got {shape}; "
            "turn one-hot labels into class indices first (argmax)."
        )
    dtype = keras.backend.standardize_dtype(labels.dtype)
    if "int" not in dtype:
        raise ValueError(
            f"{context} integer class labels, got {dtype}; cast them (a float label such as "
            "0.9 would be truncated to class 0)."
        )
    return ops.cast(ops.reshape(labels, (-1,)), "int32")


@keras.saving.register_keras_serializable(package="medgen_tf")
class ConditionalGAN(GAN):
    """Class-conditional GAN (Mirza & Osindero 2014): batches are ``(images, labels)``.

    Both networks take the label (build them with ``num_classes``); fakes are drawn for the
    labels of the real batch, so D judges "is this a real image of this class".

    Args:
        generator, discriminator: networks built with the same ``num_classes``.
        num_classes: number of classes; read from the networks' label embeddings when None.
        **kwargs: the other arguments of :class:`GAN` (loss, label_smoothing, seed, ...).

    Example:
        >>> from medgen_tf.models.gan import ConditionalGAN, build_discriminator, build_generator
        >>> gan = ConditionalGAN(build_generator(8, 32, base_filters=4, num_classes=3),
        ...                      build_discriminator(32, base_filters=4, num_classes=3))
        >>> gan.compile()
        >>> gan.generate(3, labels=[0, 1, 2]).shape
        (3, 32, 32, 1)

    Notebook: ``notebooks/01_gan.ipynb`` (section on the conditional GAN) and
    ``notebooks/05_synthetic_data_augmentation.ipynb``.
    """

    takes_labels = True

    def __init__(self, generator, discriminator, num_classes=None, **kwargs):
        if len(generator.inputs) != 2 or len(discriminator.inputs) != 2:
            raise ValueError(
                "ConditionalGAN needs networks built with num_classes "
                "(inputs [noise, labels] and [images, labels])."
            )
        # Sampling and evaluation draw labels below num_classes: it must be the networks'.
        # Omitted, it is read from them, so a saved model can still be sampled.
        inferred = num_classes is None
        if inferred:
            num_classes = _embedded_classes(generator) or _embedded_classes(discriminator)
        if num_classes is not None:
            for network in (generator, discriminator):
                built_for = _embedded_classes(network)
                if built_for is not None and built_for != int(num_classes):
                    source = " (read from the generator)" if inferred else ""
                    raise ValueError(
                        f"num_classes={num_classes}{source} but the {network.name} was built "
                        f"for {built_for} classes."
                    )
        self.num_classes = None if num_classes is None else int(num_classes)
        super().__init__(generator, discriminator, **kwargs)

    def _unpack(self, data):
        check_batch_structure(data, "ConditionalGAN", "(images, labels)")
        if not isinstance(data, (tuple, list)) or len(data) < 2:
            raise ValueError("ConditionalGAN expects batches of (images, labels).")
        check_image_batch(data[0], "ConditionalGAN", "[-1, 1]", image_shape=self._image_shape())
        labels = _class_labels(data[1], "ConditionalGAN expects")
        if not self.num_classes:
            return data[0], labels
        # Unchecked, -1 trains as the last class and a label too large fails deep in the graph
        # (on a CPU; on a GPU its lookup gives zeros). XLA drops these: fit checks arrays too.
        message = f"ConditionalGAN: labels must lie in [0, {self.num_classes})"
        checks = [
            tf.debugging.assert_non_negative(labels, message=message),
            tf.debugging.assert_less(labels, self.num_classes, message=message),
        ]
        with tf.control_dependencies(checks):
            return data[0], tf.identity(labels)

    def check_training_data(self, data, context):
        """:meth:`GAN.check_training_data`'s image checks, and numpy labels of
        ``(images, labels)`` outside ``[0, num_classes)`` refused in one line."""
        super().check_training_data(data, context)
        if _pair(data) and isinstance(data[1], np.ndarray):
            self._check_label_range(data[1], context)

    def _check_label_range(self, values, context):
        if (
            self.num_classes
            and values.size
            and not 0 <= values.min() <= values.max() < self.num_classes
        ):
            raise ValueError(
                f"{context}: labels must lie in [0, {self.num_classes}), got "
                f"{values.min()} to {values.max()}."
            )

    def _generator_inputs(self, noise, labels):
        return [noise, labels]

    def _discriminator_inputs(self, images, labels):
        return [images, labels]

    def generate(self, num_samples, seed=0, labels=None):
        if labels is None:
            raise ValueError("ConditionalGAN.generate needs labels (one per sample).")
        labels = np.asarray(labels)
        if labels.size == 0:  # np.asarray([]) is float64: no label to misread
            labels = labels.astype("int32")
        labels = _class_labels(ops.convert_to_tensor(labels), "ConditionalGAN.generate needs")
        if labels.shape[0] != int(num_samples):
            raise ValueError(
                f"ConditionalGAN.generate needs one label per sample: num_samples={num_samples}, "
                f"{labels.shape[0]} labels."
            )
        # Checked here, where it is cheap: an embedding lookup out of range fails on a CPU but
        # returns zeros, without an error, on a GPU.
        self._check_label_range(ops.convert_to_numpy(labels), "ConditionalGAN.generate")
        return super().generate(num_samples, seed=seed, labels=labels)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
