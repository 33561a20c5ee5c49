"""The benchmark's hand-written loops compute what the package's train_step computes.

Speed is never tested here (that is benchmarks/); this checks that the comparison is fair: on
one batch, with the same weights and the same noise seed, the reference loop and the
package's ``train_step`` give the same losses and the same updated weights.
"""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from medgen_tf.config import REPO_DIR
from medgen_tf.models import cyclegan
from medgen_tf.models.gan import GAN, build_discriminator, build_generator, default_optimizers
from medgen_tf.models.vae import build_vae

if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from benchmarks import reference_loops  # noqa: E402

SIZE, BATCH = 32, 4


def _copy(model):
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


def _images(low=-1.0, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(low, 1.0, (BATCH, SIZE, SIZE, 1)).astype("float32"))


def _assert_same_weights(model_a, model_b):
    for a, b in zip(model_a.get_weights(), model_b.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("compiled", [True, False], ids=["tutorial_style", "eager"])
def test_dcgan_alternating_loop_matches_train_step(compiled):
    keras.utils.set_random_seed(0)
    gan = GAN(build_generator(16, SIZE, 1, 8), build_discriminator(SIZE, 1, 8), seed=3)
    gan.compile()
    generator, discriminator = _copy(gan.generator), _copy(gan.discriminator)
    d_optimizer, g_optimizer = default_optimizers()
    step = reference_loops.dcgan_alternating_step(
        generator, discriminator, g_optimizer, d_optimizer, 16, seed=3, compiled=compiled
    )
    images = _images()
    ours = gan.train_step(images)
    theirs = step(images)
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(float(ours[name]), float(theirs[name]), rtol=1e-5)
    _assert_same_weights(gan.generator, generator)
    _assert_same_weights(gan.discriminator, discriminator)


def test_dcgan_tutorial_loop_same_discriminator_loss():
    # The tutorial updates both nets from one forward pass: same D loss on the first batch,
    # a G loss taken before D's update (so it differs, as the algorithm does).
    keras.utils.set_random_seed(0)
    gan = GAN(build_generator(16, SIZE, 1, 8), build_discriminator(SIZE, 1, 8), seed=5)
    gan.compile()
    d_optimizer, g_optimizer = default_optimizers()
    step = reference_loops.dcgan_tutorial_step(
        _copy(gan.generator),
        _copy(gan.discriminator),
        g_optimizer,
        d_optimizer,
        16,
        seed=5,
        compiled=False,
    )
    images = _images()
    ours, theirs = gan.train_step(images), step(images)
    np.testing.assert_allclose(float(ours["d_loss"]), float(theirs["d_loss"]), rtol=1e-5)
    assert np.isfinite(float(theirs["g_loss"]))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_loop_matches_train_step(likelihood):
    keras.utils.set_random_seed(0)
    vae = build_vae(SIZE, 1, 4, 8, likelihood=likelihood, seed=7)
    vae.compile(keras.optimizers.Adam(1e-3))
    encoder, decoder = _copy(vae.encoder), _copy(vae.decoder)
    step = reference_loops.vae_step(
        encoder,
        decoder,
        keras.optimizers.Adam(1e-3),
        likelihood=likelihood,
        gaussian_sigma=vae.gaussian_sigma,
        beta=vae.beta,
        seed=7,
    )
    images = _images(low=0.0)
    ours, theirs = vae.train_step(images), step(images)
    for name in ("loss", "reconstruction_loss", "kl_loss"):
        np.testing.assert_allclose(float(ours[name]), float(theirs[name]), rtol=1e-5)
    _assert_same_weights(vae.decoder, decoder)


def test_cyclegan_loop_matches_train_step():
    keras.utils.set_random_seed(0)
    networks = [cyclegan.build_resnet_generator(SIZE, 1, 8, 1) for _ in range(2)]
    networks += [cyclegan.build_patchgan_discriminator(SIZE, 1, 8) for _ in range(2)]
    model = cyclegan.CycleGAN(*networks, seed=0)
    model.compile()
    twins = [_copy(network) for network in networks]
    # Eager: the same Python as the tf.function the benchmark runs, without its trace time.
    step = reference_loops.cyclegan_step(
        *twins, list(cyclegan.default_optimizers().values()), compiled=False
    )
    batch = (_images(seed=1), _images(seed=2))
    ours, theirs = model.train_step(batch), step(batch)
    # While the image pool fills it returns the new fakes, so D sees what the tutorial's D sees.
    for name in ("g_loss", "d_a_loss", "d_b_loss"):
        np.testing.assert_allclose(float(ours[name]), float(theirs[name]), rtol=1e-5)
    # Kernels only: the biases before instance norm get zero gradient in exact arithmetic,
    # so Adam's first step moves them by +-learning_rate in the direction of rounding noise.
    for network, twin in zip(networks, twins, strict=True):
        for a, b in zip(network.get_weights(), twin.get_weights(), strict=True):
            if a.ndim > 1:
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
