"""Time to quality: how long each model trains on this CPU before it reaches its target.

Each model is trained the way its notebook trains it (same sizes, same data, same engine), one
epoch at a time; after every epoch the training clock stops while the model is scored on
held-out data, so the curve is (training seconds, score) and evaluation time is reported
apart. A run ends at its target, at its time cap, or at the end of its epochs (only the
CycleGAN's are few: notebook 03's 7, over which its learning rate decays to zero), whichever
comes first; the summary's ``stopped_by`` says which ("target", "cap" or "epochs").

- VAE (notebook 02): test PSNR of the posterior-mean reconstruction, target 26 dB.
- DCGAN (notebook 04's settings): FD-medgen of 384 samples against 384 real training slices,
  target: within 2x of the real-vs-real floor (384 held-out real slices against the same
  reference).
- CycleGAN (notebook 03): T1 -> T2 SSIM inside the brain mask on the 4 held-out test subjects,
  target 0.85 (notebook 03's goal, whose other half, "within 0.05 of a paired model", needs the
  paired reference the notebook trains and is not timed here).

Run by ``python benchmarks/run.py --quality`` (``make bench-quality``), each model in its own
worker process.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

TARGETS = {"vae": 26.0, "dcgan": None, "cyclegan": 0.85}  # the DCGAN's depends on its floor


def _quality_callback(evaluate, target, cap_s, higher_is_better, clock=time.perf_counter):
    """A Keras callback that scores the model after each epoch, off the training clock, and
    stops training at the target or once ``cap_s`` training seconds are spent (``stopped_by``:
    "target" or "cap"; None while it has not stopped the run). ``clock`` returns seconds
    (tests pass a fake one)."""
    import keras

    class QualityCurve(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.curve, self.training_s, self.evaluation_s = [], 0.0, 0.0
            self.reached_at = None
            self.stopped_by = None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = clock()

        def on_epoch_end(self, epoch, logs=None):
            self.training_s += clock() - self.epoch_start
            start = clock()
            value = float(evaluate(self.model))
            self.evaluation_s += clock() - start
            self.curve.append((round(self.training_s, 1), round(value, 4)))
            reached = value >= target if higher_is_better else value <= target
            if reached and self.reached_at is None:
                self.reached_at = self.training_s
            if reached or self.training_s >= cap_s:
                self.stopped_by = "target" if reached else "cap"
                self.model.stop_training = True

    return QualityCurve()


def _summary(callback, target, cap_s, metric, higher_is_better=True, **extra):
    values = [value for _, value in callback.curve]
    best = (max if higher_is_better else min)(values) if values else None
    return {
        "metric": metric,
        "target": target,
        "higher_is_better": higher_is_better,
        "reached": callback.reached_at is not None,
        "seconds_to_target": None if callback.reached_at is None else round(callback.reached_at, 1),
        "best": best,
        "epochs": len(callback.curve),
        "curve": callback.curve,
        "training_s": round(callback.training_s, 1),
        "evaluation_s": round(callback.evaluation_s, 1),
        "cap_s": cap_s,
        # Neither the target nor the cap: fit ran all its epochs.
        "stopped_by": callback.stopped_by or "epochs",
        **extra,
    }


def quality_vae(cap_s):
    """Notebook 02's VAE (latent 512, 16 base filters, Gaussian sigma 0.02, batch 16, Adam 1e-3)
    on the T1w/T2w/PD training slices in [0, 1]; test PSNR of the reconstructions."""
    import keras

    from medgen_tf.data import load_spec
    from medgen_tf.metrics import psnr
    from medgen_tf.models.vae import build_vae

    train = load_spec("brain", image_size=64, split="train", value_range=(0.0, 1.0))["images"]
    test = load_spec("brain", image_size=64, split="test", value_range=(0.0, 1.0))["images"]
    keras.utils.set_random_seed(0)
    vae = build_vae(
        64, latent_dim=512, base_filters=16, likelihood="gaussian", gaussian_sigma=0.02, seed=0
    )
    vae.compile(keras.optimizers.Adam(1e-3))

    def test_psnr(model):
        reconstructions = np.concatenate(
            [
                keras.ops.convert_to_numpy(model.reconstruct(test[i : i + 64]))
                for i in range(0, len(test), 64)
            ]
        )
        return psnr(test, reconstructions, data_range=1.0, reduce="mean")

    callback = _quality_callback(test_psnr, TARGETS["vae"], cap_s, True)
    vae.fit(train, batch_size=16, epochs=10_000, verbose=0, callbacks=[callback])
    return _summary(
        callback,
        TARGETS["vae"],
        cap_s,
        "test PSNR (dB), posterior-mean reconstructions of 4 held-out subjects",
        settings="notebook 02: latent_dim 512, base_filters 16, gaussian sigma 0.02, batch 16",
        train_images=len(train),
        test_images=len(test),
    )


def quality_dcgan(cap_s):
    """Notebook 04's DCGAN (base_filters 32, batch 64, 64 px T1w) trained by the engine;
    FD-medgen of 384 samples against 384 real training slices after each epoch."""
    import keras

    from medgen_tf.data import brain_slices
    from medgen_tf.features import extract_features
    from medgen_tf.metrics import frechet_distance
    from medgen_tf.models.gan import GAN, build_discriminator, build_generator, default_optimizers
    from medgen_tf.training import fit

    train = brain_slices(("t1",), split="train", image_size=64)["t1"]
    heldout = np.concatenate(
        [brain_slices(("t1",), split=split, image_size=64)["t1"] for split in ("val", "test")]
    )
    num_samples = len(heldout)
    rng = np.random.default_rng(0)
    reference = extract_features(train[rng.choice(len(train), num_samples, replace=False)])
    floor = float(frechet_distance(reference, extract_features(heldout)))
    target = 2.0 * floor

    def sample_fd(model):
        return frechet_distance(reference, extract_features(model.generate(num_samples, seed=1)))

    keras.utils.set_random_seed(0)
    gan = GAN(build_generator(128, 64, base_filters=32), build_discriminator(64, base_filters=32))
    gan.compile(*default_optimizers())
    callback = _quality_callback(sample_fd, target, cap_s, False)
    with tempfile.TemporaryDirectory() as run_dir:
        fit(
            gan,
            train,
            run_dir,
            num_epochs=10_000,
            batch_size=64,
            seed=0,
            callbacks=[callback],
            verbose=0,
            tensorboard=False,
        )
    return _summary(
        callback,
        round(target, 4),
        cap_s,
        f"FD-medgen, {num_samples} samples vs {num_samples} real training slices",
        higher_is_better=False,
        floor=round(floor, 4),
        settings="notebook 04: base_filters 32, latent_dim 128, batch 64, engine fit()",
        train_images=len(train),
    )


def quality_cyclegan(cap_s, num_epochs=7):
    """Notebook 03's CycleGAN (base_filters 16, 6 residual blocks, batch 4, no identity loss,
    7 epochs with the paper's linear decay over the second half), unpaired T1/T2 from different
    subjects; T1 -> T2 SSIM inside the brain mask on the held-out test subjects after each
    epoch."""
    from medgen_tf.data import brain_slices
    from medgen_tf.evaluation import translation_metrics
    from medgen_tf.translation import train_cyclegan, unpaired_domains

    domains = unpaired_domains("brain:t1", "brain:t2", 64, seed=0)
    test = brain_slices(("t1", "t2"), split="test", image_size=64, return_labels=True)

    def brain_ssim(model):
        translated = model.translate(test["t1"], "a2b")
        return translation_metrics(translated, test["t2"], test["mask"])["ssim_brain"]

    callback = _quality_callback(brain_ssim, TARGETS["cyclegan"], cap_s, True)
    with tempfile.TemporaryDirectory() as run_dir:
        train_cyclegan(
            run_dir,
            image_size=64,
            num_epochs=num_epochs,
            batch_size=4,
            base_filters=16,
            seed=0,
            verbose=0,
            domains=domains,
            identity_weight=0.0,
            callbacks=[callback],
        )
    return _summary(
        callback,
        TARGETS["cyclegan"],
        cap_s,
        "T1 -> T2 SSIM inside the brain mask, 4 held-out test subjects",
        settings=(
            f"notebook 03: base_filters 16, 6 residual blocks, batch 4, identity_weight 0, "
            f"{num_epochs} epochs"
        ),
        train_images=len(domains[0]),
        test_images=len(test["t1"]),
    )


QUALITY_TASKS = {"vae": quality_vae, "dcgan": quality_dcgan, "cyclegan": quality_cyclegan}


def task_quality(model="vae", cap_s=600):
    return QUALITY_TASKS[model](cap_s)
