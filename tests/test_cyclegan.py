"""Tests for medgen_tf.models.cyclegan: architectures, image pool, schedule, training step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from medgen_tf.models.cyclegan import (
    CycleGAN,
    ImagePool,
    LinearDecayAfterHalf,
    build_patchgan_discriminator,
    build_resnet_generator,
    default_optimizers,
)

SIZE = 32


def _count_residual_blocks(model):
    return sum(1 for layer in model.layers if isinstance(layer, keras.layers.Add))


def _small_cyclegan(size=SIZE, pool_size=4, seed=0):
    keras.utils.set_random_seed(seed)
    return CycleGAN(
        build_resnet_generator(size, 1, filters=4, num_residual_blocks=1, name="g_ab"),
        build_resnet_generator(size, 1, filters=4, num_residual_blocks=1, name="g_ba"),
        build_patchgan_discriminator(size, 1, filters=4, name="d_a"),
        build_patchgan_discriminator(size, 1, filters=4, name="d_b"),
        pool_size=pool_size,
        seed=seed,
    )


def _unpaired_dataset(size=SIZE, count=4, batch_size=2):
    rng = np.random.default_rng(0)
    images_a = rng.uniform(-1, 1, (count, size, size, 1)).astype("float32")
    images_b = rng.uniform(-1, 1, (count, size, size, 1)).astype("float32")
    return tf.data.Dataset.zip(
        (
            tf.data.Dataset.from_tensor_slices(images_a),
            tf.data.Dataset.from_tensor_slices(images_b),
        )
    ).batch(batch_size)


# ---- architectures ---------------------------------------------------------------------------


def test_paper_networks_have_the_exact_parameter_counts():
    # Zhu et al.'s reference code prints 11.378 M and 2.765 M for these settings.
    generator = build_resnet_generator(256, channels=3, filters=64)
    discriminator = build_patchgan_discriminator(256, channels=3, filters=64)
    assert _count_residual_blocks(generator) == 9
    assert generator.count_params() == 11_378_179
    assert discriminator.count_params() == 2_764_737


@pytest.mark.parametrize(
    ("size", "patch_side", "default_blocks"), [(64, 6, 6), (128, 14, 6), (256, 30, 9)]
)
def test_shapes_and_default_residual_blocks(size, patch_side, default_blocks):
    assert _count_residual_blocks(build_resnet_generator(size, filters=1)) == default_blocks
    generator = build_resnet_generator(size, channels=2, filters=4, num_residual_blocks=1)
    discriminator = build_patchgan_discriminator(size, channels=2, filters=4)
    images = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 2)).astype("float32")
    translated = keras.ops.convert_to_numpy(generator(images))
    assert translated.shape == (2, size, size, 2)
    assert translated.dtype == np.float32 and np.abs(translated).max() <= 1.0
    logits = discriminator(images)
    assert logits.shape == (2, patch_side, patch_side, 1) and logits.dtype == "float32"


def test_generator_rejects_sizes_it_cannot_halve_twice():
    with pytest.raises(ValueError, match="divisible by 4"):
        build_resnet_generator(30)


# ---- image pool ------------------------------------------------------------------------------


def _labelled_images(values, side=2):
    return np.repeat(np.asarray(values, "float32"), side * side).reshape(-1, side, side, 1)


def _labels(images):
    return np.asarray(keras.ops.convert_to_numpy(images))[:, 0, 0, 0]


def test_image_pool_returns_new_images_while_it_fills_then_caps_its_count():
    pool = ImagePool(pool_size=5, image_shape=(2, 2, 1), seed=0)
    first = pool(_labelled_images([1, 2, 3]))
    np.testing.assert_array_equal(_labels(first), [1, 2, 3])
    second = pool(_labelled_images([4, 5, 6]))
    # 4 and 5 fill the pool and come back unchanged; 6 may be swapped.
    np.testing.assert_array_equal(_labels(second)[:2], [4, 5])
    assert int(pool.num_stored.numpy()) == 5
    assert set(_labels(pool.images.numpy())) <= {1, 2, 3, 4, 5, 6}
    assert {1, 2, 3, 4}.issubset(set(_labels(pool.images.numpy())) | {_labels(second)[2]})


def test_full_image_pool_swaps_half_of_the_images_with_stored_ones():
    pool = ImagePool(pool_size=4, image_shape=(2, 2, 1), seed=1)
    pool(_labelled_images([1, 2, 3, 4]))
    swaps = 0
    num_calls = 200
    for step in range(num_calls):
        new_label = 100 + step
        before = list(_labels(pool.images.numpy()))
        returned = _labels(pool(_labelled_images([new_label])))[0]
        after = list(_labels(pool.images.numpy()))
        if returned == new_label:
            assert after == before  # not swapped: the pool is untouched
        else:
            swaps += 1
            slot = before.index(returned)  # a stored image came back...
            assert after[slot] == new_label  # ...and the new one took its slot
            assert after[:slot] + after[slot + 1 :] == before[:slot] + before[slot + 1 :]
    assert 0.4 < swaps / num_calls < 0.6


def test_image_pool_works_inside_a_compiled_function_and_of_size_zero_is_identity():
    pool = ImagePool(pool_size=3, image_shape=(2, 2, 1), seed=0)
    compiled = tf.function(pool.__call__)
    first = compiled(tf.constant(_labelled_images([0, 10])))
    np.testing.assert_array_equal(_labels(first), [0, 10])
    returned = [_labels(compiled(tf.constant(_labelled_images([v, v + 10])))) for v in (1, 2, 3)]
    assert int(pool.num_stored.numpy()) == 3
    seen = {0, 10, 1, 11, 2, 12, 3, 13}
    assert set(_labels(pool.images.numpy())) <= seen
    assert returned[0][0] == 1  # it filled the last free slot
    # Every image handed in is either returned or kept in the pool: none is lost.
    kept = set(_labels(pool.images.numpy())) | {0, 10} | set(np.concatenate(returned))
    assert kept == seen
    identity = ImagePool(pool_size=0, image_shape=(2, 2, 1))
    images = _labelled_images([7, 8])
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(identity(images)), images)


# ---- learning-rate schedule ------------------------------------------------------------------


def test_learning_rate_is_constant_then_decays_linearly_to_zero():
    schedule = LinearDecayAfterHalf(2e-4, total_steps=100)
    values = {step: float(schedule(step)) for step in (0, 49, 50, 75, 100, 150)}
    assert values[0] == pytest.approx(2e-4) and values[49] == pytest.approx(2e-4)
    assert values[50] == pytest.approx(2e-4)
    assert values[75] == pytest.approx(1e-4)
    assert values[100] == 0.0 and values[150] == 0.0
    restored = LinearDecayAfterHalf.from_config(schedule.get_config())
    assert float(restored(90)) == pytest.approx(float(schedule(90)))
    custom = LinearDecayAfterHalf(1.0, total_steps=10, decay_start_step=8)
    assert float(custom(9)) == pytest.approx(0.5)


def test_default_optimizers_are_the_papers_adam():
    optimizers = default_optimizers(total_steps=10)
    assert len(optimizers) == 4
    for optimizer in optimizers.values():
        assert optimizer.beta_1 == 0.5
        assert isinstance(optimizer._learning_rate, LinearDecayAfterHalf)
        assert optimizer._learning_rate.initial_learning_rate == 2e-4


# ---- the model -------------------------------------------------------------------------------


def test_one_step_fit_updates_all_four_networks_and_fills_the_pools():
    model = _small_cyclegan()
    model.compile(**default_optimizers(total_steps=4))
    networks = [
        model.generator_ab,
        model.generator_ba,
        model.discriminator_a,
        model.discriminator_b,
    ]
    before = [[w.copy() for w in network.get_weights()] for network in networks]
    history = model.fit(_unpaired_dataset(), epochs=1, steps_per_epoch=1, verbose=0)
    expected = {"g_loss", "g_adversarial_loss", "cycle_loss", "identity_loss", "d_a_loss"}
    assert expected <= set(history.history)
    assert all(np.isfinite(values[-1]) for values in history.history.values())
    for network, old in zip(networks, before, strict=True):
        changed = [not np.allclose(a, b) for a, b in zip(network.get_weights(), old, strict=True)]
        assert any(changed), network.name
    assert int(model.pool_a.num_stored.numpy()) == 2
    assert all(int(o.iterations.numpy()) == 1 for o in model.optimizers)
    assert model(np.zeros((1, SIZE, SIZE, 1), "float32")).shape == (1, SIZE, SIZE, 1)
    assert model.translate(np.zeros((3, SIZE, SIZE, 1), "float32"), "b2a").shape == (
        3,
        SIZE,
        SIZE,
        1,
    )
    with pytest.raises(ValueError, match="direction"):
        model.translate(np.zeros((1, SIZE, SIZE, 1), "float32"), "t1_to_t2")


def test_mixed_precision_step_is_finite_and_outputs_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _small_cyclegan()
        model.compile()
        assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in model.optimizers)
        history = model.fit(_unpaired_dataset(), epochs=1, steps_per_epoch=1, verbose=0)
        assert all(np.isfinite(values[-1]) for values in history.history.values())
        assert model(np.zeros((1, SIZE, SIZE, 1), "float32")).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_keras_file_round_trip_translates_identically(tmp_path):
    model = _small_cyclegan()
    images = np.random.default_rng(1).uniform(-1, 1, (2, SIZE, SIZE, 1)).astype("float32")
    path = tmp_path / "cyclegan.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, CycleGAN) and restored.lambda_cycle == 10.0
    for direction in ("a2b", "b2a"):
        np.testing.assert_allclose(
            restored.translate(images, direction), model.translate(images, direction), atol=1e-6
        )
