"""Tests for medgen_tf.models.pix2pix: the paired upper reference."""

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


def _model(adversarial):
    keras.utils.set_random_seed(0)
    generator = build_resnet_generator(SIZE, 1, filters=4, num_residual_blocks=1)
    discriminator = build_patchgan_discriminator(SIZE, 2, filters=4) if adversarial else None
    return Pix2Pix(generator, discriminator)


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


def test_keras_file_round_trip(tmp_path):
    model = _model(adversarial=True)
    path = tmp_path / "pix2pix.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    images = np.random.default_rng(2).uniform(-1, 1, (2, SIZE, SIZE, 1)).astype("float32")
    assert restored.l1_weight == 100.0 and restored.discriminator is not None
    np.testing.assert_allclose(restored.translate(images), model.translate(images), atol=1e-6)
