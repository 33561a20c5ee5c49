"""The benchmark's hand-written loops compute what the package's train_step computes.

Speed is never tested here (that is benchmarks/); this checks that the comparison is fair: on
one batch, with the same weights and the same noise seed, the reference loop and the
package's ``train_step`` give the same losses and the same updated weights.
"""

import os
import subprocess
import sys
from pathlib import Path

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


# ---- the harness's timing and pipeline (no speed measured) ---------------------------------

from benchmarks import harness  # noqa: E402


class _FakeFit(harness.FitContender):
    def __init__(self, overheads):
        self.name, self.call_overheads, self.xla = "ours", [], False
        self.overheads = iter(overheads)

    def run(self, steps):
        self.call_overheads.append(next(self.overheads))
        self.last_lead_s = 1.0
        return 1.0, 1.0


def test_fit_call_overhead_is_the_median_of_timed_calls_only():
    # Calls: one warm-up call (its timed step is the probe), then 3 timed windows. Distinct
    # values, so that only the median of the timed three gives 0.5: the mean (2.53), max (7.0),
    # min (0.1), last (7.0) or a median that kept the warm-up (7.0 or 8.0) all differ.
    fake = _FakeFit([9.0, 0.1, 0.5, 7.0])
    result = harness.interleaved_throughput([fake], 4, windows=3, window_seconds=1.0)
    # the warm-up call left out: one overhead per timed window
    assert fake.call_overheads == [0.1, 0.5, 7.0]
    assert result["ours"]["fit_call_overhead_s"] == 0.5
    assert result["ours"]["xla"] is False


def test_windows_sync_the_device_at_start_and_end_only(monkeypatch):
    calls = []
    monkeypatch.setattr(harness, "_GPU", True)
    monkeypatch.setattr(tf.test.experimental, "sync_devices", lambda: calls.append(1))
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    data = tf.data.Dataset.from_tensors((tf.zeros((4, 2)), tf.zeros((4, 1)))).repeat()
    harness.FitContender("ours", model, data).run(5)
    assert len(calls) == 2
    calls.clear()
    harness.LoopContender("loop", lambda batch: {"loss": tf.reduce_sum(batch[0])}, data).run(5)
    assert len(calls) == 2


def test_no_device_sync_on_a_cpu(monkeypatch):
    monkeypatch.setattr(harness, "_GPU", None)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])

    def fail():
        raise AssertionError("synced on a CPU-only machine")

    monkeypatch.setattr(tf.test.experimental, "sync_devices", fail)
    harness.device_sync()


@pytest.mark.parametrize("resolved", [True, False])
def test_loops_use_xla_when_the_compiled_model_resolved_to_it(monkeypatch, resolved):
    def tiny_vae(model, config, jit_compile="auto"):
        vae = build_vae(SIZE, 1, 4, 8, seed=0)
        vae.compile(keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
        vae.jit_compile = resolved  # what "auto" gives on a GPU (True) or a CPU (False)
        return vae

    seen = {}

    def fake_step(*args, **kwargs):
        seen["jit_compile"] = kwargs["jit_compile"]
        return lambda batch: {"loss": tf.constant(0.0)}

    monkeypatch.setattr(harness, "package_model", tiny_vae)
    monkeypatch.setattr(reference_loops, "vae_step", fake_step)
    data = tf.data.Dataset.from_tensors(tf.zeros((BATCH, SIZE, SIZE, 1))).repeat()
    ours, tutorial = harness.vae_contenders({}, data, ["ours", "tutorial"], jit_compile="auto")
    assert seen["jit_compile"] is resolved
    assert ours.xla is resolved and tutorial.xla is resolved


def test_cyclegan_sizes_say_the_batch_of_1_is_the_benchmarks_own_not_train_defaults():
    import inspect

    from medgen_tf import recipes

    train_batch = inspect.signature(recipes.train).parameters["batch_size"].default
    config, source = harness.model_defaults("cyclegan")
    assert config["batch_size"] == 1 != train_batch
    assert "except batch 1: the benchmark's own choice, the CycleGAN paper's batch" in source
    assert f"train() defaults to {train_batch}" in source
    # The DCGAN's batch is train()'s own default, and its source says only that.
    config, source = harness.model_defaults("dcgan")
    assert config["batch_size"] == train_batch
    assert source == "medgen_tf.recipes (train() defaults)"


def test_pipeline_is_each_models_own(monkeypatch):
    def fake_images(image_size, value_range=(-1.0, 1.0), contrasts=("t1",), split="train"):
        return [np.zeros((40, 8, 8, 1), "float32") for _ in contrasts]

    monkeypatch.setattr(harness, "load_images", fake_images)
    gan = harness.task_pipeline("dcgan", batches=2, image_size=8)
    pair = harness.task_pipeline("cyclegan", batches=2, image_size=8)
    assert gan["batch_size"] == harness.model_defaults("dcgan")[0]["batch_size"]
    assert gan["structure"] == "single array"
    assert pair["batch_size"] == 1 and pair["structure"] == "tuple of 2 arrays"
    assert pair["source"] == "medgen_tf.data.pipeline.make_dataset"
    dataset, _ = harness.make_batches(fake_images(8, contrasts=("t1", "t2")), 4)
    a, b = next(iter(dataset))
    assert a.shape == b.shape == (4, 8, 8, 1)
    # All three in one process: the same measurement per model.
    both = harness.task_pipelines(("dcgan", "cyclegan"), batches=2, image_size=8)["models"]
    assert list(both) == ["dcgan", "cyclegan"]
    assert both["cyclegan"]["structure"] == pair["structure"]
    assert both["dcgan"]["batch_size"] == gan["batch_size"]


def test_pipeline_section_is_one_worker_whose_failure_each_model_reports(monkeypatch):
    from benchmarks import run

    specs = []
    monkeypatch.setattr(
        run, "run_worker", lambda spec, **kwargs: specs.append(spec) or {"error": "boom"}
    )
    result = run.section_pipeline(run.argparse.Namespace(smoke=True))
    assert [spec["task"] for spec in specs] == ["pipelines"]
    assert result == {model: {"error": "boom"} for model in ("dcgan", "vae", "cyclegan")}


# ---- the article's DCGAN loop (the eager contender) -----------------------------------------


class _Recorded:
    """A network or an optimizer that logs each call into ``events`` and passes it on."""

    def __init__(self, wrapped, label, events):
        self._wrapped, self._label, self._events = wrapped, label, events

    def __call__(self, *args, **kwargs):
        self._events.append(self._label)
        return self._wrapped(*args, **kwargs)

    def apply_gradients(self, pairs):
        self._events.append(f"apply_{self._label}")
        return self._wrapped.apply_gradients(pairs)

    def __getattr__(self, name):
        return getattr(self._wrapped, name)


def test_dcgan_article_loop_updates_g_then_d_with_two_generator_passes():
    keras.utils.set_random_seed(0)
    generator, discriminator = build_generator(16, SIZE, 1, 8), build_discriminator(SIZE, 1, 8)
    events = []
    d_optimizer, g_optimizer = default_optimizers()
    step = reference_loops.dcgan_article_step(
        _Recorded(generator, "G", events),
        _Recorded(discriminator, "D", events),
        _Recorded(g_optimizer, "g", events),
        _Recorded(d_optimizer, "d", events),
        16,
        seed=3,
    )
    losses = step(_images())
    # The article's order: G's step (G, D on its fakes), then D's step with a second generator
    # pass on the same noise (the package's update runs G once and D first).
    assert events == ["G", "D", "apply_g", "G", "D", "D", "apply_d"]
    assert np.isfinite(float(losses["d_loss"])) and np.isfinite(float(losses["g_loss"]))


def test_dcgan_article_loop_g_loss_before_and_d_loss_after_gs_update():
    # Same weights and noise seed: G's loss is the tutorial's (both from the untouched nets),
    # D's loss is not (the article's D judges fakes of the updated G).
    keras.utils.set_random_seed(0)
    gan = GAN(build_generator(16, SIZE, 1, 8), build_discriminator(SIZE, 1, 8), seed=5)
    images = _images()
    losses = {}
    for name in ("tutorial", "article"):
        d_optimizer, g_optimizer = default_optimizers()
        make = getattr(reference_loops, f"dcgan_{name}_step")
        step = make(
            _copy(gan.generator),
            _copy(gan.discriminator),
            g_optimizer,
            d_optimizer,
            16,
            seed=5,
            compiled=False,
        )
        losses[name] = {key: float(value) for key, value in step(images).items()}
    np.testing.assert_allclose(losses["article"]["g_loss"], losses["tutorial"]["g_loss"], rtol=1e-5)
    assert abs(losses["article"]["d_loss"] - losses["tutorial"]["d_loss"]) > 1e-6


def _tiny_gan_model(model, config, jit_compile="auto"):
    gan = GAN(build_generator(16, SIZE, 1, 8), build_discriminator(SIZE, 1, 8), seed=0)
    gan.compile(jit_compile=False)
    return gan


def test_dcgan_eager_contender_is_the_article_loop(monkeypatch):
    seen = {}

    def fake_article_step(*args, **kwargs):
        seen.update(kwargs)
        return lambda batch: {"d_loss": tf.constant(0.0)}

    monkeypatch.setattr(harness, "package_model", _tiny_gan_model)
    monkeypatch.setattr(reference_loops, "dcgan_article_step", fake_article_step)
    data = tf.data.Dataset.from_tensors(tf.zeros((BATCH, SIZE, SIZE, 1))).repeat()
    (eager,) = harness.dcgan_contenders({}, data, ["eager"])
    assert seen["compiled"] is False
    assert eager.variant == "dcgan_article_step, eager" and eager.xla is False


def test_tutorial_loops_take_keras_adam_as_written_and_the_same_work_loop_the_packages(
    monkeypatch,
):
    monkeypatch.setattr(harness, "package_model", _tiny_gan_model)
    data = tf.data.Dataset.from_tensors(tf.zeros((BATCH, SIZE, SIZE, 1))).repeat()
    names = ["ours", "tutorial", "tutorial_alternating", "eager", "ours_simultaneous"]
    config = {"image_size": SIZE, "latent_dim": 16, "base_filters": 8}  # ours_simultaneous
    contenders = {c.name: c for c in harness.dcgan_contenders(config, data, names)}
    optimizers = {name: contender.optimizer for name, contender in contenders.items()}
    assert optimizers == {
        "ours": "FusedAdam",
        "tutorial": "Adam",
        "tutorial_alternating": "FusedAdam",
        "eager": "Adam",
        "ours_simultaneous": "FusedAdam",
    }
    results = harness.interleaved_throughput(
        [contenders["ours"], contenders["tutorial"]], BATCH, windows=1, window_seconds=0.01
    )
    assert results["ours"]["optimizer"] == "FusedAdam"
    assert results["tutorial"]["optimizer"] == "Adam"


# ---- mixed precision: the loops pay for loss scaling as the package does --------------------


@pytest.fixture
def mixed_float16():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy(previous)


def test_fresh_optimizer_keeps_the_loss_scale_optimizer(mixed_float16):
    inner = keras.optimizers.Adam(2e-4, beta_1=0.5)
    wrapped = keras.optimizers.LossScaleOptimizer(inner, initial_scale=2.0**10)
    fresh = harness._fresh_optimizer(wrapped)
    assert isinstance(fresh, keras.optimizers.LossScaleOptimizer)
    assert fresh is not wrapped and fresh.inner_optimizer is not inner
    assert fresh.initial_scale == 2.0**10
    assert fresh.dynamic_growth_steps == wrapped.dynamic_growth_steps
    assert type(fresh.inner_optimizer) is keras.optimizers.Adam
    assert fresh.inner_optimizer.get_config()["beta_1"] == pytest.approx(0.5)
    # A plain optimizer under a float16 policy is wrapped as Keras' compile would.
    assert isinstance(harness._fresh_optimizer(inner), keras.optimizers.LossScaleOptimizer)


def test_fresh_optimizer_stays_plain_in_float32():
    fresh = harness._fresh_optimizer(keras.optimizers.Adam(1e-3))
    assert type(fresh) is keras.optimizers.Adam


def test_fresh_optimizer_as_written_is_keras_adam_with_the_packages_settings(mixed_float16):
    from medgen_tf.models.layers import FusedAdam

    fused = FusedAdam(3e-4, beta_1=0.4)
    assert type(harness._fresh_optimizer(fused)) is not FusedAdam  # wrapped under float16
    assert type(harness._fresh_optimizer(fused).inner_optimizer) is FusedAdam
    written = harness._fresh_optimizer(keras.optimizers.LossScaleOptimizer(fused), True)
    assert type(written.inner_optimizer) is keras.optimizers.Adam
    assert written.inner_optimizer.get_config()["beta_1"] == pytest.approx(0.4)
    assert written.inner_optimizer.get_config()["learning_rate"] == pytest.approx(3e-4)
    assert harness.optimizer_name([written, fused]) == "Adam + FusedAdam"


def test_dcgan_loops_scale_the_loss_under_mixed_precision(mixed_float16):
    # The package's GAN holds LossScaleOptimizers, whose apply_gradients divides by the scale:
    # a loop that took gradients of the unscaled loss would update the weights 2**15 times too
    # little and part from the package's weights.
    keras.utils.set_random_seed(0)
    gan = GAN(build_generator(16, SIZE, 1, 8), build_discriminator(SIZE, 1, 8), seed=3)
    gan.compile()
    assert isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    generator, discriminator = _copy(gan.generator), _copy(gan.discriminator)
    step = reference_loops.dcgan_alternating_step(
        generator,
        discriminator,
        harness._fresh_optimizer(gan.g_optimizer),
        harness._fresh_optimizer(gan.d_optimizer),
        16,
        seed=3,
        compiled=False,
    )
    images = _images()
    ours, theirs = gan.train_step(images), step(images)
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(float(ours[name]), float(theirs[name]), rtol=1e-3)
    _assert_same_weights(gan.generator, generator)
    _assert_same_weights(gan.discriminator, discriminator)


def test_vae_loop_scales_the_loss_under_mixed_precision(mixed_float16):
    keras.utils.set_random_seed(0)
    vae = build_vae(SIZE, 1, 4, 8, seed=7)
    vae.compile(keras.optimizers.Adam(1e-3))
    encoder, decoder = _copy(vae.encoder), _copy(vae.decoder)
    optimizer = harness._fresh_optimizer(vae.optimizer)
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    step = reference_loops.vae_step(
        encoder, decoder, optimizer, gaussian_sigma=vae.gaussian_sigma, beta=vae.beta, seed=7
    )
    images = _images(low=0.0)
    ours, theirs = vae.train_step(images), step(images)
    np.testing.assert_allclose(float(ours["loss"]), float(theirs["loss"]), rtol=1e-3)
    _assert_same_weights(vae.decoder, decoder)


class _CountingScale(keras.optimizers.Adam):
    """Adam that counts ``scale_loss`` calls (the loss is returned unchanged)."""

    calls = 0

    def scale_loss(self, loss):
        type(self).calls += 1
        return super().scale_loss(loss)


@pytest.mark.parametrize(
    "loop", ["dcgan_tutorial_step", "dcgan_alternating_step", "dcgan_article_step"]
)
def test_every_dcgan_loop_scales_each_loss_once(loop):
    _CountingScale.calls = 0
    step = getattr(reference_loops, loop)(
        build_generator(16, SIZE, 1, 8),
        build_discriminator(SIZE, 1, 8),
        _CountingScale(2e-4),
        _CountingScale(2e-4),
        16,
        seed=0,
        compiled=False,
    )
    step(_images())
    assert _CountingScale.calls == 2


def test_cyclegan_loop_scales_each_loss_once():
    _CountingScale.calls = 0
    networks = [cyclegan.build_resnet_generator(SIZE, 1, 8, 1) for _ in range(2)]
    networks += [cyclegan.build_patchgan_discriminator(SIZE, 1, 8) for _ in range(2)]
    step = reference_loops.cyclegan_step(
        *networks, [_CountingScale(2e-4) for _ in range(4)], compiled=False
    )
    step((_images(seed=1), _images(seed=2)))
    assert _CountingScale.calls == 4


# ---- window order --------------------------------------------------------------------------


class _FakeLoop:
    def __init__(self, name, log):
        self.name, self.log, self.xla = name, log, False

    def run(self, steps):
        self.log.append(self.name)
        return 1.0, 1.0


class _StepLog:
    """Records the steps asked of each run call; a step takes 0.5 s of wall and CPU time."""

    def __init__(self, name):
        self.name, self.xla, self.calls = name, False, []

    def run(self, steps):
        self.calls.append(steps)
        return 0.5 * steps, 0.5 * steps


class _StepLogFit(_StepLog, harness.FitContender):
    def __init__(self, name):
        _StepLog.__init__(self, name)
        self.call_overheads = []

    def run(self, steps):
        self.last_lead_s = 7.0 if not self.calls else 0.1  # the first call traces
        self.call_overheads.append(0.2)
        return super().run(steps)


def test_warm_up_is_one_step_and_a_probe_and_fits_probe_is_its_warm_up_call():
    loop, fit = _StepLog("tutorial"), _StepLogFit("ours")
    result = harness.interleaved_throughput([fit, loop], 8, windows=2, window_seconds=2.0)
    # The loop: a first step (its trace), a probe step, then 2.0 s / 0.5 s = 4 steps a window.
    assert loop.calls == [1, 1, 4, 4]
    # fit: one call whose timed step is the probe, then the windows.
    assert fit.calls == [1, 4, 4]
    # fit's warm-up is its first call's lead (start-up and the traced batch 0).
    assert result["ours"]["warmup_s"] == 7.0
    assert result["ours"]["warmup"] == result["tutorial"]["warmup"] == "first_step"
    assert result["ours"]["images_per_s"] == result["tutorial"]["images_per_s"] == 16.0
    assert fit.call_overheads == [0.2, 0.2]  # the warm-up call's left out


def test_window_order_rotates_every_round():
    log = []
    fakes = [_FakeLoop(name, log) for name in "ABC"]
    result = harness.interleaved_throughput(fakes, 1, windows=4, window_seconds=1.0)
    timed = log[6:]  # after each one's warm-up and probe
    assert timed == list("ABCBCACABABC")
    assert result["A"]["positions"] == [0, 2, 1, 0]
    assert result["B"]["positions"] == [1, 0, 2, 1]
    assert len(result["A"]["cpu_windows"]) == 4


class _SlowLoop(_FakeLoop):
    """A window of ``seconds`` wall time and ``cpu`` CPU time: CycleGAN-like rates (0.4/s)."""

    def __init__(self, name, log, seconds, cpu):
        super().__init__(name, log)
        self.seconds, self.cpu = seconds, cpu

    def run(self, steps):
        self.log.append(self.name)
        return self.seconds * steps, self.cpu * steps


def test_windows_are_saved_with_six_significant_figures():
    # Two decimals would save 0.38 and 1.93 and move the paired ratio by 1-3 %: the report
    # divides the saved windows, so they keep their precision and are rounded only when shown.
    fakes = [_SlowLoop("ours", [], 2.6, 3.1), _SlowLoop("eager", [], 0.517, 1.7)]
    result = harness.interleaved_throughput(fakes, 1, windows=2, window_seconds=1.0)
    assert result["ours"]["windows"] == [0.384615, 0.384615]
    assert result["ours"]["cpu_windows"] == [0.322581, 0.322581]
    assert result["eager"]["windows"] == [1.93424, 1.93424]
    assert result["eager"]["cpu_windows"] == [0.588235, 0.588235]
    ratio = result["eager"]["windows"][0] / result["ours"]["windows"][0]
    assert abs(ratio / (2.6 / 0.517) - 1) < 1e-5  # two decimals: 1.93 / 0.38, 1 % off
    assert harness.significant(1234.56789) == 1234.57 and harness.significant(0.0) == 0.0


def _run_gpu_script(python, path=None):
    """benchmarks/gpu.sh with no GPU visible and ``PYTHON=python`` (``path`` first on PATH)."""
    root = Path(__file__).resolve().parents[1]
    before = sorted((root / "benchmarks").glob("RESULTS-gpu-*"))
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": python}
    environment.pop("ALLOW_CPU", None)
    if path is not None:
        environment["PATH"] = f"{path}{os.pathsep}{environment['PATH']}"
    finished = subprocess.run(
        ["bash", str(root / "benchmarks" / "gpu.sh")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sorted((root / "benchmarks").glob("RESULTS-gpu-*")) == before
    return finished


def _python_stub(folder, name, *python_options):
    """An executable ``folder/name`` that notes its call in ``folder/called`` and runs this
    Python with ``python_options``."""
    folder.mkdir(exist_ok=True)
    stub = folder / name
    options = " ".join(python_options)
    stub.write_text(
        f'#!/bin/sh\necho called >> "{folder / "called"}"\nexec "{sys.executable}" {options} "$@"\n'
    )
    stub.chmod(0o755)
    return stub


def test_gpu_script_without_a_gpu_stops_before_writing_cpu_figures_under_gpu_names():
    finished = _run_gpu_script(sys.executable)
    assert finished.returncode == 1
    assert "TensorFlow sees no GPU" in finished.stderr and "ALLOW_CPU=1" in finished.stderr


def test_gpu_script_runs_a_python_named_without_a_path_from_path(tmp_path):
    _python_stub(tmp_path / "bin", "medgen-bench-python")
    finished = _run_gpu_script("medgen-bench-python", path=tmp_path / "bin")
    # The stub on PATH ran the check (no silent fall-back to python3), and it saw no GPU.
    assert (tmp_path / "bin" / "called").exists()
    assert finished.returncode == 1 and "TensorFlow sees no GPU" in finished.stderr

    missing = _run_gpu_script("no-such-medgen-python")
    assert missing.returncode == 1
    assert "PYTHON=no-such-medgen-python is neither" in missing.stderr
    assert "\n" not in missing.stderr.strip()


def test_gpu_script_says_when_its_python_has_no_tensorflow(tmp_path):
    # -I -S: this Python without its site-packages, so without TensorFlow.
    stub = _python_stub(tmp_path / "bin", "python-without-tensorflow", "-I", "-S")
    finished = _run_gpu_script(str(stub))
    assert (tmp_path / "bin" / "called").exists()
    assert finished.returncode != 0
    message = finished.stderr.strip()
    assert "has no TensorFlow" in message and "\n" not in message
    assert "sees no GPU" not in message


@pytest.fixture
def tiny_dcgan_task(monkeypatch):
    """harness tasks on a 32 px DCGAN with 4 base filters and 16 random slices."""

    def tiny_defaults(model):
        return {"image_size": 32, "batch_size": 4, "latent_dim": 8, "base_filters": 4}, "test"

    def fake_images(image_size, value_range=(-1.0, 1.0), contrasts=("t1",), split="train"):
        rng = np.random.default_rng(0)
        return [rng.uniform(-1, 1, (16, image_size, image_size, 1)).astype("float32")]

    monkeypatch.setattr(harness, "model_defaults", tiny_defaults)
    monkeypatch.setattr(harness, "load_images", fake_images)


def test_fit_steps_times_the_steps_after_the_first_under_the_policy_it_names(tiny_dcgan_task):
    try:
        result = harness.task_fit_steps("dcgan", mixed_precision="mixed_bfloat16", steps=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    entry = result["contenders"]["ours"]
    assert result["policy"] == "mixed_bfloat16"
    assert entry["steps_per_window"] == 2 and len(entry["windows"]) == 1
    assert entry["warmup_steps"] == 1
    assert entry["images_per_s"] > 0 and entry["images_per_cpu_s"] > 0
    # The warm-up (build, trace, first step) is outside the timed steps.
    assert entry["warmup_s"] > 0
    assert result["config"]["batch_size"] == 4


def test_fit_steps_times_at_least_the_steps_and_seconds_asked_and_at_most_max_steps(
    tiny_dcgan_task,
):
    timed = harness.task_fit_steps("dcgan", steps=2, warmup_steps=2, min_seconds=0.3)
    entry = timed["contenders"]["ours"]
    assert entry["steps_per_window"] >= 2 and entry["warmup_steps"] == 2
    # images / (images/s) is the timed wall time: at least min_seconds.
    assert 4 * entry["steps_per_window"] / entry["images_per_s"] >= 0.3
    capped = harness.task_fit_steps(
        "dcgan",
        steps=1,
        min_seconds=1e9,
        max_steps=3,
        batch_size=2,
        image_size=16,
        resize_from=32,
    )
    entry = capped["contenders"]["ours"]
    assert entry["steps_per_window"] == 3 and capped["config"]["batch_size"] == 2
    assert "resized to 16 px" in capped["data_source"]


def test_throughput_task_adds_ours_with_xla_only_when_asked(monkeypatch):
    asked = []

    def build(config, dataset, names, jit_compile="auto"):
        asked.append(list(names))
        return []

    monkeypatch.setattr(harness, "model_defaults", lambda model: ({"batch_size": 2}, "test"))
    monkeypatch.setattr(
        harness, "model_dataset", lambda model, config, resize_from=None: (None, "test data")
    )
    monkeypatch.setitem(harness.CONTENDERS, "dcgan", (build, ["ours", "tutorial"]))
    monkeypatch.setattr(harness, "interleaved_throughput", lambda contenders, size, **kw: {})
    harness.task_throughput("dcgan", with_xla=True)
    harness.task_throughput("dcgan")
    harness.task_throughput("dcgan", contenders=["ours", "ours_xla"], with_xla=True)
    assert asked == [["ours", "tutorial", "ours_xla"], ["ours", "tutorial"], ["ours", "ours_xla"]]


def test_xla_row_rides_with_the_dcgan_throughput_run_when_the_cpu_facts_follow(monkeypatch):
    from benchmarks import run

    specs = []
    monkeypatch.setattr(
        run, "run_worker", lambda spec, **kwargs: specs.append(spec) or {"error": "x"}
    )
    options = {
        "windows": 4,
        "window_seconds": 2.0,
        "jit_compile": "auto",
        "mixed_precision": False,
        "sections": ["facts", "throughput", "cpu"],
    }
    run.section_throughput(run.argparse.Namespace(**options))
    assert [(spec["model"], spec["with_xla"]) for spec in specs] == [
        ("dcgan", True),
        ("vae", False),
        ("cyclegan", False),
    ]
    # Not when the CPU facts do not run, nor when every contender is forced to one setting.
    specs.clear()
    for changes in ({"sections": ["facts", "throughput"]}, {"jit_compile": True}):
        run.section_throughput(run.argparse.Namespace(**{**options, **changes}))
    assert len(specs) == 6 and not any(spec["with_xla"] for spec in specs)
    # The CPU facts then take the XLA row from those windows and start no XLA worker.
    ours, with_xla = {"images_per_s": 50.0}, {"images_per_s": 40.0}
    contenders = {"ours": ours, "tutorial": {"images_per_s": 55.0}, "ours_xla": with_xla}
    specs.clear()
    cpu = run.section_cpu(
        run.argparse.Namespace(smoke=False, windows=4, window_seconds=2.0),
        {"dcgan": {"model": "dcgan", "contenders": contenders}},
    )
    assert cpu["xla"]["contenders"] == {"ours": ours, "ours_xla": with_xla}
    assert cpu["xla"]["measured_in"] == "throughput"
    assert [spec["task"] for spec in specs] == ["fit_steps", "threads", "fit_steps", "fit_steps"]


def test_cpu_facts_time_the_own_process_rows_in_one_fit_call_and_float16_on_a_small_batch(
    monkeypatch,
):
    from benchmarks import run

    specs = []
    monkeypatch.setattr(
        run, "run_worker", lambda spec, **kwargs: specs.append((spec, kwargs)) or {"error": "x"}
    )
    run.section_cpu(run.argparse.Namespace(smoke=False, windows=6, window_seconds=2.0))
    by_row = dict(zip(["xla", "onednn_off", "one_thread", "bf16", "fp16"], specs, strict=True))
    assert by_row["xla"][0]["task"] == "throughput"
    assert by_row["xla"][0]["contenders"] == ["ours", "ours_xla"]
    assert by_row["onednn_off"][1] == {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}}
    assert by_row["one_thread"][0]["task"] == "threads"
    assert by_row["one_thread"][0]["measure"] == "fit_steps"
    for row in ("onednn_off", "one_thread", "bf16"):
        assert by_row[row][0]["warmup_steps"] == 2 and by_row[row][0]["steps"] == 2
        assert by_row[row][0]["min_seconds"] == 1.0
    assert by_row["bf16"][0]["mixed_precision"] == "mixed_bfloat16"
    fp16 = by_row["fp16"][0]
    assert fp16["task"] == "fit_steps" and fp16["mixed_precision"] == "mixed_float16"
    assert fp16["batch_size"] == run.FLOAT16_BATCH < 32 and fp16["steps"] == 1


def test_cpu_rows_say_how_they_were_timed_and_the_float16_step():
    from benchmarks import report

    def row(images_per_s, batch_size=32, steps=5, **extra):
        entry = {"images_per_s": images_per_s, "images_per_cpu_s": 1.0, "warmup_s": 3.0}
        entry.update(steps_per_window=steps, **extra)
        return {"config": {"batch_size": batch_size}, "contenders": {"ours": entry}}

    alone = {"warmup_steps": 2, "min_timed_steps": 3, "min_seconds": 2.0}
    graph = {
        "contenders": {
            "ours": {"images_per_s": 50.0, "images_per_cpu_s": 25.0, "warmup_s": 4.0},
            "ours_xla": {"images_per_s": 40.0, "images_per_cpu_s": 20.0, "warmup_s": 9.0},
        }
    }
    cpu = {
        "xla": graph,
        "onednn_off": row(25.0, **alone),
        "one_thread": row(20.0, **alone),
        "mixed_bfloat16": row(55.0, **alone),
        "mixed_float16": row(0.25, batch_size=4, steps=1, warmup_steps=1),
    }
    lines = "\n".join(report.render_cpu(cpu))
    assert "own process, one fit call: 5 timed steps after 2 warm-up steps | 25.00" in lines
    assert (
        "one fit call: 1 timed step after 1 warm-up step (batch 4; a step of 4 images: 16.0 s)"
        in lines
    )
    assert "| 0.25 | 1.00 | 0.005x |" in lines
    headline = report._precision_headline(cpu, 50.0)[0]
    assert (
        "`mixed_float16` (what `--mixed-precision` sets) 0.005x (a step of 4 images: 16.0 s)"
        in headline
    )


def test_cpu_features_reads_the_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f amx_bf16 amx_tile\n")
    assert harness.cpu_features(cpuinfo) == ["avx2", "avx512f", "amx_bf16"]
    assert harness.cpu_features(tmp_path / "missing") is None


def test_scaling_resizes_the_64_px_slices_instead_of_building_a_cohort_per_size(monkeypatch):
    from benchmarks import run

    requested = []

    def fake_images(image_size, value_range=(-1.0, 1.0), contrasts=("t1",), split="train"):
        requested.append(image_size)
        ramp = np.linspace(value_range[0], value_range[1], image_size, dtype="float32")
        return [np.broadcast_to(ramp[None, None, :, None], (3, image_size, image_size, 1)).copy()]

    monkeypatch.setattr(harness, "load_images", fake_images)
    (resized,) = harness.model_arrays("dcgan", 16, resize_from=64)
    assert requested == [64] and resized.shape == (3, 16, 16, 1) and resized.dtype == np.float32
    # The same picture at the new size, inside the value range: a ramp from -1 to 1.
    assert resized.min() >= -1.0 and resized.max() <= 1.0
    assert np.all(np.diff(resized[0, 0, :, 0]) > 0) and resized[0, 0, 0, 0] < -0.8
    (vae_images,) = harness.model_arrays("vae", 128, resize_from=64)
    assert requested[-1] == 64 and vae_images.shape[1:3] == (128, 128)
    assert 0.0 <= vae_images.min() and vae_images.max() <= 1.0
    harness.model_arrays("dcgan", 64, resize_from=64)
    assert requested[-1] == 64 and len(requested) == 3

    specs = []
    monkeypatch.setattr(
        run, "run_worker", lambda spec, **kwargs: specs.append(spec) or {"error": "x"}
    )
    monkeypatch.setattr(run, "DEADLINE", [float("inf")])
    run.section_scaling(run.argparse.Namespace(smoke=False, window_seconds=2.0))
    assert specs and all(spec["resize_from"] == 64 for spec in specs)
    # One fit call per configuration: two warm-up steps, then at least 2 steps and 1 s.
    assert all(spec["task"] == "fit_steps" and spec["warmup_steps"] == 2 for spec in specs)
    assert all(spec["steps"] == 2 and spec["min_seconds"] == 1.0 for spec in specs)
    assert sorted({spec["image_size"] for spec in specs}) == [28, 64, 128, 256]


def test_scaling_table_says_which_sizes_are_resized_slices():
    def row(size, source):
        return {
            "config": {"image_size": size, "batch_size": 16},
            "contenders": {"ours": {"images_per_s": 10.0}},
            "peak_rss_mib": 900.0,
            "wall_s": 9,
            "data_source": source,
        }

    from benchmarks import report

    plain = "make_dataset over the train split's T1 slices in [-1, 1]"
    lines = report.render_scaling(
        [
            ("image_size", row(28, plain + ", the 64 px slices resized to 28 px")),
            ("image_size", row(64, plain)),
            ("image_size", row(256, plain + ", the 64 px slices resized to 256 px")),
        ]
    )
    note = [line for line in lines if line.startswith("At ")]
    assert not [line for line in lines if line.startswith("Each row is one")]  # windows: no note
    assert note == [
        "At 28 px, 256 px the images are the 64 px slices resized (`tf.image.resize`, antialiased): "
        "a step's time depends on the arrays' shape, not on what they show, and the sweep needs no "
        "cohort built at those sizes."
    ]
    assert not [
        line
        for line in report.render_scaling([("batch_size", row(64, plain))])
        if line.startswith("At ")
    ]
    timed = row(64, plain)
    timed["contenders"]["ours"].update(
        steps_per_window=4, warmup_steps=2, min_timed_steps=3, min_seconds=2.0
    )
    lines = report.render_scaling([("batch_size", timed)])
    assert "| batch_size | 64 | 16 | 10.00 | 4 | 900.0 | 9 |" in lines
    assert lines[-2] == (
        "Each row is one `fit` call alone in its own process: 2 untimed warm-up steps (the "
        "first traces), then timed steps until at least 3 of them and 2 s have passed; "
        "images/s is their images over their wall time."
    )


def test_profile_prices_the_stacked_discriminator_pass_and_the_report_says_it():
    from benchmarks import report

    profile = harness.task_profile(repeats=1, image_size=32, batch_size=4, base_filters=4)
    milliseconds = profile["milliseconds"]
    assert harness.TWO_PASSES in milliseconds and harness.STACKED in milliseconds
    saving = milliseconds[harness.TWO_PASSES] - milliseconds[harness.STACKED]
    assert profile["stacking_saving_ms"] == pytest.approx(saving, abs=0.11)
    text = "\n".join(report.render_profile(profile))
    amount = f"{abs(profile['stacking_saving_ms']):.1f} ms"
    side = "less" if profile["stacking_saving_ms"] >= 0 else "more"
    assert f"D's gradients take {amount} {side} from one pass" in text
    # The sentence before it (FusedAdam's saving) is kept, not replaced.
    assert "FusedAdam" in text
    # A saving that came out negative is a cost: it read "take -4.9 ms less".
    costs = {**profile, "stacking_saving_ms": -4.9, "optimizer_saving_ms": -1.25}
    text = "\n".join(report.render_profile(costs))
    assert "D's gradients take 4.9 ms more from one pass" in text
    assert "takes 1.2 ms more with the package's `FusedAdam`" in text
    assert "take -" not in text and "takes -" not in text
