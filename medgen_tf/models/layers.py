"""The few pieces Keras lacks, shared by the model files.

A model module imports only keras, tensorflow, numpy, ``medgen_tf.losses`` and this file,
so copying a model into another project means copying at most three files (Pix2Pix has no
builders of its own: it takes the networks that ``cyclegan.py`` builds, a fourth file). Put
them side by side, unchanged, in a folder on ``sys.path`` (beside the script or notebook that
imports them): where ``medgen_tf`` is not installed, a model file imports its neighbours as
the top-level modules ``losses`` and ``layers``. Inside a package of your own, make those two
imports relative (``from . import losses`` and ``from .layers import ...``); do that too
where your project already has a top-level ``losses`` or ``layers`` module, which would be
imported in their place. A few pieces here reach into Keras internals (``FusedAdam`` reads
Adam's ``_momentums``, ``has_batch_norm`` walks ``_flatten_layers``, ``build_optimizer``
calls ``_check_variables_are_known``): they are tested with the pinned ``keras==3.15.*``
only.
"""

from __future__ import annotations

import numbers

import keras
import numpy as np
import tensorflow as tf

# How far, as a fraction of the range's width, input images may lie outside the range a
# network takes, in fit and in inference alike: a bicubic or Lanczos resize overshoots [-1, 1]
# slices up to 1.26, while images scaled for another range ([0, 255]) lie far beyond.
INPUT_SLACK = 0.25


def is_real_number(value) -> bool:
    """A real number (numpy's included), not a bool or text: ``float()`` raises a bare
    TypeError on None and takes ``"0.1"`` and True as numbers."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_count_argument(value, name, owner, minimum=1) -> int:
    """``value`` as an int, or a one-line ValueError naming ``name`` and ``owner``.

    For counts and sizes (``latent_dim``, ``n_critic``, ``pool_size``, ...): ``int()`` would
    quietly make 2.7 into 2 and True into 1, and a ``latent_dim`` of 0 builds a generator
    whose every sample is the same image.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be a whole number >= {minimum}, got {value!r}.")
    return int(value)


def check_image_size_argument(image_size, builder) -> int:
    """``image_size`` as an int, or a one-line ValueError naming it and ``builder``.

    Refused: None, a bool, a float (``int()`` would quietly make 28.5 into 28) and sides below 1,
    before they reach a shape arithmetic that fails with a TypeError or builds a wrong network.
    """
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, numbers.Integral)
        or image_size < 1
    ):
        raise ValueError(f"{builder}: image_size must be a positive int, got {image_size!r}.")
    return int(image_size)


def computes_in_float16(network) -> bool:
    """Whether any layer of ``network`` (nested models included) computes in float16.

    The layers, not the model's own policy: a functional model loaded from a ``.keras`` file
    under the float32 global policy reports float32 while its layers still compute in float16.
    """
    layers = getattr(network, "layers", None)
    if layers is None:
        return network.compute_dtype == "float16"
    return any(computes_in_float16(layer) for layer in layers)


def loss_scaled(optimizer, network=None) -> keras.optimizers.Optimizer:
    """Wrap ``optimizer`` in a ``LossScaleOptimizer`` when ``network`` computes in float16.

    Keras only does this by itself inside the built-in ``compile``; a GAN's overridden
    ``compile`` must do it by hand, and its ``train_step`` must take gradients of
    ``optimizer.scale_loss(loss)`` (a no-op on a plain optimizer). The test is on the network
    the optimizer trains, not on the global policy at compile time: a mixed-precision model
    re-compiled after the policy went back to float32 (a loaded ``.keras`` file, or after
    ``training.fit``) still needs loss scaling. Without ``network``, the global policy decides.
    A name such as ``"adam"`` is accepted, as by ``keras.Model.compile``.
    """
    optimizer = keras.optimizers.get(optimizer)
    if network is not None:
        float16 = computes_in_float16(network)
    else:
        float16 = keras.mixed_precision.global_policy().compute_dtype == "float16"
    if type(optimizer) is keras.optimizers.LossScaleOptimizer:
        # Keras' own (a .keras file saved before this class existed): the same settings, and
        # the same variables, which a restore then fills.
        config = optimizer.get_config()
        config.pop("inner_optimizer", None)
        return ReplicaSafeLossScaleOptimizer(optimizer.inner_optimizer, **config)
    if float16 and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return ReplicaSafeLossScaleOptimizer(optimizer)
    return optimizer


@keras.saving.register_keras_serializable(package="medgen_tf")
class ReplicaSafeLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """A ``LossScaleOptimizer`` that skips a step when any replica's gradients overflowed.

    Under ``tf.distribute``, Keras' TensorFlow path decides for every replica from the first
    replica's gradients, assuming they were already summed over replicas; they are not yet.
    With ``mixed_float16`` and ``MirroredStrategy``, an overflow on another replica was then
    applied, and a CycleGAN's weights were NaN after its first epoch. Here every replica's
    verdict is reduced first, so the step is skipped (and the scale lowered) if any overflowed.
    """

    def check_finite(self, grads):
        finite = super().check_finite(grads)
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return finite
        overflowed = tf.cast(tf.logical_not(finite), "float32")
        return context.all_reduce("SUM", overflowed) < 0.5  # no replica overflowed


def engine_compile_arguments(compile_config) -> dict:
    """``run_eagerly`` and ``steps_per_execution`` from a compile config.

    A model that overrides ``get_compile_config`` to save its own optimizers must keep these
    too, from ``super().get_compile_config()``, and pass them back in ``compile_from_config``:
    Keras' own config keeps them, and without them a loaded model silently runs one step per
    call whatever it was compiled with. Not ``jit_compile``: Keras records it resolved, so a
    model saved on a GPU (``"auto"`` -> XLA) would force XLA on a CPU, where it is slower;
    left out, the loading machine resolves ``"auto"`` itself.
    """
    keys = ("run_eagerly", "steps_per_execution")
    return {key: compile_config[key] for key in keys if key in compile_config}


def check_compile_arguments(model_name, kwargs, optimizers) -> None:
    """Refuse what ``compile`` would otherwise accept and silently ignore.

    A model that computes its losses and metrics in ``train_step`` has no use for ``loss=`` or
    ``metrics=``; and one optimizer object given for two networks fails only at the first step
    (an optimizer keeps state per variable and refuses variables it was not built with).

    Args:
        model_name: the class name, for the message.
        kwargs: the keyword arguments ``compile`` passes on to Keras.
        optimizers: ``{argument name: optimizer}`` as given (names like ``"adam"`` are fine).
    """
    for name in ("loss", "loss_weights", "metrics", "weighted_metrics"):
        if kwargs.get(name) is not None:
            raise ValueError(
                f"{model_name} computes its own losses and metrics in train_step: compile takes "
                f"no {name}= (got {kwargs[name]!r})."
            )
    seen = {}
    for name, optimizer in optimizers.items():
        if isinstance(optimizer, keras.optimizers.Optimizer):
            if id(optimizer) in seen:
                raise ValueError(
                    f"{model_name}.compile: {seen[id(optimizer)]} and {name} are the same "
                    "optimizer object; give each network its own (an optimizer keeps state per "
                    "variable)."
                )
            seen[id(optimizer)] = name


def predict_images(network, images, batch_size, value_range=(-1.0, 1.0)) -> object:
    """``network.predict(images)`` as numpy, an empty batch included.

    Keras' ``predict`` fails on zero images (an UnboundLocalError); they give a ``(0, ...)``
    array of the shape and dtype that images would have, read from one blank image's output.
    Refused in one line (ValueError): images not of the network's input shape (after one call
    Keras re-traced for 30x30 images and returned 32x32 ones), not float, or outside
    ``value_range`` by more than :data:`INPUT_SLACK` of its width, the slack ``fit`` allows
    ([0, 255] images were translated as given; with a 1 % slack, resized slices a model had
    trained on were refused here).
    """
    shape = tuple(keras.ops.shape(images))
    expected = tuple(network.inputs[0].shape[1:])
    fits = len(shape) == 4 and all(
        size is None or size == given for size, given in zip(expected, shape[1:], strict=True)
    )
    if not fits:
        wanted = ", ".join("any" if size is None else str(size) for size in expected)
        raise ValueError(f"{network.name} takes images of shape (n, {wanted}), got {shape}")
    low, high = value_range
    dtype = keras.backend.standardize_dtype(images.dtype)
    if "float" not in dtype:
        raise ValueError(
            f"{network.name} takes float images in [{low:g}, {high:g}], got {dtype}; convert "
            "and scale them first"
        )
    if len(images):
        smallest = float(keras.ops.min(images))
        largest = float(keras.ops.max(images))
        slack = INPUT_SLACK * (high - low)
        if not (low - slack <= smallest and largest <= high + slack):  # NaN fails both
            raise ValueError(
                f"{network.name} takes images in [{low:g}, {high:g}], got values from "
                f"{smallest:g} to {largest:g}; scale them first"
            )
    if len(images) == 0:
        blank = keras.ops.zeros((1, *keras.ops.shape(images)[1:]))
        return keras.ops.convert_to_numpy(network(blank, training=False))[:0]
    return network.predict(images, batch_size=batch_size, verbose=0)


def build_optimizer(optimizer, variables, model_name, argument) -> None:
    """``optimizer.build(variables)``, refusing an optimizer built for other variables.

    Keras' ``build`` returns at once on a built optimizer, so one built for another model's
    weights (given to a second model's ``compile``) was accepted and failed only at the first
    step ("Unknown variable"). Re-compiling a model with its own optimizers stays accepted.

    Args:
        optimizer: the optimizer (a ``LossScaleOptimizer`` is checked with what it wraps).
        variables: the trainable variables of the network it is to train.
        model_name: the class name, for the message.
        argument: the ``compile`` argument it came from, for the message.
    """
    layer = optimizer
    while layer is not None:
        if layer.built:
            try:
                # The check apply() makes at the first step, made now.
                layer._check_variables_are_known(variables)
            except ValueError:
                raise ValueError(
                    f"{model_name}: {argument} is already built for other variables (another "
                    "model's?); pass a new optimizer, or none for the default."
                ) from None
        layer = getattr(layer, "inner_optimizer", None)
    optimizer.build(variables)


def check_image_batch(images, model_name, value_range, what="images", image_shape=None) -> None:
    """Refuse, while ``train_step`` is traced (no cost per step), a batch that is not 4-D float
    or not of the networks' ``image_shape``.

    Images without a channel axis would broadcast against the networks' (batch, height, width,
    channels) outputs inside an L1 or reconstruction loss and give a wrong number without an
    error; integer images would train on values far outside ``value_range``; images of another
    size failed deep inside the traced step ("Dimension 0 in both shapes must be equal").

    Args:
        images: the batch, a tensor (or a numpy array, checked on the host).
        model_name: the class name, for the message.
        value_range: the range the model expects, for the message, e.g. ``"[-1, 1]"``.
        what: what the tensor is, e.g. ``"domain A images"``.
        image_shape: the networks' ``(height, width, channels)``, None for a side they take
            at any size; None: not checked.
    """
    try:
        shape = tuple(images.shape)
    except ValueError:  # unknown rank (a generator dataset without a signature): cannot tell
        return
    if len(shape) != 4:
        raise ValueError(
            f"{model_name} expects {what} of shape (batch, height, width, channels), got "
            f"{shape}; add the channel axis of one-channel images (images[..., None])."
        )
    dtype = keras.backend.standardize_dtype(images.dtype)
    if "float" not in dtype:
        raise ValueError(
            f"{model_name} expects float {what} scaled to {value_range}, got {dtype}; convert "
            "and scale them first."
        )
    if image_shape is not None:
        expected = tuple(image_shape)
        if any(
            side is not None and got is not None and side != got
            for side, got in zip(expected, shape[1:], strict=True)
        ):
            sides = ", ".join("any" if side is None else str(side) for side in expected)
            raise ValueError(
                f"{model_name} expects {what} of shape (batch, {sides}), the networks' size, "
                f"got {shape}; resize them, or build the networks for this size."
            )


def check_image_values(images, context, value_range=(-1.0, 1.0), what="images") -> None:
    """Refuse, in one line starting with ``context``, numpy ``images`` holding NaN or inf, or
    values outside ``value_range`` by more than a quarter of its span: images scaled for
    another range, not the overshoot of a bicubic or Lanczos resize (up to 1.26 on [-1, 1]
    slices), which trains.

    For a model's ``fit`` and ``check_training_data``, on the host, once: inside the step such
    images train without a message (into NaN, or toward targets a tanh output cannot reach:
    8-bit images gave a GAN's D a loss of 43). Tensors and datasets are left alone (their
    values are never all on the host); integer images are left to :func:`check_image_batch`.
    """
    if not isinstance(images, np.ndarray) or not images.size:
        return
    if not np.issubdtype(images.dtype, np.floating):
        return
    low, high = images.min(), images.max()  # NaN if any is NaN
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{context}: {what} hold NaN or infinite values; remove them first.")
    bottom, top = (float(value) for value in value_range)
    slack = INPUT_SLACK * (top - bottom)
    if low < bottom - slack or high > top + slack:
        eight_bit = (bottom, top) == (-1.0, 1.0) and high > 2.0
        hint = " (x / 127.5 - 1 for 8-bit images)" if eight_bit else ""
        raise ValueError(
            f"{context}: {what} must lie in [{bottom:g}, {top:g}], got {low:g} to {high:g}; "
            f"scale them first{hint}."
        )


def check_numpy_images(images, model_name, context, what="images", image_shape=None) -> None:
    """For a model's ``check_training_data``: a numpy batch of images gets
    :func:`check_image_batch` (4-D, float, the networks' shape) and :func:`check_image_values`
    (finite, within [-1, 1]); anything else is left to the traced step."""
    if isinstance(images, np.ndarray):
        check_image_batch(images, model_name, "[-1, 1]", what, image_shape)
        check_image_values(images, context, what=what)


def check_fit_data(model, x, y, validation_data, context) -> None:
    """Run ``model.check_training_data`` on what ``fit`` was given: ``x`` (with ``y``) and
    ``validation_data``. Keras' ``fit`` never looks at the values of numpy input."""
    for data, argument in (
        ((x, y) if y is not None else x, "x" if y is None else "x and y"),
        (validation_data, "validation_data"),
    ):
        if data is not None:
            model.check_training_data(data, f"{context} {argument}")


def check_batch_structure(data, model_name, expected) -> None:
    """Refuse a batch that is a dict (a TFDS or dict dataset) with a message saying what to map."""
    if isinstance(data, dict):
        keys = ", ".join(repr(key) for key in data)
        raise ValueError(
            f"{model_name} expects batches of {expected}, got a dict with keys {keys}; map the "
            "dataset to that form first (dataset.map(lambda example: ...))."
        )


def has_batch_norm(network) -> bool:
    """Whether ``network`` holds a ``BatchNormalization`` layer anywhere (in a nested model, a
    wrapper such as ``TimeDistributed`` or a custom layer's attribute): its output for one image
    then depends on the other images of the batch in training, so batches must not be stacked
    into one pass, and a per-sample gradient penalty is invalid."""
    # Keras' own walk over every tracked sub-layer; `.layers` alone misses layers held by layers.
    return any(
        isinstance(layer, keras.layers.BatchNormalization)
        for layer in network._flatten_layers(include_self=True, recursive=True)
    )


@keras.saving.register_keras_serializable(package="medgen_tf")
class ReflectionPadding2D(keras.layers.Layer):
    """Pad height and width by mirroring the border (``tf.pad(mode="REFLECT")``).

    CycleGAN's generator pads with reflections so that its 7x7 and 3x3 convolutions see image
    content, not a dark frame of zeros, at the border (Zhu et al. 2017; Johnson et al. 2016).

    Args:
        padding: int or ``(pad_height, pad_width)``, at least 0, added on both sides; must be
            smaller than the side it pads.

    Example:
        >>> import keras
        >>> from medgen_tf.models.layers import ReflectionPadding2D
        >>> tuple(ReflectionPadding2D(3)(keras.ops.zeros((1, 64, 64, 1))).shape)
        (1, 70, 70, 1)

    Notebook: ``notebooks/03_cyclegan.ipynb`` (the ResNet generator).
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        if hasattr(padding, "tolist"):  # a numpy array or scalar
            padding = padding.tolist()
        pair = (padding, padding) if isinstance(padding, numbers.Integral) else padding
        # Only whole numbers: int() would quietly round 1.5, and a Keras-style
        # ((top, bottom), (left, right)) is not what this layer pads.
        is_pair = isinstance(pair, (tuple, list)) and len(pair) == 2
        if not is_pair or not all(
            isinstance(pad, numbers.Integral) and not isinstance(pad, bool) and pad >= 0
            for pad in pair
        ):
            raise ValueError(
                f"padding must be an int or (pad_height, pad_width), each at least 0, "
                f"got {padding!r}."
            )
        self.padding = tuple(int(pad) for pad in pair)

    def _check_padding(self, input_shape):
        # REFLECT mirrors without repeating the border, so it needs more pixels than it adds;
        # checked where the sides are first known, not left to a failure inside the graph.
        for pad, side in zip(self.padding, input_shape[1:3], strict=True):
            if side is not None and pad >= side:
                raise ValueError(
                    f"padding {self.padding} must be smaller than the input's height and width, "
                    f"got an input of shape {tuple(input_shape)}."
                )

    def build(self, input_shape):
        self._check_padding(input_shape)
        super().build(input_shape)

    def call(self, inputs):
        pad_height, pad_width = self.padding
        return keras.ops.pad(
            inputs,
            [[0, 0], [pad_height, pad_height], [pad_width, pad_width], [0, 0]],
            mode="reflect",
        )

    def compute_output_shape(self, input_shape):
        self._check_padding(input_shape)
        batch, height, width, channels = input_shape
        pad_height, pad_width = self.padding
        return (
            batch,
            None if height is None else height + 2 * pad_height,
            None if width is None else width + 2 * pad_width,
            channels,
        )

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="medgen_tf")
class InstanceNormalization(keras.layers.GroupNormalization):
    """Normalise each channel of each image over its own height and width (Ulyanov et al. 2016).

    Exactly Keras' ``GroupNormalization(groups=-1)`` (one group per channel), with the defaults
    of the CycleGAN reference code (PyTorch ``InstanceNorm2d``): ``epsilon=1e-5`` and no learned
    scale or offset (``center=False, scale=False``), so parameter counts match the paper's
    networks. Unlike batch norm it keeps no running statistics: training and inference agree,
    and one image's contrast does not leak into another's.

    Args:
        epsilon: added to the variance.
        center, scale: learn a per-channel offset / scale (off by default, as in CycleGAN).

    Example:
        >>> import keras
        >>> from medgen_tf.models.layers import InstanceNormalization
        >>> tuple(InstanceNormalization()(keras.ops.ones((2, 8, 8, 4))).shape)
        (2, 8, 8, 4)

    Notebook: ``notebooks/03_cyclegan.ipynb`` (the ResNet generator and the PatchGAN).
    """

    def __init__(self, epsilon=1e-5, center=False, scale=False, **kwargs):
        kwargs.pop("groups", None)
        super().__init__(groups=-1, epsilon=epsilon, center=center, scale=scale, **kwargs)

    def call(self, inputs):
        # GroupNormalization's arithmetic without its reshape into (..., groups, 1) and back:
        # with one group per channel the statistics are over the spatial axes alone. Traced
        # alone, 15 graph ops instead of 21 (57 instead of 67 with the gradient); the
        # benchmark's 64 px CycleGAN train step traces 11,161 ops instead of 12,361.
        rank = len(inputs.shape)
        channel_axis = self.axis % rank
        dtype = keras.backend.result_type(inputs.dtype, "float32")  # float16 would overflow
        x = keras.ops.cast(inputs, dtype)
        spatial_axes = [axis for axis in range(1, rank) if axis != channel_axis]
        mean, variance = keras.ops.moments(x, axes=spatial_axes, keepdims=True)
        inverse = keras.ops.rsqrt(variance + self.epsilon)
        per_channel = [1] * rank
        per_channel[channel_axis] = inputs.shape[channel_axis]
        if self.scale:
            inverse = inverse * keras.ops.cast(keras.ops.reshape(self.gamma, per_channel), dtype)
        shift = -mean * inverse
        if self.center:
            shift = shift + keras.ops.cast(keras.ops.reshape(self.beta, per_channel), dtype)
        return keras.ops.cast(x * inverse + shift, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.pop("groups", None)
        return config


@keras.saving.register_keras_serializable(package="medgen_tf")
class MaximumLeakyReLU(keras.layers.Layer):
    """LeakyReLU written as ``maximum(x, negative_slope * x)``.

    Leaky rectifier of Maas et al. (2013), with slope 0.2 as in DCGAN (Radford et al. 2016) and
    the PatchGAN (Isola et al. 2017). Same values as Keras ``LeakyReLU``, and the same gradient
    except at exactly 0, where ``maximum`` passes 1 instead of ``negative_slope``.

    TF 2.21's grappler "remapper" fails on Conv2D + BiasAdd + LeakyRelu in a gradient graph and
    logs an error on every trace; a Keras ``LeakyReLU`` right after a biased convolution (the
    unnormalised first layer of a PatchGAN) hits it. This form keeps the paper's bias and avoids
    the fused pattern.

    Args:
        negative_slope: slope for negative inputs, in [0, 1] (where ``maximum`` is LeakyReLU).

    Example:
        >>> import keras
        >>> from medgen_tf.models.layers import MaximumLeakyReLU
        >>> x = keras.ops.convert_to_tensor([-1.0, 2.0])
        >>> keras.ops.convert_to_numpy(MaximumLeakyReLU(0.2)(x))
        array([-0.2,  2. ], dtype=float32)

    Notebook: ``notebooks/01_gan.ipynb`` (the discriminator) and ``notebooks/03_cyclegan.ipynb``.
    """

    def __init__(self, negative_slope=0.2, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= float(negative_slope) <= 1.0:
            raise ValueError(f"negative_slope must be in [0, 1], got {negative_slope}.")
        self.negative_slope = float(negative_slope)

    def call(self, inputs):
        return keras.ops.maximum(inputs, self.negative_slope * inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@keras.saving.register_keras_serializable(package="medgen_tf")
class FusedAdam(keras.optimizers.Adam):
    """Adam whose update of each variable is one TensorFlow kernel instead of about eleven ops.

    Adam (Kingma & Ba 2015) with the formula, arguments and state of ``keras.optimizers.Adam``
    (``iterations`` and the two moment variables, in the same order), so a checkpoint written
    with either restores into the other. Keras 3 writes Adam's update as separate element-wise
    ops, and each is one pass over a weight tensor or its moments in memory; TensorFlow's
    ``ResourceApplyAdam`` kernel (what ``tf.keras`` used before Keras 3, with CPU, GPU and XLA
    implementations) makes one pass. On a 2-core CPU, updating the DCGAN's 6.6 million weights
    takes a third to under half of Keras' Adam's time with this one (``benchmarks/RESULTS.md``
    and ``RESULTS-intel-xeon.md``, profile: the two Adam rows).
    AMSGrad, sparse gradients (``tf.IndexedSlices``, from an ``Embedding``) and backends other
    than TensorFlow take Keras' own update.

    Args:
        As ``keras.optimizers.Adam``.

    Example:
        >>> from medgen_tf.models.layers import FusedAdam
        >>> optimizer = FusedAdam(learning_rate=2e-4, beta_1=0.5)

    Notebook: none teaches it; the GANs of notebooks 01, 04 and 05 (the conditional GAN of
    ``augmentation.train_conditional_gan``) and the CycleGAN and Pix2Pix of notebook 03 train
    with it (``default_optimizers`` and ``compile``'s defaults), as does the VAE of
    ``medgen-tf train vae``.
    """

    def update_step(self, gradient, variable, learning_rate):
        if (
            self.amsgrad
            or isinstance(gradient, tf.IndexedSlices)
            or keras.backend.backend() != "tensorflow"
        ):
            return super().update_step(gradient, variable, learning_rate)
        if isinstance(variable, keras.Variable):
            variable = variable.value
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1 = tf.cast(self.beta_1, dtype)
        beta_2 = tf.cast(self.beta_2, dtype)
        # Under tf.distribute this runs inside strategy.extended.update(), where a mirrored
        # moment's .handle is the copy on this replica's device.
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, local_step),
            beta2_power=tf.pow(beta_2, local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
