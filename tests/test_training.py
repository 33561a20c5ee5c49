"""The engine against a toy two-optimizer model defined here (no dependency on the real models).

The toy model has what makes GAN checkpoints hard: two optimizers, a SeedGenerator drawing
noise every step, BatchNorm statistics, and loss scaling under mixed precision.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from medgen_tf.errors import DataError
from medgen_tf.files import atomic_path
from medgen_tf.models.layers import loss_scaled
from medgen_tf.training import fit, latest_checkpoint, load_checkpoint, save_checkpoint


class ToyAdversary(keras.Model):
    """Two small networks, each with its own Adam, updated in turn on noisy inputs."""

    def __init__(self, seed=0, width=8, batch_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.first = keras.Sequential(
            [
                keras.Input((4, 4, 1)),
                keras.layers.Flatten(),
                keras.layers.Dense(width),
                *([keras.layers.BatchNormalization()] if batch_norm else []),
                keras.layers.Dense(1, dtype="float32"),
            ]
        )
        self.second = keras.Sequential(
            [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(1, dtype="float32")]
        )
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.first_loss = keras.metrics.Mean(name="first_loss")
        self.second_loss = keras.metrics.Mean(name="second_loss")
        self.built = True

    def compile(self, first_optimizer=None, second_optimizer=None, **kwargs):
        super().compile(jit_compile="auto", **kwargs)
        self.first_optimizer = loss_scaled(first_optimizer or keras.optimizers.Adam(1e-2))
        self.second_optimizer = loss_scaled(second_optimizer or keras.optimizers.Adam(1e-2))
        self.first_optimizer.build(self.first.trainable_variables)
        self.second_optimizer.build(self.second.trainable_variables)

    @property
    def optimizers(self):
        return [self.first_optimizer, self.second_optimizer]

    @property
    def metrics(self):
        return [self.first_loss, self.second_loss]

    def call(self, inputs, training=False):
        return self.first(inputs, training=training)

    def _update(self, network, optimizer, images):
        noise = keras.random.normal(keras.ops.shape(images), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            output = network(images + keras.ops.cast(noise, images.dtype), training=True)
            loss = keras.ops.mean(keras.ops.square(keras.ops.cast(output, "float32") - 1.0))
            scaled = optimizer.scale_loss(loss / tf.distribute.get_strategy().num_replicas_in_sync)
        variables = network.trainable_variables
        gradients = tape.gradient(scaled, variables)
        optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return loss, output

    def train_step(self, images):
        first_loss, output = self._update(self.first, self.first_optimizer, images)
        second_loss, _ = self._update(self.second, self.second_optimizer, images)
        self.first_loss.update_state(first_loss)
        self.second_loss.update_state(second_loss)
        self.last_output_dtype = output.dtype
        return {"first_loss": self.first_loss.result(), "second_loss": self.second_loss.result()}


def build_toy():
    model = ToyAdversary(seed=1)
    model.compile()
    return model


IMAGES = np.random.default_rng(0).normal(size=(24, 4, 4, 1)).astype("float32")


def _all_state(model):
    state = [keras.ops.convert_to_numpy(v) for v in model.variables]
    for optimizer in model.optimizers:
        state += [keras.ops.convert_to_numpy(v) for v in optimizer.variables]
    return state


def test_run_folder_contents(tmp_path):
    history = fit(
        build_toy,
        IMAGES,
        tmp_path,
        num_epochs=2,
        batch_size=8,
        verbose=0,
        sample_fn=lambda model: model.first.inputs and IMAGES[:4],
        config={"name": "toy"},
    )
    assert set(history) == {"first_loss", "second_loss"} and len(history["first_loss"]) == 2
    assert json.loads((tmp_path / "history.json").read_text()) == dict(history)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["config"] == {"name": "toy"} and config["engine"]["steps_per_epoch"] == 3
    assert config["engine"]["optimizers"] == ["Adam", "Adam"]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "epoch_001.png",
        "epoch_002.png",
    ]
    assert latest_checkpoint(tmp_path / "checkpoints").name == "epoch_0002"
    assert (tmp_path / "loss_curves.png").is_file() and (tmp_path / "model.weights.h5").is_file()
    assert any((tmp_path / "logs").rglob("events.out.tfevents.*"))
    assert history.model.optimizers[0].iterations.numpy() == 6


def test_resume_equals_uninterrupted_run(tmp_path):
    straight = fit(build_toy, IMAGES, tmp_path / "straight", num_epochs=2, batch_size=8, verbose=0)
    fit(build_toy, IMAGES, tmp_path / "split", num_epochs=1, batch_size=8, verbose=0)
    # A fresh process would rebuild with other initial weights: make sure the restore matters.
    keras.utils.set_random_seed(123)
    resumed = fit(
        build_toy,
        IMAGES,
        tmp_path / "split",
        num_epochs=2,
        batch_size=8,
        seed=0,
        resume=True,
        verbose=0,
    )
    assert len(resumed["first_loss"]) == 2
    np.testing.assert_allclose(resumed["first_loss"], straight["first_loss"], rtol=1e-5)
    for expected, actual in zip(_all_state(straight.model), _all_state(resumed.model), strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-5)
    history_file = json.loads((tmp_path / "split" / "history.json").read_text())
    assert len(history_file["second_loss"]) == 2


def _build_toy_running(steps_per_execution):
    def build():
        model = ToyAdversary(seed=1)
        model.compile(steps_per_execution=steps_per_execution)
        return model

    return build


def test_steps_per_execution_must_divide_an_epoch_and_a_divisor_resumes_exactly(tmp_path):
    # 3 steps an epoch at batch 8: Keras would run 2 + 2 steps in the first epoch, so the
    # epochs (and their checkpoints) would drift from the dataset's.
    with pytest.raises(ValueError, match="steps_per_execution 2 does not divide the 3 steps"):
        fit(_build_toy_running(2), IMAGES, tmp_path / "refused", num_epochs=2, **QUIET)
    assert not (tmp_path / "refused" / "config.json").exists()
    build = _build_toy_running(3)
    straight = fit(build, IMAGES, tmp_path / "straight", num_epochs=2, **QUIET)
    fit(build, IMAGES, tmp_path / "split", num_epochs=1, **QUIET)
    resumed = fit(build, IMAGES, tmp_path / "split", num_epochs=2, resume=True, **QUIET)
    assert resumed.model.optimizers[0].iterations.numpy() == 6
    np.testing.assert_allclose(resumed["first_loss"], straight["first_loss"], rtol=1e-5)
    for expected, actual in zip(_all_state(straight.model), _all_state(resumed.model), strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_checkpoint_restores_optimizer_moments_and_seed_state(tmp_path):
    model = build_toy()
    model.fit(IMAGES, batch_size=8, epochs=1, verbose=0)
    save_checkpoint(model, tmp_path, epoch=1)
    other = ToyAdversary(seed=99)
    other.compile()
    meta = load_checkpoint(other, latest_checkpoint(tmp_path))
    assert meta["epoch"] == 1
    for expected, actual in zip(_all_state(model), _all_state(other), strict=True):
        np.testing.assert_array_equal(actual, expected)
    # the noise stream continues where it stopped, not from the new seed
    np.testing.assert_array_equal(
        other.seed_generator.state.numpy(), model.seed_generator.state.numpy()
    )


def test_checkpoints_keep_two_and_ignore_unfinished_folders(tmp_path):
    model = build_toy()
    for epoch in (1, 2, 3):
        save_checkpoint(model, tmp_path, epoch)
    (tmp_path / ".tmp_epoch_0004_1").mkdir()  # what a kill mid-write leaves
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "epoch_0002",
        "epoch_0003",
    ]
    assert latest_checkpoint(tmp_path).name == "epoch_0003"


@pytest.mark.parametrize("keep", [0, -1, 1.5, True])
def test_keep_below_one_or_not_a_count_is_refused_before_anything_is_written(tmp_path, keep):
    # keep=0 kept every checkpoint (list[:-0] is empty, so nothing was removed), keep=-1
    # removed only the oldest, and keep=1.5 was a TypeError after the checkpoint was written.
    model = build_toy()
    save_checkpoint(model, tmp_path, 1)
    with pytest.raises(ValueError, match="keep must be a whole number >= 1") as error:
        save_checkpoint(model, tmp_path, 2, keep=keep)
    assert "\n" not in str(error.value) and repr(keep) in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0001"]
    save_checkpoint(model, tmp_path, 2, keep=np.int64(1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0002"]


def test_a_checkpoint_folder_that_does_not_exist_is_called_missing_not_damaged(tmp_path):
    # It was "epoch_0002/meta.json: unreadable checkpoint ([Errno 2] No such file or
    # directory ...); delete the folder .../epoch_0002 to resume from epoch_0001": advice to
    # delete a folder that is not there.
    model = build_toy()
    save_checkpoint(model, tmp_path, 1)
    missing = tmp_path / "epoch_0002"
    with pytest.raises(DataError) as error:
        load_checkpoint(model, missing)
    assert str(error.value) == f"{missing}: no such checkpoint folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0001"]


@pytest.mark.parametrize("epoch", [-3, 1.5, True])
def test_an_epoch_that_is_no_count_of_completed_epochs_is_refused_before_anything_is_written(
    tmp_path, epoch
):
    # epoch=-3 wrote checkpoints/epoch_-003, which latest_checkpoint never finds, keep never
    # removes and load_checkpoint refuses; 1.5 was "Unknown format code 'd'".
    model = build_toy()
    with pytest.raises(ValueError, match="not a number of completed epochs") as error:
        save_checkpoint(model, tmp_path, epoch)
    assert "\n" not in str(error.value) and repr(epoch) in str(error.value)
    assert list(tmp_path.iterdir()) == []
    save_checkpoint(model, tmp_path, np.int64(0))
    assert latest_checkpoint(tmp_path).name == "epoch_0000"


@pytest.mark.parametrize("num_epochs", [0, -1, 2.5, True])
def test_num_epochs_below_one_is_refused_and_changes_nothing(tmp_path, num_epochs):
    # num_epochs=0 trained nothing, yet moved the earlier run in the folder to replaced/
    # (dropping the one set aside before) and wrote an untrained model.weights.h5.
    fit(build_toy, IMAGES, tmp_path, num_epochs=1, batch_size=8, verbose=0, tensorboard=False)
    before = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))
    weights = (tmp_path / "model.weights.h5").read_bytes()
    with pytest.raises(ValueError, match="num_epochs must be a whole number >= 1") as error:
        fit(build_toy, IMAGES, tmp_path, num_epochs=num_epochs, batch_size=8, verbose=0)
    assert "\n" not in str(error.value) and repr(num_epochs) in str(error.value)
    assert sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")) == before
    assert (tmp_path / "model.weights.h5").read_bytes() == weights


def test_a_run_removes_what_interrupted_writes_left_in_its_folder(tmp_path, exited_pid):
    fit(build_toy, IMAGES, tmp_path, num_epochs=1, **QUIET)
    # Left by a kill while writing a checkpoint, while deleting an old one, and while deleting
    # the run set aside before: with another process's PID, so no later write reuses them.
    leftovers = [
        tmp_path / "checkpoints" / ".tmp_epoch_0002_99999",
        tmp_path / "checkpoints" / ".trash_epoch_0001_99999",
        tmp_path / ".trash_replaced_99999",
    ]
    for folder in leftovers:
        folder.mkdir()
        (folder / "state.npz").write_bytes(b"half a checkpoint")
    # Left by a SIGKILL in the middle of atomic_path writes (which then cannot clean up): the
    # final weights, the history and a sample grid, under the names atomic_path gives them,
    # with the PID of a writer that has exited.
    with atomic_path(tmp_path / "model.weights.h5") as temporary:
        own_name = temporary.name
    assert own_name.startswith(f".partial_{os.getpid()}_model.weights.")
    dead_pid = exited_pid
    half_written = [
        tmp_path / own_name.replace(f"_{os.getpid()}_", f"_{dead_pid}_"),
        tmp_path / f".partial_{dead_pid}_history.k2x9_q0a.json",
        tmp_path / "samples" / f".partial_{dead_pid}_epoch_002.abcdefgh.png",
    ]
    # Being written now by another process (medgen-tf evaluate into the same folder), or by
    # one whose PID this process cannot see (another container or host): kept.
    in_progress = [
        tmp_path / f".partial_{os.getpid()}_metrics.a1b2c3d4.json",
        tmp_path / "samples" / f".partial_{os.getpid()}_grid.e5f6g7h8.png",
        tmp_path / f".partial_{dead_pid}_evaluation.i9j0k1l2.png",
    ]
    for path in half_written + in_progress:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half a file")
    # Untouched for an hour, except the last one, written a moment ago.
    an_hour_ago = time.time() - 3600
    for path in half_written + in_progress[:-1]:
        os.utime(path, (an_hour_ago, an_hour_ago))
    fit(build_toy, IMAGES, tmp_path, num_epochs=2, resume=True, **QUIET)
    assert [folder for folder in leftovers if folder.exists()] == []
    assert [path for path in half_written if path.exists()] == []
    assert [path for path in in_progress if path.read_bytes() == b"half a file"] == in_progress
    assert latest_checkpoint(tmp_path / "checkpoints").name == "epoch_0002"


def test_nan_guard_keeps_last_good_checkpoint(tmp_path, capsys):
    class Poison(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                # poison the weights after the engine's checkpoint of epoch 2, as a diverging
                # step would: epoch 3's losses are NaN
                for variable in self.model.first.trainable_variables:
                    variable.assign(variable * np.nan)

    history = fit(
        build_toy, IMAGES, tmp_path, num_epochs=4, batch_size=8, verbose=0, callbacks=[Poison()]
    )
    message = capsys.readouterr().out.strip().splitlines()[-1]
    assert message.startswith("NaN guard:") and "at epoch 3" in message and "epoch_0002" in message
    assert history.stopped_reason == message and len(history["first_loss"]) == 2
    assert latest_checkpoint(tmp_path / "checkpoints").name == "epoch_0002"
    assert not (tmp_path / "model.weights.h5").exists()
    restored = build_toy()
    load_checkpoint(restored, latest_checkpoint(tmp_path / "checkpoints"))
    assert all(np.all(np.isfinite(v)) for v in _all_state(restored))


def test_mixed_precision_steps_are_finite_and_outputs_float32(tmp_path):
    previous = keras.mixed_precision.global_policy().name
    history = fit(
        build_toy, IMAGES, tmp_path, num_epochs=1, batch_size=8, verbose=0, mixed_precision=True
    )
    model = history.model
    assert keras.mixed_precision.global_policy().name == previous
    assert isinstance(model.first_optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.first.layers[1].compute_dtype == "float16"
    assert model(IMAGES[:2]).dtype == "float32"
    assert all(np.isfinite(values).all() for values in history.values())
    # the loss scale is checkpointed with the optimizer
    names = json.loads((latest_checkpoint(tmp_path / "checkpoints") / "meta.json").read_text())
    assert any("dynamic_scale" in path for path, _ in names["variables"].values())


def test_model_object_with_strategy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="pass a function"):
        fit(build_toy(), IMAGES, tmp_path, num_epochs=1, batch_size=8, strategy="mirrored")


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[2])
    from test_training import IMAGES, build_toy
    from medgen_tf.training import fit
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    try:  # 7 splits 4/3: the smaller replica's images would weigh more in the mean
        fit(build_toy, IMAGES, sys.argv[1] + "/odd", num_epochs=1, batch_size=7, verbose=0,
            strategy=strategy, tensorboard=False)
        refusal = None
    except ValueError as error:
        refusal = str(error)
    history = fit(build_toy, IMAGES, sys.argv[1], num_epochs=1, batch_size=8, verbose=0,
                  strategy=strategy, tensorboard=False)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "history": dict(history),
                      "refusal": refusal}))
    """
)


def _environment():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def test_mirrored_strategy_two_logical_cpus(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path), os.path.dirname(__file__)],
        capture_output=True,
        text=True,
        timeout=240,
        env=_environment(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert all(np.isfinite(v).all() for v in report["history"].values())
    assert report["refusal"] == (
        "batch_size=7 does not split evenly over 2 replicas; use a multiple of 2"
    )
    assert not (tmp_path / "odd").exists()
    assert latest_checkpoint(tmp_path / "checkpoints").name == "epoch_0001"


LONG_RUN_SCRIPT = textwrap.dedent(
    """
    import io, sys, time
    from pathlib import Path
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_training import IMAGES, build_toy
    from medgen_tf.training import fit
    if len(sys.argv) > 4:
        # A toy checkpoint is written in well under a millisecond, so a polling kill rarely
        # lands inside one. Instead, freeze in the middle of the second checkpoint's write
        # (half of state.npz on disk, no meta.json, not renamed) and touch the marker file
        # sys.argv[4], so that the kill lands mid-write every time.
        real_savez = np.savez
        def savez_then_hang(file, *args, **kwargs):
            if "epoch_0002" in Path(getattr(file, "name", "")).parent.name:
                buffer = io.BytesIO()
                real_savez(buffer, *args, **kwargs)
                file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                file.flush()
                Path(sys.argv[4]).touch()
                time.sleep(600)
            return real_savez(file, *args, **kwargs)
        np.savez = savez_then_hang
    fit(build_toy, IMAGES, sys.argv[1], num_epochs=int(sys.argv[3]), batch_size=8, verbose=0,
        resume=True, tensorboard=False)
    """
)


def test_sigkill_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    arguments = [sys.executable, "-c", LONG_RUN_SCRIPT, str(run_dir), os.path.dirname(__file__)]
    rng = np.random.default_rng(0)
    marker = tmp_path / "writing_epoch_2"
    kills = 0
    for attempt in range(2):
        # First attempt: frozen mid-write of the second checkpoint (see LONG_RUN_SCRIPT) and
        # killed there. Second attempt: killed at a random moment once a checkpoint exists.
        process = subprocess.Popen(
            arguments + ["100000"] + ([str(marker)] if attempt == 0 else []),
            env=_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if attempt == 0:
                if marker.exists():
                    break
            elif latest_checkpoint(checkpoints) is not None and rng.random() < 0.02:
                break
            time.sleep(0.002)
        assert process.poll() is None, "the training process ended before it was killed"
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        assert attempt > 0 or marker.exists(), "the second checkpoint's write was never reached"
        last = latest_checkpoint(checkpoints)
        assert last is not None, "no complete checkpoint survived the kill"
        meta = load_checkpoint(build_toy(), last)
        assert len(meta["history"]["first_loss"]) == meta["epoch"]
        if attempt == 0:
            # The half-written epoch 2 is left as a temporary folder, not a checkpoint: epoch 1
            # is the newest complete one.
            assert last.name == "epoch_0001"
            (partial,) = checkpoints.glob(".tmp_epoch_0002_*")
            assert (partial / "state.npz").stat().st_size > 0
            assert not (partial / "meta.json").exists()
    done_epochs = json.loads((latest_checkpoint(checkpoints) / "meta.json").read_text())["epoch"]
    finished = subprocess.run(
        arguments + [str(done_epochs + 1)],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert latest_checkpoint(checkpoints).name == f"epoch_{done_epochs + 1:04d}"
    assert kills == 2


def test_time_budget_stops_before_an_epoch_that_would_pass_it(tmp_path):
    from medgen_tf.training import TimeBudget

    now = [0.0]

    class TenSecondEpochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            now[0] += 10.0

    # Ends of epochs at 10, 20, 30 s; after the third, 30 + 1.2 * 10 > 35 predicts an overrun.
    budget = TimeBudget(35.0, margin=1.2, clock=lambda: now[0])
    history = fit(
        build_toy(),
        IMAGES,
        tmp_path / "run",
        num_epochs=10,
        batch_size=8,
        callbacks=[TenSecondEpochs(), budget],
        verbose=0,
        tensorboard=False,
    )
    assert len(history["first_loss"]) == 3
    assert (budget.epochs_run, budget.elapsed_seconds, budget.stopped_early) == (3, 30.0, True)
    # A budget the run fits in lets it finish all its epochs.
    now[0] = 0.0
    roomy = TimeBudget(1000.0, clock=lambda: now[0])
    fit(
        build_toy(),
        IMAGES,
        tmp_path / "roomy",
        num_epochs=2,
        batch_size=8,
        callbacks=[TenSecondEpochs(), roomy],
        verbose=0,
        tensorboard=False,
    )
    assert (roomy.epochs_run, roomy.stopped_early) == (2, False)
    with pytest.raises(ValueError, match="seconds > 0"):
        TimeBudget(0)


@pytest.mark.parametrize("seconds", [float("nan"), 0, -5])
def test_a_time_limit_of_no_time_is_refused_like_a_time_budget(seconds):
    # TimeLimit(nan) never stopped (no time is > nan); 0 or -5 stopped every run after its
    # first batch. TimeBudget refuses them.
    from medgen_tf.training import TimeBudget, TimeLimit

    with pytest.raises(ValueError, match="need seconds > 0") as error:
        TimeLimit(seconds)
    assert "\n" not in str(error.value) and str(seconds) in str(error.value)
    with pytest.raises(ValueError, match="need seconds > 0"):
        TimeBudget(seconds)


def test_time_limit_stops_mid_epoch_once_the_time_has_passed(tmp_path):
    from medgen_tf.training import TimeLimit

    now = [0.0]

    class OneSecondBatches(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            now[0] += 1.0

    batches = []
    limit = TimeLimit(2.5, clock=lambda: now[0])
    counter = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batches.append(batch)
    )
    fit(
        build_toy(),
        IMAGES,
        tmp_path / "run",
        num_epochs=5,
        batch_size=8,
        callbacks=[OneSecondBatches(), limit, counter],
        verbose=0,
        tensorboard=False,
    )
    # Batches end at 1, 2, 3 s: the third passes 2.5 s and training stops there.
    assert len(batches) == 3 and limit.stopped_early


class _OneSecondBatches(keras.callbacks.Callback):
    def __init__(self, now):
        super().__init__()
        self.now = now

    def on_train_batch_end(self, batch, logs=None):
        self.now[0] += 1.0


def _logged_scalar_steps(log_dir):
    # In the order they were written: by file name, a resume's file could come first (names
    # end in a per-process counter, and "10" sorts before "9").
    logged = []
    for events in Path(log_dir).rglob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(events)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            logged += [(event.wall_time, value.tag, event.step) for value in event.summary.value]
    steps = {}
    for _, tag, step in sorted(logged, key=lambda entry: entry[0]):
        steps.setdefault(tag, []).append(step)
    return steps


def test_tensorboard_logs_only_the_epochs_that_history_records(tmp_path):
    from medgen_tf.training import TimeLimit

    now = [0.0]
    limit = TimeLimit(4.5, clock=lambda: now[0])  # 3 batches an epoch: stops in epoch 2
    history = fit(
        build_toy,
        IMAGES,
        tmp_path,
        num_epochs=3,
        batch_size=8,
        callbacks=[_OneSecondBatches(now), limit],
        verbose=0,
    )
    assert limit.stopped_early and len(history["first_loss"]) == 1
    logged = _logged_scalar_steps(tmp_path / "logs")
    # The cut epoch's means cover two of its three batches: they are not epoch 2's scalars.
    assert logged == {"epoch_first_loss": [1], "epoch_second_loss": [1]}


def test_tensorboard_skips_the_epoch_the_nan_guard_stopped_on(tmp_path):
    class Poison(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:  # after epoch 2 is recorded: epoch 3's losses are NaN
                for variable in self.model.first.trainable_variables:
                    variable.assign(variable * np.nan)

    history = fit(
        build_toy, IMAGES, tmp_path, num_epochs=4, batch_size=8, verbose=0, callbacks=[Poison()]
    )
    assert history.stopped_reason is not None and len(history["first_loss"]) == 2
    logged = _logged_scalar_steps(tmp_path / "logs")
    assert logged == {"epoch_first_loss": [1, 2], "epoch_second_loss": [1, 2]}


def test_a_failed_sample_grid_leaves_the_epoch_unrecorded_everywhere_and_resume_logs_it_once(
    tmp_path,
):
    calls = []

    def flaky_samples(model):
        calls.append(len(calls))
        if len(calls) == 2:
            raise OSError("No space left on device")
        return IMAGES[:4]

    with pytest.raises(OSError, match="No space left"):
        fit(
            build_toy,
            IMAGES,
            tmp_path,
            num_epochs=3,
            sample_fn=flaky_samples,
            batch_size=8,
            verbose=0,
        )
    # Epoch 2's grid failed: history.json, the checkpoint and TensorBoard all stop at epoch 1.
    assert latest_checkpoint(tmp_path / "checkpoints").name == "epoch_0001"
    assert len(json.loads((tmp_path / "history.json").read_text())["first_loss"]) == 1
    assert _logged_scalar_steps(tmp_path / "logs")["epoch_first_loss"] == [1]
    resumed = fit(
        build_toy,
        IMAGES,
        tmp_path,
        num_epochs=3,
        resume=True,
        sample_fn=flaky_samples,
        batch_size=8,
        verbose=0,
    )
    assert len(resumed["first_loss"]) == 3
    assert _logged_scalar_steps(tmp_path / "logs")["epoch_first_loss"] == [1, 2, 3]
    assert sorted(path.name for path in (tmp_path / "samples").iterdir()) == [
        "epoch_001.png",
        "epoch_002.png",
        "epoch_003.png",
    ]


def test_a_stop_mid_epoch_keeps_the_last_complete_epoch_and_the_resume_is_exact(tmp_path):
    from medgen_tf.training import TimeLimit

    grids = dict(sample_fn=lambda model: IMAGES[:4])
    straight = fit(build_toy, IMAGES, tmp_path / "straight", num_epochs=3, **grids, **QUIET)
    now = [0.0]
    # 3 steps an epoch: the fifth batch ends at 5 s > 4.5 s, one step before epoch 2 ends.
    limit = TimeLimit(4.5, clock=lambda: now[0])
    run_dir = tmp_path / "limited"
    callbacks = [_OneSecondBatches(now), limit]
    stopped = fit(build_toy, IMAGES, run_dir, num_epochs=3, callbacks=callbacks, **grids, **QUIET)
    assert limit.stopped_early and stopped.model.optimizers[0].iterations.numpy() == 5
    # Epoch 2 ran 2 of its 3 steps: no checkpoint, history or grid claims it.
    assert latest_checkpoint(run_dir / "checkpoints").name == "epoch_0001"
    assert len(stopped["first_loss"]) == 1
    assert len(json.loads((run_dir / "history.json").read_text())["first_loss"]) == 1
    assert sorted(path.name for path in (run_dir / "samples").iterdir()) == ["epoch_001.png"]
    keras.utils.set_random_seed(123)
    resumed = fit(build_toy, IMAGES, run_dir, num_epochs=3, resume=True, **QUIET)
    assert resumed.model.optimizers[0].iterations.numpy() == 9
    np.testing.assert_allclose(resumed["first_loss"], straight["first_loss"], rtol=1e-5)
    for expected, actual in zip(_all_state(straight.model), _all_state(resumed.model), strict=True):
        np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_a_stop_mid_epoch_of_a_dataset_of_unknown_length_is_not_checkpointed(tmp_path):
    from medgen_tf.training import TimeLimit

    dataset = tf.data.Dataset.from_tensor_slices(IMAGES).filter(lambda image: True).batch(8)
    assert dataset.cardinality() == tf.data.UNKNOWN_CARDINALITY
    now = [0.0]
    limit = TimeLimit(1.5, clock=lambda: now[0])  # stops after batch 2 of 3
    history = fit(
        build_toy,
        dataset,
        tmp_path,
        num_epochs=2,
        callbacks=[_OneSecondBatches(now), limit],
        verbose=0,
        tensorboard=False,
    )
    assert limit.stopped_early and history.model.optimizers[0].iterations.numpy() == 2
    assert latest_checkpoint(tmp_path / "checkpoints") is None and not history


QUIET = dict(batch_size=8, verbose=0, tensorboard=False)


def _junk(path):
    path.write_bytes(b"not what was written here")


def _cut_in_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _last_weight_made_nan(path):
    with np.load(path) as state:
        arrays = {key: state[key] for key in state.files}
    last = [key for key in sorted(arrays) if np.issubdtype(arrays[key].dtype, np.floating)][-1]
    arrays[last] = np.full_like(arrays[last], np.nan)
    with open(path, "wb") as file:
        np.savez(file, **arrays)


@pytest.mark.parametrize(
    "name, damage, problem",
    [
        ("state.npz", _junk, "not a .npz archive"),
        ("state.npz", _cut_in_half, ""),
        ("meta.json", _cut_in_half, "not valid JSON"),
        ("state.npz", _last_weight_made_nan, "is not finite"),
    ],
)
def test_a_damaged_newest_checkpoint_is_one_line_naming_the_file_and_the_way_out(
    tmp_path, name, damage, problem
):
    fit(build_toy, IMAGES, tmp_path, num_epochs=2, **QUIET)
    newest = latest_checkpoint(tmp_path / "checkpoints")
    damage(newest / name)
    with pytest.raises(DataError) as caught:
        fit(build_toy, IMAGES, tmp_path, num_epochs=3, resume=True, **QUIET)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and str(newest / name) in message
    assert problem in message and f"delete the folder {newest} to resume from epoch_0001" in message
    # The way out works: without the damaged folder the run continues from epoch 1.
    shutil.rmtree(newest)
    history = fit(build_toy, IMAGES, tmp_path, num_epochs=2, resume=True, **QUIET)
    assert len(history["first_loss"]) == 2
    assert latest_checkpoint(tmp_path / "checkpoints").name == "epoch_0002"


@pytest.mark.parametrize(
    "edit, problem",
    [
        ({"history": {"first_loss": 5}}, "history"),
        ({"history": {"first_loss": ["high", "low"]}}, "history"),
        ({"epoch": -3}, "epoch -3"),
        ({"epoch": 7}, "epoch 7"),
        ({"epoch": True}, "epoch True"),
    ],
)
def test_a_checkpoint_whose_meta_json_holds_wrong_values_is_one_line_and_changes_nothing(
    tmp_path, edit, problem
):
    # A history entry that was no list gave a TypeError traceback ("'int' object is not
    # iterable"); an epoch of -3 resumed there and trained "epochs" -3 to 0, writing
    # checkpoints/epoch_-001 and samples/epoch_-01.png; an epoch 7 in epoch_0002 skipped five.
    fit(build_toy, IMAGES, tmp_path, num_epochs=2, **QUIET)
    newest = latest_checkpoint(tmp_path / "checkpoints")
    meta = json.loads((newest / "meta.json").read_text())
    (newest / "meta.json").write_text(json.dumps({**meta, **edit}))
    written = {name: (tmp_path / name).read_bytes() for name in ("config.json", "history.json")}
    with pytest.raises(DataError) as caught:
        fit(build_toy, IMAGES, tmp_path, num_epochs=3, resume=True, **QUIET)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and str(newest / "meta.json") in message
    assert problem in message and f"delete the folder {newest} to resume from epoch_0001" in message
    assert {name: (tmp_path / name).read_bytes() for name in written} == written
    assert sorted(path.name for path in (tmp_path / "checkpoints").iterdir()) == [
        "epoch_0001",
        "epoch_0002",
    ]


def test_a_refused_checkpoint_leaves_the_model_as_it_was(tmp_path):
    trained = build_toy()
    trained.fit(IMAGES, batch_size=8, epochs=1, verbose=0)
    _last_weight_made_nan(save_checkpoint(trained, tmp_path, epoch=1) / "state.npz")
    fresh = build_toy()
    before = _all_state(fresh)
    with pytest.raises(
        DataError, match=r"unusable checkpoint \(.+ is not finite\); delete the folder"
    ):
        load_checkpoint(fresh, latest_checkpoint(tmp_path))
    for expected, actual in zip(before, _all_state(fresh), strict=True):
        np.testing.assert_array_equal(actual, expected)


def _other_toy(**options):
    model = ToyAdversary(seed=1, **options)
    model.compile()
    return model


def test_a_checkpoint_of_another_model_is_refused_and_changes_nothing(tmp_path):
    trained = build_toy()
    trained.fit(IMAGES, batch_size=8, epochs=1, verbose=0)
    checkpoint = save_checkpoint(trained, tmp_path, epoch=1)
    # Other widths: as many variables, the first that differs is the hidden Dense kernel (after
    # the SeedGenerator state, which fits and would be assigned first by a loader that assigns
    # as it checks). Without BatchNorm: 4 model variables fewer, so the counts differ.
    refused = [
        (dict(width=6), r"sequential\S*/kernel has shape \(16, 8\), the model \(16, 6\)"),
        (dict(batch_norm=False), r"model has 11 variables, the model 7 \(a different model"),
    ]
    for options, message in refused:
        other = _other_toy(**options)
        before = _all_state(other)
        with pytest.raises(
            DataError, match=rf"^checkpoint {re.escape(str(checkpoint))}: "
        ) as error:
            load_checkpoint(other, checkpoint)
        assert re.search(message, str(error.value)) and "\n" not in str(error.value)
        for expected, actual in zip(before, _all_state(other), strict=True):
            np.testing.assert_array_equal(actual, expected)
    # The same checkpoint still restores the model it came from.
    restored = build_toy()
    assert load_checkpoint(restored, checkpoint)["epoch"] == 1
    for expected, actual in zip(_all_state(trained), _all_state(restored), strict=True):
        np.testing.assert_array_equal(actual, expected)


def test_resume_with_a_builder_of_another_model_is_refused_and_changes_nothing(tmp_path):
    fit(build_toy, IMAGES, tmp_path, num_epochs=1, seed=0, **QUIET)
    written = {name: (tmp_path / name).read_bytes() for name in ("config.json", "history.json")}
    # config.json records the settings, not the widths: the checkpoint is what refuses them.
    with pytest.raises(DataError, match=r"has shape \(16, 8\), the model \(16, 6\)$"):
        fit(lambda: _other_toy(width=6), IMAGES, tmp_path, num_epochs=2, resume=True, **QUIET)
    assert {name: (tmp_path / name).read_bytes() for name in written} == written
    assert latest_checkpoint(tmp_path / "checkpoints").name == "epoch_0001"
    history = fit(build_toy, IMAGES, tmp_path, num_epochs=2, seed=0, resume=True, **QUIET)
    assert len(history["first_loss"]) == 2


def test_resume_with_other_settings_is_refused_and_changes_nothing(tmp_path):
    config = {"data": "brain:t1", "num_epochs": 1}
    fit(build_toy, IMAGES, tmp_path, num_epochs=1, seed=0, config=config, **QUIET)
    written = (tmp_path / "config.json").read_text()
    refused = [
        (dict(batch_size=4), "batch_size 4 (run: 8)"),
        (dict(seed=5), "seed 5 (run: 0)"),
        (dict(config={**config, "data": "brain:t2"}), "data 'brain:t2' (run: 'brain:t1')"),
        (dict(data=IMAGES[:16]), "num_examples 16 (run: 24)"),
    ]
    for change, difference in refused:
        options = {"data": IMAGES, **QUIET, "seed": 0, "config": config, **change}
        with pytest.raises(DataError, match=re.escape(difference)):
            fit(build_toy, options.pop("data"), tmp_path, num_epochs=2, resume=True, **options)
    assert (tmp_path / "config.json").read_text() == written
    assert latest_checkpoint(tmp_path / "checkpoints").name == "epoch_0001"
    # More epochs (in the config too) is how a run is extended: allowed.
    extended = {**config, "num_epochs": 2}
    history = fit(build_toy, IMAGES, tmp_path, num_epochs=2, config=extended, resume=True, **QUIET)
    assert len(history["first_loss"]) == 2


def test_a_resume_with_fewer_epochs_than_the_run_has_is_refused_and_changes_nothing(tmp_path):
    # It trained nothing and answered as a success, and config.json then recorded the smaller
    # number as the run's epochs.
    fit(build_toy, IMAGES, tmp_path, num_epochs=2, seed=0, **QUIET)
    before = _files(tmp_path)
    with pytest.raises(DataError) as caught:
        fit(build_toy, IMAGES, tmp_path, num_epochs=1, seed=0, resume=True, **QUIET)
    message = str(caught.value)
    assert "\n" not in message and message == (
        f"run folder {tmp_path}: the run has trained 2 epochs; num_epochs=1 would shorten it "
        "(give --epochs 2 or more; a resume only extends a run)"
    )
    assert _files(tmp_path) == before
    # As many epochs as the run has is a resume with nothing left to train: accepted.
    history = fit(build_toy, IMAGES, tmp_path, num_epochs=2, seed=0, resume=True, **QUIET)
    assert len(history["first_loss"]) == 2
    assert latest_checkpoint(tmp_path / "checkpoints").name == "epoch_0002"


def test_a_resume_that_trains_an_epoch_removes_the_evaluation_of_the_model_before(tmp_path, caplog):
    # metrics.json and evaluation.png (medgen-tf evaluate) stayed beside the resumed run's new
    # model, as if they scored it.
    fit(build_toy, IMAGES, tmp_path, num_epochs=1, seed=0, **QUIET)
    evaluation = {"metrics.json": b'{"fd_medgen": 1.0}', "evaluation.png": b"a figure"}
    for name, content in evaluation.items():
        (tmp_path / name).write_bytes(content)
    # A resume with nothing left to train leaves the model, and so its evaluation, as it was.
    fit(build_toy, IMAGES, tmp_path, num_epochs=1, seed=0, resume=True, **QUIET)
    assert {name: (tmp_path / name).read_bytes() for name in evaluation} == evaluation
    with caplog.at_level("WARNING", logger="medgen_tf.training"):
        fit(build_toy, IMAGES, tmp_path, num_epochs=2, seed=0, resume=True, **QUIET)
    assert not any((tmp_path / name).exists() for name in evaluation)
    assert "epoch 2 changed the model that metrics.json and evaluation.png scored" in caplog.text
    assert not (tmp_path / "replaced").exists()


class _InterruptAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt  # after the engine's checkpoint of epoch 1, as a Ctrl-C would


def test_a_resume_stopped_in_its_first_epoch_removes_the_evaluation_its_weights_outdate(
    tmp_path, caplog
):
    # No epoch was recorded, so metrics.json stayed, yet model.weights.h5 was written again
    # with the part-trained weights that metrics.json never scored.
    from medgen_tf.training import TimeLimit

    fit(build_toy, IMAGES, tmp_path, num_epochs=1, seed=0, **QUIET)
    (tmp_path / "metrics.json").write_text('{"fd_medgen": 1.0}')
    weights = (tmp_path / "model.weights.h5").read_bytes()
    now = [0.0]
    limit = TimeLimit(1.5, clock=lambda: now[0])  # stops after batch 2 of 3
    with caplog.at_level("WARNING", logger="medgen_tf.training"):
        history = fit(
            build_toy,
            IMAGES,
            tmp_path,
            num_epochs=2,
            seed=0,
            resume=True,
            callbacks=[_OneSecondBatches(now), limit],
            **QUIET,
        )
    assert limit.stopped_early and len(history["first_loss"]) == 1
    assert (tmp_path / "model.weights.h5").read_bytes() != weights
    assert not (tmp_path / "metrics.json").exists()
    assert "epoch 2 changed the model that metrics.json scored" in caplog.text


def test_a_resume_writes_history_json_from_its_checkpoint(tmp_path):
    # A kill between the checkpoint and history.json left the file an epoch behind; a resume
    # with nothing left to train returned both epochs but never wrote the file again.
    fit(build_toy, IMAGES, tmp_path, num_epochs=2, seed=0, **QUIET)
    written = json.loads((tmp_path / "history.json").read_text())
    behind = {name: values[:1] for name, values in written.items()}
    (tmp_path / "history.json").write_text(json.dumps(behind))
    history = fit(build_toy, IMAGES, tmp_path, num_epochs=2, seed=0, resume=True, **QUIET)
    assert len(history["first_loss"]) == 2
    assert json.loads((tmp_path / "history.json").read_text()) == written


def test_a_run_whose_schedule_is_planned_over_its_epochs_resumes_only_with_those_epochs(tmp_path):
    # As CycleGAN records it: the learning rate decays to zero at total_steps (2 epochs of 3).
    planned = {"model": "cyclegan", "num_epochs": 2, "total_steps": 6}
    with pytest.raises(KeyboardInterrupt):
        fit(
            build_toy,
            IMAGES,
            tmp_path,
            num_epochs=2,
            config=planned,
            callbacks=[_InterruptAfterFirstEpoch()],
            **QUIET,
        )
    written = (tmp_path / "config.json").read_text()
    longer = {**planned, "num_epochs": 4, "total_steps": 12}
    with pytest.raises(DataError) as caught:
        fit(build_toy, IMAGES, tmp_path, num_epochs=4, config=longer, resume=True, **QUIET)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and "config.json" in message
    assert "planned over its 2 epochs (6 steps)" in message and "asked: 12 steps" in message
    assert "start a new run (another folder) with the longer --epochs" in message
    assert (tmp_path / "config.json").read_text() == written
    # With the run's own epochs, the interrupted run finishes.
    history = fit(build_toy, IMAGES, tmp_path, num_epochs=2, config=planned, resume=True, **QUIET)
    assert len(history["first_loss"]) == 2


def _files(folder, but=()):
    """``{relative path: bytes}`` of every file under ``folder``, less the top-level ``but``."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder).parts[0] not in but
    }


def _an_earlier_run(run_dir):
    """A finished 3-epoch run with an exported model and an evaluation, as the recipes leave."""
    fit(build_toy, IMAGES, run_dir, num_epochs=3, sample_fn=lambda model: IMAGES[:4], **QUIET)
    (run_dir / "generator.keras").write_bytes(b"the earlier run's model")
    (run_dir / "metrics.json").write_text('{"fd_medgen": 1.0}')
    return _files(run_dir)


def test_a_fresh_run_into_a_folder_with_checkpoints_starts_over_and_sets_the_old_aside(
    tmp_path, caplog
):
    run_dir = tmp_path / "run"
    earlier = _an_earlier_run(run_dir)
    grids = dict(sample_fn=lambda model: IMAGES[:4])
    with caplog.at_level("WARNING", logger="medgen_tf.training"):
        history = fit(build_toy, IMAGES, run_dir, num_epochs=1, **grids, **QUIET)
    # Only the files a run into an empty folder writes (no later sample grids, exported model
    # or metrics of the old run), and only the new run's checkpoint, so a resume continues the
    # new run, not the old one.
    fit(build_toy, IMAGES, tmp_path / "fresh", num_epochs=1, **grids, **QUIET)
    assert sorted(_files(run_dir, but={"replaced"})) == sorted(_files(tmp_path / "fresh"))
    names = sorted(path.name for path in (run_dir / "checkpoints").iterdir())
    assert names == ["epoch_0001"]
    assert len(history["first_loss"]) == 1
    assert len(json.loads((run_dir / "history.json").read_text())["first_loss"]) == 1
    # The earlier run is still there, whole, set aside.
    assert "(checkpoints up to epoch_0003, samples, history, weights) was moved to replaced" in (
        caplog.text
    )
    assert _files(run_dir / "replaced") == earlier
    resumed = fit(build_toy, IMAGES, run_dir, num_epochs=2, resume=True, **QUIET)
    assert len(resumed["first_loss"]) == 2  # from the new run's epoch 1
    # One generation is kept: the next new run replaces the earlier one in replaced/.
    newer = _files(run_dir, but={"replaced"})
    with caplog.at_level("WARNING", logger="medgen_tf.training"):
        fit(build_toy, IMAGES, run_dir, num_epochs=1, **QUIET)
    assert "replacing the one set aside before" in caplog.text
    assert _files(run_dir / "replaced") == newer


def test_a_new_run_stopped_after_its_first_epoch_has_none_of_the_earlier_runs_files(tmp_path):
    run_dir = tmp_path / "run"
    earlier = _an_earlier_run(run_dir)
    with pytest.raises(KeyboardInterrupt):
        fit(
            build_toy,
            IMAGES,
            run_dir,
            num_epochs=3,
            sample_fn=lambda model: IMAGES[:4],
            callbacks=[_InterruptAfterFirstEpoch()],
            **QUIET,
        )
    assert sorted(_files(run_dir, but={"replaced"})) == [
        "checkpoints/epoch_0001/meta.json",
        "checkpoints/epoch_0001/state.npz",
        "config.json",
        "history.json",
        "samples/epoch_001.png",
    ]
    assert _files(run_dir / "replaced") == earlier


def test_a_resume_with_no_usable_checkpoint_refuses_to_overwrite_a_finished_run(tmp_path):
    run_dir = tmp_path / "run"
    _an_earlier_run(run_dir)
    for checkpoint in (run_dir / "checkpoints").iterdir():
        (checkpoint / "state.npz").unlink()  # damaged: no complete checkpoint is left
    before = _files(run_dir)
    with pytest.raises(DataError, match="nothing to resume") as error:
        fit(build_toy, IMAGES, run_dir, num_epochs=4, resume=True, **QUIET)
    message = str(error.value)
    assert "\n" not in message and "generator.keras" in message and "history.json" in message
    assert _files(run_dir) == before
    # Without any checkpoint folder, the finished run is just as safe.
    shutil.rmtree(run_dir / "checkpoints")
    with pytest.raises(DataError, match="nothing to resume"):
        fit(build_toy, IMAGES, run_dir, num_epochs=4, resume=True, **QUIET)
    # A resume into a new folder still starts from scratch.
    history = fit(build_toy, IMAGES, tmp_path / "new", num_epochs=1, resume=True, **QUIET)
    assert len(history["first_loss"]) == 1


def test_a_new_run_sets_aside_an_earlier_one_that_has_no_checkpoint_left(tmp_path, caplog):
    run_dir = tmp_path / "run"
    _an_earlier_run(run_dir)
    shutil.rmtree(run_dir / "checkpoints")
    earlier = _files(run_dir)
    with caplog.at_level("WARNING", logger="medgen_tf.training"):
        fit(build_toy, IMAGES, run_dir, num_epochs=1, **QUIET)
    assert "(no complete checkpoint, samples, history, weights) was moved to replaced" in (
        caplog.text
    )
    assert _files(run_dir / "replaced") == earlier
    assert not (run_dir / "generator.keras").exists()


def test_a_resume_that_finds_no_checkpoint_says_so_at_any_verbosity(tmp_path, caplog, capsys):
    # The notice was printed only with verbose != 0, and the command line passes 0 unless
    # stdout is a terminal: a --resume into a mistyped folder started a new run in silence.
    with caplog.at_level("WARNING", logger="medgen_tf.training"):
        fit(build_toy, IMAGES, tmp_path / "typo", num_epochs=1, resume=True, **QUIET)
    assert f"{tmp_path / 'typo'}: nothing to resume (no checkpoint); a new run starts" in (
        caplog.text
    )
    caplog.clear()
    with caplog.at_level("WARNING", logger="medgen_tf.training"):
        fit(build_toy, IMAGES, tmp_path / "typo", num_epochs=2, resume=True, **QUIET)
    assert "nothing to resume" not in caplog.text  # it found epoch 1 this time
    assert capsys.readouterr().out == ""


def test_a_model_that_fails_to_build_creates_no_run_folder(tmp_path):
    def broken_builder():
        raise ValueError("image_size=100 is not supported")

    with pytest.raises(ValueError, match="not supported"):
        fit(broken_builder, IMAGES, tmp_path / "run", num_epochs=1, **QUIET)
    assert not (tmp_path / "run").exists()


def test_a_new_run_whose_model_fails_to_build_leaves_the_old_checkpoints_in_place(tmp_path):
    fit(build_toy, IMAGES, tmp_path, num_epochs=2, **QUIET)

    def broken_builder():
        raise ValueError("a typo in the model")

    with pytest.raises(ValueError, match="a typo"):
        fit(broken_builder, IMAGES, tmp_path, num_epochs=1, **QUIET)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "epoch_0001",
        "epoch_0002",
    ]
    assert not (tmp_path / "replaced").exists()


def test_fewer_examples_than_a_batch_are_refused_before_the_folder_is_touched(tmp_path):
    # Refused only by make_dataset, after the run folder was made and an earlier run set aside:
    # `medgen-tf train` left an empty folder, and a notebook re-run with a larger batch moved
    # its finished run into replaced/ for a run that never started.
    with pytest.raises(DataError, match=r"^24 examples is fewer than batch_size=32") as caught:
        fit(build_toy, IMAGES, tmp_path / "new", num_epochs=1, batch_size=32, verbose=0)
    assert "\n" not in str(caught.value) and not (tmp_path / "new").exists()
    fit(build_toy, IMAGES, tmp_path / "run", num_epochs=1, **QUIET)
    before = sorted(path.name for path in (tmp_path / "run").iterdir())
    with pytest.raises(DataError, match="fewer than batch_size=32"):
        fit(build_toy, IMAGES, tmp_path / "run", num_epochs=1, batch_size=32, verbose=0)
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == before
    assert "replaced" not in before


@pytest.mark.parametrize(
    "data, problem",
    [
        ((IMAGES, IMAGES[:20]), "arrays differ in length"),
        ({}, "no arrays given"),
        ([], "no arrays given"),
    ],
    ids=["unequal-lengths", "empty-dict", "empty-list"],
)
def test_arrays_make_dataset_refuses_are_refused_before_an_earlier_run_is_set_aside(
    tmp_path, data, problem
):
    # Unequal lengths were refused by make_dataset only after the earlier run had been moved
    # into replaced/; {} was a StopIteration and [] an IndexError from counting the examples.
    fit(build_toy, IMAGES, tmp_path, num_epochs=1, **QUIET)
    before = sorted(path.name for path in tmp_path.iterdir())
    with pytest.raises(DataError, match=problem):
        fit(build_toy, data, tmp_path, num_epochs=1, **QUIET)
    assert sorted(path.name for path in tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "batch_size, problem",
    [(True, "True"), (2.5, "2.5"), ("8", "'8'"), (0, "0"), (-4, "-4")],
    ids=["bool", "fraction", "text", "zero", "negative"],
)
def test_a_batch_size_that_is_no_count_is_refused_before_an_earlier_run_is_set_aside(
    tmp_path, batch_size, problem
):
    # True trained with batches of 1 (config.json said "true"); 2.5 failed inside the traced
    # step and "8" in a comparison, both after the earlier run had been moved to replaced/.
    fit(build_toy, IMAGES, tmp_path, num_epochs=1, **QUIET)
    before = _files(tmp_path)
    with pytest.raises(ValueError) as caught:
        fit(build_toy, IMAGES, tmp_path, num_epochs=1, batch_size=batch_size, verbose=0)
    message = str(caught.value)
    assert message == f"{tmp_path}: batch_size must be a whole number >= 1, got {problem}"
    assert _files(tmp_path) == before


def test_config_json_holds_numpy_numbers_as_numbers_and_paths_as_text(tmp_path):
    from decimal import Decimal

    config = {
        "latent_dim": np.int64(8),
        "sigma": np.float32(0.5),
        "data_dir": tmp_path / "d",
        # Numbers float() reads, recorded as floats as before (default=float).
        "beta": Decimal("0.25"),
        "learning_rate": tf.constant(0.5),
    }
    fit(build_toy, IMAGES, tmp_path / "run", num_epochs=1, config=config, **QUIET)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert recorded == {
        "latent_dim": 8,
        "sigma": 0.5,
        "data_dir": str(tmp_path / "d"),
        "beta": 0.25,
        "learning_rate": 0.5,
    }
    assert isinstance(recorded["latent_dim"], int)  # default=float wrote 8.0
    # The same config resumes: it compares equal to what config.json holds.
    history = fit(
        build_toy, IMAGES, tmp_path / "run", num_epochs=2, config=config, resume=True, **QUIET
    )
    assert len(history["first_loss"]) == 2


def test_a_config_json_cannot_hold_is_refused_before_an_earlier_run_is_set_aside(tmp_path):
    # A Path was float()'s TypeError once the earlier run had been set aside, leaving the
    # folder holding replaced/ alone.
    fit(build_toy, IMAGES, tmp_path, num_epochs=1, **QUIET)
    before = _files(tmp_path)
    with pytest.raises(ValueError) as caught:
        fit(build_toy, IMAGES, tmp_path, num_epochs=1, config={"loss": object}, **QUIET)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{tmp_path}: config must hold JSON values for config.json; type")
    assert _files(tmp_path) == before


def test_a_run_folder_that_is_a_file_is_named_as_one(tmp_path):
    (tmp_path / "run").write_text("notes")
    with pytest.raises(DataError, match=r"run folder .*run is a file; give a folder's path$"):
        fit(build_toy, IMAGES, tmp_path / "run", num_epochs=1, **QUIET)
    assert (tmp_path / "run").read_text() == "notes"


def test_a_resume_after_a_kill_during_a_set_aside_continues_the_earlier_run(tmp_path, caplog):
    # What a kill inside a new run's set-aside leaves: the earlier run's checkpoints (moved
    # first) staged in .replacing, the rest still in place, nothing of the new run. The resume
    # found no checkpoint and trained a run beside them; every new run after it then failed
    # with OSError (Directory not empty) staging its checkpoints.
    run_dir = tmp_path / "run"
    earlier = _an_earlier_run(run_dir)
    (run_dir / ".replacing").mkdir()
    os.replace(run_dir / "checkpoints", run_dir / ".replacing" / "checkpoints")
    with caplog.at_level("WARNING", logger="medgen_tf.training"):
        history = fit(build_toy, IMAGES, run_dir, num_epochs=4, resume=True, **QUIET)
    assert "the resume continues this run" in caplog.text
    assert len(history["first_loss"]) == 4  # epochs 1-3 from the earlier run, then one more
    assert json.loads((run_dir / "config.json").read_text())["engine"]["resumed_from_epoch"] == 3
    assert not (run_dir / ".replacing").exists() and not (run_dir / "replaced").exists()
    assert (run_dir / "generator.keras").read_bytes() == earlier["generator.keras"]
    fit(build_toy, IMAGES, run_dir, num_epochs=1, **QUIET)
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == ["epoch_0001"]
    assert len(json.loads((run_dir / "replaced" / "history.json").read_text())["first_loss"]) == 4


def _with_a_nan(images):
    images = images.copy()
    images[3, 0, 0, 0] = np.nan
    return images


@pytest.mark.parametrize(
    "data, problem",
    [
        (_with_a_nan(IMAGES), "the data hold 1 NaN or Inf values"),
        (np.where(IMAGES > 1.0, np.inf, IMAGES), "NaN or Inf values"),
        (np.array([None] * 24), "arrays has dtype object"),
        ((IMAGES, np.array([None] * 24)), "arrays[1] has dtype object"),
    ],
    ids=["nan-image", "inf-images", "object", "object-labels"],
)
def test_data_no_step_can_train_on_are_refused_before_the_folder_is_made(tmp_path, data, problem):
    # A NaN image trained a whole epoch, then the NaN guard blamed the model ("first_loss is
    # nan at epoch 1"), leaving a run folder with only config.json; an object array (ragged, or
    # holding None) was TensorFlow's "Failed to convert a NumPy array to a Tensor
    # (Unsupported object type NoneType)", also after the folder was made.
    with pytest.raises(DataError, match=re.escape(problem)) as caught:
        fit(build_toy, data, tmp_path / "run", num_epochs=1, **QUIET)
    assert "\n" not in str(caught.value) and not (tmp_path / "run").exists()


def _bernoulli_vae():
    from medgen_tf.models.vae import build_vae

    vae = build_vae(16, 1, 2, 4, likelihood="bernoulli", seed=0)
    vae.compile(keras.optimizers.Adam(1e-3))
    return vae


def _conditional_gan():
    from medgen_tf.models.gan import ConditionalGAN, build_discriminator, build_generator

    gan = ConditionalGAN(
        build_generator(4, 16, 1, 4, num_classes=3), build_discriminator(16, 1, 4, num_classes=3)
    )
    gan.compile()
    return gan


def _gan():
    from medgen_tf.models.gan import GAN, build_discriminator, build_generator

    gan = GAN(build_generator(4, 16, 1, 4), build_discriminator(16, 1, 4))
    gan.compile()
    return gan


def _cyclegan():
    from medgen_tf.translation import build_cyclegan

    model = build_cyclegan(24, base_filters=4, num_residual_blocks=1)
    model.compile()
    return model


_GAN_IMAGES = np.zeros((8, 16, 16, 1), "float32")


@pytest.mark.parametrize(
    "build, data, problem",
    [
        (_gan, _GAN_IMAGES[..., 0], "GAN expects images of shape (batch, height, width, chan"),
        (
            _gan,
            _GAN_IMAGES.astype("uint8"),
            "GAN expects float images scaled to [-1, 1], got uint8",
        ),
        (
            _gan,
            np.zeros((8, 24, 24, 1), "float32"),
            "GAN expects images of shape (batch, 16, 16, 1)",
        ),
        (_gan, _GAN_IMAGES + 255.0, "training data: images must lie in [-1, 1], got 255 to 255"),
        (
            _cyclegan,
            (np.zeros((8, 24, 24, 1), "float32"), np.zeros((8, 32, 32, 1), "float32")),
            "CycleGAN expects domain B images of shape (batch, 24, 24, 1)",
        ),
        (
            _bernoulli_vae,
            np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 1)).astype("float32"),
            "training data: likelihood='bernoulli' needs images in [0, 1]",
        ),
        (
            _conditional_gan,
            (np.zeros((8, 16, 16, 1), "float32"), np.arange(8) % 4),
            "training data: labels must lie in [0, 3), got 0 to 3",
        ),
    ],
    ids=[
        "gan-no-channel-axis",
        "gan-uint8",
        "gan-24-px",
        "gan-0-255",
        "cyclegan-domain-b-32-px",
        "bernoulli-vae-0-255",
        "conditional-gan-label-3",
    ],
)
def test_the_models_own_data_checks_run_before_the_folder_is_made(tmp_path, build, data, problem):
    # The engine hands model.fit a dataset, so the checks VAE.fit and ConditionalGAN.fit make
    # on numpy input were skipped: a Bernoulli VAE on 8-bit images trained into NaN, and the
    # NaN guard blamed the loss. A GAN's images without a channel axis, of uint8 or of another
    # size failed in the first traced step, after an earlier run had been set aside and a
    # config.json written; 8-bit floats trained without a word.
    run_dir = tmp_path / "run"
    if build is _gan:  # an earlier run in the folder, which a refused run must leave alone
        fit(_gan, _GAN_IMAGES, run_dir, num_epochs=1, **QUIET)
    before = _files(run_dir) if run_dir.exists() else None
    with pytest.raises(ValueError, match=re.escape(problem)) as caught:
        fit(build, data, run_dir, num_epochs=1, **QUIET)
    assert "\n" not in str(caught.value)
    if before is None:
        assert not run_dir.exists()
    else:
        assert _files(run_dir) == before


def test_data_the_models_own_checks_accept_trains(tmp_path):
    images = np.random.default_rng(0).uniform(0, 1, (8, 16, 16, 1)).astype("float32")
    history = fit(_bernoulli_vae, images, tmp_path / "run", num_epochs=1, **QUIET)
    assert np.isfinite(history["loss"][-1])
    labels = np.arange(8) % 3
    history = fit(
        _conditional_gan, (images * 2 - 1, labels), tmp_path / "cgan", num_epochs=1, **QUIET
    )
    assert np.isfinite(history["d_loss"][-1])


def _crash_mid_write(self, path, *args, **kwargs):
    Path(path).write_bytes(b"the first bytes of a file")
    raise OSError("disk full")


def test_a_crash_while_saving_final_files_keeps_the_previous_ones(tmp_path, monkeypatch):
    import matplotlib.figure

    from medgen_tf import viz

    fit(build_toy, IMAGES, tmp_path, num_epochs=1, **QUIET)
    weights = (tmp_path / "model.weights.h5").read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save_weights", _crash_mid_write)
        with pytest.raises(OSError, match="disk full"):
            fit(build_toy, IMAGES, tmp_path, num_epochs=2, resume=True, **QUIET)
    assert (tmp_path / "model.weights.h5").read_bytes() == weights
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]

    grid = viz.save_image_grid(IMAGES[:4], tmp_path / "grid.png")
    picture = grid.read_bytes()
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", _crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        viz.save_image_grid(IMAGES[4:8], grid)
    assert grid.read_bytes() == picture
    assert not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")]


def test_a_figure_saved_under_a_bare_name_reports_the_file_matplotlib_writes(tmp_path):
    from medgen_tf import viz

    path = viz.save_image_grid(IMAGES[:4], tmp_path / "grid")
    assert path == tmp_path / "grid.png" and path.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("kill_at", ["first move", "fourth move", "after the discard"])
def test_a_set_aside_killed_part_way_loses_nothing_when_the_new_run_starts_again(
    tmp_path, monkeypatch, kill_at
):
    # One generation is kept in replaced/. A kill while the earlier run's files were being moved
    # there, then the same new run started again, had discarded the part already moved (its
    # checkpoints first) with the generation before, as if it were that generation.
    from medgen_tf import training

    run_dir = tmp_path / "run"
    _an_earlier_run(run_dir)
    fit(build_toy, IMAGES, run_dir, num_epochs=1, **QUIET)  # replaced/ holds the first run
    earlier = _files(run_dir, but={"replaced"})
    real_replace, real_discard, moves = os.replace, training._discard, []

    def replace_then_die(source, target):
        if len(moves) == {"first move": 1, "fourth move": 4}[kill_at]:
            raise KeyboardInterrupt  # stands in for SIGKILL between two moves
        moves.append(source)
        real_replace(source, target)

    def discard_then_die(path):
        real_discard(path)
        raise KeyboardInterrupt

    if kill_at == "after the discard":
        monkeypatch.setattr(training, "_discard", discard_then_die)
    else:
        monkeypatch.setattr(training.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit(build_toy, IMAGES, run_dir, num_epochs=1, **QUIET)
    monkeypatch.undo()
    fit(build_toy, IMAGES, run_dir, num_epochs=1, **QUIET)
    assert _files(run_dir / "replaced") == earlier
    assert not [path.name for path in run_dir.iterdir() if path.name.startswith(".")]


def test_an_epoch_count_tf_data_cannot_count_is_refused_before_the_folder_is_made(tmp_path):
    # make_dataset refused it only once the run folder had been made (and an earlier run in
    # it set aside).
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError) as caught:
        fit(build_toy, IMAGES, run_dir, num_epochs=10**20, **QUIET)
    assert str(caught.value).startswith(f"{run_dir}: num_epochs={10**20} makes ")
    assert str(caught.value).endswith(" batches, more than tf.data counts (2**62)")
    assert not run_dir.exists()


def test_fit_leaves_a_config_json_it_did_not_write(tmp_path):
    # A lone config.json was replaced as the remains of a run that failed before its first
    # epoch, whoever wrote it.
    (tmp_path / "config.json").write_text('{"learning_rate": 0.1}')
    with pytest.raises(DataError, match="a config.json that no medgen-tf run wrote"):
        fit(build_toy, IMAGES, tmp_path, num_epochs=1, **QUIET)
    assert _files(tmp_path) == {"config.json": b'{"learning_rate": 0.1}'}
    # One a failed run of ours left (it has the engine's section) is replaced as before.
    (tmp_path / "config.json").write_text('{"config": {}, "engine": {"batch_size": 8}}')
    fit(build_toy, IMAGES, tmp_path, num_epochs=1, **QUIET)
    assert (tmp_path / "history.json").is_file()
