"""The hand-written training loops that the package's ``fit`` is compared with.

Each function returns a ``step(batch) -> dict of losses`` closure over the same networks the
package builds. ``compiled=True`` wraps it in ``tf.function`` (the TensorFlow tutorials'
style); ``compiled=False`` runs it eagerly.

- :func:`dcgan_tutorial_step`: exactly as https://www.tensorflow.org/tutorials/generative/dcgan
  writes it: one forward pass under two GradientTapes, both networks updated from it
  (simultaneous update; one generator pass per step).
- :func:`dcgan_alternating_step`: the same algorithm as ``medgen_tf.models.gan.GAN.train_step``
  (D updated on the real batch and fresh fakes, then G against the updated D on the same
  fakes), hand-written with two tapes. Given the same weights and noise seed it computes the
  same losses as the package (``tests/test_benchmarks.py`` checks it), so timing it against
  ``fit`` isolates fit's cost.
- :func:`dcgan_article_step`: the article's GAN loop (``shared/seed/article-zh.txt``, section
  4.1.1) corrected just enough to run, and eager as the article is: G's step first (its own
  generator pass), then D's step with a second generator pass on the same noise; two
  generator and three discriminator forward passes per step.
- :func:`vae_step`: https://www.tensorflow.org/tutorials/generative/cvae style, one tape. Run
  eagerly it is also the article's VAE loop (section 4.2.1) corrected just enough to run: the
  article's structure (one tape, encoder then decoder, reconstruction plus KL, one optimizer
  over both networks) with what a VAE needs for the two terms to mean anything (the encoder's
  mean and log-variance, a reparameterised sample, the analytic KL; the article's
  ``tf.absolute_difference`` does not exist and its KL of a tensor with itself is zero).
- :func:`cyclegan_step`: https://www.tensorflow.org/tutorials/generative/cyclegan style, one
  persistent tape, four optimizers. The article has no CycleGAN code: its eager contender is
  this step without ``tf.function``.

Noise comes from a ``keras.random.SeedGenerator`` seeded like the package model's, so the
loops draw the same numbers in the same order as the package.

Mixed precision: every loss is scaled with ``optimizer.scale_loss`` on its tape, and
``apply_gradients`` follows. Given a ``keras.optimizers.LossScaleOptimizer`` (what the
benchmark passes under a ``mixed_float16`` policy, as the package's models hold) this is the
custom loop of TensorFlow's mixed precision guide in Keras 3's API: ``scale_loss`` replaces
``get_scaled_loss``, and the wrapper's ``apply_gradients`` unscales the gradients (Keras 2's
``get_unscaled_gradients``), skips a step whose gradients are not finite and adjusts the scale.
Given a plain optimizer ``scale_loss`` returns the loss unchanged, so float32 runs do exactly
what the tutorials do.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _maybe_compile(step, compiled, jit_compile=False):
    if not compiled:
        return step
    return tf.function(step, jit_compile=bool(jit_compile))


def _bce_from_logits():
    # The tutorial's loss object, not the package's function: an independent implementation.
    return keras.losses.BinaryCrossentropy(from_logits=True)


def dcgan_tutorial_step(
    generator,
    discriminator,
    g_optimizer,
    d_optimizer,
    latent_dim,
    seed=None,
    compiled=True,
    jit_compile=False,
):
    """The TensorFlow DCGAN tutorial's ``train_step`` (simultaneous update)."""
    cross_entropy = _bce_from_logits()
    seed_generator = keras.random.SeedGenerator(seed)

    def step(images):
        noise = keras.random.normal((tf.shape(images)[0], latent_dim), seed=seed_generator)
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated_images = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(generated_images, training=True)
            gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            disc_loss = cross_entropy(tf.ones_like(real_output), real_output) + cross_entropy(
                tf.zeros_like(fake_output), fake_output
            )
            scaled_gen_loss = g_optimizer.scale_loss(gen_loss)
            scaled_disc_loss = d_optimizer.scale_loss(disc_loss)
        gen_gradients = gen_tape.gradient(scaled_gen_loss, generator.trainable_variables)
        disc_gradients = disc_tape.gradient(scaled_disc_loss, discriminator.trainable_variables)
        g_optimizer.apply_gradients(zip(gen_gradients, generator.trainable_variables, strict=True))
        d_optimizer.apply_gradients(
            zip(disc_gradients, discriminator.trainable_variables, strict=True)
        )
        return {"d_loss": disc_loss, "g_loss": gen_loss}

    return _maybe_compile(step, compiled, jit_compile)


def dcgan_alternating_step(
    generator,
    discriminator,
    g_optimizer,
    d_optimizer,
    latent_dim,
    seed=None,
    compiled=True,
    jit_compile=False,
):
    """D, then G against the updated D on the same fakes: the package's algorithm, by hand.

    As PyTorch's DCGAN example writes it: one generator pass per step, recorded on the
    generator's tape and reused by its update. D judges the real and fake batches in one pass
    over both stacked, as the package does for a discriminator without batch norm."""
    cross_entropy = _bce_from_logits()
    seed_generator = keras.random.SeedGenerator(seed)

    def step(images):
        noise = keras.random.normal((tf.shape(images)[0], latent_dim), seed=seed_generator)
        with tf.GradientTape() as gen_tape:
            generated_images = generator(noise, training=True)
        with tf.GradientTape() as disc_tape:
            # One pass over real and fake images stacked, as the package's step makes it.
            both = tf.concat([images, tf.stop_gradient(generated_images)], axis=0)
            real_output, fake_output = tf.split(discriminator(both, training=True), 2)
            disc_loss = cross_entropy(tf.ones_like(real_output), real_output) + cross_entropy(
                tf.zeros_like(fake_output), fake_output
            )
            scaled_disc_loss = d_optimizer.scale_loss(disc_loss)
        disc_gradients = disc_tape.gradient(scaled_disc_loss, discriminator.trainable_variables)
        d_optimizer.apply_gradients(
            zip(disc_gradients, discriminator.trainable_variables, strict=True)
        )

        with gen_tape:  # the same fakes, against the updated D
            fake_output = discriminator(generated_images, training=True)
            gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            scaled_gen_loss = g_optimizer.scale_loss(gen_loss)
        gen_gradients = gen_tape.gradient(scaled_gen_loss, generator.trainable_variables)
        g_optimizer.apply_gradients(zip(gen_gradients, generator.trainable_variables, strict=True))
        return {"d_loss": disc_loss, "g_loss": gen_loss}

    return _maybe_compile(step, compiled, jit_compile)


def dcgan_article_step(
    generator,
    discriminator,
    g_optimizer,
    d_optimizer,
    latent_dim,
    seed=None,
    compiled=False,
    jit_compile=False,
):
    """The article's GAN loop, corrected just enough to run; eager by default, as written there.

    Kept from the article (section 4.1.1 of ``shared/seed/article-zh.txt``): the order (G's
    step, then D's step), G's tape holding its own generator pass and the discriminator on it,
    and D's tape running the generator a second time on the same noise (now with G's updated
    weights), then the discriminator on the real batch and on those fakes.
    Per step: two generator and three discriminator forward passes.

    Corrected, because as written it does not run or does not train: the package's networks
    in place of the article's (a dense 28x28 discriminator, a generator without upsampling);
    a batch of real images in place of ``tf.random.normal`` "real" images and a batch of noise
    in place of one vector; binary cross-entropy on the logits in place of D's raw output used
    as the loss (and ``fake_label`` passed to the discriminator as ``training``); one Adam per
    network, configured as the package's, in place of the never-set ``model.optimizer``.
    """
    cross_entropy = _bce_from_logits()
    seed_generator = keras.random.SeedGenerator(seed)

    def step(images):
        noise = keras.random.normal((tf.shape(images)[0], latent_dim), seed=seed_generator)
        # Train the generator.
        with tf.GradientTape() as gen_tape:
            generated_images = generator(noise, training=True)
            fake_output = discriminator(generated_images, training=True)
            gen_loss = cross_entropy(tf.ones_like(fake_output), fake_output)
            scaled_gen_loss = g_optimizer.scale_loss(gen_loss)
        gen_gradients = gen_tape.gradient(scaled_gen_loss, generator.trainable_variables)
        g_optimizer.apply_gradients(zip(gen_gradients, generator.trainable_variables, strict=True))

        # Train the discriminator: a second generator pass on the same noise.
        with tf.GradientTape() as disc_tape:
            generated_images = generator(noise, training=True)
            real_output = discriminator(images, training=True)
            fake_output = discriminator(generated_images, training=True)
            disc_loss = cross_entropy(tf.ones_like(real_output), real_output) + cross_entropy(
                tf.zeros_like(fake_output), fake_output
            )
            scaled_disc_loss = d_optimizer.scale_loss(disc_loss)
        disc_gradients = disc_tape.gradient(scaled_disc_loss, discriminator.trainable_variables)
        d_optimizer.apply_gradients(
            zip(disc_gradients, discriminator.trainable_variables, strict=True)
        )
        return {"d_loss": disc_loss, "g_loss": gen_loss}

    return _maybe_compile(step, compiled, jit_compile)


def vae_step(
    encoder,
    decoder,
    optimizer,
    likelihood="bernoulli",
    gaussian_sigma=0.1,
    beta=1.0,
    seed=None,
    compiled=True,
    jit_compile=False,
):
    """The CVAE tutorial's step: reparameterize, one-sample ELBO, one tape."""
    seed_generator = keras.random.SeedGenerator(seed)
    variables = encoder.trainable_variables + decoder.trainable_variables

    def step(images):
        with tf.GradientTape() as tape:
            z_mean, z_log_var = encoder(images, training=True)
            epsilon = keras.random.normal(tf.shape(z_mean), dtype=z_mean.dtype, seed=seed_generator)
            z = z_mean + tf.exp(0.5 * z_log_var) * epsilon
            outputs = tf.cast(decoder(z, training=True), tf.float32)
            if likelihood == "bernoulli":
                per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(labels=images, logits=outputs)
            else:
                per_pixel = tf.square(images - outputs) / (2.0 * gaussian_sigma**2)
            reconstruction_loss = tf.reduce_mean(tf.reduce_sum(per_pixel, axis=[1, 2, 3]))
            kl = -0.5 * (1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var))
            kl_loss = tf.reduce_mean(tf.reduce_sum(kl, axis=1))
            loss = reconstruction_loss + beta * kl_loss
            scaled_loss = optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return {"loss": loss, "reconstruction_loss": reconstruction_loss, "kl_loss": kl_loss}

    return _maybe_compile(step, compiled, jit_compile)


def cyclegan_step(
    generator_ab,
    generator_ba,
    discriminator_a,
    discriminator_b,
    optimizers,
    cycle_weight=10.0,
    identity_weight=0.5,
    compiled=True,
    jit_compile=False,
):
    """The TensorFlow CycleGAN tutorial's ``train_step`` with least-squares adversarial losses.

    ``optimizers``: (generator_ab, generator_ba, discriminator_a, discriminator_b).
    ``identity_weight`` multiplies ``cycle_weight`` (0.5 * lambda, as in Zhu et al. 2017).
    No image pool: the tutorial has none (it changes which fakes D sees, not the cost).
    """
    opt_ab, opt_ba, opt_da, opt_db = optimizers

    def mse(a, b):
        return tf.reduce_mean(tf.square(tf.cast(a, tf.float32) - b))

    def mae(a, b):
        return tf.reduce_mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))

    def step(batch):
        real_a, real_b = batch
        with tf.GradientTape(persistent=True) as tape:
            fake_b = generator_ab(real_a, training=True)
            cycled_a = generator_ba(fake_b, training=True)
            fake_a = generator_ba(real_b, training=True)
            cycled_b = generator_ab(fake_a, training=True)
            same_a = generator_ba(real_a, training=True)
            same_b = generator_ab(real_b, training=True)

            disc_real_a = discriminator_a(real_a, training=True)
            disc_real_b = discriminator_b(real_b, training=True)
            disc_fake_a = discriminator_a(fake_a, training=True)
            disc_fake_b = discriminator_b(fake_b, training=True)

            gen_ab_adv = mse(disc_fake_b, 1.0)
            gen_ba_adv = mse(disc_fake_a, 1.0)
            total_cycle = mae(real_a, cycled_a) + mae(real_b, cycled_b)
            gen_ab_loss = (
                gen_ab_adv
                + cycle_weight * total_cycle
                + cycle_weight * identity_weight * mae(real_b, same_b)
            )
            gen_ba_loss = (
                gen_ba_adv
                + cycle_weight * total_cycle
                + cycle_weight * identity_weight * mae(real_a, same_a)
            )
            disc_a_loss = 0.5 * (mse(disc_real_a, 1.0) + mse(disc_fake_a, 0.0))
            disc_b_loss = 0.5 * (mse(disc_real_b, 1.0) + mse(disc_fake_b, 0.0))
            scaled_losses = [
                optimizer.scale_loss(loss)
                for loss, optimizer in (
                    (gen_ab_loss, opt_ab),
                    (gen_ba_loss, opt_ba),
                    (disc_a_loss, opt_da),
                    (disc_b_loss, opt_db),
                )
            ]
        for scaled_loss, model, optimizer in zip(
            scaled_losses,
            (generator_ab, generator_ba, discriminator_a, discriminator_b),
            (opt_ab, opt_ba, opt_da, opt_db),
            strict=True,
        ):
            gradients = tape.gradient(scaled_loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        del tape
        # Both generators' objective as one number, for comparison with the package's g_loss.
        g_loss = (
            gen_ab_adv
            + gen_ba_adv
            + cycle_weight * total_cycle
            + cycle_weight * identity_weight * (mae(real_a, same_a) + mae(real_b, same_b))
        )
        return {"g_loss": g_loss, "d_a_loss": disc_a_loss, "d_b_loss": disc_b_loss}

    return _maybe_compile(step, compiled, jit_compile)
