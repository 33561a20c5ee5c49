"""Variational autoencoder: a convolutional encoder and decoder trained on the ELBO.

Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014 (arXiv:1312.6114).
The encoder outputs the mean and log-variance of q(z|x); :class:`Sampling` draws
z = mu + sigma * eps (the reparameterization trick, so gradients reach mu and sigma);
the decoder outputs Bernoulli logits or Gaussian means of p(x|z) for images in [0, 1].
Taught in ``notebooks/02_vae.ipynb``.
"""

from __future__ import annotations

import copy

import keras
import numpy as np
from keras import ops

try:
    from medgen_tf import losses
    from medgen_tf.models.layers import (
        INPUT_SLACK,
        build_optimizer,
        check_batch_structure,
        check_compile_arguments,
        check_count_argument,
        check_fit_data,
        check_image_batch,
        check_image_size_argument,
        engine_compile_arguments,
        loss_scaled,
    )
except ModuleNotFoundError as error:  # lifted into a project without medgen_tf: the neighbours
    if not (error.name or "").startswith("medgen_tf"):
        raise
    import losses
    from layers import (
        INPUT_SLACK,
        build_optimizer,
        check_batch_structure,
        check_compile_arguments,
        check_count_argument,
        check_fit_data,
        check_image_batch,
        check_image_size_argument,
        engine_compile_arguments,
        loss_scaled,
    )

__all__ = [
    "LIKELIHOODS",
    "VAE",
    "Sampling",
    "build_decoder",
    "build_encoder",
    "build_vae",
    "kl_divergence",
    "kl_per_dimension",
]

LIKELIHOODS = ("bernoulli", "gaussian")


def kl_per_dimension(z_mean, z_log_var):
    """KL(N(mu, sigma^2) || N(0, 1)) in closed form, element-wise (one value per latent dim).

    Dimensions whose KL stays near zero over a dataset carry no information about x: the
    posterior has collapsed onto the prior there.
    """
    return -0.5 * (1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))


def kl_divergence(z_mean, z_log_var):
    """Closed-form KL(q(z|x) || N(0, I)) summed over latent dims: shape (batch,)."""
    return ops.sum(kl_per_dimension(z_mean, z_log_var), axis=-1)


def _num_downsamples(image_size: int) -> int:
    # Halve while the map stays even and above 8 pixels: 64 -> 8 (3), 32 -> 8 (2), 28 -> 7 (2).
    count, size = 0, image_size
    while size % 2 == 0 and size > 8:
        size //= 2
        count += 1
    if count == 0:
        raise ValueError(f"image_size must be even and above 8 (e.g. 28, 32, 64), got {image_size}")
    return count


def build_encoder(image_size=64, channels=1, latent_dim=32, base_filters=32, name="encoder"):
    """Strided-conv encoder: image -> (z_mean, z_log_var), both float32 (batch, latent_dim).

    The inference network q(z|x) of Kingma & Welling 2014, as a Gaussian with diagonal
    covariance; the log-variance head keeps the variance positive without a constraint.

    Args:
        image_size: side of the square images: even and above 8 (the encoder halves it while
            it stays so: 28 -> 7, 32 -> 8, 64 -> 8).
        channels: image channels (1 for MR).
        latent_dim: length of z.
        base_filters: filters of the first block; each next block has twice as many, up to
            eight times.
        name: the model's name.

    Example:
        >>> from keras import ops
        >>> from medgen_tf.models.vae import build_encoder
        >>> z_mean, z_log_var = build_encoder(32, latent_dim=8, base_filters=4)(ops.zeros((2, 32, 32, 1)))
        >>> tuple(z_mean.shape), tuple(z_log_var.shape)
        ((2, 8), (2, 8))

    Notebook: ``notebooks/02_vae.ipynb``.
    """
    image_size = check_image_size_argument(image_size, "build_encoder")
    images = keras.Input((image_size, image_size, channels), name="images")
    x = images
    for block in range(_num_downsamples(image_size)):
        filters = base_filters * min(2**block, 8)
        x = keras.layers.Conv2D(filters, 4, strides=2, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    # float32 heads keep the KL and the sampling exact under a mixed_float16 policy.
    # latent_dim=0 built a z that carries nothing.
    latent_dim = check_count_argument(latent_dim, "latent_dim", "build_encoder")
    z_mean = keras.layers.Dense(latent_dim, dtype="float32", name="z_mean")(x)
    z_log_var = keras.layers.Dense(latent_dim, dtype="float32", name="z_log_var")(x)
    return keras.Model(images, [z_mean, z_log_var], name=name)


def build_decoder(
    image_size=64,
    channels=1,
    latent_dim=32,
    base_filters=32,
    likelihood="bernoulli",
    name="decoder",
):
    """Decoder z -> image parameters, float32 (batch, image_size, image_size, channels).

    The generative network p(x|z) of Kingma & Welling 2014, mirroring :func:`build_encoder`.
    ``likelihood="bernoulli"`` outputs logits (apply a sigmoid for probabilities);
    ``likelihood="gaussian"`` outputs means in [0, 1] through a sigmoid.

    Args:
        image_size, channels, latent_dim, base_filters: as for :func:`build_encoder`.
        likelihood: ``"bernoulli"`` or ``"gaussian"`` (see :class:`VAE`).
        name: the model's name.

    Example:
        >>> from keras import ops
        >>> from medgen_tf.models.vae import build_decoder
        >>> decoder = build_decoder(32, latent_dim=8, base_filters=4)
        >>> tuple(decoder(ops.zeros((2, 8))).shape)
        (2, 32, 32, 1)

    Notebook: ``notebooks/02_vae.ipynb``.
    """
    image_size = check_image_size_argument(image_size, "build_decoder")
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
    num_blocks = _num_downsamples(image_size)
    start_size = image_size // 2**num_blocks
    start_filters = base_filters * min(2 ** (num_blocks - 1), 8)
    latent = keras.Input(
        (check_count_argument(latent_dim, "latent_dim", "build_decoder"),), name="z"
    )
    x = keras.layers.Dense(start_size * start_size * start_filters, activation="relu")(latent)
    x = keras.layers.Reshape((start_size, start_size, start_filters))(x)
    for block in reversed(range(num_blocks)):
        filters = base_filters * min(2**block, 8)
        # Kernel 4 with stride 2 avoids uneven overlap, the main cause of checkerboard
        # artefacts (Odena et al. 2016); learned weights can still produce some.
        x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", activation="relu")(
            x
        )
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    activation = "sigmoid" if likelihood == "gaussian" else None
    output_name = "means" if likelihood == "gaussian" else "logits"
    outputs = keras.layers.Conv2D(
        channels, 3, padding="same", activation=activation, dtype="float32", name=output_name
    )(x)
    return keras.Model(latent, outputs, name=name)


@keras.saving.register_keras_serializable(package="medgen_tf")
class Sampling(keras.layers.Layer):
    """Reparameterization trick: z = z_mean + exp(z_log_var / 2) * eps, eps ~ N(0, I).

    The randomness sits in eps, outside the path from the encoder to z, so z is a
    differentiable function of z_mean and z_log_var (Kingma & Welling 2014, section 2.4).

    Args:
        seed: seed of the layer's ``keras.random.SeedGenerator`` (its state advances every
            call and is saved with the model, so each step draws new noise).

    Example:
        >>> from keras import ops
        >>> from medgen_tf.models.vae import Sampling
        >>> tuple(Sampling(seed=0)([ops.zeros((2, 4)), ops.zeros((2, 4))]).shape)
        (2, 4)

    Notebook: ``notebooks/02_vae.ipynb`` (the article's VAE had no such step).
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = losses.draw_per_replica(
            lambda shape: keras.random.normal(shape, dtype=z_mean.dtype, seed=self.seed_generator),
            ops.shape(z_mean),
        )
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    # Keras does not save a SeedGenerator's state with a layer's weights; saving it here makes
    # a reloaded (or resumed) model continue the same noise sequence.
    def save_own_variables(self, store):
        super().save_own_variables(store)
        store["seed_generator_state"] = keras.ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store):
        # Files written before the state was saved lack it: their noise starts from the seed.
        if "seed_generator_state" in store:
            self.seed_generator.state.assign(store["seed_generator_state"])
        # The rest is what save_own_variables' super() wrote (a subclass's own weights).
        super().load_own_variables(
            {key: store[key] for key in store.keys() if key != "seed_generator_state"}
        )

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="medgen_tf")
class VAE(keras.Model):
    """Variational autoencoder trained by maximising the evidence lower bound (ELBO).

    Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014; beta weighting from
    Higgins et al., "beta-VAE", ICLR 2017; KL warm-up from Bowman et al., CoNLL 2016.

    Loss per image (the negative ELBO in nats, less a constant for ``"gaussian"``, see below;
    all terms summed over pixels or latent dims, then averaged over the batch):
    ``reconstruction_loss + kl_weight * kl_loss`` where
    ``kl_loss = KL(q(z|x) || N(0, I))`` in closed form and ``reconstruction_loss`` is
    ``-log p(x|z)`` with one z sampled per image:

    - ``"bernoulli"``: binary cross-entropy on the decoder's logits (data in [0, 1]; off it
      the loss has no minimum, and ``fit`` refuses numpy images outside it). On grey levels
      between 0 and 1 a Bernoulli is not a normalised density, so this "ELBO" does not bound
      log p(x) (Loaiza-Ganem & Cunningham 2019, the continuous Bernoulli).
    - ``"gaussian"``: fixed variance ``gaussian_sigma**2``, i.e.
      ``sum((x - mean)**2) / (2 * gaussian_sigma**2)``, leaving out the constant
      ``D/2 * log(2 pi sigma^2)`` for ``D`` pixel values per image (no effect on gradients).
      Every reported Gaussian loss, evaluation included, is therefore the negative ELBO minus
      that constant, not the negative ELBO itself (with sigma=0.1 and 64x64x1 images the
      constant is about -5667 nats, so the reported value is about 5667 nats higher). A
      smaller sigma weights reconstruction more against the KL and gives sharper, less
      blurred reconstructions.

    Args:
        encoder: model image -> (z_mean, z_log_var), e.g. :func:`build_encoder`.
        decoder: model z -> logits or means, e.g. :func:`build_decoder` with the same
            ``likelihood`` and latent size as the encoder.
        likelihood: ``"bernoulli"`` or ``"gaussian"``.
        beta: weight of the KL term once warmed up (1.0 gives the ELBO).
        kl_warmup_steps: optimizer steps over which the KL weight ramps linearly from 0 to
            ``beta``; read from ``optimizer.iterations`` so it continues correctly on resume.
        gaussian_sigma: the fixed standard deviation of the Gaussian likelihood.
        seed: seed of the sampling layer's SeedGenerator.

    Example:
        >>> import keras
        >>> from medgen_tf.models.vae import VAE, build_decoder, build_encoder
        >>> vae = VAE(build_encoder(32, latent_dim=8, base_filters=4),
        ...           build_decoder(32, latent_dim=8, base_filters=4))
        >>> vae.compile(keras.optimizers.Adam(1e-3))
        >>> vae.fit(images, epochs=1, batch_size=32)  # doctest: +SKIP

    Notebook: ``notebooks/02_vae.ipynb`` (the ELBO, likelihoods and the latent space on brain
    MRI).
    """

    def __init__(
        self,
        encoder,
        decoder,
        likelihood="bernoulli",
        beta=1.0,
        kl_warmup_steps=0,
        gaussian_sigma=0.1,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        try:  # None (a TypeError) and NaN (no comparison holds) are refused too
            valid = beta >= 0 and kl_warmup_steps >= 0 and gaussian_sigma > 0
        except TypeError:
            valid = False
        if not valid:
            raise ValueError(
                f"need beta >= 0, kl_warmup_steps >= 0, gaussian_sigma > 0; got {beta}, "
                f"{kl_warmup_steps}, {gaussian_sigma}"
            )
        # build_decoder names its output layer after what it outputs; a decoder built for the
        # other likelihood would have its logits read as means (or the reverse) without error.
        other_output = {"bernoulli": "means", "gaussian": "logits"}[likelihood]
        if other_output in (getattr(decoder, "output_names", None) or []):
            raise ValueError(
                f"likelihood={likelihood!r} but the decoder outputs {other_output!r}: build it "
                f"with build_decoder(..., likelihood={likelihood!r})."
            )
        encoder_latent_dim = encoder.outputs[0].shape[-1]
        decoder_latent_dim = decoder.inputs[0].shape[-1]
        if encoder_latent_dim != decoder_latent_dim:
            raise ValueError(
                f"The encoder's latent size ({encoder_latent_dim}) differs from the decoder's "
                f"input size ({decoder_latent_dim})."
            )
        # Checked up front: a 1-channel output broadcasts against 3-channel images and trains
        # without error; other mismatches fail only inside the first step.
        image_shape = tuple(encoder.inputs[0].shape[1:])
        output_shape = tuple(decoder.outputs[0].shape[1:])
        if len(image_shape) != len(output_shape) or any(
            a is not None and b is not None and a != b
            for a, b in zip(image_shape, output_shape, strict=True)
        ):
            raise ValueError(
                f"The encoder's input shape {image_shape} differs from the decoder's output "
                f"shape {output_shape}."
            )
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.beta = float(beta)
        # int() made 2.5 steps into 2.
        self.kl_warmup_steps = check_count_argument(
            kl_warmup_steps, "kl_warmup_steps", "VAE", minimum=0
        )
        self.gaussian_sigma = float(gaussian_sigma)
        self.seed = seed
        self.latent_dim = int(decoder.inputs[0].shape[-1])
        self.sampling = Sampling(seed=seed, dtype="float32", name="sampling")
        self.kl_weight = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(0.0 if kl_warmup_steps else beta),
            trainable=False,
            name="kl_weight",
        )
        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        # Encoder and decoder are built already; marking the wrapper built lets weights be
        # saved or restored before the first fit.
        self.build(tuple(encoder.inputs[0].shape))

    def build(self, input_shape=None):
        self.built = True

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def compile(self, optimizer="adam", **kwargs):
        check_compile_arguments("VAE", kwargs, {"optimizer": optimizer})
        # loss_scaled adds dynamic loss scaling when the encoder or decoder computes in float16.
        optimizer = loss_scaled(keras.optimizers.get(optimizer), self)
        kwargs.setdefault("jit_compile", "auto")
        super().compile(optimizer=optimizer, **kwargs)
        # Slots now, not lazily inside the traced step: tf.distribute cannot create mirrored
        # variables there, and a restore needs them to exist or Adam's moments restart.
        build_optimizer(self.optimizer, self.trainable_variables, "VAE", "optimizer")

    @property
    def optimizers(self):
        """The optimizers to checkpoint (one here; the GANs have two)."""
        return [self.optimizer]

    def get_compile_config(self):
        # With compile overridden, Keras needs these two methods to restore the optimizer
        # (and its saved state) when a .keras file is loaded.
        if not self.compiled:
            return {}
        return {
            "optimizer": keras.saving.serialize_keras_object(self.optimizer),
            **engine_compile_arguments(super().get_compile_config()),
        }

    def compile_from_config(self, config):
        self.compile(
            optimizer=keras.saving.deserialize_keras_object(config["optimizer"]),
            **engine_compile_arguments(config),
        )

    def kl_weight_at(self, step):
        """KL weight after ``step`` optimizer steps: beta * min(1, step / kl_warmup_steps)."""
        if self.kl_warmup_steps == 0:
            return ops.convert_to_tensor(self.beta, "float32")
        progress = ops.cast(step, "float32") / float(self.kl_warmup_steps)
        return self.beta * ops.minimum(progress, 1.0)

    def encode(self, images):
        """Posterior parameters (z_mean, z_log_var) for a batch of images."""
        if images.shape[0] == 0:
            # TF's Conv2D fails on an empty batch (its bias meets the input's channel count).
            return [
                ops.zeros((0, *output.shape[1:]), output.dtype) for output in self.encoder.outputs
            ]
        return self.encoder(images)

    def decode(self, z):
        """Decoded images in [0, 1]: Bernoulli probabilities or Gaussian means."""
        if z.shape[0] == 0:
            # TF's Conv2D gives an empty batch its input's channels, not its filters' count.
            return ops.zeros((0, *self.decoder.outputs[0].shape[1:]), "float32")
        outputs = ops.cast(self.decoder(z), "float32")
        return ops.sigmoid(outputs) if self.likelihood == "bernoulli" else outputs

    def reconstruct(self, images, sample=False):
        """Decode each image's posterior mean (or, with ``sample=True``, one posterior sample)."""
        z_mean, z_log_var = self.encode(images)
        z = self.sampling([z_mean, z_log_var]) if sample else z_mean
        return self.decode(z)

    def sample(self, num_samples, seed=None):
        """Draw ``num_samples`` images from the prior: z ~ N(0, I), decoded to [0, 1]."""
        z = keras.random.normal((num_samples, self.latent_dim), seed=seed)
        return self.decode(z)

    def kl_per_dimension(self, images):
        """Mean KL of each latent dimension over ``images``; near-zero entries have collapsed.

        NaN for each dimension when ``images`` is empty (a mean over no images)."""
        z_mean, z_log_var = self.encode(images)
        return ops.mean(kl_per_dimension(z_mean, z_log_var), axis=0)

    def call(self, images, training=False):
        z_mean, z_log_var = self.encoder(images, training=training)
        return self.decode(self.sampling([z_mean, z_log_var]))

    def _elbo_terms(self, images, training):
        images = ops.cast(images, "float32")
        z_mean, z_log_var = self.encoder(images, training=training)
        z = self.sampling([z_mean, z_log_var])
        outputs = ops.cast(self.decoder(z, training=training), "float32")
        if self.likelihood == "bernoulli":
            per_pixel = ops.binary_crossentropy(images, outputs, from_logits=True)
        else:
            per_pixel = ops.square(images - outputs) / (2.0 * self.gaussian_sigma**2)
        reconstruction_loss = ops.mean(ops.sum(per_pixel, axis=(1, 2, 3)))
        kl_loss = ops.mean(kl_divergence(z_mean, z_log_var))
        return reconstruction_loss, kl_loss

    def _update_trackers(self, total_loss, reconstruction_loss, kl_loss):
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {metric.name: metric.result() for metric in self.metrics}

    def _unpack(self, data):
        check_batch_structure(data, "VAE", "images (or (images,))")
        images = data[0] if isinstance(data, (tuple, list)) else data
        inputs = getattr(self.encoder, "inputs", None)  # None for a subclassed encoder
        shape = tuple(inputs[0].shape[1:]) if inputs else None
        check_image_batch(images, "VAE", "[0, 1]", image_shape=shape)
        return images

    def fit(self, x=None, y=None, *args, **kwargs):
        # Checked once on the host, as the GANs' fit checks their images; inside the step a
        # NaN or a Bernoulli target outside [0, 1] (where the cross-entropy has no minimum)
        # trains into overflow and NaN without a message.
        check_fit_data(self, x, None, kwargs.get("validation_data"), "VAE.fit")
        return super().fit(x, y, *args, **kwargs)

    def check_training_data(self, data, context):
        """Refuse, in one line starting with ``context``, numpy images the ELBO cannot fit:
        NaN or inf; for the Bernoulli likelihood values outside [0, 1]; for the Gaussian one,
        when the decoder's means come through a sigmoid (as :func:`build_decoder` makes
        them), values outside [0, 1] by more than a quarter of its width (room for a resize's
        overshoot; [-1, 1] or 8-bit images lie far beyond what the means can reach). ``fit``
        calls it on numpy input, :func:`medgen_tf.training.fit` on the arrays it batches; a
        dataset's batches are not checked (they are never all on the host)."""
        images = data[0] if isinstance(data, (tuple, list)) and data else data
        if isinstance(images, np.ndarray):
            self._check_image_values(images, context)

    def _check_image_values(self, images, context):
        # Integer images are left to check_image_batch, whose message says to convert them.
        if not images.size or not np.issubdtype(images.dtype, np.floating):
            return
        low, high = images.min(), images.max()  # NaN if any is NaN
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"{context}: images hold NaN or infinite values; remove them first.")
        if self.likelihood == "bernoulli" and not 0.0 <= low <= high <= 1.0:
            raise ValueError(
                f"{context}: likelihood='bernoulli' needs images in [0, 1], got {low:g} to "
                f"{high:g}; scale images to [0, 1] (e.g. divide 8-bit images by 255)."
            )
        if self.likelihood == "gaussian" and self._decoder_means_in_unit_range():
            # Half of a [-1, 1] slice is out of a sigmoid's reach: the model trained without
            # a word and reconstructed every dark pixel as 0.
            if low < -INPUT_SLACK or high > 1.0 + INPUT_SLACK:
                raise ValueError(
                    f"{context}: the decoder's means come through a sigmoid, in (0, 1), but "
                    f"the images lie from {low:g} to {high:g}; scale them to [0, 1] (e.g. "
                    "(x + 1) / 2 for [-1, 1] images, x / 255 for 8-bit ones)."
                )

    def _decoder_means_in_unit_range(self):
        # A subclassed decoder may have no layers list: nothing to read, no range to check.
        output_layer = (getattr(self.decoder, "layers", None) or [None])[-1]
        return getattr(output_layer, "activation", None) is keras.activations.sigmoid

    def train_step(self, data):
        import tensorflow as tf  # train_step uses GradientTape: this model trains on TensorFlow

        images = self._unpack(data)
        self.kl_weight.assign(self.kl_weight_at(self.optimizer.iterations))
        with tf.GradientTape() as tape:
            reconstruction_loss, kl_loss = self._elbo_terms(images, training=True)
            loss = reconstruction_loss + self.kl_weight * kl_loss
            # Gradients are summed over replicas; the loss scale guards float16 gradients.
            scaled_loss = self.optimizer.scale_loss(losses.scale_for_replicas(loss))
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        logs = self._update_trackers(loss, reconstruction_loss, kl_loss)
        # A tensor, not the variable itself: fit(run_eagerly=True) cannot return a variable.
        return {**logs, "kl_weight": ops.convert_to_tensor(self.kl_weight)}

    def test_step(self, data):
        images = self._unpack(data)
        reconstruction_loss, kl_loss = self._elbo_terms(images, training=False)
        # Evaluation reports the negative ELBO with KL weight 1, whatever beta is (for the
        # Gaussian likelihood less the constant D/2 * log(2 pi sigma^2), left out throughout).
        return self._update_trackers(reconstruction_loss + kl_loss, reconstruction_loss, kl_loss)

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "likelihood": self.likelihood,
            "beta": self.beta,
            "kl_warmup_steps": self.kl_warmup_steps,
            "gaussian_sigma": self.gaussian_sigma,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing pops the nested configs: keep the caller's
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["decoder"] = keras.saving.deserialize_keras_object(config["decoder"])
        return cls(**config)


def build_vae(
    image_size=64,
    channels=1,
    latent_dim=32,
    base_filters=32,
    likelihood="bernoulli",
    **kwargs,
):
    """Encoder, decoder and :class:`VAE` in one call (Kingma & Welling 2014).

    Args:
        image_size, channels, latent_dim, base_filters, likelihood: as for
            :func:`build_encoder` and :func:`build_decoder`.
        **kwargs: passed to :class:`VAE` (``beta``, ``kl_warmup_steps``, ``seed``, ...).

    Example:
        >>> from keras import ops
        >>> from medgen_tf.models.vae import build_vae
        >>> vae = build_vae(32, latent_dim=8, base_filters=4, seed=0)
        >>> tuple(vae(ops.zeros((2, 32, 32, 1))).shape)
        (2, 32, 32, 1)

    Notebook: ``notebooks/02_vae.ipynb``.
    """
    check_image_size_argument(image_size, "build_vae")
    encoder = build_encoder(image_size, channels, latent_dim, base_filters)
    decoder = build_decoder(image_size, channels, latent_dim, base_filters, likelihood)
    return VAE(encoder, decoder, likelihood=likelihood, **kwargs)
