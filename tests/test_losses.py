"""medgen_tf.losses: values against hand computation, float32, the gradient penalty, replicas."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from medgen_tf import losses

REAL = np.array([[0.0], [2.0], [-3.0]], dtype="float32")
FAKE = np.array([[-1.0], [0.5], [4.0]], dtype="float32")


def softplus(x):
    return np.log1p(np.exp(x))


def test_non_saturating_matches_hand_computation():
    # BCE(1, x) = softplus(-x), BCE(0, x) = softplus(x).
    expected_d = softplus(-REAL).mean() + softplus(FAKE).mean()
    expected_g = softplus(-FAKE).mean()
    assert float(losses.non_saturating_discriminator_loss(REAL, FAKE)) == pytest.approx(
        expected_d, rel=1e-5
    )
    assert float(losses.non_saturating_generator_loss(FAKE)) == pytest.approx(expected_g, rel=1e-5)


def test_minimax_generator_loss_is_log_one_minus_d_and_saturates():
    logits = np.array([[-3.0], [-1.0], [0.5], [2.0]], "float32")
    expected = np.mean(np.log(1.0 - 1.0 / (1.0 + np.exp(-logits.astype("float64")))))
    assert float(losses.minimax_generator_loss(logits)) == pytest.approx(expected, rel=1e-5)
    # log(1 - sigmoid(100)) underflows to -inf when computed literally; the loss is -100.
    assert float(losses.minimax_generator_loss(np.array([[100.0]], "float32"))) == -100.0
    # Its gradient is -sigmoid(l): vanishing for a fake that D rejects confidently.
    logit = tf.Variable([[-10.0], [-1.0]])
    with tf.GradientTape() as tape:
        loss = losses.minimax_generator_loss(logit)
    gradient = tape.gradient(loss, logit).numpy().ravel() * 2  # undo the mean over 2 logits
    np.testing.assert_allclose(gradient, -1.0 / (1.0 + np.exp([10.0, 1.0])), rtol=1e-5)
    assert "minimax" not in losses.ADVERSARIAL_LOSSES


def test_one_sided_label_smoothing_only_changes_the_real_target():
    target = 0.9
    expected = (target * softplus(-REAL) + (1 - target) * softplus(REAL)).mean() + softplus(
        FAKE
    ).mean()
    value = losses.non_saturating_discriminator_loss(REAL, FAKE, label_smoothing=0.1)
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_chance_discriminator_gives_two_log_two():
    zeros = np.zeros((4, 1), "float32")
    value = losses.non_saturating_discriminator_loss(zeros, zeros)
    assert float(value) == pytest.approx(2 * np.log(2), rel=1e-6)


def test_least_squares_hinge_and_wasserstein_match_hand_computation():
    ls_d = ((REAL - 1) ** 2).mean() + (FAKE**2).mean()
    assert float(losses.least_squares_discriminator_loss(REAL, FAKE)) == pytest.approx(ls_d)
    assert float(losses.least_squares_generator_loss(FAKE)) == pytest.approx(
        ((FAKE - 1) ** 2).mean()
    )
    hinge_d = np.maximum(0, 1 - REAL).mean() + np.maximum(0, 1 + FAKE).mean()
    assert float(losses.hinge_discriminator_loss(REAL, FAKE)) == pytest.approx(hinge_d)
    assert float(losses.hinge_generator_loss(FAKE)) == pytest.approx(-FAKE.mean())
    assert float(losses.wasserstein_critic_loss(REAL, FAKE)) == pytest.approx(
        FAKE.mean() - REAL.mean()
    )
    assert float(losses.wasserstein_generator_loss(FAKE)) == pytest.approx(-FAKE.mean())


def test_least_squares_label_smoothing_lowers_only_the_real_target():
    expected = ((REAL - 0.9) ** 2).mean() + (FAKE**2).mean()
    value = losses.least_squares_discriminator_loss(REAL, FAKE, label_smoothing=0.1)
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_least_squares_averages_over_a_patch_map():
    real = np.ones((2, 4, 4, 1), "float32")
    fake = np.full((2, 4, 4, 1), 0.5, "float32")
    assert float(losses.least_squares_discriminator_loss(real, fake)) == pytest.approx(0.25)


def test_large_logits_are_stable_and_float16_is_computed_in_float32():
    big = np.array([[1000.0], [-1000.0]], "float32")
    value = losses.non_saturating_generator_loss(big)
    assert np.isfinite(float(value)) and float(value) == pytest.approx(500.0)
    half = losses.non_saturating_discriminator_loss(REAL.astype("float16"), FAKE.astype("float16"))
    assert keras.backend.standardize_dtype(half.dtype) == "float32"


def test_gradient_penalty_of_a_linear_critic_is_exact():
    # D(x) = <w, x> + b has gradient w everywhere, so the penalty is (||w|| - 1)^2.
    critic = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    weight = np.full((16, 1), 0.5, "float32")  # ||w|| = 2
    critic.layers[-1].set_weights([weight, np.zeros(1, "float32")])
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(2, 3, 4, 4, 1)).astype("float32")
    seed = keras.random.SeedGenerator(0)
    assert float(losses.gradient_penalty(critic, real, fake, seed=seed)) == pytest.approx(
        1.0, rel=1e-5
    )
    critic.layers[-1].set_weights([weight / 2, np.zeros(1, "float32")])  # ||w|| = 1
    assert float(losses.gradient_penalty(critic, real, fake, seed=seed)) == pytest.approx(
        0.0, abs=1e-5
    )


def test_gradient_penalty_is_one_and_differentiable_where_the_critic_is_flat():
    # A zero weight: the critic's input gradient is exactly 0, where a bare sqrt(0) would give
    # an Inf or NaN gradient of the penalty with respect to the critic's weights.
    critic = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    critic.layers[-1].set_weights([np.zeros((16, 1), "float32"), np.ones(1, "float32")])
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(2, 3, 4, 4, 1)).astype("float32")
    with tf.GradientTape() as tape:
        penalty = losses.gradient_penalty(critic, real, fake, seed=keras.random.SeedGenerator(0))
    kernel = critic.layers[-1].kernel  # the bias does not enter the input gradient
    gradient = tape.gradient(penalty, kernel)
    assert float(penalty) == pytest.approx(1.0, rel=1e-5)
    assert np.all(np.isfinite(gradient.numpy()))


def test_gradient_penalty_is_taken_per_sample_at_the_interpolates():
    # A linear critic has one gradient everywhere, so it cannot tell where the penalty is taken.
    # D(x) = ||x||^2 / 2 has gradient x: the penalty is mean_i (||x_hat_i|| - 1)^2 at
    # x_hat_i = eps_i * real_i + (1 - eps_i) * fake_i, one eps per sample, norms over H, W and C.
    def critic(images, training):
        return 0.5 * keras.ops.sum(keras.ops.square(images), axis=[1, 2, 3])

    rng = np.random.default_rng(1)
    real = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    fake = rng.normal(2.0, 0.5, size=(4, 3, 3, 2)).astype("float32")
    eps = keras.ops.convert_to_numpy(
        keras.random.uniform((4, 1, 1, 1), seed=keras.random.SeedGenerator(7))
    )
    assert np.ptp(eps) > 0.1  # the samples' eps differ, so one shared eps would show
    interpolates = eps * real + (1 - eps) * fake
    norms = np.sqrt((interpolates**2).sum(axis=(1, 2, 3)))
    expected = np.mean((norms - 1) ** 2)
    # At the real or the fake images alone, or with the mean taken before squaring, it differs.
    for other in (real, fake):
        assert np.mean((np.sqrt((other**2).sum(axis=(1, 2, 3))) - 1) ** 2) != pytest.approx(
            expected, rel=1e-2
        )
    assert (norms.mean() - 1) ** 2 != pytest.approx(expected, rel=1e-2)
    value = losses.gradient_penalty(critic, real, fake, seed=keras.random.SeedGenerator(7))
    assert float(value) == pytest.approx(expected, rel=1e-5)


def test_cycle_and_identity_are_mean_absolute_errors():
    # Differences of 0, -1, 3 and -4 per pixel, both signs: MAE = 8 / 4 = 2, while the RMSE
    # (sqrt(26 / 4) = 2.55), the mean squared error (6.5), the signed mean (-0.5) and the
    # largest difference (4) are all other numbers.
    a = np.array([1.0, 2.0, 0.5, -1.0], "float32").reshape(1, 2, 2, 1)
    b = a - np.array([0.0, -1.0, 3.0, -4.0], "float32").reshape(1, 2, 2, 1)
    a, b = np.concatenate([a, a]), np.concatenate([b, b])
    expected = np.mean(np.abs(a - b))
    assert expected == 2.0 and np.sqrt(np.mean((a - b) ** 2)) == pytest.approx(np.sqrt(6.5))
    for loss in (losses.cycle_loss, losses.identity_loss):
        assert float(loss(a, b)) == pytest.approx(2.0, rel=1e-6)
        assert float(loss(b, a)) == pytest.approx(2.0, rel=1e-6)


def test_registry_accepts_dashes_and_rejects_unknown_names():
    # Every name to its own pair: one entry checked let e.g. least squares train G with the
    # non-saturating loss.
    expected = {
        "non-saturating": (
            losses.non_saturating_discriminator_loss,
            losses.non_saturating_generator_loss,
        ),
        "least_squares": (
            losses.least_squares_discriminator_loss,
            losses.least_squares_generator_loss,
        ),
        "Hinge": (losses.hinge_discriminator_loss, losses.hinge_generator_loss),
        "wgan-gp": (losses.wasserstein_critic_loss, losses.wasserstein_generator_loss),
    }
    for name, pair in expected.items():
        assert losses.get_adversarial_loss(name) == pair, name
    assert len(losses.ADVERSARIAL_LOSSES) == len(expected)
    with pytest.raises(ValueError, match="Unknown adversarial loss"):
        losses.get_adversarial_loss("minimax")


def test_scale_for_replicas_gives_global_batch_gradients_under_mirrored_strategy(two_cpu_python):
    stdout = two_cpu_python(
        """
        import keras
        from medgen_tf import losses

        logits = np.linspace(-2, 2, 8).astype("float32").reshape(8, 1)

        def gradient(strategy):
            with strategy.scope():
                bias = tf.Variable(0.3)
                optimizer = keras.optimizers.SGD(1.0)
                optimizer.build([bias])
            data = strategy.experimental_distribute_dataset(
                tf.data.Dataset.from_tensor_slices(logits).batch(8))

            def step(batch):
                with tf.GradientTape() as tape:
                    loss = losses.non_saturating_generator_loss(batch + bias)
                    scaled = losses.scale_for_replicas(loss)
                grads = tape.gradient(scaled, [bias])
                optimizer.apply_gradients(zip(grads, [bias]))

            strategy.run(tf.function(step), args=(next(iter(data)),))
            return 0.3 - float(bias.numpy())

        mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        print(mirrored.num_replicas_in_sync, gradient(mirrored), gradient(tf.distribute.get_strategy()))
        """
    )
    replicas, mirrored, single = stdout.split()[-3:]
    assert int(replicas) == 2
    assert float(mirrored) == pytest.approx(float(single), rel=1e-5)


def test_draw_per_replica_gives_each_replica_its_rows_of_one_global_draw(two_cpu_python):
    stdout = two_cpu_python(
        """
        import keras
        from medgen_tf import losses
        from medgen_tf.models.vae import Sampling

        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            generator = keras.random.SeedGenerator(3)
            sampling = Sampling(seed=4)
        draw = lambda shape: keras.random.uniform(shape, seed=generator)
        rows = strategy.run(tf.function(lambda: losses.draw_per_replica(draw, (3, 2))))
        zeros = tf.zeros((3, 2))
        eps = strategy.run(tf.function(lambda: sampling([zeros, zeros])))  # z = eps
        reference = keras.random.uniform((3, 2, 2), seed=keras.random.SeedGenerator(3))
        first, second = [t.numpy() for t in strategy.experimental_local_results(rows)]
        eps_first, eps_second = [t.numpy() for t in strategy.experimental_local_results(eps)]
        print(
            np.allclose(np.stack([first, second], axis=1), reference.numpy()),
            not np.allclose(eps_first, eps_second),
        )
        """
    )
    # Each replica's rows are its column of one global draw; the VAE's eps differ too.
    assert stdout.split()[-2:] == ["True", "True"]


def test_draw_per_replica_shares_no_number_between_replicas_of_unequal_batches(two_cpu_python):
    # A dataset's last partial batch of 5 splits 3 + 2. Blocks of one draw per replica
    # (replica j taking rows j*n to (j+1)*n of a 2n-row draw) gave replica 1 rows 2-3 of the
    # 4-row draw, the very numbers replica 0 took as its rows 2-3 of the 6-row draw.
    stdout = two_cpu_python(
        """
        import keras
        from medgen_tf import losses

        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            generator = keras.random.SeedGenerator(3)
        batches = strategy.experimental_distribute_values_from_function(
            lambda context: tf.zeros((3 - context.replica_id_in_sync_group, 4))
        )

        def step(batch):
            return losses.draw_per_replica(
                lambda shape: keras.random.normal(shape, seed=generator), (tf.shape(batch)[0], 4)
            )

        rows = strategy.run(tf.function(step), args=(batches,))
        first, second = [t.numpy() for t in strategy.experimental_local_results(rows)]
        shared = np.intersect1d(first.ravel(), second.ravel()).size
        print(first.shape[0], second.shape[0], shared)
        """
    )
    assert stdout.split()[-3:] == ["3", "2", "0"]


def test_draw_per_replica_is_a_plain_draw_outside_tf_distribute():
    generator = keras.random.SeedGenerator(3)
    values = losses.draw_per_replica(lambda s: keras.random.normal(s, seed=generator), (4, 2))
    expected = keras.random.normal((4, 2), seed=keras.random.SeedGenerator(3))
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_the_gradients_match_tensorflows_cross_entropy_at_and_around_a_logit_of_zero(smoothing):
    # relu(x) + log1p(exp(-|x|)) took slope 0 at x = 0 in both kinks: at a logit of exactly 0
    # D's fake half gave no gradient and its real half, like G's, twice the right one.
    logits = tf.constant([0.0, 1e-6, -1e-6, 3.0, -40.0, 900.0])
    real_target = 1.0 - smoothing

    def gradient(loss_fn):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = loss_fn(logits)
        return tape.gradient(loss, logits).numpy()

    def reference(target):
        return lambda x: tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(x.shape, target), logits=x)
        )

    zeros = tf.zeros_like(logits)
    cases = [
        (lambda x: losses.non_saturating_generator_loss(x), reference(1.0)),
        (
            lambda x: losses.non_saturating_discriminator_loss(x, zeros - 1e4, smoothing),
            reference(real_target),
        ),
        (
            lambda x: losses.non_saturating_discriminator_loss(zeros + 1e4, x, smoothing),
            reference(0.0),
        ),
    ]
    for ours, theirs in cases:
        np.testing.assert_allclose(gradient(ours), gradient(theirs), atol=1e-7)
    assert gradient(cases[0][0])[0] == pytest.approx(-0.5 / 6)
