"""Measurement code of the benchmark suite: the contenders, the timer and the worker tasks.

Every task runs in its own subprocess (``run.py`` starts ``python benchmarks/run.py --worker
JSON``), so each configuration gets a fresh TensorFlow, its own environment variables
(oneDNN, mixed precision) and its own peak memory (``ru_maxrss``).

Throughput method: the contenders of one model run in the same process on the same data,
**interleaved** window by window, one window of each per round, so the load of a shared machine
falls on all of them alike. The order **rotates** every round (A B C, B C A, C A B, ...), so no
contender always runs first. The rotation is cyclic, not balanced for carry-over: in every round
where a contender is not first it runs right after the same other one (B after A), so an effect
that one window leaves on the next (garbage collection, allocator state) falls on the same pairs
in most rounds. Each window times ``steps`` train steps after a warm-up that traces and runs a
probe step (``interleaved_throughput``); the figure is the median images/s over the windows.
Window ``i`` of every contender belongs to round ``i``, so the report pairs them: the median
and the range of the per-round ratios stand next to the ratio of the medians.

Units: one image per example, so images/s for the DCGAN and the VAE; a CycleGAN example is a
pair (one T1 and one T2 slice), and its figures are image pairs/s (``result["unit"]``).

Mixed precision (``mixed_precision=True``): the package's models hold
``LossScaleOptimizer`` instances, and the hand-written loops get fresh ones too
(``_fresh_optimizer``) and scale their losses as TensorFlow's mixed precision guide does
(``benchmarks/reference_loops.py``), so both sides pay for loss scaling.

"ours" is ``model.fit`` itself: a callback stamps ``on_train_batch_begin`` and the window is
the time between the stamps of batches 1 and ``steps + 1``, so it holds every per-step cost of
fit (its Python loop, callbacks dispatch, metric trackers) and leaves out only fit's
per-call start and end, reported separately as ``fit_call_overhead_s``. Keras itself turns
the step's logs into Python numbers after every step on the TensorFlow backend (its
``CallbackList`` dispatches batch-end hooks synchronously there: ``IS_THREAD_SAFE`` is False),
so fit waits for each step and the loops only once per window. On a CPU nothing runs ahead of
the Python that launched it and this costs nothing measurable; on a GPU it is part of what fit
costs, and ``steps_per_execution`` (not measured here) is Keras' way to pay it once per group.

On a GPU, where kernels run after the Python that launched them returns, every window starts
and ends with ``tf.test.experimental.sync_devices()`` on both sides (at fit's two stamps, and
around a hand loop's steps): one sync per stamp, none per step. On a CPU there is nothing to
wait for, and nothing is added.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# Sizes follow the recipes' defaults (medgen_tf/recipes.py) where they exist; see
# ``model_defaults``.
FALLBACK_DEFAULTS = {
    "dcgan": {"image_size": 64, "batch_size": 64, "latent_dim": 128, "base_filters": 64},
    "vae": {
        "image_size": 64,
        "batch_size": 64,
        "latent_dim": 32,
        "base_filters": 32,
        "likelihood": "bernoulli",
    },
    "cyclegan": {"image_size": 64, "batch_size": 1, "base_filters": 64},
}


def _recipe(model):
    """The registered ``medgen_tf.recipes`` recipe of ``model``, or None if there is none."""
    try:
        from medgen_tf import recipes
    except ImportError:
        return None
    return getattr(recipes, "RECIPES", {}).get(model)


def model_defaults(model):
    """The sizes ``medgen-tf train MODEL`` uses by default, and where they were read.

    From ``medgen_tf.recipes`` when the model has a recipe there (``train``'s defaults:
    64 px, batch 32, the recipe's latent size, 64 base filters outside quick mode), else
    ``FALLBACK_DEFAULTS``. The CycleGAN's batch of 1 is the benchmark's own, and its source
    says so.
    """
    import inspect

    defaults = dict(FALLBACK_DEFAULTS[model])
    recipe = _recipe(model)
    if recipe is None:
        return defaults, "benchmarks/harness.py FALLBACK_DEFAULTS (no recipe registered)"
    from medgen_tf import recipes

    parameters = inspect.signature(recipes.train).parameters
    # CycleGAN keeps the paper's batch of 1 (Zhu et al. 2017): train()'s generic default of 32
    # would make one CycleGAN step take about a minute on this CPU.
    for key in ("image_size", "batch_size") if model != "cyclegan" else ("image_size",):
        defaults[key] = parameters[key].default
    if recipe.default_latent_dim:
        defaults["latent_dim"] = recipe.default_latent_dim
    # recipes.train sets base_filters = 16 if QUICK else 64; benchmarks run outside quick mode.
    if "base_filters" in defaults:
        defaults["base_filters"] = 64
    if model == "cyclegan":
        return defaults, (
            f"medgen_tf.recipes (train() defaults), except batch {defaults['batch_size']}: the "
            "benchmark's own choice, the CycleGAN paper's batch (train() defaults to "
            f"{parameters['batch_size'].default})"
        )
    return defaults, "medgen_tf.recipes (train() defaults)"


BUILD_SOURCES = {}


def build_package_model(model, config, jit_compile="auto"):
    """The compiled model exactly as ``medgen-tf train`` builds it: the recipe's ``load_data``
    (which may set model settings in the config) then its ``build``. None when there is no
    recipe or it fails (the reason is kept in ``BUILD_SOURCES``). ``jit_compile`` other than
    "auto" is set on the built model."""
    recipe = _recipe(model)
    if recipe is None:
        BUILD_SOURCES[model] = "the model's builders (no recipe registered)"
        return None
    from medgen_tf import recipes

    recipe_config = {
        "model": model,
        "data": "brain",
        "data_a": "brain:t1",
        "data_b": "brain:t2",
        "num_epochs": 10,
        "seed": 0,
        "num_subjects": recipes._brain_subjects(),
        "base_filters": 64,
        "quick": False,
        **{k: v for k, v in config.items() if k in ("image_size", "batch_size", "latent_dim")},
    }
    try:
        recipe.load_data(recipe_config)
        built = recipe.build(recipe_config)
    except Exception as error:  # a recipe still being written: fall back, say so
        BUILD_SOURCES[model] = f"the model's builders (recipe failed: {error!r:.80})"
        return None
    # The network settings only: which slices the recipe would train on (domains, sample
    # indices) is not what the benchmark times (model_arrays).
    skipped = ("model", "data", "data_a", "data_b", "num_epochs", "quick", "domains")
    BUILD_SOURCES[model] = "medgen_tf.recipes: " + ", ".join(
        f"{k}={v}" for k, v in recipe_config.items() if k not in skipped and k != "sample_indices"
    )
    if jit_compile != "auto":
        built.jit_compile = jit_compile
    return built


# ---- data --------------------------------------------------------------------------------------


def load_images(image_size, value_range=(-1.0, 1.0), contrasts=("t1",), split="train"):
    """Brain slices of the embedded cohort (cached on disk after the first build)."""
    from medgen_tf.data import brain_slices

    data = brain_slices(contrasts, split=split, image_size=image_size, value_range=value_range)
    return [data[c] for c in contrasts]


def make_batches(arrays, batch_size, seed=0):
    """The package's ``make_dataset`` when it exists, else the same recipe written here.

    Returns ``(dataset, source)``; the dataset repeats forever and yields one array or a
    tuple of arrays per element, in batches of ``batch_size``. Several arrays go into one
    ``make_dataset`` call as a tuple, as ``medgen_tf.training.fit`` passes a recipe's
    ``(images_a, images_b)``.
    """
    import tensorflow as tf

    single = len(arrays) == 1
    try:
        from medgen_tf.data.pipeline import make_dataset

        data = arrays[0] if single else tuple(arrays)
        dataset = make_dataset(data, batch_size=batch_size, seed=seed)
        return dataset.repeat(), "medgen_tf.data.pipeline.make_dataset"
    except ImportError:
        pass
    datasets = []
    for index, array in enumerate(arrays):
        dataset = tf.data.Dataset.from_tensor_slices(array).cache()
        dataset = dataset.shuffle(len(array), seed=seed + index, reshuffle_each_iteration=True)
        datasets.append(dataset.repeat().batch(batch_size, drop_remainder=True))
    dataset = datasets[0] if single else tf.data.Dataset.zip(tuple(datasets))
    return dataset.prefetch(tf.data.AUTOTUNE), "benchmarks/harness.py make_batches (fallback)"


# ---- contenders --------------------------------------------------------------------------------

_GPU = None


def _gpu_present():
    global _GPU
    import tensorflow as tf

    if _GPU is None:
        _GPU = bool(tf.config.list_physical_devices("GPU"))
    return _GPU


def device_sync():
    """Wait for the kernels already launched, on a GPU; nothing on a CPU-only machine."""
    if _gpu_present():
        import tensorflow as tf

        tf.test.experimental.sync_devices()


class FitContender:
    """The package's path: ``model.fit`` on the dataset, timed between batch-begin stamps."""

    def __init__(self, name, model, dataset):
        import keras

        self.name, self.model, self.dataset = name, model, dataset
        # The model's resolved setting: "auto" is True or False once compiled.
        self.xla = bool(model.jit_compile)
        self.optimizer = optimizer_name(getattr(model, "optimizers", None) or [model.optimizer])
        self.call_overheads = []

        class BatchStamps(keras.callbacks.Callback):
            async_safe = True

            def __init__(self, sync_at):
                super().__init__()
                self.stamps = []
                self.sync_at = sync_at

            def on_train_batch_begin(self, batch, logs=None):
                if batch in self.sync_at:
                    device_sync()
                self.stamps.append((time.perf_counter(), time.process_time()))

        self._stamps_class = BatchStamps

    def run(self, steps):
        stamps = self._stamps_class(sync_at=(1, steps + 1))
        start = time.perf_counter()
        self.model.fit(
            self.dataset, epochs=1, steps_per_epoch=steps + 2, verbose=0, callbacks=[stamps]
        )
        total = time.perf_counter() - start
        (wall_0, cpu_0), (wall_1, cpu_1) = stamps.stamps[1], stamps.stamps[steps + 1]
        window = wall_1 - wall_0
        # fit's start-up and its first step (with the trace, on the first call): the warm-up
        # figure, comparable with a loop's first step.
        self.last_lead_s = wall_0 - start
        self.call_overheads.append(total - window * (steps + 2) / steps)
        return window, cpu_1 - cpu_0


class LoopContender:
    """A hand-written loop: ``for batch in dataset: step(batch)``, as the tutorials write it.

    ``variant`` names the step it runs (a function of ``benchmarks/reference_loops.py``, and
    whether eager); it goes into the results so that the report labels what was measured."""

    def __init__(self, name, step, dataset, xla=False, variant=None, optimizer=None):
        self.name, self.step, self.xla, self.variant = name, step, bool(xla), variant
        self.optimizer = optimizer
        self.iterator = iter(dataset)

    def run(self, steps):
        device_sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            logs = self.step(next(self.iterator))
        # One host sync per window, so any asynchrony cannot flatter the loop.
        float(np.asarray(next(iter(logs.values()))))
        device_sync()
        return time.perf_counter() - start, time.process_time() - cpu_start


def significant(value, figures=6):
    """``value`` rounded to ``figures`` significant figures (a float, for the saved JSON)."""
    return float(f"{value:.{figures}g}")


def rotated_order(items, round_index):
    """``items`` rotated left by ``round_index``: round 0 runs A B C, round 1 B C A, ..."""
    items = list(items)
    if not items:
        return items
    shift = round_index % len(items)
    return items[shift:] + items[:shift]


def interleaved_throughput(contenders, batch_size, windows=5, window_seconds=3.0, max_steps=None):
    """Median images/s of each contender over ``windows`` interleaved timed windows.

    Before the windows, each contender warms up and is probed for its step time (which sets
    its steps per window): a loop runs one step (its trace) and then one probe step; ours runs
    one ``fit`` call whose batch 0 traces and whose one timed step is the probe (the batches
    around it untimed, as in every window). ``warmup_s`` is the time to the end of the first
    step, trace included, for both.

    One window of each contender per round, in an order rotated every round
    (``rotated_order``); ``windows[i]`` of every contender is from round ``i`` and
    ``positions[i]`` is where it ran in that round (0 = first).

    Besides wall-clock images/s, ``images_per_cpu_s`` divides by the process's CPU time in
    the window: on a machine shared with other jobs it tracks the work a step costs, while
    the wall figure also holds the time the scheduler gave to others.
    """
    if max_steps is None:
        # A CPU step takes tens of ms or more; a GPU step can take a few, where 50 steps would
        # make a window far shorter than window_seconds.
        max_steps = 5000 if _gpu_present() else 50
    results = {}
    steps = {}
    for contender in contenders:
        if isinstance(contender, FitContender):
            probe = contender.run(1)[0]
            warmup_s = contender.last_lead_s
            # The warm-up call (with tracing) is not a timed call.
            contender.call_overheads.clear()
        else:
            start = time.perf_counter()
            contender.run(1)
            warmup_s = time.perf_counter() - start
            probe = contender.run(1)[0]
        steps[contender.name] = int(min(max_steps, max(1, round(window_seconds / probe))))
        results[contender.name] = {
            "warmup_s": round(warmup_s, 2),
            "warmup": "first_step",
            "windows": [],
            "cpu_windows": [],
            "positions": [],
            "xla": getattr(contender, "xla", None),
        }
        if getattr(contender, "variant", None):
            results[contender.name]["variant"] = contender.variant
        if getattr(contender, "optimizer", None):
            results[contender.name]["optimizer"] = contender.optimizer
    for round_index in range(windows):
        for position, contender in enumerate(rotated_order(contenders, round_index)):
            n = steps[contender.name]
            seconds, cpu_seconds = contender.run(n)
            entry = results[contender.name]
            entry["windows"].append(batch_size * n / seconds)
            entry["cpu_windows"].append(batch_size * n / max(cpu_seconds, 1e-9))
            entry["positions"].append(position)
    for contender in contenders:
        entry = results[contender.name]
        entry["steps_per_window"] = steps[contender.name]
        entry["images_per_s"] = statistics.median(entry["windows"])
        entry["images_per_cpu_s"] = statistics.median(entry["cpu_windows"])
        # Six significant figures, not two decimals: the report divides window by window, and
        # at CycleGAN speeds (0.4 pairs/s) two decimals alone would move a ratio by 1-3 %.
        # The report rounds them for display.
        entry["windows"] = [significant(v) for v in entry["windows"]]
        entry["cpu_windows"] = [significant(v) for v in entry["cpu_windows"]]
        if isinstance(contender, FitContender) and contender.call_overheads:
            entry["fit_call_overhead_s"] = round(statistics.median(contender.call_overheads), 3)
    return results


# ---- models ------------------------------------------------------------------------------------


def build_dcgan(image_size, latent_dim, base_filters, seed=0, jit_compile="auto", cls=None):
    from medgen_tf.models.gan import GAN, build_discriminator, build_generator

    generator = build_generator(latent_dim, image_size, 1, base_filters)
    discriminator = build_discriminator(image_size, 1, base_filters)
    gan = (cls or GAN)(generator, discriminator, seed=seed)
    gan.compile(jit_compile=jit_compile)
    return gan


def simultaneous_gan_class():
    """The package's GAN with the TF tutorial's update (one forward pass, both nets updated
    from it), run by the same ``fit``: separates what the algorithm costs from what fit costs.
    A benchmark control only; the package keeps the alternating update."""
    import tensorflow as tf

    from medgen_tf import losses
    from medgen_tf.models.gan import GAN

    class SimultaneousUpdateGAN(GAN):
        def train_step(self, data):
            real_images, _ = self._unpack(data)
            noise = self.sample_noise(tf.shape(real_images)[0])
            with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
                fake_images = self.generator(noise, training=True)
                real_logits = self.discriminator(real_images, training=True)
                fake_logits = self.discriminator(fake_images, training=True)
                d_loss = self.d_loss_fn(real_logits, fake_logits, self.label_smoothing)
                g_loss = self.g_loss_fn(fake_logits)
            g_variables = self.generator.trainable_variables
            d_variables = self.discriminator.trainable_variables
            g_gradients = g_tape.gradient(losses.scale_for_replicas(g_loss), g_variables)
            d_gradients = d_tape.gradient(losses.scale_for_replicas(d_loss), d_variables)
            self.g_optimizer.apply_gradients(zip(g_gradients, g_variables, strict=True))
            self.d_optimizer.apply_gradients(zip(d_gradients, d_variables, strict=True))
            self.trackers["d_loss"].update_state(d_loss)
            self.trackers["g_loss"].update_state(g_loss)
            return {"d_loss": d_loss, "g_loss": g_loss}

    return SimultaneousUpdateGAN


def _built(optimizer, variables):
    """``optimizer`` built for ``variables`` before a loop's first step, as the package's
    ``compile`` builds its own: a ``tf.function`` that creates the optimizer's variables on its
    first call traces twice (40 s against 30 s for the CycleGAN tutorial's step here), which
    would charge the loop's warm-up with a trace that ours does not pay."""
    optimizer.build(variables)
    return optimizer


def _loop_contender(name, step, dataset, xla, variant, optimizers):
    """A hand loop's contender: XLA as the compiled model resolved it, except eager."""
    return LoopContender(
        name,
        step,
        dataset,
        xla=xla and name != "eager",
        variant=variant,
        optimizer=optimizer_name(optimizers),
    )


def optimizer_name(optimizers):
    """The class name of the optimizers (inside any ``LossScaleOptimizer``): ``"FusedAdam"``."""
    names = sorted({type(getattr(o, "inner_optimizer", o)).__name__ for o in optimizers})
    return " + ".join(names)


def _fresh_optimizer(optimizer, as_written=False):
    """A new optimizer with the same class and settings (and no state), for a hand loop.

    ``as_written``: a Keras ``Adam`` in place of the package's ``FusedAdam`` (same settings),
    for the loops that stand for code as the tutorials and the article write it.

    A ``LossScaleOptimizer`` (what the package's models hold under a ``mixed_float16``
    policy) comes back as a new ``LossScaleOptimizer`` with the same initial scale and growth
    interval around a fresh copy of its inner optimizer; so does any optimizer while the global
    policy computes in float16. The loops scale their losses with it
    (``reference_loops``), so they pay for the loss scaling that the package pays for.
    """
    import keras

    from medgen_tf.models.layers import FusedAdam

    inner = getattr(optimizer, "inner_optimizer", optimizer)
    cls = type(inner)
    if as_written and cls is FusedAdam:
        cls = keras.optimizers.Adam
    fresh = cls.from_config(inner.get_config())
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(
            fresh,
            initial_scale=optimizer.initial_scale,
            dynamic_growth_steps=optimizer.dynamic_growth_steps,
        )
    if keras.mixed_precision.global_policy().compute_dtype == "float16":
        return keras.optimizers.LossScaleOptimizer(fresh)
    return fresh


def package_model(model, config, jit_compile="auto"):
    """The compiled model as the package builds it: its recipe, else the model's builders."""
    built = build_package_model(model, config, jit_compile)
    if built is not None:
        return built
    if model == "dcgan":
        return build_dcgan(
            config["image_size"],
            config["latent_dim"],
            config["base_filters"],
            jit_compile=jit_compile,
        )
    if model == "vae":
        import keras

        from medgen_tf.models.vae import build_vae

        vae = build_vae(
            config["image_size"],
            1,
            config["latent_dim"],
            config["base_filters"],
            likelihood=config["likelihood"],
            seed=0,
        )
        vae.compile(keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
        return vae
    from medgen_tf.models import cyclegan

    size, base_filters = config["image_size"], config["base_filters"]
    built = cyclegan.CycleGAN(
        cyclegan.build_resnet_generator(size, 1, base_filters),
        cyclegan.build_resnet_generator(size, 1, base_filters),
        cyclegan.build_patchgan_discriminator(size, 1, base_filters),
        cyclegan.build_patchgan_discriminator(size, 1, base_filters),
        seed=0,
    )
    built.compile(jit_compile=jit_compile)
    return built


def dcgan_contenders(config, dataset, names, jit_compile="auto"):
    """Contenders for the DCGAN: ours (fit) and the hand-written loops, each on its own fresh
    copy of the package's networks, with optimizers configured like the package's."""
    from benchmarks import reference_loops

    contenders = []
    for name in names:
        # A "_xla" suffix forces XLA (jit_compile=True) for that contender: the CPU-facts table.
        base_name, forced = name.removesuffix("_xla"), name.endswith("_xla")
        controls = {"ours_simultaneous": simultaneous_gan_class}
        if base_name in controls:
            gan = build_dcgan(
                config["image_size"],
                config["latent_dim"],
                config["base_filters"],
                jit_compile=True if forced else jit_compile,
                cls=controls[base_name](),
            )
        else:
            gan = package_model("dcgan", config, True if forced else jit_compile)
        # What the compiled model resolved ("auto" is XLA on a GPU): the loops use the same.
        xla = bool(gan.jit_compile)
        if base_name == "ours" or base_name in controls:
            contenders.append(FitContender(name, gan, dataset))
            continue
        # The tutorial's and the article's loops take Keras' Adam, as they are written; the
        # loop computing the package's update takes the package's optimizer too (same work).
        as_written = base_name != "tutorial_alternating"
        g_variables = gan.generator.trainable_variables
        d_variables = gan.discriminator.trainable_variables
        arguments = (
            gan.generator,
            gan.discriminator,
            _built(_fresh_optimizer(gan.g_optimizer, as_written), g_variables),
            _built(_fresh_optimizer(gan.d_optimizer, as_written), d_variables),
            gan.latent_dim,
        )
        if base_name == "tutorial":
            step = reference_loops.dcgan_tutorial_step(*arguments, seed=0, jit_compile=xla)
            variant = "dcgan_tutorial_step"
        elif base_name == "tutorial_alternating":
            step = reference_loops.dcgan_alternating_step(*arguments, seed=0, jit_compile=xla)
            variant = "dcgan_alternating_step"
        elif base_name == "eager":
            # The article's loop corrected just enough to run, eager as the article writes it:
            # G's step, then D's step with a second generator pass on the same noise.
            step = reference_loops.dcgan_article_step(*arguments, seed=0, compiled=False)
            variant = "dcgan_article_step, eager"
        else:
            raise ValueError(f"unknown DCGAN contender {name!r}")
        contenders.append(_loop_contender(name, step, dataset, xla, variant, arguments[2:4]))
    return contenders


def vae_contenders(config, dataset, names, jit_compile="auto"):
    """Ours (fit), the CVAE tutorial's step and that step eager. Eager, it is also the article's
    VAE loop corrected just enough to run (``reference_loops`` module docstring)."""
    from benchmarks import reference_loops

    contenders = []
    for name in names:
        vae = package_model("vae", config, jit_compile)
        xla = bool(vae.jit_compile)
        if name == "ours":
            contenders.append(FitContender(name, vae, dataset))
            continue
        optimizer = _built(
            _fresh_optimizer(vae.optimizer, as_written=True),
            vae.encoder.trainable_variables + vae.decoder.trainable_variables,
        )
        step = reference_loops.vae_step(
            vae.encoder,
            vae.decoder,
            optimizer,
            likelihood=vae.likelihood,
            gaussian_sigma=vae.gaussian_sigma,
            beta=vae.beta,
            seed=0,
            compiled=name != "eager",
            # What the compiled model resolved ("auto" is XLA on a GPU).
            jit_compile=xla,
        )
        variant = "vae_step" + (", eager" if name == "eager" else "")
        contenders.append(_loop_contender(name, step, dataset, xla, variant, [optimizer]))
    return contenders


def cyclegan_contenders(config, dataset, names, jit_compile="auto"):
    """Ours (fit), the TF CycleGAN tutorial's step and that step eager (the article has no
    CycleGAN code: the eager contender is the usual way, without ``tf.function``)."""
    from benchmarks import reference_loops

    contenders = []
    for name in names:
        model = package_model("cyclegan", config, jit_compile)
        xla = bool(model.jit_compile)
        if name == "ours":
            contenders.append(FitContender(name, model, dataset))
            continue
        networks = (
            model.generator_ab,
            model.generator_ba,
            model.discriminator_a,
            model.discriminator_b,
        )
        # Keyed as reference_loops.cyclegan_step takes them: the same order as the networks.
        optimizers = [
            _built(_fresh_optimizer(optimizer, as_written=True), network.trainable_variables)
            for optimizer, network in zip(model.optimizers, networks, strict=True)
        ]
        step = reference_loops.cyclegan_step(
            *networks,
            optimizers,
            cycle_weight=model.lambda_cycle,
            identity_weight=model.identity_weight,
            compiled=name != "eager",
            # What the compiled model resolved ("auto" is XLA on a GPU).
            jit_compile=xla,
        )
        variant = "cyclegan_step" + (", eager" if name == "eager" else "")
        contenders.append(_loop_contender(name, step, dataset, xla, variant, optimizers))
    return contenders


CONTENDERS = {
    "dcgan": (
        dcgan_contenders,
        [
            "ours",
            "tutorial",
            "tutorial_alternating",
            "eager",
        ],
    ),
    "vae": (vae_contenders, ["ours", "tutorial", "eager"]),
    "cyclegan": (cyclegan_contenders, ["ours", "tutorial", "eager"]),
}


# ---- worker tasks ------------------------------------------------------------------------------


def _setup_precision(mixed_precision):
    """``True`` is ``mixed_float16`` (the package's ``--mixed-precision``); a string names the
    Keras policy (``"mixed_bfloat16"``, for the CPU facts)."""
    import keras

    if mixed_precision:
        policy = "mixed_float16" if mixed_precision is True else str(mixed_precision)
        keras.mixed_precision.set_global_policy(policy)


def task_throughput(
    model="dcgan",
    contenders=None,
    windows=5,
    window_seconds=3.0,
    jit_compile="auto",
    mixed_precision=False,
    with_xla=False,
    **overrides,
):
    """Examples/s of each contender for one model (images/s; CycleGAN: image pairs/s, see
    ``UNITS``); sizes from the recipes unless overridden. ``with_xla`` adds ``ours_xla`` to
    the contenders: the CPU facts' XLA row, interleaved with ours in the same rounds."""
    _setup_precision(mixed_precision)
    config, source = model_defaults(model)
    resize_from = overrides.pop("resize_from", None)
    config.update({k: v for k, v in overrides.items() if v is not None})
    dataset, data_source = model_dataset(model, config, resize_from)
    build, default_names = CONTENDERS[model]
    names = list(contenders or default_names)
    if with_xla and "ours_xla" not in names:
        names.append("ours_xla")
    results = interleaved_throughput(
        build(config, dataset, names, jit_compile=jit_compile),
        config["batch_size"],
        windows=windows,
        window_seconds=window_seconds,
    )
    return {
        "model": model,
        "config": config,
        "config_source": source,
        "built_by": BUILD_SOURCES.get(model, "the model's builders"),
        "data_source": data_source,
        "jit_compile": jit_compile,
        "mixed_precision": mixed_precision,
        "window_order": "rotated",
        "unit": UNITS.get(model, "images"),
        "contenders": results,
    }


# What one example of a model's batch is; its throughput figures count these per second.
UNITS = {"cyclegan": "image pairs"}  # one T1 + one T2 slice each


def model_dataset(model, config, resize_from=None):
    """``(dataset, description)``: ``model``'s arrays at ``config``'s image size and batch size,
    through ``make_batches``, and what they are (for the report)."""
    arrays = model_arrays(model, config["image_size"], resize_from=resize_from)
    dataset, data_source = make_batches(arrays, config["batch_size"])
    data_source = f"{data_source} over {ARRAYS_DESCRIPTION[model]}"
    if resize_from and resize_from != config["image_size"]:
        data_source += f", the {resize_from} px slices resized to {config['image_size']} px"
    return dataset, data_source


def model_arrays(model, image_size, resize_from=None):
    """The arrays ``model`` trains on: one contrast, or the (T1, T2) pair of the CycleGAN
    (``ARRAYS_DESCRIPTION``: the train split's slices; for the CycleGAN the paired slices of the
    same subjects, which costs a step what the recipe's unpaired domains cost).

    ``resize_from``: load the slices at that size and resize them to ``image_size``. A step's
    time depends on the arrays' shape, not on what they show, and a cohort built at 256 px
    from an empty cache took minutes (250 s on a 2-core AMD EPYC): the scaling sweep would
    time the cache as much as the model.
    """
    value_range = (0.0, 1.0) if model == "vae" else (-1.0, 1.0)
    contrasts = ("t1", "t2") if model == "cyclegan" else ("t1",)
    if not resize_from or resize_from == image_size:
        return load_images(image_size, value_range, contrasts)
    import tensorflow as tf

    return [
        np.clip(
            tf.image.resize(images, (image_size, image_size), antialias=True).numpy(),
            *value_range,
        ).astype("float32")
        for images in load_images(resize_from, value_range, contrasts)
    ]


def task_pipeline(model="dcgan", batches=200, image_size=None, batch_size=None):
    """Slices/s the input pipeline of ``model``'s training delivers on its own (no model),
    after a warm pass: the same arrays (one, or the CycleGAN's pair) and the same batch size as
    its throughput task, through the same ``make_batches``. A slice is one example (for the
    pair, one image of each domain), as an image is in the throughput figures.

    Each of the three rounds reads at least ``batches * 64`` slices, so a batch of 1 is timed
    over as many slices as a batch of 64.
    """
    config, _ = model_defaults(model)
    config.update({k: v for k, v in (("image_size", image_size), ("batch_size", batch_size)) if v})
    batch_size = config["batch_size"]
    arrays = model_arrays(model, config["image_size"])
    dataset, source = make_batches(arrays, batch_size)
    count = max(batches, -(-batches * 64 // batch_size))
    iterator = iter(dataset)
    for _ in range(max(1, count // 10)):
        next(iterator)
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(count):
            batch = next(iterator)
        np.asarray(batch[0] if isinstance(batch, tuple) else batch)
        rates.append(count * batch_size / (time.perf_counter() - start))
    return {
        "model": model,
        "slices_per_s": statistics.median(rates),
        "source": source,
        "structure": "single array" if len(arrays) == 1 else f"tuple of {len(arrays)} arrays",
        "image_size": config["image_size"],
        "batch_size": batch_size,
    }


def task_pipelines(models=("dcgan", "vae", "cyclegan"), **kwargs):
    """``task_pipeline`` for each of ``models`` in one process: ``{"models": {model: result}}``
    (no model is built, so one process serves them all)."""
    return {"models": {model: task_pipeline(model, **kwargs) for model in models}}


# The instruction sets behind the mixed-precision rows of the CPU facts: bfloat16 and float16
# are fast on a CPU only where it has instructions for them (AMX and AVX-512 on recent Xeons).
CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16")


def cpu_features(cpuinfo="/proc/cpuinfo"):
    """Which of ``CPU_FEATURES`` the CPU reports (Linux); None where that cannot be read."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return [name for name in CPU_FEATURES if name in flags]


def task_facts():
    import keras
    import tensorflow as tf

    model_name = platform.processor() or ""
    try:
        import subprocess

        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model_name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "cpu_model": model_name,
        "cpu_features": cpu_features(),
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (on by default on x86)"),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "platform": platform.platform(),
    }


def task_threads(intra_op_threads=1, measure="throughput", **kwargs):
    """A ``measure`` task (``throughput`` or ``fit_steps``) with TensorFlow's thread pools
    pinned (set before any op runs)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(int(intra_op_threads))
    tf.config.threading.set_inter_op_parallelism_threads(int(intra_op_threads))
    return TASKS[measure](**kwargs)


# The two ways of taking D's gradients that the profile times.
TWO_PASSES = "D gradients: forward real, forward fake, backward (the tutorial's two passes)"
STACKED = "D gradients: one forward pass over real and fake stacked, backward (the package's)"


def task_profile(repeats=7, **overrides):
    """Where a DCGAN step's time goes: each piece of the package's step and of the tutorial's,
    timed alone as its own ``tf.function`` (median ms over interleaved repeats).

    Explains the throughput ratios: the package's step (D on real and fake, then G against the
    updated D) runs the same pieces as the TF tutorial's single-pass step plus one more
    discriminator forward pass on the fakes, the price of updating the networks in turn; it
    takes D's gradients from one pass over the real and fake batches stacked, where the
    tutorial makes two; and it updates the weights with ``FusedAdam`` where the tutorial
    writes Keras' Adam.
    """
    import keras
    import tensorflow as tf

    from benchmarks import reference_loops

    config, _ = model_defaults("dcgan")
    config.update({k: v for k, v in overrides.items() if v is not None})
    gan = package_model("dcgan", config)
    generator, discriminator = gan.generator, gan.discriminator
    batch_size, latent_dim = config["batch_size"], gan.latent_dim
    (images,) = load_images(config["image_size"])
    real = tf.constant(images[:batch_size])
    noise = tf.random.normal((batch_size, latent_dim), seed=1)
    fakes = generator(noise, training=True)
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)
    d_variables, g_variables = discriminator.trainable_variables, generator.trainable_variables

    def d_gradients(stacked):
        def gradients():
            with tf.GradientTape() as tape:
                if stacked:  # the package's D step: one pass over both batches stacked
                    logits = discriminator(tf.concat([real, fakes], axis=0), training=True)
                    real_logits, fake_logits = tf.split(logits, 2)
                else:  # the tutorial's: one pass each
                    real_logits = discriminator(real, training=True)
                    fake_logits = discriminator(fakes, training=True)
                loss = cross_entropy(tf.ones_like(real_logits), real_logits) + cross_entropy(
                    tf.zeros_like(fake_logits), fake_logits
                )
            return tape.gradient(loss, d_variables)

        return tf.function(gradients)

    def g_backward():
        with tf.GradientTape() as tape:
            logits = discriminator(generator(noise, training=True), training=True)
            loss = cross_entropy(tf.ones_like(logits), logits)
        return tape.gradient(loss, g_variables)

    def optimizers(as_written):
        g_optimizer = _fresh_optimizer(gan.g_optimizer, as_written)
        return g_optimizer, _fresh_optimizer(gan.d_optimizer, as_written)

    # The tutorial's step with Keras' Adam as the tutorial writes it; ours with the package's.
    tutorial = reference_loops.dcgan_tutorial_step(
        generator, discriminator, *optimizers(True), latent_dim, seed=0
    )
    ours = reference_loops.dcgan_alternating_step(
        generator, discriminator, *optimizers(False), latent_dim, seed=0
    )
    variables = g_variables + d_variables
    gradients = [tf.random.normal(v.shape, stddev=1e-3, seed=2) for v in variables]

    def adam_update(optimizer):
        optimizer.build(variables)

        @tf.function
        def update():
            optimizer.apply(gradients, variables)
            return optimizer.iterations + 0

        return update

    keras_adam = _fresh_optimizer(gan.g_optimizer, as_written=True)
    fused_adam = _fresh_optimizer(gan.g_optimizer)
    pieces = {
        "generator forward (batch)": tf.function(lambda: generator(noise, training=True)),
        "discriminator forward (batch)": tf.function(lambda: discriminator(real, training=True)),
        TWO_PASSES: d_gradients(stacked=False),
        STACKED: d_gradients(stacked=True),
        "G gradients: forward G + D, backward through D and G": tf.function(g_backward),
        f"Adam update of G's and D's weights: {type(keras_adam).__name__} (the tutorial's)": (
            adam_update(keras_adam)
        ),
        f"Adam update of G's and D's weights: {type(fused_adam).__name__} (the package's)": (
            adam_update(fused_adam)
        ),
        "whole step, TF tutorial (one pass, both updated)": lambda: tutorial(real),
        "whole step, ours by hand (D, then G on the same fakes)": lambda: ours(real),
    }
    timings = {name: [] for name in pieces}
    for function in pieces.values():  # trace and warm up
        for _ in range(2):
            _sync(function())
    for _ in range(repeats):
        for name, function in pieces.items():
            start = time.perf_counter()
            _sync(function())
            timings[name].append(1e3 * (time.perf_counter() - start))
    milliseconds = {name: round(statistics.median(values), 1) for name, values in timings.items()}
    extra = (
        milliseconds["whole step, ours by hand (D, then G on the same fakes)"]
        - milliseconds["whole step, TF tutorial (one pass, both updated)"]
    )
    updates = [name for name in milliseconds if name.startswith("Adam update")]
    return {
        "config": config,
        "milliseconds": milliseconds,
        "ours_minus_tutorial_ms": round(extra, 1),
        "discriminator_forward_ms": milliseconds["discriminator forward (batch)"],
        "optimizer_saving_ms": round(milliseconds[updates[0]] - milliseconds[updates[1]], 1),
        "stacking_saving_ms": round(milliseconds[TWO_PASSES] - milliseconds[STACKED], 1),
        "weights": int(sum(np.prod(v.shape) for v in variables)),
    }


def _sync(outputs):
    """Wait for a result: the first tensor found is copied to the host."""
    import tensorflow as tf

    first = tf.nest.flatten(outputs)[0]
    return np.asarray(first)


def task_quality(model="vae", cap_s=600):
    """Time to quality (``benchmarks/quality.py``)."""
    from benchmarks.quality import task_quality as run_quality

    return run_quality(model=model, cap_s=cap_s)


def task_fit_steps(
    model="dcgan",
    mixed_precision=False,
    steps=1,
    warmup_steps=1,
    min_seconds=0.0,
    max_steps=None,
    resize_from=None,
    **overrides,
):
    """Images/s of the package's ``fit`` alone in its process, in one ``fit`` call:
    ``warmup_steps`` untimed steps (build, trace, the first steps), then timed steps until at
    least ``steps`` of them and ``min_seconds`` have passed (at most ``max_steps``).

    For a configuration with no contender to interleave with: the scaling sweep, the CPU
    facts measured in their own process, and ``mixed_float16``, whose 64 px DCGAN step takes
    tens of seconds on a CPU without fast float16 kernels. It costs fewer steps than
    ``task_throughput``'s windows, each of which is a ``fit`` call of its steps plus two.
    """
    import keras

    if max_steps is None:  # as interleaved_throughput: a GPU step can take a few ms
        max_steps = 5000 if _gpu_present() else 50

    _setup_precision(mixed_precision)
    config, source = model_defaults(model)
    config.update({k: v for k, v in overrides.items() if v is not None})
    dataset, data_source = model_dataset(model, config, resize_from)
    built = package_model(model, config)
    stamps = []

    class Stamps(keras.callbacks.Callback):
        async_safe = True  # reads no logs: no host sync per step
        timed_steps = 0

        def on_train_batch_begin(self, batch, logs=None):
            if batch == warmup_steps:
                device_sync()
                stamps.append((time.perf_counter(), time.process_time()))

        def on_train_batch_end(self, batch, logs=None):
            timed = batch + 1 - warmup_steps
            if timed >= steps and time.perf_counter() - stamps[0][0] >= min_seconds:
                self.model.stop_training = True
            self.timed_steps = max(timed, 0)

        def on_train_end(self, logs=None):
            device_sync()
            stamps.append((time.perf_counter(), time.process_time()))

    callback = Stamps()
    start = time.perf_counter()
    built.fit(
        dataset,
        epochs=1,
        steps_per_epoch=warmup_steps + max_steps,
        verbose=0,
        callbacks=[callback],
    )
    (wall_0, cpu_0), (wall_1, cpu_1) = stamps
    images = config["batch_size"] * callback.timed_steps
    entry = {
        # Build, trace and the warm-up steps: the warm-up the other rows report.
        "warmup_s": round(wall_0 - start, 2),
        "windows": [significant(images / (wall_1 - wall_0))],
        "cpu_windows": [significant(images / max(cpu_1 - cpu_0, 1e-9))],
        "steps_per_window": callback.timed_steps,
        "warmup_steps": warmup_steps,
        "min_timed_steps": steps,
        "min_seconds": min_seconds,
        "xla": bool(built.jit_compile),
    }
    entry["images_per_s"] = entry["windows"][0]
    entry["images_per_cpu_s"] = entry["cpu_windows"][0]
    return {
        "model": model,
        "config": config,
        "config_source": source,
        "data_source": data_source,
        "mixed_precision": mixed_precision,
        "policy": keras.mixed_precision.global_policy().name,
        "unit": UNITS.get(model, "images"),
        "contenders": {"ours": entry},
    }


TASKS = {
    "fit_steps": task_fit_steps,
    "throughput": task_throughput,
    "profile": task_profile,
    "quality": task_quality,
    "pipeline": task_pipeline,
    "pipelines": task_pipelines,
    "facts": task_facts,
    "threads": task_threads,
}


ARRAYS_DESCRIPTION = {
    "dcgan": "the train split's T1 slices in [-1, 1]",
    "vae": "the train split's T1 slices in [0, 1]",
    "cyclegan": "the train split's T1 and T2 slices in [-1, 1], as (T1, T2) batches",
}


def run_task(spec):
    """Run one task from its JSON spec; add wall time and peak resident memory."""
    spec = dict(spec)
    name = spec.pop("task")
    start = time.perf_counter()
    result = TASKS[name](**spec)
    result["wall_s"] = round(time.perf_counter() - start, 1)
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    result["peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20, 1
    )
    if "tensorflow" in sys.modules:  # host RSS says nothing of a GPU's own memory
        import tensorflow as tf

        if tf.config.list_logical_devices("GPU"):
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
            result["peak_gpu_mib"] = round(peak / 2**20, 1)
    return result
