"""CycleGAN (Zhu et al. 2017): ResNet generator, 70x70 PatchGAN, image pool and the model.

Taught in ``notebooks/03_cyclegan.ipynb``. Losses come from :mod:`medgen_tf.losses`; the
paired pix2pix-style reference lives in :mod:`medgen_tf.models.pix2pix`.
"""

from __future__ import annotations

import copy

import keras
import tensorflow as tf
from keras import layers, ops

try:
    from medgen_tf import losses
    from medgen_tf.models.layers import (
        FusedAdam,
        InstanceNormalization,
        MaximumLeakyReLU,
        ReflectionPadding2D,
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
        predict_images,
    )
except ModuleNotFoundError as error:  # lifted into a project without medgen_tf: the neighbours
    if not (error.name or "").startswith("medgen_tf"):
        raise
    import losses
    from layers import (
        FusedAdam,
        InstanceNormalization,
        MaximumLeakyReLU,
        ReflectionPadding2D,
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
        predict_images,
    )

__all__ = [
    "CycleGAN",
    "ImagePool",
    "LinearDecayAfterHalf",
    "build_patchgan_discriminator",
    "build_resnet_generator",
    "check_image_size",
    "default_optimizers",
]

OPTIMIZER_NAMES = (
    "generator_ab_optimizer",
    "generator_ba_optimizer",
    "discriminator_a_optimizer",
    "discriminator_b_optimizer",
)


# Strides of the PatchGAN's five 4x4 convolutions, each after a zero padding of 1.
PATCHGAN_STRIDES = (2, 2, 2, 1, 1)


def _patchgan_output_side(image_size):
    side = int(image_size)
    for stride in PATCHGAN_STRIDES:
        side = (side + 2 - 4) // stride + 1
    return side


def _default_residual_blocks(image_size):
    return 6 if image_size <= 128 else 9  # the paper's choice


def _generator_side_rule(num_residual_blocks):
    """``(multiple, minimum)`` of the sides the ResNet generator builds.

    Two stride-2 steps down and two up give back the input side only for a multiple of 4.
    Reflection padding needs more pixels than it adds: 3 on the image (so at least 4), and 1
    on the quarter-size map of the residual blocks (so at least 8 with any).
    """
    return 4, (8 if num_residual_blocks else 4)


def _patchgan_minimum_side():
    # The smallest side that leaves the PatchGAN's logits map at least 1x1 (24).
    return next(side for side in range(1, 1024) if _patchgan_output_side(side) >= 1)


def _check_generator_side(image_size, num_residual_blocks):
    multiple, minimum = _generator_side_rule(num_residual_blocks)
    if image_size % multiple or image_size < minimum:
        raise ValueError(
            f"image_size={image_size} is not supported by the ResNet generator: it must be a "
            f"multiple of {multiple} (two stride-2 steps) and at least {minimum}."
        )


def _check_patchgan_side(image_size):
    # Checked up front: Keras would only report "output size would be zero or negative".
    minimum = _patchgan_minimum_side()
    if image_size < minimum:
        raise ValueError(
            f"image_size={image_size} is too small for the PatchGAN; it needs at least {minimum}."
        )


def check_image_size(image_size, num_residual_blocks=None):
    """Raise a ValueError stating CycleGAN's whole image-size rule unless both of its networks
    (:func:`build_resnet_generator` with ``num_residual_blocks``, None for the paper's choice,
    and :func:`build_patchgan_discriminator`) can be built at ``image_size``. Builds nothing.

    Example:
        >>> from medgen_tf.models.cyclegan import check_image_size
        >>> check_image_size(20)
        Traceback (most recent call last):
        ...
        ValueError: image_size=20 is not supported: it must be a multiple of 4 and at least 24.
    """
    image_size = check_image_size_argument(image_size, "check_image_size")
    if num_residual_blocks is None:
        num_residual_blocks = _default_residual_blocks(image_size)
    # The generator's multiple (the PatchGAN takes any side), from the larger minimum up.
    multiple, generator_minimum = _generator_side_rule(num_residual_blocks)
    minimum = -(-max(generator_minimum, _patchgan_minimum_side()) // multiple) * multiple
    if image_size % multiple or image_size < minimum:
        raise ValueError(
            f"image_size={image_size} is not supported: it must be a multiple of {multiple} and "
            f"at least {minimum}."
        )


def build_resnet_generator(
    image_size=256, channels=1, base_filters=64, num_residual_blocks=None, name="resnet_generator"
):
    """ResNet generator of CycleGAN: c7s1-64, d128, d256, R256 x n, u128, u64, c7s1-channels.

    Johnson et al. 2016's architecture as used by Zhu et al. 2017: reflection padding, instance
    norm, ReLU, biases kept (instance norm has no offset), tanh output in float32. It maps an
    image to an image and takes no noise. ``num_residual_blocks`` defaults to the paper's
    choice: 6 up to 128 px, 9 above. ``base_filters`` is the paper's 64 (the widths scale with
    it).

    Args:
        image_size: side of the square images: a multiple of 4, at least 8 (4 without
            residual blocks).
        channels: image channels (1 for MR).
        base_filters: filters of the first layer (the paper's 64); the downsampling layers
            have 2x and 4x as many, the residual blocks 4x.
        num_residual_blocks: residual blocks at the bottleneck; None for the paper's choice.
        name: the model's name.

    Example:
        >>> from keras import ops
        >>> from medgen_tf.models.cyclegan import build_resnet_generator
        >>> generator = build_resnet_generator(32, base_filters=4, num_residual_blocks=1)
        >>> tuple(generator(ops.zeros((1, 32, 32, 1))).shape)
        (1, 32, 32, 1)

    Notebook: ``notebooks/03_cyclegan.ipynb``.
    """
    image_size = check_image_size_argument(image_size, "build_resnet_generator")
    if num_residual_blocks is None:
        num_residual_blocks = _default_residual_blocks(image_size)
    _check_generator_side(image_size, num_residual_blocks)
    images = keras.Input((image_size, image_size, channels), name="images")
    x = ReflectionPadding2D(3)(images)
    x = layers.Conv2D(base_filters, 7, name="c7s1")(x)
    x = layers.ReLU()(InstanceNormalization(name="c7s1_norm")(x))
    for index, width in enumerate((base_filters * 2, base_filters * 4)):
        # Zero padding 1 then a valid 3x3 stride-2 convolution: PyTorch's padding=1, symmetric.
        x = layers.ZeroPadding2D(1)(x)
        x = layers.Conv2D(width, 3, strides=2, name=f"down_{index}")(x)
        x = layers.ReLU()(InstanceNormalization(name=f"down_{index}_norm")(x))
    for block in range(num_residual_blocks):
        shortcut = x
        for half in range(2):
            x = ReflectionPadding2D(1)(x)
            x = layers.Conv2D(base_filters * 4, 3, name=f"residual_{block}_conv_{half}")(x)
            x = InstanceNormalization(name=f"residual_{block}_norm_{half}")(x)
            if half == 0:
                x = layers.ReLU()(x)
        x = layers.Add(name=f"residual_{block}")([shortcut, x])
    for index, width in enumerate((base_filters * 2, base_filters)):
        x = layers.Conv2DTranspose(width, 3, strides=2, padding="same", name=f"up_{index}")(x)
        x = layers.ReLU()(InstanceNormalization(name=f"up_{index}_norm")(x))
    x = ReflectionPadding2D(3)(x)
    x = layers.Conv2D(channels, 7, name="to_image")(x)
    outputs = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(images, outputs, name=name)


def build_patchgan_discriminator(
    image_size=256, channels=1, base_filters=64, name="patchgan_discriminator"
):
    """70x70 PatchGAN (Isola et al. 2017): C64-C128-C256-C512, then a 1-channel logits map.

    4x4 convolutions (stride 2, 2, 2, then 1, 1), LeakyReLU(0.2), instance norm on all but the
    first; each output logit judges one 70x70 patch (a 30x30 map at 256 px). No sigmoid: the
    least-squares loss reads the raw values. ``channels`` is 2 for a conditional pix2pix D.
    ``image_size`` must leave the logits map at least 1x1, so it must be at least 24.

    Args:
        image_size: side of the square images (None for any size).
        channels: image channels; 2 for a conditional pix2pix discriminator.
        base_filters: filters of the first convolution (the paper's 64); the next three have
            2x, 4x and 8x as many.
        name: the model's name.

    Example:
        >>> from keras import ops
        >>> from medgen_tf.models.cyclegan import build_patchgan_discriminator
        >>> discriminator = build_patchgan_discriminator(32, base_filters=4)
        >>> tuple(discriminator(ops.zeros((1, 32, 32, 1))).shape)
        (1, 2, 2, 1)

    Notebook: ``notebooks/03_cyclegan.ipynb``.
    """
    if image_size is not None:
        image_size = check_image_size_argument(image_size, "build_patchgan_discriminator")
        _check_patchgan_side(image_size)
    images = keras.Input((image_size, image_size, channels), name="images")
    x = images
    for index, (width, stride) in enumerate(
        ((base_filters, 2), (base_filters * 2, 2), (base_filters * 4, 2), (base_filters * 8, 1))
    ):
        x = layers.ZeroPadding2D(1)(x)
        x = layers.Conv2D(width, 4, strides=stride, name=f"c{index}")(x)
        if index > 0:
            x = InstanceNormalization(name=f"c{index}_norm")(x)
            x = layers.LeakyReLU(0.2)(x)
        else:
            # Conv + bias + LeakyReLU trips TF 2.21's grappler remapper; same function.
            x = MaximumLeakyReLU(0.2)(x)
    x = layers.ZeroPadding2D(1)(x)
    logits = layers.Conv2D(1, 4, dtype="float32", name="logits")(x)
    return keras.Model(images, logits, name=name)


@keras.saving.register_keras_serializable(package="medgen_tf")
class LinearDecayAfterHalf(keras.optimizers.schedules.LearningRateSchedule):
    """Constant learning rate, then linear decay to zero (Zhu et al. 2017, Sec. 7.1).

    The paper trains 100 epochs at 2e-4 and decays linearly to zero over the next 100; here the
    same shape is counted in optimizer steps: constant for ``decay_start_step`` steps (half of
    ``total_steps`` by default), then linear to 0 at ``total_steps``, and 0 after.

    Args:
        initial_learning_rate: the constant rate (2e-4 in the paper).
        total_steps: optimizer steps of the whole run (epochs x steps per epoch); the rate is
            0 from there on.
        decay_start_step: step where the decay starts, in [0, total_steps]; half of
            ``total_steps`` when None.

    Example:
        >>> from medgen_tf.models.cyclegan import LinearDecayAfterHalf
        >>> schedule = LinearDecayAfterHalf(2e-4, total_steps=100)
        >>> round(float(schedule(75)), 10)  # computed in float32
        0.0001

    Notebook: ``notebooks/03_cyclegan.ipynb``.
    """

    def __init__(self, initial_learning_rate=2e-4, total_steps=None, decay_start_step=None):
        owner = "LinearDecayAfterHalf"
        # No default for total_steps: without the run's length the decay would have no end to
        # aim at. Whole numbers, not int(): 2.9 steps quietly became 2 and True became 1.
        self.total_steps = check_count_argument(
            total_steps, "total_steps (the run's optimizer steps)", owner
        )
        if decay_start_step is None:
            decay_start_step = self.total_steps // 2
        self.decay_start_step = check_count_argument(
            decay_start_step, "decay_start_step", owner, minimum=0
        )
        if self.decay_start_step > self.total_steps:
            raise ValueError(
                f"{owner}: decay_start_step must be in [0, total_steps={self.total_steps}], "
                f"got {decay_start_step!r}."
            )
        rate = initial_learning_rate
        if not (is_real_number(rate) and 0.0 < float(rate) < float("inf")):  # NaN fails too
            raise ValueError(
                f"{owner}: initial_learning_rate must be a finite number > 0, got {rate!r}."
            )
        self.initial_learning_rate = float(rate)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.decay_start_step == self.total_steps:
            # No decay phase: the rate drops to 0 at total_steps, as the docstring says.
            return ops.where(step < self.total_steps, self.initial_learning_rate, 0.0)
        decay_steps = self.total_steps - self.decay_start_step
        fraction = ops.clip((step - self.decay_start_step) / decay_steps, 0.0, 1.0)
        return self.initial_learning_rate * (1.0 - fraction)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "total_steps": self.total_steps,
            "decay_start_step": self.decay_start_step,
        }


def default_optimizers(total_steps=None, learning_rate=2e-4):
    """The paper's four Adam(2e-4, beta_1=0.5) optimizers, keyed as ``CycleGAN.compile`` wants
    (each a :class:`FusedAdam`: Keras' Adam, updated by one kernel per weight).

    With ``total_steps``, the learning rate follows :class:`LinearDecayAfterHalf`.
    """
    optimizers = {}
    for name in OPTIMIZER_NAMES:
        rate = learning_rate
        if total_steps is not None:  # 0 is refused by the schedule, not read as "no decay"
            rate = LinearDecayAfterHalf(learning_rate, total_steps=total_steps)
        optimizers[name] = FusedAdam(
            learning_rate=rate, beta_1=0.5, name=name.replace("_optimizer", "_adam")
        )
    return optimizers


@keras.saving.register_keras_serializable(package="medgen_tf")
class ImagePool(keras.layers.Layer):
    """A buffer of past generated images shown to the discriminator (Shrivastava et al. 2017).

    While the pool fills, each image is stored and returned unchanged. Once full, each image is,
    with probability 1/2, swapped for a random stored one (which is returned; the new image takes
    its slot), otherwise returned as is. D thus sees older fakes too, which damps oscillation.
    The buffer is a non-trainable weight (saved with checkpoints, as is the state of the random
    choices) updated with tensor ops, so it works inside a compiled ``train_step``. Two images
    of one batch that draw the same slot both return its old image, and the later one is kept.
    Every shape is fixed by the batch and pool sizes, so the step compiles with XLA too.

    Under ``tf.distribute`` each replica keeps its own pool, filled with its own share of the
    fakes, and draws its own swaps; reading the weights (and so a checkpoint) gives replica 0's
    pool only.

    Args:
        pool_size: images kept (50 in CycleGAN), at least 0; 0 turns the pool into the
            identity.
        image_shape: ``(height, width, channels)`` of one image.
        seed: seed of the pool's SeedGenerator.

    Example:
        >>> from medgen_tf.models.cyclegan import ImagePool
        >>> pool = ImagePool(50, (64, 64, 1))
        >>> shown_to_discriminator = pool(fake_images)  # doctest: +SKIP

    Notebook: ``notebooks/03_cyclegan.ipynb``.
    """

    def __init__(self, pool_size=50, image_shape=(64, 64, 1), seed=None, **kwargs):
        # Generators output float32 even under mixed precision; the pool stores them as they are.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.pool_size = check_count_argument(pool_size, "pool_size", "ImagePool", minimum=0)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name=f"{self.name}_seed")
        self.images = self.add_weight(
            shape=(max(self.pool_size, 1), *self.image_shape),
            initializer="zeros",
            trainable=False,
            dtype="float32",
            name="images",
        )
        self.num_stored = self.add_weight(
            shape=(), initializer="zeros", trainable=False, dtype="int32", name="num_stored"
        )
        self.built = True

    def call(self, new_images):
        if self.pool_size == 0:
            return new_images
        new_images = ops.cast(new_images, "float32")
        batch_size = ops.shape(new_images)[0]
        slots = ops.arange(self.pool_size, dtype="int32")
        # Every shape here is fixed by the batch and the pool size (no boolean_mask), so the
        # step also compiles with XLA, which jit_compile="auto" picks on a GPU.
        # Images that arrive while there is room fill the next free slots: slot s takes image
        # s - num_stored of the batch.
        arriving = slots - self.num_stored
        filled = ops.logical_and(arriving >= 0, arriving < batch_size)
        # One spare row: a replica can get an empty batch (a global batch smaller than the
        # replica count), and a gather from zero rows fails even where it is not used.
        padded = ops.concatenate([new_images, ops.zeros((1, *self.image_shape))], axis=0)
        buffer = ops.where(
            ops.reshape(filled, (-1, 1, 1, 1)),
            ops.take(padded, ops.clip(arriving, 0, batch_size), axis=0),
            self.images,
        )
        fills = self.num_stored + ops.arange(batch_size, dtype="int32") < self.pool_size
        # The others are swapped with a random stored image with probability 1/2. Per replica:
        # every replica's SeedGenerator holds the same state, and a plain draw would swap the
        # same positions for the same slots on every replica.
        coin = losses.draw_per_replica(
            lambda shape: keras.random.uniform(shape, seed=self.seed_generator), (batch_size,)
        )
        random_slots = losses.draw_per_replica(
            lambda shape: keras.random.randint(
                shape, 0, self.pool_size, seed=self.seed_generator, dtype="int32"
            ),
            (batch_size,),
        )
        swaps = ops.logical_and(ops.logical_not(fills), coin < 0.5)
        returned = ops.where(
            ops.reshape(swaps, (-1, 1, 1, 1)), ops.take(buffer, random_slots, axis=0), new_images
        )
        # Each slot drawn by a swapping image keeps that image; of several, the last one.
        drawn = ops.logical_and(
            ops.expand_dims(random_slots, 1) == ops.expand_dims(slots, 0),
            ops.expand_dims(swaps, 1),
        )  # (batch, pool)
        positions = ops.expand_dims(ops.arange(batch_size, dtype="int32"), 1)
        last = ops.max(ops.where(drawn, positions, -1), axis=0, initial=-1)  # -1: not drawn
        buffer = ops.where(
            ops.reshape(last >= 0, (-1, 1, 1, 1)),
            ops.take(padded, ops.where(last >= 0, last, batch_size), axis=0),
            buffer,
        )
        self.images.assign(buffer)
        self.num_stored.assign(ops.minimum(self.num_stored + batch_size, self.pool_size))
        return returned

    def compute_output_shape(self, input_shape):
        return input_shape

    # Keras saves no SeedGenerator state with a layer's weights (.keras, save_weights); saving
    # it here makes a reloaded pool continue its sequence of random choices, as a training
    # checkpoint (which holds model.variables) already did.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        store["seed_generator_state"] = ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store):
        # Files written before the state was saved hold only the two weights.
        if "seed_generator_state" in store:
            self.seed_generator.state.assign(store["seed_generator_state"])
        super().load_own_variables(
            {key: store[key] for key in store.keys() if key != "seed_generator_state"}
        )

    def get_config(self):
        return {
            **super().get_config(),
            "pool_size": self.pool_size,
            "image_shape": self.image_shape,
            "seed": self.seed,
        }


# The generators' loss and its terms, tracked as metrics (train_step and test_step alike).
_GENERATOR_TERMS = ("g_loss", "g_adversarial_loss", "cycle_loss", "identity_loss")


@keras.saving.register_keras_serializable(package="medgen_tf")
class CycleGAN(keras.Model):
    """Unpaired image-to-image translation with cycle consistency (Zhu et al. 2017).

    Two generators ``G_ab: A -> B`` and ``G_ba: B -> A`` and two PatchGAN discriminators. The
    generators minimise the least-squares adversarial loss plus ``lambda_cycle * (|G_ba(G_ab(a))
    - a| + |G_ab(G_ba(b)) - b|)`` plus ``identity_weight * lambda_cycle * (|G_ab(b) - b| +
    |G_ba(a) - a|)``; each D minimises ``0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2))`` on
    fakes drawn through an :class:`ImagePool`. G is updated first, then both D, every step, each
    network by its own Adam. With the identity loss on, each generator translates the other
    domain's batch and its own domain's batch in one pass over both stacked, or in two when it
    has batch norm; for generators with another layer that looks across the batch, pass
    ``joint_generator_passes=False``. Batches are ``(images_a, images_b)``:
    unrelated images, no pairs. ``evaluate`` and ``fit(validation_data=...)`` report the same
    losses without any update (each D judging the current fakes, not the pool's). Calling the
    model translates A -> B.

    Args:
        generator_ab, generator_ba: image-to-image Keras models (``build_resnet_generator``).
        discriminator_a, discriminator_b: PatchGANs judging domain A and domain B images.
        lambda_cycle: weight of the cycle loss (10 in the paper), finite and at least 0.
        identity_weight: identity loss weight as a fraction of ``lambda_cycle`` (0.5), at least
            0. At 0 no generator translates its own domain's images (the identity half of
            each generator's pass is not run) and ``identity_loss`` reports 0.
        pool_size: image pool size per discriminator (50), at least 0 (0: no pool).
        seed: seed of the pools' random choices.
        joint_generator_passes: translate a batch and its identity batch in one stacked pass
            of each generator; None: unless a generator has batch norm. Saved with the model.

    Example:
        >>> import tensorflow as tf
        >>> from medgen_tf.models.cyclegan import (CycleGAN, build_patchgan_discriminator,
        ...     build_resnet_generator, default_optimizers)
        >>> generators = [build_resnet_generator(32, base_filters=4) for _ in range(2)]
        >>> discriminators = [build_patchgan_discriminator(32, base_filters=4) for _ in range(2)]
        >>> model = CycleGAN(*generators, *discriminators)
        >>> model.compile(**default_optimizers(total_steps=1000))
        >>> model.fit(tf.data.Dataset.zip((t1_batches, t2_batches)), epochs=5)  # doctest: +SKIP
        >>> fake_t2 = model.translate(t1_images, "a2b")  # doctest: +SKIP

    Notebook: ``notebooks/03_cyclegan.ipynb`` (T1w <-> T2w brain MRI, unpaired).
    """

    def __init__(
        self,
        generator_ab,
        generator_ba,
        discriminator_a,
        discriminator_b,
        lambda_cycle=10.0,
        identity_weight=0.5,
        pool_size=50,
        seed=None,
        joint_generator_passes=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        pool_size = check_count_argument(pool_size, "pool_size", "CycleGAN", minimum=0)
        # inf passed ">= 0" and made every generator loss inf, then NaN.
        weights = (lambda_cycle, identity_weight)
        if not all(is_real_number(weight) and 0 <= weight < float("inf") for weight in weights):
            raise ValueError(
                f"lambda_cycle and identity_weight must be finite and >= 0, got {lambda_cycle!r} "
                f"and {identity_weight!r}."
            )
        self.generator_ab, self.generator_ba = generator_ab, generator_ba
        self.discriminator_a, self.discriminator_b = discriminator_a, discriminator_b
        self.lambda_cycle = float(lambda_cycle)
        self.identity_weight = float(identity_weight)
        # A generator translates a batch and its identity batch in one pass, unless batch norm
        # would mix the two. An argument, so a reloaded model keeps a choice made for a
        # batch-wide layer.
        batch_norm = has_batch_norm(generator_ab) or has_batch_norm(generator_ba)
        if joint_generator_passes and batch_norm:
            raise ValueError(
                "joint_generator_passes=True with a batch-norm generator would mix the two "
                "batches' statistics; leave it None."
            )
        self.joint_generator_passes_argument = joint_generator_passes
        self.joint_generator_passes = (
            not batch_norm if joint_generator_passes is None else bool(joint_generator_passes)
        )
        self.pool_size = pool_size
        self.seed = seed
        image_shape_a = tuple(generator_ab.inputs[0].shape[1:])
        image_shape_b = tuple(generator_ba.inputs[0].shape[1:])
        if None in image_shape_a + image_shape_b:
            # The pools are weights of a fixed shape, allocated here.
            raise ValueError(
                f"CycleGAN needs generators built for a fixed image size (its image pools hold "
                f"images of that shape), got inputs {image_shape_a} and {image_shape_b}."
            )
        # Each network must take what the other produces; a mismatch would otherwise surface
        # only inside the first traced step.
        for producer, consumer in (
            (generator_ab, discriminator_b),
            (generator_ba, discriminator_a),
            (generator_ab, generator_ba),
            (generator_ba, generator_ab),
        ):
            made, taken = tuple(producer.outputs[0].shape[1:]), tuple(consumer.inputs[0].shape[1:])
            # None (a fully convolutional network) takes any size.
            fits = len(made) == len(taken) and all(
                a is None or b is None or a == b for a, b in zip(made, taken, strict=True)
            )
            if not fits:
                raise ValueError(
                    f"CycleGAN: {producer.name} makes images of shape {made} but {consumer.name} "
                    f"takes {taken}; build all four networks for the same image size and channels."
                )
        # The identity loss feeds each generator the other domain's images (G_ab(b) ~ b).
        if self.identity_weight and image_shape_a != image_shape_b:
            raise ValueError(
                f"CycleGAN: the identity loss feeds each generator the other domain's images, "
                f"but domain A is {image_shape_a} and domain B {image_shape_b}; pass "
                "identity_weight=0 for domains of different channels."
            )
        # A discriminator built for any size (image_size=None) may be too small for its strided
        # convolutions: Keras said so only inside the first traced step.
        for discriminator, shape in (
            (discriminator_a, image_shape_a),
            (discriminator_b, image_shape_b),
        ):
            try:
                discriminator.compute_output_spec(keras.KerasTensor((1, *shape)))
            except ValueError:
                raise ValueError(
                    f"CycleGAN: {discriminator.name} cannot judge images of shape {shape}: its "
                    "output would be empty (a PatchGAN needs sides of at least "
                    f"{_patchgan_minimum_side()})."
                ) from None
        self.pool_a = ImagePool(pool_size, image_shape_a, seed=seed, name="pool_a")
        self.pool_b = ImagePool(
            pool_size, image_shape_b, seed=None if seed is None else seed + 1, name="pool_b"
        )
        names = [*_GENERATOR_TERMS, "d_a_loss", "d_b_loss"]
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.generator_ab_optimizer = self.generator_ba_optimizer = None
        self.discriminator_a_optimizer = self.discriminator_b_optimizer = None
        self.build()

    def build(self, input_shape=None):
        """Mark the wrapper built (its networks are functional, hence built already), so weights
        can be saved or restored before ``fit`` and ``fit`` never traces ``call``."""
        self.built = True

    def compile(
        self,
        generator_ab_optimizer=None,
        generator_ba_optimizer=None,
        discriminator_a_optimizer=None,
        discriminator_b_optimizer=None,
        jit_compile="auto",
        **kwargs,
    ):
        given = dict(
            generator_ab_optimizer=generator_ab_optimizer,
            generator_ba_optimizer=generator_ba_optimizer,
            discriminator_a_optimizer=discriminator_a_optimizer,
            discriminator_b_optimizer=discriminator_b_optimizer,
        )
        defaults = default_optimizers()
        # No model.optimizer: Keras' own default would be an RMSprop that trains nothing, yet
        # LearningRateScheduler and ReduceLROnPlateau would adjust it, silently.
        if "optimizer" in kwargs:
            raise ValueError(f"CycleGAN trains four networks: pass {', '.join(OPTIMIZER_NAMES)}.")
        check_compile_arguments("CycleGAN", kwargs, given)
        super().compile(optimizer=None, jit_compile=jit_compile, **kwargs)
        for name, optimizer in given.items():
            network = getattr(self, name.removesuffix("_optimizer"))
            setattr(self, name, loss_scaled(optimizer or defaults[name], network))
        self.build_optimizers()

    def get_compile_config(self):
        # With compile overridden, Keras needs these two methods to restore the four
        # optimizers (schedules included; their state comes from the weights file) on load.
        if not self.compiled:
            return {}
        return {
            **{
                name: keras.saving.serialize_keras_object(getattr(self, name))
                for name in OPTIMIZER_NAMES
            },
            **engine_compile_arguments(super().get_compile_config()),
        }

    def compile_from_config(self, config):
        # A LossScaleOptimizer comes back as one; loss_scaled does not wrap it a second time.
        self.compile(
            **{
                name: keras.saving.deserialize_keras_object(config[name])
                for name in OPTIMIZER_NAMES
            },
            **engine_compile_arguments(config),
        )

    @property
    def optimizers(self):
        """The four optimizers, for checkpointing, in ``OPTIMIZER_NAMES`` order."""
        return [getattr(self, name) for name in OPTIMIZER_NAMES]

    def build_optimizers(self):
        """Create the optimizers' slots now: a restore needs them, tf.distribute too."""
        networks = (
            self.generator_ab,
            self.generator_ba,
            self.discriminator_a,
            self.discriminator_b,
        )
        for name, network in zip(OPTIMIZER_NAMES, networks, strict=True):
            build_optimizer(getattr(self, name), network.trainable_variables, "CycleGAN", name)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.generator_ab(inputs, training=training)

    def translate(self, images, direction="a2b", batch_size=32):
        """Translate a numpy batch with ``G_ab`` (``"a2b"``) or ``G_ba`` (``"b2a"``)."""
        if direction not in ("a2b", "b2a"):
            raise ValueError(f"direction must be 'a2b' or 'b2a', got {direction!r}.")
        generator = self.generator_ab if direction == "a2b" else self.generator_ba
        return predict_images(generator, images, batch_size)

    def _apply(self, optimizer, tape, loss, variables):
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))

    def _unpack(self, data):
        check_batch_structure(data, "CycleGAN", "(images_a, images_b)")
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(
                "CycleGAN expects batches of (images_a, images_b): zip the two domains' datasets "
                "(tf.data.Dataset.zip((dataset_a, dataset_b)))."
            )
        for images, domain, shape in zip(data, "AB", self._image_shapes(), strict=True):
            check_image_batch(images, "CycleGAN", "[-1, 1]", f"domain {domain} images", shape)
        return data[0], data[1]

    def _image_shapes(self):
        return tuple(self.generator_ab.inputs[0].shape[1:]), tuple(
            self.generator_ba.inputs[0].shape[1:]
        )

    def fit(self, x=None, y=None, *args, **kwargs):
        check_fit_data(self, x, y, kwargs.get("validation_data"), "CycleGAN.fit")
        return super().fit(x, y, *args, **kwargs)

    def check_training_data(self, data, context):
        """Refuse, in one line, numpy ``(images_a, images_b)`` that are not 4-D float of the
        generators' sizes, or hold NaN, or lie outside [-1, 1] (both generators end in tanh).
        ``fit`` calls it on numpy input, :func:`medgen_tf.training.fit` on the arrays it
        batches; a dataset's batches get the shape and dtype checks when the step is traced."""
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            return  # _unpack says what a batch must be
        for images, domain, shape in zip(data, "AB", self._image_shapes(), strict=True):
            check_numpy_images(images, "CycleGAN", context, f"domain {domain} images", shape)

    def train_step(self, data):
        real_a, real_b = self._unpack(data)
        g_ab_variables = self.generator_ab.trainable_variables
        g_ba_variables = self.generator_ba.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            objective = self._generator_objective(real_a, real_b, training=True)
            g_loss = objective["g_loss"]
            g_loss_replica = losses.scale_for_replicas(g_loss)
            scaled_ab = self.generator_ab_optimizer.scale_loss(g_loss_replica)
            scaled_ba = self.generator_ba_optimizer.scale_loss(g_loss_replica)
        # Without loss scaling one backward pass serves both generators.
        if scaled_ab is scaled_ba:
            gradients = tape.gradient(scaled_ab, g_ab_variables + g_ba_variables)
            split = len(g_ab_variables)
            self.generator_ab_optimizer.apply_gradients(
                zip(gradients[:split], g_ab_variables, strict=True)
            )
            self.generator_ba_optimizer.apply_gradients(
                zip(gradients[split:], g_ba_variables, strict=True)
            )
        else:
            self._apply(self.generator_ab_optimizer, tape, scaled_ab, g_ab_variables)
            self._apply(self.generator_ba_optimizer, tape, scaled_ba, g_ba_variables)
        del tape

        pooled_a = self.pool_a(ops.stop_gradient(objective["fake_a"]))
        pooled_b = self.pool_b(ops.stop_gradient(objective["fake_b"]))
        d_a_variables = self.discriminator_a.trainable_variables
        d_b_variables = self.discriminator_b.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            # Halved, as in the paper, so D learns more slowly than G.
            d_a_loss = 0.5 * losses.least_squares_discriminator_loss(
                self.discriminator_a(real_a, training=True),
                self.discriminator_a(pooled_a, training=True),
            )
            d_b_loss = 0.5 * losses.least_squares_discriminator_loss(
                self.discriminator_b(real_b, training=True),
                self.discriminator_b(pooled_b, training=True),
            )
            scaled_a = self.discriminator_a_optimizer.scale_loss(
                losses.scale_for_replicas(d_a_loss)
            )
            scaled_b = self.discriminator_b_optimizer.scale_loss(
                losses.scale_for_replicas(d_b_loss)
            )
        self._apply(self.discriminator_a_optimizer, tape, scaled_a, d_a_variables)
        self._apply(self.discriminator_b_optimizer, tape, scaled_b, d_b_variables)
        del tape

        return self._update_trackers(objective, d_a_loss, d_b_loss)

    def test_step(self, data):
        # train_step's losses without any update. Each D judges the current fakes, not the
        # pool's: drawing from the pool would change it, and its old fakes say nothing of
        # the generators now.
        real_a, real_b = self._unpack(data)
        objective = self._generator_objective(real_a, real_b, training=False)
        d_a_loss = 0.5 * losses.least_squares_discriminator_loss(
            self.discriminator_a(real_a, training=False), objective["fake_a_logits"]
        )
        d_b_loss = 0.5 * losses.least_squares_discriminator_loss(
            self.discriminator_b(real_b, training=False), objective["fake_b_logits"]
        )
        return self._update_trackers(objective, d_a_loss, d_b_loss)

    def _generator_objective(self, real_a, real_b, training):
        """Both generators' loss and its terms, the fakes and D's logits on them."""
        # Decided at trace time: with weight 0 the identity translations would only cost time
        # (the authors' code skips them too).
        with_identity = bool(self.identity_weight)
        fake_b, identity_b = self._translate(
            self.generator_ab, real_a, real_b if with_identity else None, training
        )
        fake_a, identity_a = self._translate(
            self.generator_ba, real_b, real_a if with_identity else None, training
        )
        cycle = losses.cycle_loss(real_a, self.generator_ba(fake_b, training=training))
        cycle += losses.cycle_loss(real_b, self.generator_ab(fake_a, training=training))
        fake_a_logits = self.discriminator_a(fake_a, training=training)
        fake_b_logits = self.discriminator_b(fake_b, training=training)
        adversarial = losses.least_squares_generator_loss(fake_b_logits)
        adversarial += losses.least_squares_generator_loss(fake_a_logits)
        g_loss = adversarial + self.lambda_cycle * cycle
        if with_identity:
            identity = losses.identity_loss(real_b, identity_b)
            identity += losses.identity_loss(real_a, identity_a)
            g_loss += self.identity_weight * self.lambda_cycle * identity
        else:
            identity = ops.zeros((), "float32")
        return {
            "g_loss": g_loss,
            "g_adversarial_loss": adversarial,
            "cycle_loss": cycle,
            "identity_loss": identity,
            "fake_a": fake_a,
            "fake_b": fake_b,
            "fake_a_logits": fake_a_logits,
            "fake_b_logits": fake_b_logits,
        }

    def _translate(self, generator, images, own_domain_images, training):
        """``generator(images)``, and ``generator(own_domain_images)`` for the identity loss
        (None when it is off): in one pass over both stacked unless batch norm would mix them.
        Half the kernel launches; on the project's 2-core CPU the whole step ran a few per cent
        faster at most (benchmarks/README.md)."""
        if own_domain_images is None:
            return generator(images, training=training), None
        if not self.joint_generator_passes:
            translated = generator(images, training=training)
            return translated, generator(own_domain_images, training=training)
        batch_size = ops.shape(images)[0]
        both = generator(ops.concatenate([images, own_domain_images], axis=0), training=training)
        return both[:batch_size], both[batch_size:]

    def _update_trackers(self, objective, d_a_loss, d_b_loss):
        values = {name: objective[name] for name in _GENERATOR_TERMS}
        values.update(d_a_loss=d_a_loss, d_b_loss=d_b_loss)
        for name, value in values.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def get_config(self):
        config = super().get_config()
        for key in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
            config[key] = keras.saving.serialize_keras_object(getattr(self, key))
        config.update(
            lambda_cycle=self.lambda_cycle,
            identity_weight=self.identity_weight,
            pool_size=self.pool_size,
            seed=self.seed,
            joint_generator_passes=self.joint_generator_passes_argument,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing pops the nested configs: keep the caller's
        for key in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
