"""VAE: reparameterization gradients, closed-form KL, ELBO training, saving, warm-up, resume."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from medgen_tf.models.vae import (
    VAE,
    Sampling,
    build_decoder,
    build_encoder,
    build_vae,
    kl_divergence,
    kl_per_dimension,
)

IMAGE_SIZE = 28
LATENT_DIM = 4


def tiny_vae(likelihood="bernoulli", image_size=IMAGE_SIZE, **kwargs):
    return build_vae(
        image_size, latent_dim=LATENT_DIM, base_filters=4, likelihood=likelihood, seed=0, **kwargs
    )


def blob_images(count=32, image_size=IMAGE_SIZE, seed=0):
    """Bright discs of random position and radius on a dark background, in [0, 1]."""
    rng = np.random.default_rng(seed)
    grid = np.arange(image_size, dtype=np.float32)
    rows, columns = np.meshgrid(grid, grid, indexing="ij")
    images = np.zeros((count, image_size, image_size, 1), np.float32)
    for index in range(count):
        center = rng.uniform(0.3, 0.7, size=2) * image_size
        radius = rng.uniform(0.15, 0.3) * image_size
        distance = np.hypot(rows - center[0], columns - center[1])
        images[index, ..., 0] = np.clip(radius - distance, 0.0, 1.0)
    return images


def test_shapes_and_float32_outputs():
    for image_size in (28, 32, 64):
        encoder = build_encoder(image_size, latent_dim=3, base_filters=2)
        decoder = build_decoder(image_size, latent_dim=3, base_filters=2)
        z_mean, z_log_var = encoder(np.zeros((2, image_size, image_size, 1), np.float32))
        assert z_mean.shape == z_log_var.shape == (2, 3)
        assert decoder(np.zeros((2, 3), np.float32)).shape == (2, image_size, image_size, 1)
    with pytest.raises(ValueError, match="likelihood"):
        build_decoder(28, likelihood="poisson")
    with pytest.raises(ValueError, match="image_size"):
        build_encoder(7)


def test_mismatched_decoder_is_refused():
    encoder = build_encoder(IMAGE_SIZE, latent_dim=LATENT_DIM, base_filters=2)
    for likelihood, other in (("bernoulli", "gaussian"), ("gaussian", "bernoulli")):
        decoder = build_decoder(IMAGE_SIZE, latent_dim=LATENT_DIM, base_filters=2, likelihood=other)
        with pytest.raises(ValueError, match=f"likelihood='{likelihood}' but the decoder outputs"):
            VAE(encoder, decoder, likelihood=likelihood)
    wider = build_decoder(IMAGE_SIZE, latent_dim=LATENT_DIM + 1, base_filters=2)
    with pytest.raises(ValueError, match=r"latent size \(4\) differs .* input size \(5\)"):
        VAE(encoder, wider)
    matching = build_decoder(IMAGE_SIZE, latent_dim=LATENT_DIM, base_filters=2)
    assert VAE(encoder, matching).latent_dim == LATENT_DIM


def test_decoder_of_another_image_shape_is_refused():
    # A 3-channel encoder with a 1-channel decoder trained without error: the loss broadcast.
    encoder = build_encoder(32, channels=3, latent_dim=LATENT_DIM, base_filters=2)
    for likelihood in ("bernoulli", "gaussian"):
        decoder = build_decoder(
            32, channels=1, latent_dim=LATENT_DIM, base_filters=2, likelihood=likelihood
        )
        with pytest.raises(
            ValueError, match=r"input shape \(32, 32, 3\) differs .* output shape \(32, 32, 1\)"
        ):
            VAE(encoder, decoder, likelihood=likelihood)
    larger = build_decoder(64, channels=3, latent_dim=LATENT_DIM, base_filters=2)
    with pytest.raises(ValueError, match=r"output shape \(64, 64, 3\)"):
        VAE(encoder, larger)
    matching = build_decoder(32, channels=3, latent_dim=LATENT_DIM, base_filters=2)
    assert VAE(encoder, matching).latent_dim == LATENT_DIM


def test_gradients_reach_mean_and_log_variance_through_sampling():
    z_mean = tf.Variable(np.full((4, LATENT_DIM), 0.3, np.float32))
    z_log_var = tf.Variable(np.full((4, LATENT_DIM), -0.5, np.float32))
    decoder = build_decoder(IMAGE_SIZE, latent_dim=LATENT_DIM, base_filters=4)
    sampling = Sampling(seed=1)
    with tf.GradientTape(persistent=True) as tape:
        z = sampling([z_mean, z_log_var])
        loss = tf.reduce_sum(tf.square(decoder(z)))
        # What the article does: feed z_mean straight to the decoder, no sampling.
        plain = tf.reduce_sum(tf.square(decoder(z_mean)))
    assert float(tf.reduce_sum(tf.abs(tape.gradient(loss, z_mean)))) > 0
    assert float(tf.reduce_sum(tf.abs(tape.gradient(loss, z_log_var)))) > 0
    assert tape.gradient(plain, z_log_var) is None


def test_sampling_draws_new_noise_each_call_with_the_right_moments():
    sampling = Sampling(seed=3)
    z_mean = np.full((20000, 2), [1.0, -2.0], np.float32)
    z_log_var = np.full((20000, 2), np.log([0.25, 4.0]), np.float32)
    first = keras.ops.convert_to_numpy(sampling([z_mean, z_log_var]))
    second = keras.ops.convert_to_numpy(sampling([z_mean, z_log_var]))
    assert not np.allclose(first, second)
    np.testing.assert_allclose(first.mean(axis=0), [1.0, -2.0], atol=0.05)
    np.testing.assert_allclose(first.std(axis=0), [0.5, 2.0], rtol=0.03)
    assert Sampling.from_config(sampling.get_config()).seed == 3


@keras.saving.register_keras_serializable(package="medgen_tf_tests")
class CountingSampling(Sampling):
    """A subclass with a weight of its own: the draws it made."""

    def build(self, input_shape):
        self.draws = self.add_weight(shape=(), initializer="zeros", trainable=False, name="draws")

    def call(self, inputs):
        self.draws.assign_add(1.0)
        return super().call(inputs)


def test_a_sampling_subclass_weight_and_the_noise_state_survive_a_keras_file(tmp_path):
    # Sampling.load_own_variables restored only the noise state: a subclass's own weight,
    # which save_own_variables did write, came back at its initial 0.
    inputs = [keras.Input((LATENT_DIM,)), keras.Input((LATENT_DIM,))]
    sampling = CountingSampling(seed=2)
    model = keras.Model(inputs, sampling(inputs))
    zeros = [np.zeros((2, LATENT_DIM), np.float32)] * 2
    for _ in range(3):
        model(zeros)
    model.save(tmp_path / "sampling.keras")
    restored = keras.models.load_model(tmp_path / "sampling.keras")
    assert float(restored.layers[-1].draws.numpy()) == float(sampling.draws.numpy()) == 3.0
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(restored(zeros)), keras.ops.convert_to_numpy(model(zeros))
    )


def test_closed_form_kl_matches_monte_carlo_and_is_zero_at_the_prior():
    rng = np.random.default_rng(0)
    z_mean = rng.normal(size=(3, 5)).astype(np.float32)
    z_log_var = rng.normal(scale=0.7, size=(3, 5)).astype(np.float32)
    closed = keras.ops.convert_to_numpy(kl_divergence(z_mean, z_log_var))
    # KL(q || p) = E_q[log q(z) - log p(z)], estimated with 200k samples per row.
    std = np.exp(0.5 * z_log_var)
    z = z_mean + std * rng.standard_normal((200_000, 3, 5)).astype(np.float32)
    log_q = -0.5 * (((z - z_mean) / std) ** 2 + z_log_var + np.log(2 * np.pi))
    log_p = -0.5 * (z**2 + np.log(2 * np.pi))
    monte_carlo = (log_q - log_p).sum(axis=-1).mean(axis=0)
    np.testing.assert_allclose(closed, monte_carlo, rtol=0.02, atol=0.02)
    assert np.all(closed > 0)
    zeros = np.zeros((2, 5), np.float32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(kl_divergence(zeros, zeros)), 0.0, atol=1e-7
    )
    per_dimension = keras.ops.convert_to_numpy(kl_per_dimension(z_mean, z_log_var))
    np.testing.assert_allclose(per_dimension.sum(axis=-1), closed, rtol=1e-6)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_one_step_fit_reports_the_elbo_terms(likelihood):
    # beta away from 1: with weight 1 a training loss that left the KL weight out looked right.
    vae = tiny_vae(likelihood, beta=0.5)
    # Posterior means moved off the prior (KL ~ 8 nats, ~1e-4 at init): the weight shows.
    kernel, bias = vae.encoder.get_layer("z_mean").get_weights()
    vae.encoder.get_layer("z_mean").set_weights([kernel, np.full_like(bias, 2.0)])
    vae.compile(keras.optimizers.Adam(1e-3))
    history = vae.fit(blob_images(8), batch_size=8, epochs=1, verbose=0).history
    for key in ("loss", "reconstruction_loss", "kl_loss", "kl_weight"):
        assert np.isfinite(history[key][0]), key
    assert history["kl_weight"][0] == pytest.approx(0.5)
    # Half the KL term then lies far outside the rtol below.
    assert history["kl_loss"][0] > 1e-4 * history["loss"][0]
    np.testing.assert_allclose(
        history["loss"][0],
        history["reconstruction_loss"][0] + 0.5 * history["kl_loss"][0],
        rtol=1e-5,
    )
    decoded = keras.ops.convert_to_numpy(vae.sample(4, seed=0))
    assert decoded.shape == (4, IMAGE_SIZE, IMAGE_SIZE, 1)
    assert decoded.min() >= 0.0 and decoded.max() <= 1.0


def test_gaussian_reconstruction_loss_is_scaled_squared_error():
    vae = tiny_vae("gaussian", gaussian_sigma=0.2)
    images = blob_images(4)
    vae.compile("adam")
    # Push z_log_var to -30 for every image (std exp(-15) ~ 3e-7): the sampled z the loss
    # decodes then equals the posterior mean, so the hand value below is exact up to float32
    # rounding, and a wrong scale (e.g. 2.2 * sigma**2, 9 % off) cannot hide in a tolerance.
    log_var = vae.encoder.get_layer("z_log_var")
    kernel, bias = log_var.get_weights()
    log_var.set_weights([np.zeros_like(kernel), np.full_like(bias, -30.0)])
    logs = vae.evaluate(images, batch_size=4, verbose=0, return_dict=True)
    means = keras.ops.convert_to_numpy(vae.reconstruct(images))
    expected = np.mean(np.sum((images - means) ** 2, axis=(1, 2, 3)) / (2 * 0.2**2))
    assert logs["reconstruction_loss"] == pytest.approx(expected, rel=1e-4)


def test_bernoulli_reconstruction_loss_and_the_evaluated_elbo_are_exact():
    # The Bernoulli term was only seen to fall in training: a cross-entropy with target and
    # prediction swapped, or one of probabilities taken as logits, falls too.
    vae = tiny_vae("bernoulli", beta=0.5)
    images = blob_images(4)  # soft disc edges: targets strictly between 0 and 1 too
    vae.compile("adam")
    log_var = vae.encoder.get_layer("z_log_var")  # as above: z is the posterior mean
    kernel, bias = log_var.get_weights()
    log_var.set_weights([np.zeros_like(kernel), np.full_like(bias, -30.0)])
    logs = vae.evaluate(images, batch_size=4, verbose=0, return_dict=True)
    z_mean, z_log_var = (
        keras.ops.convert_to_numpy(t).astype(np.float64) for t in vae.encode(images)
    )
    logits = keras.ops.convert_to_numpy(vae.decoder(z_mean.astype(np.float32))).astype(np.float64)
    # -log p(x | z) of a Bernoulli with logit l: softplus(l) - x * l, summed over the pixels.
    per_pixel = np.logaddexp(0.0, logits) - images * logits
    reconstruction = np.mean(per_pixel.sum(axis=(1, 2, 3)))
    assert logs["reconstruction_loss"] == pytest.approx(reconstruction, rel=1e-4)
    kl = np.mean(np.sum(-0.5 * (1 + z_log_var - z_mean**2 - np.exp(z_log_var)), axis=-1))
    assert logs["kl_loss"] == pytest.approx(kl, rel=1e-4)
    # Evaluation reports the negative ELBO, KL weight 1 whatever beta is.
    assert logs["loss"] == pytest.approx(reconstruction + kl, rel=1e-4)


def test_brief_training_beats_untrained_on_test_elbo():
    # Seeded: the initial weights and the batch order otherwise came from whatever global
    # state earlier tests left (another order under xdist). With seeds 0-3 the test loss went
    # from about 545 to 258-291 nats.
    keras.utils.set_random_seed(0)
    train, test = blob_images(64, seed=1), blob_images(32, seed=2)
    untrained = tiny_vae()
    untrained.compile(keras.optimizers.Adam(2e-3))
    before = untrained.evaluate(test, batch_size=32, verbose=0, return_dict=True)
    trained = tiny_vae()
    trained.compile(keras.optimizers.Adam(5e-3))
    trained.fit(train, batch_size=16, epochs=8, verbose=0)
    after = trained.evaluate(test, batch_size=32, verbose=0, return_dict=True)
    assert after["loss"] < 0.75 * before["loss"]
    assert after["reconstruction_loss"] < before["reconstruction_loss"]


def test_keras_round_trip_gives_identical_outputs(
    tmp_path, load_compiled, assert_optimizer_state_equal
):
    vae = tiny_vae("gaussian", beta=0.5, kl_warmup_steps=10, gaussian_sigma=0.2)
    vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=2)
    images = blob_images(8)
    vae.fit(images, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "vae.keras"
    vae.save(path)
    loaded = load_compiled(path)
    assert isinstance(loaded, VAE) and loaded.steps_per_execution == 2
    assert (loaded.likelihood, loaded.beta, loaded.kl_warmup_steps, loaded.gaussian_sigma) == (
        "gaussian",
        0.5,
        10,
        0.2,
    )
    for method in (
        lambda model: model.sample(5, seed=7),
        lambda model: model.reconstruct(images),
        lambda model: model(images),
    ):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(method(vae)), keras.ops.convert_to_numpy(method(loaded))
        )
    # The optimizer comes back with its state (step count and Adam's moments), so training
    # continues where it stopped.
    assert type(loaded.optimizer) is keras.optimizers.Adam
    assert loaded.optimizer.get_config()["learning_rate"] == pytest.approx(1e-3)
    assert_optimizer_state_equal(loaded.optimizer, vae.optimizer, iterations=2)


def test_kl_warmup_schedule():
    vae = tiny_vae(beta=2.0, kl_warmup_steps=4)
    values = [float(vae.kl_weight_at(step)) for step in (0, 1, 2, 4, 10)]
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 2.0, 2.0])
    assert float(tiny_vae(beta=0.5).kl_weight_at(0)) == 0.5
    vae.compile(keras.optimizers.Adam(1e-3))
    history = vae.fit(blob_images(8), batch_size=4, epochs=2, verbose=0).history
    # The weight logged after each epoch is the one used in its last step (steps 1 and 3).
    np.testing.assert_allclose(history["kl_weight"], [0.5, 1.5])
    with pytest.raises(ValueError):
        tiny_vae(beta=-1.0)


def test_kl_per_dimension_spots_unused_latents():
    vae = tiny_vae()
    kernel, bias = vae.encoder.get_layer("z_mean").get_weights()
    kernel[:, 0] = 0.0  # dimension 0 of the mean ignores the image ...
    bias[0] = 0.0
    bias[1:] = 0.5  # (the used ones are moved off the prior: KL ~ 0.3, not ~ 1e-4 at init)
    vae.encoder.get_layer("z_mean").set_weights([kernel, bias])
    log_var_kernel, log_var_bias = vae.encoder.get_layer("z_log_var").get_weights()
    log_var_kernel[:, 0] = 0.0  # ... and its variance is 1: q equals the prior there
    log_var_bias[0] = 0.0
    log_var_bias[1:] = -1.0
    vae.encoder.get_layer("z_log_var").set_weights([log_var_kernel, log_var_bias])
    images = blob_images(8)
    per_dimension = keras.ops.convert_to_numpy(vae.kl_per_dimension(images))
    assert per_dimension.shape == (LATENT_DIM,)
    assert abs(per_dimension[0]) < 1e-6
    # The used dimensions must stand out from the unused one, and every entry must be the
    # batch mean of the closed form, written out here in numpy (both the mean and the
    # variance term), from the encoder's own posterior parameters.
    assert (per_dimension[1:] > 0.1).all()
    z_mean, z_log_var = (
        keras.ops.convert_to_numpy(t).astype(np.float64) for t in vae.encode(images)
    )
    expected = np.mean(-0.5 * (1 + z_log_var - z_mean**2 - np.exp(z_log_var)), axis=0)
    np.testing.assert_allclose(per_dimension, expected, rtol=1e-5, atol=1e-7)


def test_mixed_precision_step_is_finite_with_float32_outputs():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        vae = tiny_vae("gaussian")
        vae.compile(keras.optimizers.Adam(1e-3))
        assert isinstance(vae.optimizer, keras.optimizers.LossScaleOptimizer)
        history = vae.fit(blob_images(8), batch_size=8, epochs=1, verbose=0).history
        assert np.isfinite(history["loss"][0])
        assert keras.ops.convert_to_numpy(vae.sample(2, seed=0)).dtype == np.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")
    vae.compile(keras.optimizers.Adam(1e-3))  # under float32 now: the float16 layers decide
    assert isinstance(vae.optimizer, keras.optimizers.LossScaleOptimizer)


def test_resume_through_the_engine_equals_uninterrupted(tmp_path):
    from medgen_tf.training import fit

    images = blob_images(32)

    def build():
        # Warm-up spans the interruption, so the restored step count must drive the KL weight.
        vae = tiny_vae(kl_warmup_steps=6)
        vae.compile(keras.optimizers.Adam(1e-3))
        return vae

    options = dict(batch_size=8, seed=0, verbose=0, tensorboard=False)
    straight = fit(build, images, tmp_path / "straight", num_epochs=2, **options)
    fit(build, images, tmp_path / "resumed", num_epochs=1, **options)
    resumed = fit(build, images, tmp_path / "resumed", num_epochs=2, resume=True, **options)
    assert len(resumed["loss"]) == 2
    np.testing.assert_allclose(resumed["loss"], straight["loss"], rtol=1e-5)
    # Four steps per epoch; the logged weight is the last step's: 3 / 6, then capped at 1.
    np.testing.assert_allclose(resumed["kl_weight"], [0.5, 1.0], rtol=1e-6)
    for expected, actual in zip(straight.model.variables, resumed.model.variables, strict=True):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(actual), keras.ops.convert_to_numpy(expected), atol=1e-5
        )


def test_fit_runs_eagerly_and_reports_the_kl_weight():
    vae = tiny_vae(kl_warmup_steps=4)
    vae.compile(keras.optimizers.Adam(1e-3), run_eagerly=True)
    history = vae.fit(blob_images(8), batch_size=4, epochs=1, verbose=0).history
    assert history["kl_weight"][-1] == pytest.approx(0.25)  # after 1 of 4 warm-up steps


@pytest.mark.parametrize(
    ("likelihood", "images", "message"),
    [
        ("bernoulli", 255 * blob_images(8), r"needs images in \[0, 1\], got 0 to 255; scale"),
        ("bernoulli", 2 * blob_images(8) - 1, r"needs images in \[0, 1\], got -1 to 1; scale"),
        ("bernoulli", 1.2 * blob_images(8), r"needs images in \[0, 1\], got 0 to 1.2; scale"),
        ("gaussian", np.where(blob_images(8) > 0.5, np.nan, 0.0), "NaN or infinite values"),
        (
            "gaussian",
            1.6 * blob_images(8),
            r"sigmoid, in \(0, 1\), but the images lie from 0 to 1.6",
        ),
    ],
    ids=["bernoulli 0-255", "bernoulli -1-1", "bernoulli 0-1.2", "gaussian NaN", "gaussian 0-1.6"],
)
@pytest.mark.parametrize("argument", ["x", "validation_data"])
def test_fit_refuses_images_its_likelihood_cannot_train_on_in_one_line(
    likelihood, images, message, argument
):
    # Unscaled images trained a Bernoulli VAE into overflow, then NaN, without a message.
    vae = tiny_vae(likelihood)
    vae.compile()
    good = blob_images(8)
    x, validation = (images, good) if argument == "x" else (good, (images,))
    with pytest.raises(ValueError, match=f"VAE.fit {argument}: .*{message}") as caught:
        vae.fit(x, validation_data=validation, batch_size=4, verbose=0)
    assert "\n" not in str(caught.value)
    assert int(vae.optimizer.iterations) == 0


def test_fit_takes_gaussian_images_off_zero_one_and_bernoulli_ones_on_its_edges():
    # A Gaussian likelihood's squared error is defined everywhere: with a decoder whose means
    # are not squashed, [-1, 1] images train; build_decoder's sigmoid means take a resize's
    # overshoot of [0, 1] images.
    encoder = build_encoder(IMAGE_SIZE, latent_dim=LATENT_DIM, base_filters=4)
    sigmoid_decoder = build_decoder(
        IMAGE_SIZE, latent_dim=LATENT_DIM, base_filters=4, likelihood="gaussian"
    )
    linear_outputs = keras.layers.Conv2D(1, 1)(sigmoid_decoder.layers[-2].output)
    linear_decoder = keras.Model(sigmoid_decoder.inputs, linear_outputs)
    gaussian = VAE(encoder, linear_decoder, likelihood="gaussian", seed=0)
    gaussian.compile()
    gaussian.fit(2 * blob_images(4) - 1, batch_size=4, verbose=0)
    overshoot = tiny_vae("gaussian")
    overshoot.compile()
    overshoot.fit(1.5 * blob_images(4) - 0.25, batch_size=4, verbose=0)
    bernoulli = tiny_vae()
    bernoulli.compile()
    edges = np.zeros((4, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32)
    edges[2:] = 1.0
    bernoulli.fit(edges, batch_size=4, verbose=0)
    assert all(int(model.optimizer.iterations) == 1 for model in (gaussian, overshoot, bernoulli))


@pytest.mark.parametrize(
    "images, shown",
    [(2 * blob_images(4) - 1, "from -1 to 1"), (255 * blob_images(4), "from 0 to 255")],
    ids=["-1-1", "0-255"],
)
def test_a_gaussian_vae_with_sigmoid_means_refuses_images_it_cannot_reconstruct(
    images, shown, tmp_path
):
    # build_decoder's means lie in (0, 1): a [-1, 1] slice trained without a word, and every
    # pixel below 0 was reconstructed as 0. The rule survives a save and load.
    vae = tiny_vae("gaussian")
    vae.compile()
    vae.fit(blob_images(4), batch_size=4, verbose=0)
    vae.save(tmp_path / "vae.keras")
    restored = keras.saving.load_model(tmp_path / "vae.keras")
    for model in (vae, restored):
        with pytest.raises(ValueError, match=f"VAE.fit x: .*sigmoid.*{shown}; scale") as caught:
            model.fit(images, batch_size=4, verbose=0)
        assert "\n" not in str(caught.value)


def test_compile_refuses_an_optimizer_built_for_another_model_and_takes_back_its_own():
    # It was accepted, and the first step failed with Keras' "Unknown variable".
    first, second = tiny_vae(), tiny_vae()
    first.compile(keras.optimizers.Adam(1e-3))
    with pytest.raises(ValueError, match="VAE: optimizer is already built for other variables"):
        second.compile(first.optimizer)
    first.compile(first.optimizer)
    first.fit(blob_images(4), batch_size=4, epochs=1, verbose=0)
    assert int(first.optimizer.iterations) == 1


def test_images_without_a_channel_axis_are_refused_rather_than_broadcast():
    # (N, H, W) against the decoder's (N, H, W, 1) would broadcast to (N, H, W, W): a wrong
    # reconstruction loss, and no error.
    vae = tiny_vae()
    vae.compile(keras.optimizers.Adam(1e-3))
    with pytest.raises(ValueError, match=r"VAE expects images of shape \(batch, height, width"):
        vae.fit(blob_images(8)[..., 0], batch_size=4, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="VAE expects float images scaled to"):
        vae.fit((255 * blob_images(8)).astype("uint8"), batch_size=4, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="compile takes no metrics="):
        vae.compile("adam", metrics=["mae"])


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_no_samples_and_no_reconstructions_have_the_images_shape(likelihood):
    # TF's Conv2D gives an empty batch its input's channel count: the decoder's last
    # convolution returned (0, 28, 28, 4) for one-channel images before decode caught it.
    vae = tiny_vae(likelihood)
    assert tuple(vae.sample(0, seed=0).shape) == (0, IMAGE_SIZE, IMAGE_SIZE, 1)
    assert tuple(vae.decode(np.zeros((0, LATENT_DIM), np.float32)).shape) == (
        0,
        IMAGE_SIZE,
        IMAGE_SIZE,
        1,
    )
    assert tuple(vae.sample(3, seed=0).shape) == (3, IMAGE_SIZE, IMAGE_SIZE, 1)


@pytest.mark.parametrize(
    "method",
    [
        lambda vae, images: vae.encode(images),
        lambda vae, images: vae.reconstruct(images),
        lambda vae, images: vae.reconstruct(images, sample=True),
        lambda vae, images: vae.kl_per_dimension(images),
    ],
    ids=["encode", "reconstruct", "reconstruct sampled", "kl_per_dimension"],
)
def test_methods_on_no_images_return_what_images_would_give_with_no_rows(method):
    # An empty batch failed inside the encoder's Conv2D with an InvalidArgumentError.
    vae = tiny_vae()
    full = method(vae, blob_images(2))
    empty = method(vae, np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 1), np.float32))
    full, empty = (list(out) if isinstance(out, (list, tuple)) else [out] for out in (full, empty))
    assert len(empty) == len(full)
    for got, reference in zip(empty, full, strict=True):
        assert type(got) is type(reference)
        assert got.dtype == reference.dtype
        if reference.shape == (LATENT_DIM,):  # kl_per_dimension: a mean over no images
            assert np.isnan(keras.ops.convert_to_numpy(got)).all()
        else:
            assert tuple(got.shape) == (0, *reference.shape[1:])


@pytest.mark.parametrize(
    "settings",
    [
        dict(beta=None),
        dict(beta=float("nan")),
        dict(kl_warmup_steps=None),
        dict(gaussian_sigma=None),
    ],
    ids=["beta None", "beta NaN", "warm-up None", "sigma None"],
)
def test_missing_or_nan_loss_settings_are_a_value_error(settings):
    # None gave a TypeError from a comparison; NaN passed and trained on a NaN loss.
    with pytest.raises(ValueError, match="need beta >= 0, kl_warmup_steps >= 0, gaussian_sigma"):
        tiny_vae(**settings)


def test_from_config_leaves_the_callers_config_whole():
    import json

    vae = tiny_vae()
    config = vae.get_config()
    before = json.dumps(config)
    first, second = (VAE.from_config(config) for _ in range(2))
    assert json.dumps(config) == before
    assert json.dumps(first.get_config()) == json.dumps(second.get_config()) == before


@pytest.mark.parametrize("latent_dim", [0, 2.5, True])
def test_a_latent_dim_that_is_no_count_is_refused_by_both_builders(latent_dim):
    # latent_dim=0 built a z that carried nothing, and trained.
    from medgen_tf.models.vae import build_decoder, build_encoder

    for builder in (build_encoder, build_decoder):
        with pytest.raises(ValueError) as caught:
            builder(IMAGE_SIZE, latent_dim=latent_dim, base_filters=4)
        assert str(caught.value) == (
            f"{builder.__name__}: latent_dim must be a whole number >= 1, got {latent_dim!r}."
        )


def test_a_fraction_of_a_warm_up_step_is_refused():
    with pytest.raises(ValueError, match="VAE: kl_warmup_steps must be a whole number >= 0"):
        tiny_vae(kl_warmup_steps=2.5)  # int() made it 2


def test_images_of_another_size_than_the_encoder_are_one_line():
    vae = tiny_vae()
    vae.compile(keras.optimizers.Adam(1e-3))
    with pytest.raises(ValueError) as caught:
        vae.fit(blob_images(8, image_size=32), batch_size=4, epochs=1, verbose=0)
    assert str(caught.value).startswith(
        f"VAE expects images of shape (batch, {IMAGE_SIZE}, {IMAGE_SIZE}, 1), the networks' size"
    )
