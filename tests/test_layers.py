"""Tests for medgen_tf.models.layers: reflection padding, instance norm, loss_scaled, FusedAdam."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from medgen_tf.models.layers import (
    FusedAdam,
    InstanceNormalization,
    MaximumLeakyReLU,
    ReflectionPadding2D,
    has_batch_norm,
    loss_scaled,
)


def test_reflection_padding_mirrors_without_repeating_the_border():
    image = np.arange(12, dtype="float32").reshape(1, 3, 4, 1)
    padded = keras.ops.convert_to_numpy(ReflectionPadding2D((1, 2))(image))
    expected = np.pad(image, [(0, 0), (1, 1), (2, 2), (0, 0)], mode="reflect")
    assert padded.shape == (1, 5, 8, 1)
    np.testing.assert_array_equal(padded, expected)


def test_reflection_padding_shape_inference_and_round_trip():
    layer = ReflectionPadding2D(3, name="pad")
    inputs = keras.Input((64, 64, 2))
    assert layer(inputs).shape == (None, 70, 70, 2)
    restored = ReflectionPadding2D.from_config(layer.get_config())
    assert restored.padding == (3, 3)


def test_reflection_padding_refuses_a_padding_as_large_as_the_side():
    # Symbolic inputs: Keras would have inferred a shape that tf.pad cannot produce.
    with pytest.raises(ValueError, match=r"padding \(4, 4\) must be smaller .* \(None, 4, 8, 1\)"):
        ReflectionPadding2D(4)(keras.Input((4, 8, 1)))
    # Eager inputs: TensorFlow's own error came from inside the op.
    with pytest.raises(ValueError, match=r"padding \(1, 3\) must be smaller"):
        ReflectionPadding2D((1, 3))(np.zeros((1, 8, 3, 1), "float32"))
    # One pixel less than the side is the most a reflection can add.
    assert tuple(ReflectionPadding2D(3)(np.zeros((1, 4, 4, 1), "float32")).shape) == (1, 10, 10, 1)
    assert ReflectionPadding2D(3)(keras.Input((None, None, 1))).shape == (None, None, None, 1)


def test_reflection_padding_refuses_a_negative_or_malformed_padding():
    # A negative pad would crop instead of pad, with a shape Keras mis-infers.
    # Nor is a fraction rounded, or Keras' ((top, bottom), (left, right)) form half-read.
    for padding in (-1, (2, -1), (1, 2, 3), 1.5, (1, 2.5), ((1, 1), (2, 2)), "3", True):
        with pytest.raises(ValueError, match="each at least 0"):
            ReflectionPadding2D(padding)
    assert ReflectionPadding2D((np.int64(1), 2)).padding == (1, 2)
    assert ReflectionPadding2D(np.array([1, 2])).padding == (1, 2)
    assert ReflectionPadding2D(np.int32(3)).padding == (3, 3)
    with pytest.raises(ValueError, match="each at least 0"):
        ReflectionPadding2D(np.array([1.5, 2.0]))
    assert ReflectionPadding2D((0, 2))(np.zeros((1, 4, 4, 1), "float32")).shape == (1, 4, 8, 1)


def test_instance_normalization_equals_per_image_per_channel_standardisation():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, 5, 6, 4)) * [1.0, 5.0, 0.1, 2.0] + [0.0, 3.0, -2.0, 7.0]
    images = images.astype("float32")
    output = keras.ops.convert_to_numpy(InstanceNormalization()(images))
    mean = images.mean(axis=(1, 2), keepdims=True)
    variance = images.var(axis=(1, 2), keepdims=True)
    expected = (images - mean) / np.sqrt(variance + 1e-5)
    np.testing.assert_allclose(output, expected, atol=1e-4)
    # One image's statistics never reach another: changing image 0 leaves image 1 unchanged.
    changed = images.copy()
    changed[0] *= 10.0
    output_changed = keras.ops.convert_to_numpy(InstanceNormalization()(changed))
    np.testing.assert_allclose(output_changed[1], output[1], atol=1e-6)


@pytest.mark.parametrize(
    "settings",
    [{}, {"center": True, "scale": True}, {"axis": 1, "center": True, "scale": True}],
    ids=["plain", "affine", "channels first"],
)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_instance_normalization_computes_what_keras_group_normalization_per_channel_does(
    settings, dtype
):
    # Its own call skips GroupNormalization's reshape into groups; the numbers must not move.
    rng = np.random.default_rng(1)
    images = rng.normal(size=(2, 5, 6, 4)) * [1.0, 5.0, 0.1, 2.0] + [0.0, 3.0, -2.0, 7.0]
    images = keras.ops.convert_to_tensor(images.astype(dtype))
    ours = InstanceNormalization(dtype=dtype, **settings)
    keras_layer = keras.layers.GroupNormalization(
        groups=-1, epsilon=1e-5, center=ours.center, scale=ours.scale, axis=ours.axis, dtype=dtype
    )
    ours.build(images.shape)
    keras_layer.build(images.shape)
    for variable in ours.weights:  # a learned scale and offset that are not 1 and 0
        variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype("float32"))
    keras_layer.set_weights(ours.get_weights())
    output = ours(images)
    assert output.dtype == dtype
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(output).astype("float32"),
        keras.ops.convert_to_numpy(keras_layer(images)).astype("float32"),
        atol=1e-5 if dtype == "float32" else 2e-3,
    )


def test_instance_normalization_has_no_parameters_by_default_and_round_trips():
    layer = InstanceNormalization()
    layer.build((None, 8, 8, 16))
    assert layer.count_params() == 0
    affine = InstanceNormalization(center=True, scale=True)
    affine.build((None, 8, 8, 16))
    assert affine.count_params() == 32
    config = layer.get_config()
    assert "groups" not in config and config["epsilon"] == 1e-5
    assert InstanceNormalization.from_config(config).groups == -1


def _dense_network():
    inputs = keras.Input((4,))
    inner = keras.Sequential([keras.layers.Dense(3)])  # nested: its layers count too
    return keras.Model(inputs, keras.layers.Dense(1)(inner(inputs)))


def test_loss_scaled_wraps_only_under_float16():
    optimizer = keras.optimizers.Adam()
    assert loss_scaled(optimizer) is optimizer
    float32_network = _dense_network()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        wrapped = loss_scaled(keras.optimizers.Adam())
        assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)
        assert loss_scaled(wrapped) is wrapped
        float16_network = _dense_network()
        # The network decides, not the policy of the moment.
        assert type(loss_scaled(keras.optimizers.Adam(), float32_network)) is keras.optimizers.Adam
    finally:
        keras.mixed_precision.set_global_policy("float32")
    wrapped = loss_scaled(keras.optimizers.Adam(), float16_network)
    assert isinstance(wrapped, keras.optimizers.LossScaleOptimizer)


def test_maximum_leaky_relu_equals_keras_leaky_relu_values_and_gradients():
    import tensorflow as tf

    # x = 0 excluded: the two forms pick different subgradients there.
    values = tf.constant(np.linspace(-3, 3, 12, dtype="float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(values)
        ours = MaximumLeakyReLU(0.2)(values)
        reference = keras.layers.LeakyReLU(0.2)(values)
    np.testing.assert_allclose(ours.numpy(), reference.numpy(), atol=1e-7)
    np.testing.assert_allclose(
        tape.gradient(ours, values).numpy(), tape.gradient(reference, values).numpy()
    )
    assert MaximumLeakyReLU.from_config(MaximumLeakyReLU(0.1).get_config()).negative_slope == 0.1
    with pytest.raises(ValueError, match="negative_slope"):
        MaximumLeakyReLU(1.5)


def test_image_batch_check_refuses_what_it_can_see_and_lets_an_unknown_rank_through():
    from medgen_tf.models.layers import check_image_batch

    seen = []

    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
    def unknown_rank(images):
        check_image_batch(images, "GAN", "[-1, 1]")
        seen.append(images.shape.rank)
        return images

    assert unknown_rank(tf.zeros((2, 4, 4, 1))).shape == (2, 4, 4, 1) and seen == [None]
    with pytest.raises(ValueError, match=r"GAN expects images of shape .* got \(2, 4, 4\)"):
        check_image_batch(tf.zeros((2, 4, 4)), "GAN", "[-1, 1]")
    with pytest.raises(
        ValueError, match="GAN expects float images scaled to \\[-1, 1\\], got uint8"
    ):
        check_image_batch(tf.zeros((2, 4, 4, 1), tf.uint8), "GAN", "[-1, 1]")


def _builders():
    from medgen_tf.models import cyclegan, gan, vae

    return {
        "gan.build_generator": lambda size: gan.build_generator(8, size, base_filters=4),
        "gan.build_discriminator": lambda size: gan.build_discriminator(size, base_filters=4),
        "vae.build_encoder": lambda size: vae.build_encoder(size, base_filters=4),
        "vae.build_decoder": lambda size: vae.build_decoder(size, base_filters=4),
        "vae.build_vae": lambda size: vae.build_vae(size, base_filters=4),
        "cyclegan.build_resnet_generator": lambda size: cyclegan.build_resnet_generator(
            size, base_filters=4, num_residual_blocks=1
        ),
        "cyclegan.build_patchgan_discriminator": lambda size: cyclegan.build_patchgan_discriminator(
            size, base_filters=4
        ),
        "cyclegan.check_image_size": cyclegan.check_image_size,
    }


@pytest.mark.parametrize("image_size", [None, 28.5, 32.0, 0, -32, True, "32"])
@pytest.mark.parametrize("builder", sorted(_builders()))
def test_builders_refuse_an_image_size_that_is_no_positive_int_in_one_line(builder, image_size):
    # None gave a TypeError, 28.5 was truncated to 28 and 0 built a network. The PatchGAN
    # takes None (any size), as documented.
    if builder == "cyclegan.build_patchgan_discriminator" and image_size is None:
        assert _builders()[builder](None).inputs[0].shape[1:3] == (None, None)
        return
    short_name = builder.split(".")[1]
    with pytest.raises(ValueError, match=rf"^{short_name}: image_size must be a positive int, got"):
        _builders()[builder](image_size)


def test_the_image_size_check_passes_whole_numbers_of_any_integer_type():
    from medgen_tf.models.layers import check_image_size_argument

    for size in (32, np.int64(32), np.int32(32)):
        assert check_image_size_argument(size, "builder") == 32
        assert type(check_image_size_argument(size, "builder")) is int


def _adam_pair(seed=0, **settings):
    """Two copies of one small conv network, one for Keras' Adam and one for FusedAdam."""
    networks = []
    for _ in range(2):
        keras.utils.set_random_seed(seed)
        networks.append(
            keras.Sequential(
                [
                    keras.Input((8, 8, 2)),
                    keras.layers.Conv2D(4, 3, padding="same"),
                    keras.layers.Flatten(),
                    keras.layers.Dense(3),
                ]
            )
        )
    return networks, keras.optimizers.Adam(**settings), FusedAdam(**settings)


def _gradients(network, step):
    rng = np.random.default_rng(step)
    return [tf.constant(rng.normal(size=w.shape).astype("float32")) for w in network.weights]


@pytest.mark.parametrize(
    "settings",
    [
        dict(learning_rate=2e-4, beta_1=0.5),
        dict(learning_rate=1e-2, beta_2=0.9, epsilon=1e-4, weight_decay=0.1, clipnorm=1.0),
        dict(learning_rate=1e-3, amsgrad=True),  # Keras' own update: the fallback
    ],
)
def test_fused_adam_takes_the_steps_keras_adam_takes(settings):
    (keras_network, fused_network), keras_adam, fused_adam = _adam_pair(**settings)
    initial = [w.numpy() for w in fused_network.weights]
    for optimizer, network in ((keras_adam, keras_network), (fused_adam, fused_network)):
        apply = tf.function(lambda grads, o=optimizer, n=network: o.apply(grads, n.weights))
        for step in range(6):
            apply(_gradients(network, step))
    graph = apply.get_concrete_function(_gradients(fused_network, 0)).graph
    fused_kernels = [op for op in graph.get_operations() if op.type == "ResourceApplyAdam"]
    assert len(fused_kernels) == (0 if settings.get("amsgrad") else len(fused_network.weights))
    assert int(fused_adam.iterations) == int(keras_adam.iterations) == 6
    for ours, theirs, start in zip(
        fused_network.weights, keras_network.weights, initial, strict=True
    ):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-7)
        assert not np.allclose(ours.numpy(), start)  # both moved, the same way
    for ours, theirs in zip(fused_adam.variables, keras_adam.variables, strict=True):
        assert ours.name.split("_")[-1] == theirs.name.split("_")[-1]  # momentum, velocity...
        # m + (g - m)(1 - b1) there, b1 m + (1 - b1) g here: float rounding apart.
        np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-4, atol=1e-8)


def test_fused_adam_state_restores_into_keras_adam_and_back_and_under_loss_scaling():
    (keras_network, fused_network), _, fused_adam = _adam_pair(learning_rate=1e-2)
    for step in range(3):
        fused_adam.apply(_gradients(fused_network, step), fused_network.weights)
    store = {}
    fused_adam.save_own_variables(store)
    # A checkpoint of either class restores into the other (same variables, same order);
    # build first, or Adam's moments restart silently.
    restored = keras.optimizers.Adam(learning_rate=1e-2)
    restored.build(fused_network.weights)
    restored.load_own_variables(store)
    back = FusedAdam.from_config(fused_adam.get_config())
    back.build(fused_network.weights)
    back.load_own_variables(store)
    for ours, theirs in zip(back.variables, fused_adam.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert type(keras.optimizers.deserialize(keras.optimizers.serialize(back))) is FusedAdam
    # Under mixed precision a GAN's compile wraps it; the wrapper steps the fused update.
    wrapped = keras.optimizers.LossScaleOptimizer(FusedAdam(learning_rate=1e-2))
    reference = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(learning_rate=1e-2))
    for optimizer, network in ((wrapped, fused_network), (reference, keras_network)):
        optimizer.apply([g * 1024.0 for g in _gradients(network, 9)], network.weights)
    assert int(wrapped.inner_optimizer.iterations) == 1


def test_fused_adam_refuses_nothing_keras_adam_takes_sparse_gradients_included():
    embeddings = [keras.Variable(np.ones((5, 2), "float32")) for _ in range(2)]
    gradient = tf.IndexedSlices(tf.ones((2, 2)), tf.constant([0, 3]), tf.constant([5, 2]))
    for optimizer, variable in zip(
        (keras.optimizers.Adam(0.1), FusedAdam(0.1)), embeddings, strict=True
    ):
        optimizer.apply([gradient], [variable])
    np.testing.assert_allclose(embeddings[0].numpy(), embeddings[1].numpy(), rtol=1e-6)
    assert embeddings[1].numpy()[1, 0] == 1.0 and embeddings[1].numpy()[0, 0] < 1.0


def test_fused_adam_under_mirrored_strategy_matches_keras_adam(two_cpu_python):
    stdout = two_cpu_python(
        """
        import keras
        from medgen_tf.models.layers import FusedAdam
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        weights = {}
        for cls in (keras.optimizers.Adam, FusedAdam):
            with strategy.scope():
                variable = keras.Variable(np.linspace(-1, 1, 6, dtype="float32"))
                optimizer = cls(learning_rate=0.1, beta_1=0.5)
                optimizer.build([variable])

            @tf.function
            def step():
                def replica_step():
                    replica = tf.distribute.get_replica_context().replica_id_in_sync_group
                    gradient = tf.cast(replica + 1, "float32") * tf.range(6, dtype="float32")
                    optimizer.apply([gradient], [variable])
                strategy.run(replica_step)

            for _ in range(3):
                step()
            copies = strategy.experimental_local_results(variable.value)
            weights[cls.__name__] = [c.numpy() for c in copies]
        fused, plain = weights["FusedAdam"], weights["Adam"]
        print(len(fused), np.allclose(fused[0], fused[1]), np.allclose(fused[0], plain[0], atol=1e-6),
              not np.allclose(fused[0], np.linspace(-1, 1, 6)))
        """
    )
    assert stdout.split()[-4:] == ["2", "True", "True", "True"]


def test_a_step_where_any_replica_overflowed_is_skipped_under_mirrored_strategy(two_cpu_python):
    # Keras' LossScaleOptimizer decides for every replica from the first one's gradients (it
    # assumes them summed already): an inf on the second replica was applied, and a CycleGAN
    # under mixed_float16 and MirroredStrategy had NaN weights after one epoch.
    stdout = two_cpu_python(
        """
        import keras
        from medgen_tf.models.layers import loss_scaled
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        keras.mixed_precision.set_global_policy("mixed_float16")
        with strategy.scope():
            variable = keras.Variable(np.ones(3, "float32"))
            optimizer = loss_scaled(keras.optimizers.SGD(0.1))
            optimizer.build([variable])
        keras.mixed_precision.set_global_policy("float32")

        @tf.function
        def step(overflow):
            def replica_step():
                replica = tf.distribute.get_replica_context().replica_id_in_sync_group
                bad = tf.logical_and(overflow, replica == 1)
                gradient = tf.where(bad, tf.fill([3], np.inf), tf.ones(3))
                optimizer.apply([gradient], [variable])
            strategy.run(replica_step)

        scale = float(optimizer.dynamic_scale.numpy())
        step(tf.constant(True))
        skipped = [c.numpy().tolist() for c in strategy.experimental_local_results(variable.value)]
        halved = float(optimizer.dynamic_scale.numpy()) == scale / 2
        step(tf.constant(False))
        applied = strategy.experimental_local_results(variable.value)[0].numpy()
        print(type(optimizer).__name__, skipped == [[1.0] * 3] * 2, halved,
              bool(np.all(np.isfinite(applied)) and np.all(applied < 1.0)))
        """
    )
    assert stdout.split()[-4:] == ["ReplicaSafeLossScaleOptimizer", "True", "True", "True"]


def test_a_keras_loss_scale_optimizer_from_an_older_file_is_made_replica_safe():
    from medgen_tf.models.layers import ReplicaSafeLossScaleOptimizer, loss_scaled

    loaded = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(0.5), initial_scale=64.0, dynamic_growth_steps=7
    )
    optimizer = loss_scaled(loaded)
    assert type(optimizer) is ReplicaSafeLossScaleOptimizer
    assert optimizer.inner_optimizer is loaded.inner_optimizer
    assert (optimizer.initial_scale, optimizer.dynamic_growth_steps) == (64.0, 7)
    assert loss_scaled(optimizer) is optimizer


class _BlockHoldingBatchNorm(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.convolution = keras.layers.Conv2D(2, 3, padding="same")
        self.normalization = keras.layers.BatchNormalization()

    def call(self, images, training=False):
        return self.normalization(self.convolution(images), training=training)


def _network(*hidden):
    images = keras.Input((8, 8, 1))
    x = images
    for layer in hidden:
        x = layer(x)
    return keras.Model(images, x)


@pytest.mark.parametrize(
    ("hidden", "expected"),
    [
        (lambda: [keras.layers.Conv2D(2, 3), keras.layers.BatchNormalization()], True),
        (lambda: [_network(keras.layers.BatchNormalization())], True),
        (lambda: [_BlockHoldingBatchNorm()], True),
        (
            lambda: [
                keras.layers.Reshape((8, 8, 1, 1)),
                keras.layers.TimeDistributed(keras.layers.BatchNormalization()),
            ],
            True,
        ),
        (lambda: [keras.layers.Conv2D(2, 3), InstanceNormalization()], False),
        (lambda: [keras.layers.Conv2D(2, 3), keras.layers.LayerNormalization()], False),
    ],
    ids=["direct", "nested-model", "custom-layer", "time-distributed", "instance", "layer"],
)
def test_has_batch_norm_finds_it_wherever_it_is_held(hidden, expected):
    # Batch norm held by a custom layer or a wrapper has no `.layers`: looking there alone
    # let the GAN stack real and fake images through it, mixing their statistics.
    assert has_batch_norm(_network(*hidden())) is expected
