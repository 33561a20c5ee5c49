"""Tests for medgen_tf.models.cyclegan: architectures, image pool, schedule, training step."""

import doctest
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from medgen_tf.models.cyclegan import (
    OPTIMIZER_NAMES,
    CycleGAN,
    ImagePool,
    LinearDecayAfterHalf,
    build_patchgan_discriminator,
    build_resnet_generator,
    check_image_size,
    default_optimizers,
)
from medgen_tf.models.layers import FusedAdam

SIZE = 32


def _count_residual_blocks(model):
    return sum(1 for layer in model.layers if isinstance(layer, keras.layers.Add))


def _small_cyclegan(size=SIZE, pool_size=4, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return CycleGAN(
        build_resnet_generator(size, 1, base_filters=4, num_residual_blocks=1, name="g_ab"),
        build_resnet_generator(size, 1, base_filters=4, num_residual_blocks=1, name="g_ba"),
        build_patchgan_discriminator(size, 1, base_filters=4, name="d_a"),
        build_patchgan_discriminator(size, 1, base_filters=4, name="d_b"),
        pool_size=pool_size,
        seed=seed,
        **kwargs,
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
    generator = build_resnet_generator(256, channels=3, base_filters=64)
    discriminator = build_patchgan_discriminator(256, channels=3, base_filters=64)
    assert _count_residual_blocks(generator) == 9
    assert generator.count_params() == 11_378_179
    assert discriminator.count_params() == 2_764_737


@pytest.mark.parametrize(
    ("size", "patch_side", "default_blocks"), [(64, 6, 6), (128, 14, 6), (256, 30, 9)]
)
def test_shapes_and_default_residual_blocks(size, patch_side, default_blocks):
    assert _count_residual_blocks(build_resnet_generator(size, base_filters=1)) == default_blocks
    generator = build_resnet_generator(size, channels=2, base_filters=4, num_residual_blocks=1)
    discriminator = build_patchgan_discriminator(size, channels=2, base_filters=4)
    images = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 2)).astype("float32")
    translated = keras.ops.convert_to_numpy(generator(images))
    assert translated.shape == (2, size, size, 2)
    assert translated.dtype == np.float32 and np.abs(translated).max() <= 1.0
    logits = discriminator(images)
    assert logits.shape == (2, patch_side, patch_side, 1) and logits.dtype == "float32"


def test_the_builders_take_base_filters_as_the_gan_and_vae_builders_do():
    # One name for the first layer's width across the package: the old ``filters`` is gone.
    generator = build_resnet_generator(24, base_filters=2, num_residual_blocks=1)
    assert generator.get_layer("c7s1").filters == 2 and generator.get_layer("down_1").filters == 8
    assert build_patchgan_discriminator(24, base_filters=2).get_layer("c0").filters == 2
    with pytest.raises(TypeError, match="unexpected keyword argument 'filters'"):
        build_resnet_generator(24, filters=2)
    with pytest.raises(TypeError, match="unexpected keyword argument 'filters'"):
        build_patchgan_discriminator(24, filters=2)


def test_patchgan_refuses_images_too_small_for_its_convolutions():
    with pytest.raises(ValueError, match="image_size=16 is too small for the PatchGAN.*24"):
        build_patchgan_discriminator(16, base_filters=2)
    smallest = build_patchgan_discriminator(24, base_filters=2)
    assert smallest(np.zeros((1, 24, 24, 1), "float32")).shape == (1, 1, 1, 1)


def test_generator_rejects_sizes_it_cannot_halve_twice():
    with pytest.raises(ValueError, match=r"generator: it must be a multiple of 4 \(two stride-2"):
        build_resnet_generator(30)
    # Reflection padding needs more pixels than it adds: 1 on the quarter-size residual map.
    with pytest.raises(ValueError, match="image_size=4 .* a multiple of 4 .* and at least 8"):
        build_resnet_generator(4, base_filters=1, num_residual_blocks=1)
    assert build_resnet_generator(4, base_filters=1, num_residual_blocks=0).output_shape[1] == 4
    assert build_resnet_generator(8, base_filters=1, num_residual_blocks=1).output_shape[1] == 8


@pytest.mark.parametrize("size", [16, 18, 20, 22, 30])
def test_check_image_size_states_cyclegans_whole_rule_and_builds_nothing(size):
    # Whichever rule a size breaks (18, 22, 30: the generator's multiple of 4; 16, 20: the
    # PatchGAN's 24), the message states both, not one at a time. (0 and other sides that are
    # no positive int: test_layers.py, as for every builder.)
    uid = keras.backend.get_uid("probe")
    with pytest.raises(ValueError) as refused:
        check_image_size(size)
    assert str(refused.value) == (
        f"image_size={size} is not supported: it must be a multiple of 4 and at least 24."
    )
    assert keras.backend.get_uid("probe") == uid + 1  # no layer named in between


@pytest.mark.parametrize("size", [24, 28, 64, 132])
def test_check_image_size_passes_the_sizes_both_networks_build(size):
    check_image_size(size)
    build_resnet_generator(size, base_filters=1)
    build_patchgan_discriminator(size, base_filters=1)


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


def test_negative_pool_size_is_refused():
    with pytest.raises(ValueError, match="pool_size must be a whole number >= 0, got -1"):
        ImagePool(pool_size=-1, image_shape=(2, 2, 1))
    with pytest.raises(ValueError, match="pool_size must be a whole number >= 0, got -2"):
        _small_cyclegan(pool_size=-2)


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


def test_two_swaps_into_one_slot_keep_the_later_image_and_lose_no_other():
    pool = ImagePool(pool_size=1, image_shape=(2, 2, 1), seed=0)
    pool(_labelled_images([1]))
    # With one slot every swap draws it: both swapped images return 1, the later one stays.
    for step in range(20):
        new = [10 * step + 2, 10 * step + 3]
        stored = int(_labels(pool.images.numpy())[0])
        returned = list(_labels(pool(_labelled_images(new))))
        swapped = [label for label, back in zip(new, returned, strict=True) if back != label]
        assert all(back in (label, stored) for label, back in zip(new, returned, strict=True))
        assert int(_labels(pool.images.numpy())[0]) == (swapped[-1] if swapped else stored)


def test_a_cyclegan_step_compiles_with_xla():
    # jit_compile="auto" picks XLA on a GPU; a pool built on boolean_mask (shapes known only
    # at run time) failed to compile there ("Dynamic input unexpectedly found").
    model = _small_cyclegan()
    model.compile(jit_compile=True)
    history = model.fit(_unpaired_dataset(batch_size=1), epochs=2, verbose=0).history
    assert all(np.isfinite(values[-1]) for values in history.values())
    assert int(model.pool_a.num_stored.numpy()) == 4


def test_image_pools_under_mirrored_strategy_are_per_replica_and_draw_their_own_swaps(
    two_cpu_python,
):
    stdout = two_cpu_python(
        """
        from medgen_tf.models.cyclegan import ImagePool
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            pool = ImagePool(4, (2, 2, 1), seed=0)
        step = tf.function(lambda images: pool(images))

        def batches(value):  # replica r gets 8 images of value + r
            return strategy.experimental_distribute_values_from_function(
                lambda context: tf.fill((8, 2, 2, 1), value + context.replica_id_in_sync_group)
            )

        strategy.run(step, args=(batches(0.0),))  # fills both pools
        returned = strategy.run(step, args=(batches(10.0),))
        first, second = [t.numpy()[:, 0, 0, 0] for t in strategy.experimental_local_results(returned)]
        print(" ".join(str(int(v)) for v in np.concatenate([first, second])))
        """
    )
    first, second = np.array(stdout.split()[-16:], dtype=int).reshape(2, 8)
    # Each replica's pool holds its own fakes: a swapped image comes from its own replica.
    assert set(first) <= {0, 10} and set(second) <= {1, 11}
    assert 0 < (first == 0).sum() < 8 and 0 < (second == 1).sum() < 8
    # ... and the replicas swap different positions (one shared draw swapped the same ones).
    assert not np.array_equal(first == 0, second == 1)


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


def test_schedule_refuses_a_decay_start_outside_the_run_and_its_example_is_true():
    with pytest.raises(ValueError, match=r"decay_start_step must be in \[0, total_steps=10\]"):
        LinearDecayAfterHalf(1.0, total_steps=10, decay_start_step=11)
    with pytest.raises(ValueError, match=r"decay_start_step must be a whole number >= 0, got -1"):
        LinearDecayAfterHalf(1.0, total_steps=10, decay_start_step=-1)
    assert float(LinearDecayAfterHalf(1.0, total_steps=10, decay_start_step=0)(5)) == 0.5
    assert float(LinearDecayAfterHalf(1.0, total_steps=10, decay_start_step=10)(9)) == 1.0
    runner = doctest.DocTestRunner()
    finder = doctest.DocTestFinder()
    globs = {"LinearDecayAfterHalf": LinearDecayAfterHalf}
    for test in finder.find(LinearDecayAfterHalf, "LinearDecayAfterHalf", globs=globs):
        runner.run(test)
    assert runner.summarize(verbose=False) == (0, 3)


def test_schedule_needs_the_length_of_the_run():
    # A default of one step used to make the rate 0 from step 1 on.
    for total_steps in (None, 0):
        with pytest.raises(
            ValueError, match=r"total_steps \(the run's optimizer steps\) must be a"
        ):
            LinearDecayAfterHalf(2e-4, total_steps=total_steps)
    assert float(LinearDecayAfterHalf(2e-4, 4)(1)) == pytest.approx(2e-4)


@pytest.mark.parametrize(
    "arguments, problem",
    [
        (dict(total_steps=2.9), "total_steps .* got 2.9"),
        (dict(total_steps=True), "total_steps .* got True"),
        (dict(total_steps=10, decay_start_step=2.5), r"decay_start_step .* got 2.5"),
        (dict(total_steps=10, decay_start_step=True), r"decay_start_step .* got True"),
        (dict(total_steps=10, initial_learning_rate=-1e-4), "initial_learning_rate .* got -0.0001"),
        (dict(total_steps=10, initial_learning_rate=0.0), "initial_learning_rate .* got 0.0"),
        (dict(total_steps=10, initial_learning_rate=float("nan")), "initial_learning_rate .* nan"),
        (dict(total_steps=10, initial_learning_rate=float("inf")), "initial_learning_rate .* inf"),
        (dict(total_steps=10, initial_learning_rate="2e-4"), "initial_learning_rate .* '2e-4'"),
    ],
    ids=[
        "steps-2.9",
        "steps-True",
        "start-2.5",
        "start-True",
        "rate<0",
        "rate-0",
        "nan",
        "inf",
        "text",
    ],
)
def test_schedule_refuses_steps_that_are_not_whole_and_rates_that_do_not_train(arguments, problem):
    # int() made 2.9 steps into 2 and True into 1; a negative or NaN rate was taken as given.
    with pytest.raises(ValueError, match=f"^LinearDecayAfterHalf: {problem}") as caught:
        LinearDecayAfterHalf(**arguments)
    assert "\n" not in str(caught.value)
    # A numpy count is a count; the defaults are the paper's rate and a decay over the second half.
    assert LinearDecayAfterHalf(total_steps=np.int64(10)).get_config() == {
        "initial_learning_rate": 2e-4,
        "total_steps": 10,
        "decay_start_step": 5,
    }


def test_schedule_without_a_decay_phase_is_zero_from_total_steps_on():
    # Its docstring says the rate is 0 from total_steps on; with decay_start_step ==
    # total_steps the rate at total_steps was still the initial one.
    schedule = LinearDecayAfterHalf(2e-4, total_steps=10, decay_start_step=10)
    assert [float(schedule(step)) for step in (9, 10, 11)] == [pytest.approx(2e-4), 0.0, 0.0]


def test_default_optimizers_refuse_a_run_of_zero_steps_rather_than_drop_the_decay():
    # total_steps=0 was read as "no schedule": a constant rate, without a word.
    with pytest.raises(ValueError, match="total_steps .* got 0"):
        default_optimizers(total_steps=0)
    assert isinstance(default_optimizers()["generator_ab_optimizer"].learning_rate, keras.Variable)


def test_generators_of_unknown_image_size_are_refused_with_the_shapes():
    free_size = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(1, 3)])
    patchgan = build_patchgan_discriminator(None, 1, base_filters=4)
    with pytest.raises(ValueError, match=r"fixed image size .* \(None, None, 1\)"):
        CycleGAN(free_size, free_size, patchgan, patchgan)


def test_compile_leaves_no_idle_keras_optimizer_and_takes_optimizer_names():
    model = _small_cyclegan()
    model.compile(generator_ab_optimizer="adam")
    # Keras' default would be an RMSprop no step uses, which LR callbacks would adjust.
    assert model.optimizer is None
    assert isinstance(model.generator_ab_optimizer, keras.optimizers.Adam)
    assert model.generator_ab_optimizer.built
    with pytest.raises(ValueError, match="four networks: pass generator_ab_optimizer"):
        model.compile(optimizer="adam")
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, rate: 0.0)
    with pytest.raises(ValueError, match="learning_rate"):
        model.fit(_unpaired_dataset(), epochs=1, verbose=0, shuffle=False, callbacks=[scheduler])


def test_compile_refuses_an_optimizer_built_for_another_model_and_takes_back_its_own():
    # It was accepted, and the first step failed with Keras' "Unknown variable".
    first, second = _small_cyclegan(), _small_cyclegan()
    optimizers = default_optimizers()
    first.compile(**optimizers)
    with pytest.raises(ValueError, match="CycleGAN: discriminator_b_optimizer is already built"):
        second.compile(discriminator_b_optimizer=optimizers["discriminator_b_optimizer"])
    first.compile(**dict(zip(OPTIMIZER_NAMES, first.optimizers, strict=True)))
    first.fit(_unpaired_dataset(count=2), epochs=1, verbose=0, shuffle=False)
    assert [int(optimizer.iterations) for optimizer in first.optimizers] == [1, 1, 1, 1]


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


def _record_generator_batches(model):
    """The batch size of every generator call, in order."""
    sizes = []
    for network in (model.generator_ab, model.generator_ba):
        original_call = network.call

        def recording_call(images, *args, _call=original_call, **kwargs):
            sizes.append(int(images.shape[0]))
            return _call(images, *args, **kwargs)

        network.call = recording_call
    return sizes


def _batch_norm_generator(name):
    images = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(4, 3, padding="same")(images)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(images, keras.layers.Conv2D(1, 3, padding="same")(x), name=name)


@pytest.mark.parametrize(
    ("identity_weight", "batch_norm", "generator_batches"),
    [(0.5, False, [4, 4, 2, 2]), (0.0, False, [2, 2, 2, 2]), (0.5, True, [2, 2, 2, 2, 2, 2])],
    ids=["identity", "no-identity", "identity-batch-norm"],
)
def test_identity_passes_run_only_when_the_identity_loss_counts(
    identity_weight, batch_norm, generator_batches
):
    model = _small_cyclegan(identity_weight=identity_weight)
    if batch_norm:
        model = CycleGAN(
            _batch_norm_generator("g_ab"),
            _batch_norm_generator("g_ba"),
            model.discriminator_a,
            model.discriminator_b,
            pool_size=4,
            seed=0,
        )
    model.compile()
    sizes = _record_generator_batches(model)
    real_a, real_b = next(iter(_unpaired_dataset()))
    logs = model.train_step((real_a, real_b))
    # G_ab(a) and G_ab(b) for the identity loss in one pass of 4 (G_ba alike), then the two
    # cycles; without the identity loss no identity pass; with batch norm one pass each.
    assert sizes == generator_batches
    assert model.joint_generator_passes is not batch_norm
    assert all(np.isfinite(float(value)) for value in logs.values())
    if identity_weight == 0.0:
        assert float(logs["identity_loss"]) == 0.0
    else:
        assert float(logs["identity_loss"]) > 0.0


def test_identity_weight_zero_trains_through_fit_and_reports_zero_identity_loss():
    model = _small_cyclegan(pool_size=2, identity_weight=0.0)
    model.compile()
    history = model.fit(_unpaired_dataset(), epochs=1, verbose=0).history
    assert history["identity_loss"] == [0.0]
    assert all(np.isfinite(values[-1]) for values in history.values())


def test_compiled_keras_round_trip_restores_the_four_optimizers_and_schedules(
    tmp_path, load_compiled, assert_optimizer_state_equal
):
    model = _small_cyclegan(pool_size=2)
    model.compile(**default_optimizers(total_steps=10, learning_rate=3e-4), steps_per_execution=2)
    model.fit(_unpaired_dataset(), epochs=1, steps_per_epoch=2, verbose=0)  # one execution
    path = tmp_path / "cyclegan.keras"
    model.save(path)
    # Keras warns "compile() was not called as part of model loading" without the fix.
    restored = load_compiled(path)
    assert restored.steps_per_execution == 2
    expected = {"initial_learning_rate": 3e-4, "total_steps": 10, "decay_start_step": 5}
    for ours, theirs in zip(restored.optimizers, model.optimizers, strict=True):
        assert type(ours) is FusedAdam and ours.beta_1 == 0.5
        assert isinstance(ours._learning_rate, LinearDecayAfterHalf)
        assert ours._learning_rate.get_config() == pytest.approx(expected)
        # Keras restores the optimizer state too: step count and Adam's moments.
        assert_optimizer_state_equal(ours, theirs, iterations=2)
    restored.fit(_unpaired_dataset(), epochs=1, steps_per_epoch=2, verbose=0)
    assert [int(optimizer.iterations) for optimizer in restored.optimizers] == [4, 4, 4, 4]


def test_evaluate_and_validation_report_the_training_losses_and_change_nothing(unchanged_by):
    model = _small_cyclegan(pool_size=2)
    model.compile()
    history = model.fit(
        _unpaired_dataset(), validation_data=_unpaired_dataset(), epochs=1, verbose=0
    ).history
    names = set(model.trackers)
    assert set(history) == names | {f"val_{name}" for name in names}
    # The pools and their seed states included: evaluation draws nothing from them.
    state = model.variables + [v for optimizer in model.optimizers for v in optimizer.variables]
    results = unchanged_by(
        lambda: model.evaluate(_unpaired_dataset(), verbose=0, return_dict=True), state
    )
    assert set(results) == names
    assert all(np.isfinite(value) for value in results.values())
    assert results["identity_loss"] > 0 and results["d_a_loss"] > 0
    batches = list(_unpaired_dataset().as_numpy_iterator())
    images_a = np.concatenate([batch_a for batch_a, _ in batches])
    images_b = np.concatenate([batch_b for _, batch_b in batches])
    cycled_a = model.translate(model.translate(images_a, "a2b"), "b2a")
    cycled_b = model.translate(model.translate(images_b, "b2a"), "a2b")
    cycle = np.abs(cycled_a - images_a).mean() + np.abs(cycled_b - images_b).mean()
    assert results["cycle_loss"] == pytest.approx(cycle, rel=1e-5)
    # The other terms by hand too: "> 0" alone let an identity loss on the wrong domain
    # (|G_ab(a) - a|), a dropped identity weight or a D_a judged on G_ab's fakes through.
    fake_b, fake_a = model.translate(images_a, "a2b"), model.translate(images_b, "b2a")
    identity = np.abs(model.translate(images_b, "a2b") - images_b).mean()
    identity += np.abs(model.translate(images_a, "b2a") - images_a).mean()
    assert results["identity_loss"] == pytest.approx(identity, rel=1e-5)

    def logits(discriminator, images):
        return keras.ops.convert_to_numpy(discriminator(images, training=False))

    d_a_fake, d_b_fake = (
        logits(model.discriminator_a, fake_a),
        logits(model.discriminator_b, fake_b),
    )
    adversarial = np.mean((d_b_fake - 1) ** 2) + np.mean((d_a_fake - 1) ** 2)
    assert results["g_adversarial_loss"] == pytest.approx(adversarial, rel=1e-5)
    g_loss = adversarial + 10.0 * cycle + 0.5 * 10.0 * identity
    assert results["g_loss"] == pytest.approx(g_loss, rel=1e-5)
    for name, discriminator, real, fake_logits in (
        ("d_a_loss", model.discriminator_a, images_a, d_a_fake),
        ("d_b_loss", model.discriminator_b, images_b, d_b_fake),
    ):
        d_loss = 0.5 * (np.mean((logits(discriminator, real) - 1) ** 2) + np.mean(fake_logits**2))
        assert results[name] == pytest.approx(d_loss, rel=1e-5), name


def test_a_training_step_reports_the_losses_of_the_networks_it_started_with():
    # With no pool (size 0) each D judges this step's fakes, so the step's D losses can be
    # computed by hand from the networks before the step (instance norm only: training=True
    # and False agree). Only test_step was checked by value: D_a trained on G_ab's fakes
    # (the pools swapped) or on real B slices passed every test.
    model = _small_cyclegan(pool_size=0)
    model.compile()
    real_a, real_b = (batch.numpy() for batch in next(iter(_unpaired_dataset())))

    def run(network, images):
        return keras.ops.convert_to_numpy(network(images, training=False)).astype("float64")

    fake_b, fake_a = run(model.generator_ab, real_a), run(model.generator_ba, real_b)
    d_a_fake = run(model.discriminator_a, fake_a.astype("float32"))
    d_b_fake = run(model.discriminator_b, fake_b.astype("float32"))
    expected = {
        "d_a_loss": 0.5
        * (np.mean((run(model.discriminator_a, real_a) - 1) ** 2) + np.mean(d_a_fake**2)),
        "d_b_loss": 0.5
        * (np.mean((run(model.discriminator_b, real_b) - 1) ** 2) + np.mean(d_b_fake**2)),
        "g_adversarial_loss": np.mean((d_b_fake - 1) ** 2) + np.mean((d_a_fake - 1) ** 2),
        # Each generator's identity pass shares its translation's pass: same values as alone.
        "identity_loss": np.mean(np.abs(run(model.generator_ab, real_b) - real_b))
        + np.mean(np.abs(run(model.generator_ba, real_a) - real_a)),
        "cycle_loss": np.mean(np.abs(run(model.generator_ba, fake_b.astype("float32")) - real_a))
        + np.mean(np.abs(run(model.generator_ab, fake_a.astype("float32")) - real_b)),
    }
    logs = model.train_step((real_a, real_b))
    for name, value in expected.items():
        assert float(logs[name]) == pytest.approx(value, rel=1e-4), name


def test_pool_random_state_survives_keras_and_weights_files_and_old_files_still_load(
    tmp_path, strip_seed_states
):
    model = _small_cyclegan(pool_size=2, seed=0)
    images = np.random.default_rng(2).uniform(-1, 1, (3, SIZE, SIZE, 1)).astype("float32")
    for _ in range(2):  # fills the pools, then swaps: both draw from the seed generators
        model.pool_a(images)
        model.pool_b(images)
    pools = (model.pool_a, model.pool_b)
    states = [pool.seed_generator.state.numpy().copy() for pool in pools]
    model.save(tmp_path / "cyclegan.keras")
    model.save_weights(tmp_path / "cyclegan.weights.h5")
    restored = keras.saving.load_model(tmp_path / "cyclegan.keras")
    other = _small_cyclegan(pool_size=2, seed=0)
    other.load_weights(tmp_path / "cyclegan.weights.h5")
    for loaded in (restored, other):
        for pool, original, state in zip(
            (loaded.pool_a, loaded.pool_b), pools, states, strict=True
        ):
            np.testing.assert_array_equal(pool.seed_generator.state.numpy(), state)
            np.testing.assert_array_equal(pool.images.numpy(), original.images.numpy())
            assert int(pool.num_stored.numpy()) == 2
    # The next random choices are the same as the original pool's.
    np.testing.assert_array_equal(restored.pool_a(images), model.pool_a(images))
    assert len(strip_seed_states(tmp_path / "cyclegan.weights.h5")) == 2
    fresh = _small_cyclegan(pool_size=2, seed=0)
    initial = fresh.pool_a.seed_generator.state.numpy().copy()
    fresh.load_weights(tmp_path / "cyclegan.weights.h5")
    np.testing.assert_array_equal(fresh.pool_a.seed_generator.state.numpy(), initial)
    np.testing.assert_array_equal(fresh.pool_b.images.numpy(), other.pool_b.images.numpy())


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
    model.compile()  # under float32 now: the networks' float16 layers decide
    assert all(isinstance(o, keras.optimizers.LossScaleOptimizer) for o in model.optimizers)
    float32_model = _small_cyclegan()
    float32_model.compile()
    assert all(type(o) is FusedAdam for o in float32_model.optimizers)


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


def test_resume_through_the_engine_equals_an_uninterrupted_run(tmp_path):
    from medgen_tf.training import fit

    rng = np.random.default_rng(3)
    images_a = rng.uniform(-1, 1, (8, SIZE, SIZE, 1)).astype("float32")
    images_b = rng.uniform(-1, 1, (8, SIZE, SIZE, 1)).astype("float32")

    def build():
        model = _small_cyclegan(pool_size=2, seed=0)
        model.compile(**default_optimizers(total_steps=4))
        return model

    settings = dict(num_epochs=2, batch_size=4, seed=0, verbose=0, tensorboard=False)
    straight = fit(build, (images_a, images_b), tmp_path / "straight", **settings).model
    fit(build, (images_a, images_b), tmp_path / "resumed", **{**settings, "num_epochs": 1})
    resumed = fit(build, (images_a, images_b), tmp_path / "resumed", resume=True, **settings).model
    assert int(resumed.generator_ab_optimizer.iterations.numpy()) == 4
    # The pools' images and counters, the seed states and all four Adams' moments came back.
    for ours, theirs in zip(resumed.variables, straight.variables, strict=True):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5, err_msg=ours.path)
    # The schedule reached zero at the last step: lr(4) == 0.
    assert float(resumed.generator_ab_optimizer.learning_rate) == 0.0


def test_cli_trains_on_disjoint_subjects_then_translates_a_nifti_keeping_its_affine(
    tmp_path, capsys
):
    import json
    import re

    import nibabel as nib

    from medgen_tf import cli, recipes
    from medgen_tf.errors import DataError
    from medgen_tf.translation import translate_run

    run_dir = tmp_path / "run"
    arguments = ["train", "cyclegan", "--data-a", "brain:t1", "--data-b", "brain:t2"]
    arguments += [
        "--image-size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--identity-weight",
        "0",
        "--out",
        str(run_dir),
    ]
    assert cli.main(arguments) == 0
    assert json.loads((run_dir / "config.json").read_text())["config"]["identity_weight"] == 0.0
    # Trained with it, not only recorded: at 0 the identity term is not computed and logs 0.
    assert json.loads((run_dir / "history.json").read_text())["identity_loss"] == [0.0]
    assert cli.main([*arguments, "--resume", "--identity-weight", "0.5"]) == 2
    assert "identity_weight 0.5 (run: 0.0)" in capsys.readouterr().err
    domains = json.loads((run_dir / "config.json").read_text())["config"]["domains"]
    assert domains["subjects_a"] and domains["subjects_b"]
    assert not set(domains["subjects_a"]) & set(domains["subjects_b"])  # unpaired for real
    rng = np.random.default_rng(4)
    # An LPS-oriented, non-square, anisotropic volume: the output must keep all of that.
    volume = np.zeros((20, 26, 9), "float32")
    volume[4:16, 5:21, 1:8] = rng.uniform(100, 400, (12, 16, 7))
    affine = np.diag([-1.2, -0.9, 3.0, 1.0])
    affine[:3, 3] = [10.0, -20.0, 5.0]
    input_path = tmp_path / "subject_T1w.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), str(input_path))

    out_dir = tmp_path / "out"
    arguments = ["translate", str(run_dir), "--input", str(input_path), "--direction", "b2a"]
    assert cli.main([*arguments, "--out", str(out_dir)]) == 0
    written = sorted(out_dir.iterdir(), key=lambda path: path.suffix != ".gz")
    output = nib.load(str(written[0]))
    assert written[0].name == "subject_T1w_b2a.nii.gz" and written[1].suffix == ".png"
    np.testing.assert_allclose(output.affine, affine)
    data = output.get_fdata()
    assert data.shape == volume.shape and np.isfinite(data).all()
    assert 0.0 <= data.min() and data.max() <= 1.0
    with pytest.raises(DataError, match="no generator_ab.keras"):
        translate_run(tmp_path, str(input_path), out_dir=tmp_path / "out")
    # A run recorded before identity_weight was a setting trained with the paper's 0.5: a
    # resume asking for another weight is refused before anything is written.
    config_path = run_dir / "config.json"
    stored = json.loads(config_path.read_text())
    del stored["config"]["identity_weight"]
    config_path.write_text(json.dumps(stored))
    written = config_path.read_text()
    with pytest.raises(DataError, match=re.escape("identity_weight 0.0 (run: 0.5)")):
        recipes.train(
            "cyclegan",
            image_size=32,
            num_epochs=1,
            batch_size=16,
            identity_weight=0,
            run_dir=run_dir,
            resume=True,
            verbose=0,
        )
    assert config_path.read_text() == written


def test_translate_nifti_puts_every_voxel_back_where_it_came_from(tmp_path):
    import nibabel as nib

    from medgen_tf.data.nifti import normalize_intensity
    from medgen_tf.translation import translate_nifti

    # An identity "generator": the output must be the normalised input, in the input's layout.
    inputs = keras.Input((SIZE, SIZE, 1))
    identity = keras.Model(inputs, keras.layers.Identity()(inputs))
    volume = np.zeros((24, 30, 6), "float32")
    # Smooth content: resizing to the model's side and back must not be what the test measures.
    ramp = np.linspace(50, 300, 17)[:, None, None] + np.linspace(0, 100, 6)[None, None, :]
    volume[3:20, 8:27, :] = ramp
    volume[3:8, 8:12, :] = 600.0  # an asymmetric bright corner catches flips
    affine = np.diag([-1.0, 1.0, -2.0, 1.0])  # L, A, I: two axes flipped relative to RAS
    path = tmp_path / "volume.nii"
    nib.save(nib.Nifti1Image(volume, affine), str(path))
    out_path, _, _ = translate_nifti(identity, path, tmp_path / "identity.nii.gz")
    result = nib.load(str(out_path)).get_fdata()
    expected = (normalize_intensity(volume, (-1.0, 1.0)) + 1.0) / 2.0
    assert result.shape == volume.shape
    assert np.corrcoef(result.ravel(), expected.ravel())[0, 1] > 0.95
    assert np.abs(result - expected).mean() < 0.05


def test_unpaired_batches_of_another_form_are_one_line():
    model = _small_cyclegan()
    model.compile()
    images = np.zeros((4, SIZE, SIZE), "float32")
    cases = [
        (tf.data.Dataset.from_tensor_slices((images, images)), r"domain A images of shape \(b"),
        (tf.data.Dataset.from_tensor_slices(images[..., None]), r"batches of \(images_a, ima"),
        (tf.data.Dataset.from_tensor_slices({"t1": images, "t2": images}), "keys 't1', 't2'"),
    ]
    for dataset, message in cases:
        with pytest.raises(ValueError, match=message) as caught:
            model.fit(dataset.batch(2), epochs=1, verbose=0)
        assert len(str(caught.value).splitlines()) == 1


def _generator_pair(channels):
    """Two tiny ResNet generators, A -> B and B -> A, for SIZE-pixel images."""
    return tuple(
        build_resnet_generator(SIZE, channels, base_filters=4, num_residual_blocks=1, name=name)
        for name in ("g_ab", "g_ba")
    )


def test_networks_that_do_not_fit_together_are_refused_when_built():
    generator_ab, generator_ba = _generator_pair(channels=3)
    one_channel = build_patchgan_discriminator(SIZE, 1, base_filters=4, name="d_b")
    three_channels = build_patchgan_discriminator(SIZE, 3, base_filters=4, name="d_a")
    with pytest.raises(ValueError, match=r"g_ab makes images of shape \(32, 32, 3\) but d_b"):
        CycleGAN(generator_ab, generator_ba, three_channels, one_channel)
    model = CycleGAN(generator_ab, generator_ba, three_channels, three_channels)
    shared = keras.optimizers.Adam()
    with pytest.raises(ValueError, match="are the same optimizer object"):
        model.compile(generator_ab_optimizer=shared, generator_ba_optimizer=shared)


def test_an_empty_batch_passes_the_pool_unchanged_also_under_xla():
    # Under tf.distribute a replica gets no rows when the global batch is smaller than the
    # number of replicas; a gather from zero rows used to fail there.
    pool = ImagePool(pool_size=3, image_shape=(2, 2, 1), seed=0)
    pool(_labelled_images([1, 2]))
    empty = np.zeros((0, 2, 2, 1), "float32")
    assert pool(empty).shape == (0, 2, 2, 1)
    compiled = tf.function(pool.__call__, jit_compile=True)
    assert compiled(tf.constant(empty)).shape == (0, 2, 2, 1)
    assert int(pool.num_stored.numpy()) == 2
    np.testing.assert_array_equal(_labels(pool.images.numpy())[:2], [1, 2])


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_translating_no_images_gives_an_empty_batch_of_the_outputs_shape_and_dtype(direction):
    # Keras' predict raised an UnboundLocalError ('batch_outputs') on zero images.
    model = _small_cyclegan()
    full = model.translate(np.zeros((2, SIZE, SIZE, 1), "float32"), direction)
    empty = model.translate(np.zeros((0, SIZE, SIZE, 1), "float32"), direction)
    assert type(empty) is type(full) is np.ndarray
    assert (empty.shape, empty.dtype) == ((0, *full.shape[1:]), full.dtype)


def test_fully_convolutional_discriminators_of_any_size_are_accepted():
    generator_ab, generator_ba = _generator_pair(channels=1)
    any_size_a = build_patchgan_discriminator(None, 1, base_filters=4, name="d_a")
    any_size_b = build_patchgan_discriminator(None, 1, base_filters=4, name="d_b")
    model = CycleGAN(generator_ab, generator_ba, any_size_a, any_size_b, pool_size=2)
    model.compile()
    history = model.fit(_unpaired_dataset(count=2, batch_size=2), epochs=1, verbose=0).history
    assert all(np.isfinite(values[-1]) for values in history.values())
    three_channels = build_patchgan_discriminator(None, 3, base_filters=4, name="d_b3")
    with pytest.raises(ValueError, match=r"makes images of shape \(32, 32, 1\) but d_b3 takes"):
        CycleGAN(generator_ab, generator_ba, any_size_a, three_channels)


@pytest.mark.parametrize(
    "weights",
    [
        dict(lambda_cycle=-1.0),
        dict(identity_weight=-0.5),
        dict(lambda_cycle=float("nan")),
        dict(identity_weight=float("inf")),
        dict(lambda_cycle=None),  # a bare TypeError from float()
        dict(identity_weight="0.5"),
    ],
)
def test_negative_loss_weights_are_refused(weights):
    # A negative weight turns a term the generators should lower into one they raise; an
    # infinite one makes every generator loss inf, then NaN.
    match = "lambda_cycle and identity_weight must be finite and >= 0"
    with pytest.raises(ValueError, match=match) as caught:
        _small_cyclegan(**weights)
    ((name, value),) = weights.items()
    assert f"{value!r}" in str(caught.value)  # the text '0.5' shows as text
    assert _small_cyclegan(lambda_cycle=0.0, identity_weight=0.0).lambda_cycle == 0.0


def test_from_config_leaves_the_callers_config_whole():
    model = _small_cyclegan()
    config = model.get_config()
    before = json.dumps(config)
    first, second = (CycleGAN.from_config(config) for _ in range(2))
    assert json.dumps(config) == before
    assert json.dumps(first.get_config()) == json.dumps(second.get_config()) == before


@pytest.mark.parametrize(
    "images, problem",
    [
        (
            np.zeros((2, 30, 30, 1), "float32"),
            r"takes images of shape \(n, 32, 32, 1\), got \(2, 30, 30, 1\)",
        ),
        (
            np.zeros((2, SIZE, SIZE), "float32"),
            r"takes images of shape \(n, 32, 32, 1\), got \(2, 32, 32\)",
        ),
        (np.zeros((2, SIZE, SIZE, 1), "uint8"), r"takes float images in \[-1, 1\], got uint8"),
        (np.full((2, SIZE, SIZE, 1), 255.0, "float32"), r"got values from 255 to 255; scale"),
        (np.full((2, SIZE, SIZE, 1), np.nan, "float32"), r"got values from nan to nan"),
    ],
    ids=["other-size", "no-channel", "uint8", "0-255", "nan"],
)
def test_translate_refuses_images_the_generator_was_not_trained_on(images, problem):
    # After one call on 32 px images, 30 px ones came back as 32 px (Keras re-traced), and
    # 8-bit or [0, 255] images were translated as they were.
    model = _small_cyclegan()
    model.translate(np.zeros((2, SIZE, SIZE, 1), "float32"))
    with pytest.raises(ValueError, match=problem) as raised:
        model.translate(images)
    assert "\n" not in str(raised.value)
    edge = np.full((2, SIZE, SIZE, 1), 1.01, "float32")  # interpolation overshoot: accepted
    assert model.translate(tf.constant(edge), "b2a").shape == (2, SIZE, SIZE, 1)


def test_translate_takes_the_resize_overshoot_that_fit_trains_on():
    # A bicubic resize overshoots [-1, 1] slices up to 1.26; fit trains on such slices, and
    # translate refused the very same ones (a 1 % slack against fit's 25 %).
    model = _small_cyclegan()
    overshoot = np.full((2, SIZE, SIZE, 1), 1.2, "float32")
    overshoot[:, :4] = -1.2
    model.compile()
    model.fit(overshoot, overshoot, batch_size=2, epochs=1, verbose=0)
    for direction in ("a2b", "b2a"):
        assert model.translate(overshoot, direction).shape == (2, SIZE, SIZE, 1)
    with pytest.raises(ValueError, match=r"got values from -1\.2 to 1\.6; scale them first"):
        model.translate(np.where(overshoot > 0, 1.6, -1.2).astype("float32"))


# ---- arguments and data refused in one line (from a review of the model files) ----------


def _conv_generator(in_channels, out_channels, name):
    inputs = keras.Input((SIZE, SIZE, in_channels))
    outputs = keras.layers.Conv2D(out_channels, 3, padding="same", activation="tanh")(inputs)
    return keras.Model(inputs, outputs, name=name)


def test_generators_that_change_channels_need_the_identity_loss_off():
    # The identity loss feeds G_ab domain B's images: a 1 -> 3 channel pair was accepted and
    # failed in the first step ("Dimension 2 in both shapes must be equal ... ConcatV2").
    one_to_three = _conv_generator(1, 3, "g_ab")
    three_to_one = _conv_generator(3, 1, "g_ba")
    discriminators = (
        build_patchgan_discriminator(SIZE, 1, base_filters=4, name="d_a"),
        build_patchgan_discriminator(SIZE, 3, base_filters=4, name="d_b"),
    )
    with pytest.raises(ValueError, match="pass identity_weight=0 for domains of different"):
        CycleGAN(one_to_three, three_to_one, *discriminators)
    model = CycleGAN(one_to_three, three_to_one, *discriminators, identity_weight=0.0)
    model.compile(**default_optimizers(total_steps=4))
    images_a = np.zeros((2, SIZE, SIZE, 1), "float32")
    images_b = np.zeros((2, SIZE, SIZE, 3), "float32")
    pairs = tf.data.Dataset.from_tensor_slices((images_a, images_b)).batch(2)
    history = model.fit(pairs, epochs=1, verbose=0).history
    assert np.isfinite(history["g_loss"][-1])


def test_discriminators_of_any_size_too_small_for_the_images_are_refused_when_built():
    # image_size=None PatchGANs took 16-pixel generators and failed in the first step with
    # "Negative dimension size caused by subtracting 4 from 3".
    generators = [
        build_resnet_generator(16, 1, base_filters=4, num_residual_blocks=1, name=name)
        for name in ("g_ab", "g_ba")
    ]
    any_size = [
        build_patchgan_discriminator(None, 1, base_filters=4, name=name) for name in ("d_a", "d_b")
    ]
    with pytest.raises(ValueError) as caught:
        CycleGAN(*generators, *any_size)
    assert str(caught.value) == (
        "CycleGAN: d_a cannot judge images of shape (16, 16, 1): its output would be empty "
        "(a PatchGAN needs sides of at least 24)."
    )


@pytest.mark.parametrize("as_dataset", [False, True], ids=["arrays", "dataset"])
def test_images_of_another_size_than_the_generators_are_one_line(as_dataset):
    model = _small_cyclegan()
    model.compile(**default_optimizers(total_steps=4))
    images_a = np.zeros((4, 24, 24, 1), "float32")
    images_b = np.zeros((4, SIZE, SIZE, 1), "float32")
    with pytest.raises(ValueError) as caught:
        if as_dataset:
            pairs = tf.data.Dataset.from_tensor_slices((images_a, images_b)).batch(2)
            model.fit(pairs, epochs=1, verbose=0)
        else:
            model.fit((images_a, images_b), batch_size=2, epochs=1, verbose=0)
    message = str(caught.value)
    assert message.startswith(
        "CycleGAN expects domain A images of shape (batch, 32, 32, 1), the networks' size, got ("
    )
    assert message.endswith(", 24, 24, 1); resize them, or build the networks for this size.")


def test_numpy_domains_outside_the_tanh_range_are_refused():
    model = _small_cyclegan()
    model.compile(**default_optimizers(total_steps=4))
    images = np.zeros((4, SIZE, SIZE, 1), "float32")
    with pytest.raises(ValueError) as caught:
        model.fit((images, images + 255.0), batch_size=2, epochs=1, verbose=0)
    assert str(caught.value) == (
        "CycleGAN.fit x: domain B images must lie in [-1, 1], got 255 to 255; scale them first "
        "(x / 127.5 - 1 for 8-bit images)."
    )


def test_the_choice_of_joint_generator_passes_survives_saving(tmp_path):
    model = _small_cyclegan(joint_generator_passes=False)
    assert CycleGAN.from_config(model.get_config()).joint_generator_passes is False
    model.compile(**default_optimizers(total_steps=4))
    model.save(tmp_path / "cyclegan.keras")
    assert keras.saving.load_model(tmp_path / "cyclegan.keras").joint_generator_passes is False
    assert CycleGAN.from_config(_small_cyclegan().get_config()).joint_generator_passes is True


@pytest.mark.parametrize("pool_size", [2.5, True, -1])
def test_a_pool_size_that_is_no_count_is_refused(pool_size):
    with pytest.raises(ValueError, match="pool_size must be a whole number >= 0"):
        _small_cyclegan(pool_size=pool_size)
    with pytest.raises(ValueError, match="ImagePool: pool_size must be a whole number >= 0"):
        ImagePool(pool_size, (4, 4, 1))
