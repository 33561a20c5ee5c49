"""Tests for medgen_tf.models.pix2pix: the paired upper reference."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from medgen_tf.models.cyclegan import build_patchgan_discriminator, build_resnet_generator
from medgen_tf.models.pix2pix import Pix2Pix

SIZE = 32


def _paired_dataset():
    rng = np.random.default_rng(0)
    images_a = rng.uniform(-1, 1, (4, SIZE, SIZE, 1)).astype("float32")
    # A learnable pairing: b is an intensity inversion of a.
    return tf.data.Dataset.from_tensor_slices((images_a, -0.5 * images_a)).batch(4)


def _model(adversarial, **kwargs):
    keras.utils.set_random_seed(0)
    generator = build_resnet_generator(SIZE, 1, base_filters=4, num_residual_blocks=1)
    discriminator = build_patchgan_discriminator(SIZE, 2, base_filters=4) if adversarial else None
    return Pix2Pix(generator, discriminator, **kwargs)


@pytest.mark.parametrize("adversarial", [False, True])
def test_fit_lowers_the_l1_loss_to_the_paired_target(adversarial):
    model = _model(adversarial)
    model.compile(generator_optimizer=keras.optimizers.Adam(2e-3))
    history = model.fit(_paired_dataset(), epochs=8, verbose=0).history
    assert history["l1_loss"][-1] < history["l1_loss"][0]
    assert ("d_loss" in history) == adversarial
    assert all(np.isfinite(v[-1]) for v in history.values())
    assert len(model.optimizers) == (2 if adversarial else 1)
    assert model.translate(np.zeros((2, SIZE, SIZE, 1), "float32")).shape == (2, SIZE, SIZE, 1)


def test_translating_no_images_gives_an_empty_batch_of_the_outputs_shape_and_dtype():
    # Keras' predict raised an UnboundLocalError ('batch_outputs') on zero images.
    model = _model(adversarial=False)
    full = model.translate(np.zeros((2, SIZE, SIZE, 1), "float32"))
    empty = model.translate(np.zeros((0, SIZE, SIZE, 1), "float32"))
    assert type(empty) is type(full) is np.ndarray
    assert (empty.shape, empty.dtype) == ((0, *full.shape[1:]), full.dtype)


def test_compile_leaves_no_idle_keras_optimizer_and_takes_optimizer_names():
    model = _model(adversarial=True)
    model.compile(generator_optimizer="adam", discriminator_optimizer="sgd")
    assert model.optimizer is None
    assert isinstance(model.discriminator_optimizer, keras.optimizers.SGD)
    with pytest.raises(ValueError, match="pass generator_optimizer and discriminator_optimizer"):
        model.compile(optimizer="adam")


@pytest.mark.parametrize("name", ["generator_optimizer", "discriminator_optimizer"])
def test_compile_refuses_an_optimizer_built_for_another_model_and_takes_back_its_own(name):
    # It was accepted, and the first step failed with Keras' "Unknown variable".
    first, second = _model(adversarial=True), _model(adversarial=True)
    first.compile()
    with pytest.raises(ValueError, match=f"Pix2Pix: {name} is already built for other"):
        second.compile(**{name: getattr(first, name)})
    first.compile(first.generator_optimizer, first.discriminator_optimizer)
    first.fit(_paired_dataset(), epochs=1, verbose=0, shuffle=False)
    assert [int(optimizer.iterations) for optimizer in first.optimizers] == [1, 1]


def test_float16_networks_get_loss_scaling_whatever_the_policy_at_compile():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _model(adversarial=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile()
    assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in model.optimizers)


def _network_weights(model):
    networks = [model.generator] + ([model.discriminator] if model.discriminator else [])
    return {
        f"{network.name}/{variable.path}": keras.ops.convert_to_numpy(variable)
        for network in networks
        for variable in network.weights
    }


@pytest.mark.parametrize("adversarial", [False, True])
def test_keras_file_round_trip(tmp_path, adversarial):
    # l1_weight away from its default of 100: a config that dropped it (or wrote 100) would
    # come back as another model.
    model = _model(adversarial, l1_weight=25.0)
    model.compile()
    # One step first, so no weight is a freshly initialised network's.
    model.fit(_paired_dataset(), epochs=1, verbose=0)
    config = model.get_config()
    assert config["l1_weight"] == 25.0
    path = tmp_path / "pix2pix.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is Pix2Pix and restored.l1_weight == 25.0
    assert (restored.discriminator is not None) == adversarial
    assert set(restored.trackers) == set(model.trackers)
    # Every configuration entry, the networks' included (JSON: tuples read as lists).
    assert json.loads(json.dumps(restored.get_config())) == json.loads(json.dumps(config))
    ours, theirs = _network_weights(restored), _network_weights(model)
    assert list(ours) == list(theirs)
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)
    images = np.random.default_rng(2).uniform(-1, 1, (2, SIZE, SIZE, 1)).astype("float32")
    np.testing.assert_allclose(restored.translate(images), model.translate(images), atol=1e-6)


def test_a_discriminator_built_for_the_wrong_channels_is_refused():
    generator = build_resnet_generator(SIZE, 1, base_filters=4, num_residual_blocks=1)
    # Built for the target alone, not for the input and target stacked.
    with pytest.raises(ValueError, match=r"channel count \(1\) differs .* target \(2\)"):
        Pix2Pix(generator, build_patchgan_discriminator(SIZE, 1, base_filters=4))


@pytest.mark.parametrize("adversarial", [False, True])
def test_compiled_keras_round_trip_restores_the_optimizers_and_trains_on(
    tmp_path, adversarial, load_compiled, assert_optimizer_state_equal
):
    model = _model(adversarial)
    model.compile(
        generator_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.3),
        discriminator_optimizer=keras.optimizers.Adam(5e-5, beta_1=0.4) if adversarial else None,
        steps_per_execution=2,
    )
    model.fit(_paired_dataset(), epochs=1, verbose=0)
    path = tmp_path / "pix2pix.keras"
    model.save(path)
    # Keras warns "compile() was not called as part of model loading" without the fix.
    restored = load_compiled(path)
    assert restored.steps_per_execution == 2
    assert restored.discriminator_optimizer is None or adversarial
    settings = [(1e-3, 0.3), (5e-5, 0.4)][: len(model.optimizers)]
    pairs = zip(restored.optimizers, model.optimizers, settings, strict=True)
    for ours, theirs, (learning_rate, beta_1) in pairs:
        assert type(ours) is keras.optimizers.Adam
        assert ours.get_config()["learning_rate"] == pytest.approx(learning_rate)
        assert ours.get_config()["beta_1"] == pytest.approx(beta_1)
        # The state comes back too: step count and Adam's moments.
        assert_optimizer_state_equal(ours, theirs, iterations=1)
    history = restored.fit(_paired_dataset(), epochs=1, verbose=0).history
    assert all(np.isfinite(values[-1]) for values in history.values())
    assert [int(optimizer.iterations) for optimizer in restored.optimizers] == [2] * len(settings)


@pytest.mark.parametrize("adversarial", [False, True])
def test_evaluate_reports_the_training_losses_and_changes_nothing(adversarial, unchanged_by):
    model = _model(adversarial)
    model.compile()
    history = model.fit(
        _paired_dataset(), validation_data=_paired_dataset(), epochs=1, verbose=0
    ).history
    names = set(model.trackers)
    assert set(history) == names | {f"val_{name}" for name in names}
    state = model.variables + [v for optimizer in model.optimizers for v in optimizer.variables]
    results = unchanged_by(
        lambda: model.evaluate(_paired_dataset(), verbose=0, return_dict=True), state
    )
    assert set(results) == names
    assert all(np.isfinite(value) for value in results.values())
    images_a, images_b = next(iter(_paired_dataset()))
    l1 = np.abs(model.translate(images_a.numpy()) - images_b.numpy()).mean()
    assert results["l1_loss"] == pytest.approx(l1, rel=1e-5)
    if not adversarial:
        assert results["g_loss"] == pytest.approx(100.0 * l1, rel=1e-5)
        return
    # By hand, not read back from the results: D judges (input, target) pairs stacked in that
    # order, the generator's loss is softplus(-D), D's is half the sum of its two terms.
    fake_b = model.translate(images_a.numpy())

    def logits(target):
        pair = np.concatenate([images_a.numpy(), target], axis=-1)
        return keras.ops.convert_to_numpy(model.discriminator(pair, training=False))

    fake_logits, real_logits = logits(fake_b), logits(images_b.numpy())
    adversarial_loss = np.logaddexp(0.0, -fake_logits).mean()
    assert results["g_adversarial_loss"] == pytest.approx(adversarial_loss, rel=1e-5)
    assert results["g_loss"] == pytest.approx(100.0 * l1 + adversarial_loss, rel=1e-5)
    d_loss = 0.5 * (np.logaddexp(0.0, -real_logits).mean() + np.logaddexp(0.0, fake_logits).mean())
    assert results["d_loss"] == pytest.approx(d_loss, rel=1e-5)


def test_a_training_step_reports_the_losses_of_the_networks_it_started_with():
    # Only test_step was checked by value: a training step whose D judged (target, input)
    # pairs, or took the real pairs for fakes, passed. Instance norm only, so training=True
    # and False agree, and every logged loss comes from the networks before the step.
    model = _model(adversarial=True)
    model.compile()
    images_a, images_b = (batch.numpy() for batch in next(iter(_paired_dataset())))
    fake_b = model.translate(images_a)

    def logits(target):
        pair = np.concatenate([images_a, target], axis=-1)
        return keras.ops.convert_to_numpy(model.discriminator(pair, training=False))

    fake_logits, real_logits = logits(fake_b), logits(images_b)
    l1 = np.abs(fake_b - images_b).mean()
    adversarial = np.logaddexp(0.0, -fake_logits).mean()
    d_loss = 0.5 * (np.logaddexp(0.0, -real_logits).mean() + np.logaddexp(0.0, fake_logits).mean())
    logs = model.train_step((tf.constant(images_a), tf.constant(images_b)))
    expected = {
        "l1_loss": l1,
        "g_adversarial_loss": adversarial,
        "g_loss": 100.0 * l1 + adversarial,
        "d_loss": d_loss,
    }
    for name, value in expected.items():
        assert float(logs[name]) == pytest.approx(value, rel=1e-4), name


def test_pairs_without_a_channel_axis_are_refused_rather_than_broadcast():
    # The generator would add the axis to its input, and the L1 term would then compare
    # (N, H, W) targets with (N, H, W, 1) outputs: a wrong number, and no error.
    model = _model(adversarial=False)
    model.compile()
    images = np.zeros((4, SIZE, SIZE), "float32")
    with pytest.raises(ValueError, match=r"Pix2Pix expects input images of shape \(batch, h"):
        model.fit(tf.data.Dataset.from_tensor_slices((images, images)).batch(4), verbose=0)
    with pytest.raises(ValueError, match="compile takes no loss="):
        model.compile(loss="mae")


def test_a_negative_l1_weight_is_refused():
    for weight in (-1.0, float("nan"), float("inf"), None, "100"):
        with pytest.raises(ValueError, match="l1_weight must be finite and >= 0"):
            _model(adversarial=False, l1_weight=weight)
    assert _model(adversarial=False, l1_weight=0.0).l1_weight == 0.0


@pytest.mark.parametrize("adversarial", [False, True])
def test_pairs_of_different_batch_sizes_are_refused_in_one_line(adversarial):
    # They failed inside the graph with "Dimensions must be equal, but are 3 and 2 ...".
    model = _model(adversarial)
    model.compile()
    images = np.zeros((6, SIZE, SIZE, 1), "float32")
    pairs = tf.data.Dataset.zip(
        (
            tf.data.Dataset.from_tensor_slices(images).batch(3, drop_remainder=True),
            tf.data.Dataset.from_tensor_slices(images).batch(2, drop_remainder=True),
        )
    )
    with pytest.raises(
        ValueError, match="pairs, one target per input: got batches of 3 inp"
    ) as caught:
        model.fit(pairs, epochs=1, verbose=0)
    assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize("adversarial", [False, True])
def test_from_config_leaves_the_callers_config_whole(adversarial):
    model = _model(adversarial)
    config = model.get_config()
    before = json.dumps(config)
    first, second = (Pix2Pix.from_config(config) for _ in range(2))
    assert json.dumps(config) == before
    assert json.dumps(first.get_config()) == json.dumps(second.get_config()) == before


@pytest.mark.parametrize("adversarial", [False, True])
def test_targets_that_do_not_match_the_generators_output_are_refused(adversarial):
    # A 3-channel target broadcast against the 1-channel output inside the L1 term: without a
    # discriminator the model trained on a wrong loss and raised nothing.
    model = _model(adversarial)
    model.compile()
    inputs = np.zeros((4, SIZE, SIZE, 1), "float32")
    for targets in (np.zeros((4, SIZE, SIZE, 3), "float32"), np.zeros((4, 16, 16, 1), "float32")):
        with pytest.raises(ValueError, match=r"target images of shape .* do not match") as caught:
            model.fit(inputs, targets, batch_size=2, epochs=1, verbose=0)
        assert len(str(caught.value).splitlines()) == 1
        assert str((SIZE, SIZE, 1)) in str(caught.value)


@pytest.mark.parametrize("as_dataset", [False, True], ids=["arrays", "dataset"])
def test_inputs_of_another_size_than_the_generator_are_one_line(as_dataset):
    model = _model(adversarial=True)
    model.compile()
    inputs = np.zeros((4, 24, 24, 1), "float32")
    targets = np.zeros((4, SIZE, SIZE, 1), "float32")
    with pytest.raises(ValueError) as caught:
        if as_dataset:
            pairs = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(2)
            model.fit(pairs, epochs=1, verbose=0)
        else:
            model.fit(inputs, targets, batch_size=2, epochs=1, verbose=0)
    message = str(caught.value)
    assert message.startswith(f"Pix2Pix expects input images of shape (batch, {SIZE}, {SIZE}, 1)")
    assert "\n" not in message


def test_numpy_pairs_holding_nan_or_8_bit_values_are_refused():
    model = _model(adversarial=False)
    model.compile()
    images = np.zeros((4, SIZE, SIZE, 1), "float32")
    with pytest.raises(ValueError, match=r"Pix2Pix.fit x and y: target images hold NaN"):
        model.fit(images, np.full_like(images, np.nan), batch_size=2, epochs=1, verbose=0)
    with pytest.raises(
        ValueError, match=r"Pix2Pix.fit x and y: input images must lie in \[-1, 1\]"
    ):
        model.fit(images + 200.0, images, batch_size=2, epochs=1, verbose=0)


def test_translate_takes_the_resize_overshoot_that_fit_trains_on():
    # fit takes images up to a quarter of the range's width outside [-1, 1] (a bicubic resize
    # overshoots to 1.26); translate refused them with a 1 % slack.
    model = _model(adversarial=False)
    model.compile()
    overshoot = np.full((2, SIZE, SIZE, 1), 1.2, "float32")
    model.fit(overshoot, overshoot, batch_size=2, epochs=1, verbose=0)
    assert model.translate(overshoot).shape == (2, SIZE, SIZE, 1)
    with pytest.raises(ValueError, match=r"got values from 1\.6 to 1\.6; scale them first"):
        model.translate(overshoot + 0.4)
