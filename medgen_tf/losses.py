"""Adversarial, cycle and identity losses shared by the GAN and CycleGAN models.

Every adversarial loss works on **logits** (the discriminator has no sigmoid) and comes as a
pair ``(discriminator_loss(real_logits, fake_logits), generator_loss(fake_logits))``, looked up
by name with :func:`get_adversarial_loss`.

Reductions and ``tf.distribute``
    Each function returns the **mean over this replica's batch** (and over every position of
    a PatchGAN map), computed in float32 even under ``mixed_float16``: the value a learner
    expects to read and the value the metrics log. Keras' own losses are divided by the
    replica count inside ``fit``; ours are not, because a custom ``train_step`` calls them.
    The optimizer sums gradients over replicas, so a ``train_step`` takes gradients of
    ``scale_for_replicas(loss)``: the sum over replicas of ``mean / num_replicas`` equals the
    mean over the global batch when every replica gets the same number of examples: a global
    batch that does not split evenly (5 over 2 replicas, or a last partial batch) weighs the
    smaller replica's examples more. :func:`medgen_tf.training.fit` refuses a batch size that
    does not split, and drops the last partial batch.

References:
    Goodfellow et al. 2014 (non-saturating loss); Mao et al. 2017 (least squares, LSGAN);
    Lim & Ye 2017 / Miyato et al. 2018 (hinge); Arjovsky et al. 2017 and Gulrajani et al. 2017
    (WGAN with gradient penalty); Zhu et al. 2017 (cycle and identity losses, CycleGAN).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

__all__ = [
    "ADVERSARIAL_LOSSES",
    "cycle_loss",
    "draw_per_replica",
    "get_adversarial_loss",
    "gradient_penalty",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "identity_loss",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "non_saturating_discriminator_loss",
    "non_saturating_generator_loss",
    "scale_for_replicas",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
]


def _float32(x):
    return ops.cast(x, "float32")


def _binary_cross_entropy_with_logits(labels, logits):
    # softplus(x) - x*z: -log sigmoid for z=1, -log(1 - sigmoid) for z=0, stable for large |x|
    # (TensorFlow's softplus never overflows). Written as relu(x) + log1p(exp(-|x|)), the same
    # value had a wrong gradient at a logit of exactly 0 (-z, not 0.5 - z): relu and abs both
    # take a slope of 0 at their kink.
    return ops.mean(ops.softplus(logits) - logits * labels)


def scale_for_replicas(loss):
    """Divide ``loss`` by the number of replicas in sync (1 outside ``tf.distribute``).

    Use it on the value whose gradients are taken, never on the value logged.
    """
    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if num_replicas > 1:
        loss = loss / ops.cast(num_replicas, loss.dtype)
    return loss


def draw_per_replica(draw, shape):
    """``draw(shape)``, with different numbers on every replica under ``tf.distribute``.

    Every replica holds the same ``SeedGenerator`` state, so a plain draw would give each
    replica the same noise (the same GAN inputs, VAE eps or WGAN-GP interpolation on every
    replica). Here each replica draws for the whole global batch and keeps its own rows:
    the draw is laid out ``(rows, num_replicas, ...)`` and replica ``j`` keeps column ``j``.
    TensorFlow's counter-based draws give the same numbers for the same flat positions
    whatever the shape, so replicas with different row counts (a last partial batch of a
    dataset of your own) still share no number, which a block per replica could not promise.

    Args:
        draw: ``shape -> tensor``, e.g. ``lambda s: keras.random.normal(s, seed=generator)``.
        shape: this replica's shape; rows are axis 0.
    """
    num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
    context = tf.distribute.get_replica_context()
    if num_replicas == 1 or context is None:  # None: cross-replica code, one draw serves
        return draw(shape)
    values = draw((shape[0], num_replicas, *shape[1:]))
    return values[:, context.replica_id_in_sync_group]


# ---- non-saturating (Goodfellow et al. 2014) -------------------------------------------------


def non_saturating_discriminator_loss(real_logits, fake_logits, label_smoothing=0.0):
    """BCE from logits: real -> 1 (or ``1 - label_smoothing``, one-sided), fake -> 0.

    Both halves are batch means and are added, so a discriminator that guesses gives
    ``2 * log 2``.
    """
    real_logits, fake_logits = _float32(real_logits), _float32(fake_logits)
    real_target = 1.0 - float(label_smoothing)
    real_loss = _binary_cross_entropy_with_logits(real_target, real_logits)
    fake_loss = _binary_cross_entropy_with_logits(0.0, fake_logits)
    return real_loss + fake_loss


def non_saturating_generator_loss(fake_logits):
    """``-log D(G(z))`` as BCE from logits with target 1 (strong gradients early on)."""
    return _binary_cross_entropy_with_logits(1.0, _float32(fake_logits))


def minimax_generator_loss(fake_logits):
    """``mean(log(1 - D(G(z))))``, the generator's side of the original minimax game.

    For teaching only: it is what Goodfellow et al.'s value function asks G to minimise, and it
    saturates. Its gradient with respect to a logit l is ``-sigmoid(l)``, about -5e-5 at
    l = -10, so a generator whose fakes D rejects confidently learns nothing.
    :func:`non_saturating_generator_loss` is what to train with. Not in
    :data:`ADVERSARIAL_LOSSES`. Computed as ``-mean(softplus(l))``, since
    ``log(1 - sigmoid(l)) = -softplus(l)`` and the log of a difference underflows.

    Notebook: ``notebooks/solutions/01_gan_solutions.ipynb`` (the gradients of each loss).
    """
    return -ops.mean(ops.softplus(_float32(fake_logits)))


# ---- least squares (Mao et al. 2017; the CycleGAN loss) ---------------------------------------


def least_squares_discriminator_loss(real_logits, fake_logits, label_smoothing=0.0):
    """MSE of the raw output: real -> 1, fake -> 0, averaged over batch and patch map.

    Returns ``mean((D(x) - 1)^2) + mean(D(G(z))^2)``; CycleGAN halves it when it updates D.
    """
    real_logits, fake_logits = _float32(real_logits), _float32(fake_logits)
    real_target = 1.0 - float(label_smoothing)
    return ops.mean(ops.square(real_logits - real_target)) + ops.mean(ops.square(fake_logits))


def least_squares_generator_loss(fake_logits):
    """``mean((D(G(z)) - 1)^2)``."""
    return ops.mean(ops.square(_float32(fake_logits) - 1.0))


# ---- hinge (Lim & Ye 2017; Miyato et al. 2018) ------------------------------------------------


def hinge_discriminator_loss(real_logits, fake_logits, label_smoothing=0.0):
    """``mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))``; ``label_smoothing`` is ignored."""
    del label_smoothing
    real_logits, fake_logits = _float32(real_logits), _float32(fake_logits)
    return ops.mean(ops.relu(1.0 - real_logits)) + ops.mean(ops.relu(1.0 + fake_logits))


def hinge_generator_loss(fake_logits):
    """``-mean(D(G(z)))``."""
    return -ops.mean(_float32(fake_logits))


# ---- Wasserstein (Arjovsky et al. 2017; Gulrajani et al. 2017) --------------------------------


def wasserstein_critic_loss(real_logits, fake_logits, label_smoothing=0.0):
    """``mean(D(G(z))) - mean(D(x))``: minus the Wasserstein estimate. Add the gradient penalty."""
    del label_smoothing
    return ops.mean(_float32(fake_logits)) - ops.mean(_float32(real_logits))


def wasserstein_generator_loss(fake_logits):
    """``-mean(D(G(z)))``."""
    return -ops.mean(_float32(fake_logits))


def gradient_penalty(critic, real_images, fake_images, seed=None, critic_inputs=None):
    """WGAN-GP penalty ``mean((||grad_x D(x_hat)||_2 - 1)^2)`` on random interpolates.

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U(0, 1)`` per sample
    (Gulrajani et al. 2017, Algorithm 1). Multiply by the weight (10 in the paper) yourself.

    Args:
        critic: callable mapping images (or ``[images, *critic_inputs]``) to logits.
        real_images, fake_images: tensors of the same shape ``(batch, H, W, C)``.
        seed: a ``keras.random.SeedGenerator`` (so the interpolation changes every step)
            or ``None``.
        critic_inputs: extra inputs passed after the images (e.g. class labels).
    """
    real_images = _float32(real_images)
    fake_images = _float32(fake_images)
    batch_size = ops.shape(real_images)[0]
    epsilon = draw_per_replica(
        lambda shape: keras.random.uniform(shape, seed=seed), (batch_size, 1, 1, 1)
    )
    interpolates = epsilon * real_images + (1.0 - epsilon) * fake_images
    with tf.GradientTape() as tape:
        tape.watch(interpolates)
        inputs = interpolates if critic_inputs is None else [interpolates, *critic_inputs]
        logits = _float32(critic(inputs, training=True))
    gradients = tape.gradient(logits, interpolates)
    # The epsilon keeps sqrt differentiable where a gradient is exactly zero.
    norms = ops.sqrt(ops.sum(ops.square(gradients), axis=[1, 2, 3]) + 1e-12)
    return ops.mean(ops.square(norms - 1.0))


# ---- registry ---------------------------------------------------------------------------------

ADVERSARIAL_LOSSES = {
    "non_saturating": (non_saturating_discriminator_loss, non_saturating_generator_loss),
    "least_squares": (least_squares_discriminator_loss, least_squares_generator_loss),
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    "wgan_gp": (wasserstein_critic_loss, wasserstein_generator_loss),
}


def get_adversarial_loss(name):
    """Return ``(discriminator_loss, generator_loss)`` for a name in ``ADVERSARIAL_LOSSES``."""
    key = str(name).lower().replace("-", "_")
    if key not in ADVERSARIAL_LOSSES:
        raise ValueError(
            f"Unknown adversarial loss {name!r}; choose one of {sorted(ADVERSARIAL_LOSSES)}."
        )
    return ADVERSARIAL_LOSSES[key]


# ---- CycleGAN reconstruction terms (Zhu et al. 2017) ------------------------------------------


def cycle_loss(real_images, cycled_images):
    """Mean absolute error between an image and its round trip ``F(G(x))``."""
    return ops.mean(ops.abs(_float32(real_images) - _float32(cycled_images)))


def identity_loss(real_images, same_images):
    """Mean absolute error between an image and ``G(y)`` for ``y`` already in G's target domain."""
    return ops.mean(ops.abs(_float32(real_images) - _float32(same_images)))
