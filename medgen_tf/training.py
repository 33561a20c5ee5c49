"""The training engine shared by every model: Keras ``fit`` plus a run folder that can resume.

:func:`fit` trains any compiled ``keras.Model`` (GAN, VAE, CycleGAN) and writes::

    RUN_DIR/config.json        the caller's config and the engine's settings
    RUN_DIR/history.json       per-epoch metrics (rewritten every epoch; correct after resume)
    RUN_DIR/samples/epoch_001.png ...   from ``sample_fn(model)`` (fixed noise), each epoch
    RUN_DIR/checkpoints/epoch_0001/     the last two complete checkpoints
    RUN_DIR/logs/              TensorBoard scalars
    RUN_DIR/loss_curves.png    medgen_tf.viz.plot_history of history.json
    RUN_DIR/model.weights.h5   final weights
    RUN_DIR/replaced/          an earlier run's outputs, set aside by a new run in the folder

The contract with models (GAN, VAE and CycleGAN follow it):

- The model is a compiled ``keras.Model`` whose ``train_step`` returns a dict of metrics; its
  ``compile`` passes ``jit_compile="auto"`` (XLA on GPU, graph mode on CPU, where XLA is slower).
- Optimizers: a model with several exposes them as an ``optimizers`` property (a list, in a
  fixed order); otherwise ``model.optimizer`` is used. ``compile`` must *build* them
  (``optimizer.build(variables)``) so their slots exist before a restore, and must wrap them
  with ``medgen_tf.models.layers.loss_scaled`` for mixed precision.
- Every state the next step depends on is a variable in ``model.variables`` (weights,
  BatchNorm statistics, ``keras.random.SeedGenerator`` states, image pools) or in an
  optimizer's ``variables`` (iterations, moments, loss scale). A checkpoint holds exactly
  these, plus the epoch and the history, so resuming continues the uninterrupted run.

Given arrays, the engine builds the dataset itself with :func:`medgen_tf.data.make_dataset`
(order of epoch ``e`` fixed by ``(seed, e)``), so a resumed run sees the same batches. A
``tf.data.Dataset`` is accepted too (notebooks), but then resume is only as exact as that
dataset's order.

Checkpoints are written into a hidden temporary folder, then renamed: a process killed at any
moment (SIGKILL included) leaves the previous checkpoint intact and loadable.

Example:
    >>> def build():  # doctest: +SKIP
    ...     model = GAN(build_generator(128, 64), build_discriminator(64))
    ...     model.compile(*default_optimizers())
    ...     return model
    >>> history = fit(build, images, "outputs/dcgan", num_epochs=10, batch_size=64)  # doctest: +SKIP
    >>> history.model, history["d_loss"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from medgen_tf.data.pipeline import MAX_BATCHES, _as_structure, make_dataset, steps_per_epoch
from medgen_tf.errors import DataError, is_whole_number
from medgen_tf.files import EXPORT_RECORD, abandoned_partial, atomic_path, read_run_config

logger = logging.getLogger(__name__)
#: Where ``fit(resume=False)`` sets an earlier run's outputs aside (one generation kept).
REPLACED_RUN = "replaced"
# Where an earlier run's outputs gather before they replace replaced/ (_set_aside_earlier_run).
_REPLACING = ".replacing"
#: What ``fit``, the recipes' exports (also ``*.keras``) and ``medgen_tf.evaluate`` write into a
#: run folder: a new run sets all of them aside, so none of them describes another run.
_RUN_OUTPUTS = (
    "checkpoints",
    "config.json",
    "history.json",
    "samples",
    "logs",
    "loss_curves.png",
    "model.weights.h5",
    "domains.json",
    "metrics.json",
    "evaluation.png",
    EXPORT_RECORD,
)
#: Of those, what ``medgen-tf evaluate`` writes: the scores of the model exported before. An
#: epoch a resumed run records removes them (``_drop_evaluation``).
_EVALUATION_OUTPUTS = ("metrics.json", "evaluation.png")

__all__ = [
    "TimeBudget",
    "TimeLimit",
    "TrainingHistory",
    "find_optimizers",
    "fit",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "trained_outputs",
]

_CHECKPOINT_PATTERN = re.compile(r"^epoch_(\d+)$")


class TrainingHistory(dict):
    """Per-epoch metrics (``{"d_loss": [...], ...}``) with the trained ``model`` attached.

    ``stopped_reason`` is None, or the NaN guard's one-line message when it stopped training.
    """

    def __init__(self, *args, model=None, stopped_reason=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.model = model
        self.stopped_reason = stopped_reason


# ---- checkpoints --------------------------------------------------------------------------


def find_optimizers(model: keras.Model) -> list:
    """The model's optimizers: its ``optimizers`` property, else ``[model.optimizer]``."""
    optimizers = getattr(model, "optimizers", None)
    if optimizers is None:
        optimizers = [model.optimizer] if getattr(model, "optimizer", None) is not None else []
    optimizers = list(optimizers)
    if any(optimizer is None for optimizer in optimizers):
        raise ValueError(f"{type(model).__name__} has an unset optimizer: compile it first")
    return optimizers


def _ensure_built(model, optimizers):
    for optimizer in optimizers:
        if not optimizer.built:
            if len(optimizers) != 1:
                raise ValueError(
                    f"{type(model).__name__}.compile must build its optimizers "
                    "(optimizer.build(variables)) so their state can be saved and restored"
                )
            optimizer.build(model.trainable_variables)


def _state_variables(model):
    optimizers = find_optimizers(model)
    _ensure_built(model, optimizers)
    groups = {"model": list(model.variables)}
    for index, optimizer in enumerate(optimizers):
        groups[f"optimizer_{index}"] = list(optimizer.variables)
    return groups


def _json_value(value):
    """``json``'s ``default``: numpy numbers and arrays as Python ones (an ``np.int64`` batch
    size stays a whole number; ``default=float`` wrote 8.0), paths as text, and other
    numbers ``float()`` reads as floats."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    try:  # a Decimal, a 0-d tf.Tensor: numbers that float() reads, as before
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{type(value).__name__} {_short(value)} is not a JSON value") from None


def _write_json(path: Path, payload) -> None:
    # fsync before the rename: a checkpoint's meta.json must be on disk before it is complete.
    with atomic_path(path) as temporary, open(temporary, "w") as file:
        json.dump(payload, file, indent=2, default=_json_value)
        file.flush()
        os.fsync(file.fileno())


def save_checkpoint(model, checkpoint_dir, epoch: int, history=None, keep: int = 2) -> Path:
    """Write ``checkpoint_dir/epoch_NNNN`` atomically (temporary folder, then rename).

    ``epoch`` is the number of completed epochs. Older checkpoints beyond the newest ``keep``
    (at least 1: the new one) are removed only after the new one is complete.
    """
    # keep=0 kept them all (a slice [:-0] is empty) and keep=-1 removed only the oldest.
    if not is_whole_number(keep) or keep < 1:
        raise ValueError(f"{checkpoint_dir}: keep must be a whole number >= 1, got {keep!r}")
    # epoch=-3 wrote epoch_-003, which latest_checkpoint never finds and load_checkpoint refuses.
    if not is_whole_number(epoch) or epoch < 0:
        raise ValueError(f"{checkpoint_dir}: epoch {epoch!r} is not a number of completed epochs")
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"epoch_{epoch:04d}"
    temporary = checkpoint_dir / f".tmp_epoch_{epoch:04d}_{os.getpid()}"
    if temporary.exists():
        shutil.rmtree(temporary)
    temporary.mkdir()
    arrays, shapes = {}, {}
    for group, variables in _state_variables(model).items():
        for index, variable in enumerate(variables):
            key = f"{group}/{index:05d}"
            arrays[key] = np.asarray(keras.ops.convert_to_numpy(variable))
            shapes[key] = [variable.path, list(arrays[key].shape)]
    with open(temporary / "state.npz", "wb") as file:
        np.savez(file, **arrays)
        file.flush()
        os.fsync(file.fileno())
    _write_json(
        temporary / "meta.json",
        {"epoch": int(epoch), "history": dict(history or {}), "variables": shapes},
    )
    if final.exists():  # an earlier run's checkpoint of the same epoch: replace it
        _discard(final)
    os.rename(temporary, final)
    for old in _complete_checkpoints(checkpoint_dir)[:-keep]:
        _discard(old)
    return final


def _discard(path: Path) -> None:
    # Rename first (atomic), so a kill during rmtree never leaves a half-deleted "epoch_" folder.
    trash = path.with_name(f".trash_{path.name}_{os.getpid()}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _complete_checkpoints(checkpoint_dir: Path) -> list[Path]:
    if not checkpoint_dir.is_dir():
        return []
    found = []
    for path in checkpoint_dir.iterdir():
        match = _CHECKPOINT_PATTERN.match(path.name)
        if match and (path / "meta.json").is_file() and (path / "state.npz").is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def _remove_unfinished(run_dir: Path) -> None:
    # What a kill mid-write (.tmp_epoch_*, or an atomic_path file) or mid-removal (.trash_*)
    # leaves: never a checkpoint nor a finished file, and never reused, since the names hold
    # the writer's PID or a random part. One run writes a run folder at a time, but evaluate or
    # sample may be writing into it now: their temporary files go only once abandoned (old,
    # and their writer gone: files.abandoned_partial).
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "samples"):
        if folder.is_dir():
            for path in folder.iterdir():
                if path.name.startswith((".tmp_epoch_", ".trash_")) and path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                elif abandoned_partial(path) and path.is_file():
                    path.unlink(missing_ok=True)


def _check_config_is_a_runs(run_dir: Path) -> None:
    """DataError unless a ``config.json`` alone in ``run_dir`` is one ``fit`` wrote (it has an
    ``"engine"`` section): replacing that one loses nothing trained, and anyone else's is
    theirs. A folder of the user's own project, with its own config.json, was overwritten."""
    # read_run_config refuses a file that is no JSON object; a flat one reads with no engine.
    sections = read_run_config(run_dir, required=False)
    if sections is not None and not sections["engine"]:
        raise DataError(
            f'{run_dir / "config.json"}: a config.json that no medgen-tf run wrote (no "engine" '
            "section); nothing was changed: train into another folder"
        )


def trained_outputs(run_dir) -> list[str]:
    """What an earlier run trained into ``run_dir``: checkpoint folders (complete or not),
    ``history.json``, weights and exported models. A ``config.json`` alone (a run that failed
    before its first epoch ended) is not among them: nothing trained is lost by replacing it."""
    run_dir = Path(run_dir)
    found = []
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and any(
        _CHECKPOINT_PATTERN.match(p.name) for p in checkpoints.iterdir()
    ):
        found.append("checkpoints/")
    found += [name for name in ("history.json", "model.weights.h5") if (run_dir / name).exists()]
    return found + sorted(path.name for path in run_dir.glob("*.keras"))


def latest_checkpoint(checkpoint_dir) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    checkpoints = _complete_checkpoints(Path(checkpoint_dir))
    return checkpoints[-1] if checkpoints else None


def _unreadable_checkpoint(checkpoint: Path, file: Path, error, kind="unreadable") -> DataError:
    # The checkpoint before this one was complete before this one was started, so the way out
    # of a damaged one (disk error, a copy cut short) is to drop it and fall back on that.
    checkpoints = _complete_checkpoints(checkpoint.parent)
    match = _CHECKPOINT_PATTERN.match(checkpoint.name)
    epoch = int(match.group(1)) if match else math.inf
    earlier = [path for path in checkpoints if int(path.name.split("_")[1]) < epoch]
    fallback = f"resume from {earlier[-1].name}" if earlier else "start the run over"
    problem = " ".join(str(error).split()) or type(error).__name__
    if "pickled" in problem:  # numpy's advice to allow pickles is wrong for a damaged file
        problem = "not a .npz archive"
    return DataError(
        f"{file}: {kind} checkpoint ({problem}); delete the folder {checkpoint} to {fallback}"
    )


def _check_meta(checkpoint: Path, epoch, history) -> None:
    """ValueError for a meta.json whose epoch or history save_checkpoint cannot have written.

    A resume trusts both: an epoch of -3 trained "epochs" -3 to 0 (checkpoints/epoch_-001), one
    above the folder's name skipped epochs, and a history entry that is no list was a TypeError.
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch {epoch!r} is not a number of completed epochs")
    match = _CHECKPOINT_PATTERN.match(checkpoint.name)
    if match and epoch != int(match.group(1)):
        raise ValueError(f"epoch {epoch} in the folder of epoch {int(match.group(1))}")
    for name, values in history.items():
        if not isinstance(values, list) or not all(
            isinstance(value, (int, float)) and not isinstance(value, bool) for value in values
        ):
            raise ValueError(f"history of {name!r} is not a list of numbers")


def _read_checkpoint(checkpoint: Path) -> tuple[dict, dict]:
    # Else an unreadable meta.json, with advice to delete the folder that is not there.
    if not checkpoint.is_dir():
        raise DataError(f"{checkpoint}: no such checkpoint folder")
    file = checkpoint / "meta.json"
    try:
        meta = json.loads(file.read_text())
        if not (
            isinstance(meta, dict) and "epoch" in meta and isinstance(meta.get("history"), dict)
        ):
            raise ValueError("no epoch and history")
        _check_meta(checkpoint, meta["epoch"], meta["history"])
        file = checkpoint / "state.npz"
        state = np.load(file)  # allow_pickle stays False: a checkpoint holds numbers only
        if not hasattr(state, "files"):  # a bare .npy array
            raise ValueError("not a .npz archive")
        with state:
            arrays = {key: state[key] for key in state.files}
    except json.JSONDecodeError as error:
        raise _unreadable_checkpoint(checkpoint, file, f"not valid JSON: {error.msg}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        # np.load answers junk with "pickled data" (ValueError), and a cut-off archive with
        # BadZipFile or EOFError; a damaged member fails on reading (BadZipFile: bad CRC).
        raise _unreadable_checkpoint(checkpoint, file, error) from None
    return meta, arrays


def load_checkpoint(model, checkpoint) -> dict:
    """Restore ``model`` and its optimizers from a checkpoint folder; return its metadata
    (``{"epoch": completed_epochs, "history": {...}}``).

    Raises:
        DataError: one line naming the missing folder, the unreadable file, or the variable
            that does not fit or is not finite; the model is then left as it was.
    """
    checkpoint = Path(checkpoint)
    meta, state = _read_checkpoint(checkpoint)
    # Everything is checked before anything is assigned, so a refused checkpoint leaves the
    # model as it was rather than half restored.
    assignments = []
    for group, variables in _state_variables(model).items():
        stored = sorted(key for key in state if key.startswith(f"{group}/"))
        if len(stored) != len(variables):
            raise DataError(
                f"checkpoint {checkpoint}: {group} has {len(stored)} variables, "
                f"the model {len(variables)} (a different model or configuration?)"
            )
        for key, variable in zip(stored, variables, strict=True):
            value = state[key]
            if tuple(value.shape) != tuple(variable.shape):
                raise DataError(
                    f"checkpoint {checkpoint}: {variable.path} has shape {value.shape}, "
                    f"the model {tuple(variable.shape)}"
                )
            # The NaN guard never saves such a state, so the file was damaged or edited; training
            # on from it would only trip the guard again after a whole epoch.
            if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
                raise _unreadable_checkpoint(
                    checkpoint,
                    checkpoint / "state.npz",
                    f"{variable.path} is not finite",
                    "unusable",
                )
            assignments.append((variable, value))
    for variable, value in assignments:
        variable.assign(value)
    return meta


# ---- callbacks ----------------------------------------------------------------------------


class _RunFolderCallback(keras.callbacks.Callback):
    """NaN guard, history.json, checkpoint and sample grid at the end of every complete epoch.

    An epoch stopped part-way (:class:`TimeLimit`) gets none of them: its checkpoint would claim
    batches that never ran, which a resume would then skip. The NaN guard still looks at it.
    """

    def __init__(self, run_dir, history, sample_fn=None, sample_value_range=None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.history = history
        self.sample_fn = sample_fn
        self.sample_value_range = sample_value_range
        self.stopped_reason = None
        self.steps_run = 0
        # Whether the epoch that just ended went into history.json (not cut short, finite).
        self.epoch_recorded = False
        # The last epoch (1-based) in which a step ran: the model differs from the one loaded.
        self.epoch_changed = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.steps_run = 0
        self._epoch = epoch + 1

    def on_train_batch_begin(self, batch, logs=None):
        # A group of steps_per_execution steps that starts runs whole before the epoch ends (or
        # its error ends fit), so it is counted here, when it starts.
        self.steps_run = batch + self.model.steps_per_execution
        self.epoch_changed = self._epoch

    def _stopped_mid_epoch(self):
        steps = self.params.get("steps")
        if steps:
            return self.steps_run < steps
        # A dataset of unknown length: a stop during the epoch may have cut it short.
        return bool(self.model.stop_training)

    def _first_non_finite(self, logs):
        for name, value in logs.items():
            if not math.isfinite(float(value)):
                return f"{name} is {float(value)}"
        for variable in self.model.variables:
            if variable.dtype in ("float16", "float32", "float64", "bfloat16") and not np.all(
                np.isfinite(keras.ops.convert_to_numpy(variable))
            ):
                return f"weight {variable.path} is not finite"
        return None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        self.epoch_recorded = False
        # Before the NaN guard sets stop_training, which would read as a cut epoch.
        cut_short = self._stopped_mid_epoch()
        problem = self._first_non_finite(logs)
        if problem is not None:
            last = latest_checkpoint(self.run_dir / "checkpoints")
            kept = f"last good checkpoint: {last.name}" if last else "no checkpoint was written"
            self.stopped_reason = (
                f"NaN guard: {problem} at epoch {epoch + 1}; training stopped, {kept}"
            )
            print(self.stopped_reason, flush=True)
            self.model.stop_training = True
            return
        if cut_short:
            return
        # The grid first: if drawing or writing it fails, the epoch must be recorded nowhere,
        # rather than in history.json and the checkpoint but not in TensorBoard (which logs
        # after this callback); a resume then runs it again.
        if self.sample_fn is not None:
            from medgen_tf.viz import save_image_grid

            images = keras.ops.convert_to_numpy(self.sample_fn(self.model))
            save_image_grid(
                images,
                self.run_dir / "samples" / f"epoch_{epoch + 1:03d}.png",
                title=f"epoch {epoch + 1}",
                value_range=self.sample_value_range,
            )
        for name, value in logs.items():
            self.history.setdefault(name, []).append(float(value))
        self.epoch_recorded = True
        save_checkpoint(self.model, self.run_dir / "checkpoints", epoch + 1, self.history)
        _write_json(self.run_dir / "history.json", self.history)
        _drop_evaluation(self.run_dir, epoch + 1)


def _drop_evaluation(run_dir: Path, epoch: int) -> None:
    """Remove an evaluation of the run (``metrics.json``, ``evaluation.png``) once ``epoch``
    has changed the model it scored.

    Left there after a resume, the scores of the earlier export read as the new model's.
    Removed rather than set aside: ``replaced/`` holds an earlier run, not an earlier epoch of
    this one, and ``medgen-tf evaluate`` writes them again from the new export. A resume that
    trains no step leaves them: they still describe the run's model. One stopped part-way
    through its first epoch records no epoch, but its weights are written: they go then.
    """
    removed = []
    for name in _EVALUATION_OUTPUTS:
        try:
            (run_dir / name).unlink()
        except FileNotFoundError:
            continue
        removed.append(name)
    if removed:
        logger.warning(
            "%s: epoch %d changed the model that %s scored; removed (run medgen-tf evaluate "
            "again once training ends)",
            run_dir,
            epoch,
            " and ".join(removed),
        )


class _ScalarLogger(keras.callbacks.Callback):
    """Epoch metrics as TensorBoard scalars.

    Written with the core ``tf.summary.write`` op, so the ``tensorboard`` package is needed
    to view the logs (``tensorboard --logdir RUN_DIR/logs``) but not to write them. Only the
    epochs ``run_callback`` recorded in history.json are logged: a cut epoch's means cover only
    the batches that ran and a resume runs it again whole; a non-finite one stopped the run.
    """

    def __init__(self, log_dir, run_callback):
        super().__init__()
        self.log_dir = str(log_dir)
        self.run_callback = run_callback
        self.writer = None
        self.metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
        )

    def on_epoch_end(self, epoch, logs=None):
        if not self.run_callback.epoch_recorded:
            return
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.log_dir)
        with self.writer.as_default():
            for name, value in (logs or {}).items():
                tf.summary.write(
                    f"epoch_{name}",
                    tf.constant(float(value)),
                    step=epoch + 1,
                    metadata=self.metadata,
                )
        self.writer.flush()

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()


class TimeBudget(keras.callbacks.Callback):
    """Stop before an epoch that would end past a wall-clock budget (time-boxed notebook runs).

    After each epoch it predicts the next one from the last epoch's duration times ``margin``
    (load spikes on a shared machine) and stops training when that would pass ``seconds``, so
    every epoch that runs completes (checkpoints, history) and the run ends within the budget
    unless one epoch alone is slower than predicted. ``num_epochs`` of :func:`fit` stays the
    upper bound.

    Attributes after training: ``epochs_run``, ``elapsed_seconds`` and ``stopped_early``.

    Example:
        >>> budget = TimeBudget(4 * 60)
        >>> fit(model, images, "outputs/run", num_epochs=100, batch_size=64,
        ...     callbacks=[budget])  # doctest: +SKIP
        >>> print(f"{budget.epochs_run} epochs in {budget.elapsed_seconds / 60:.1f} min")  # doctest: +SKIP
    """

    def __init__(self, seconds, margin=1.2, clock=time.monotonic):
        super().__init__()
        if not float(seconds) > 0 or not float(margin) >= 1:
            raise ValueError(f"need seconds > 0 and margin >= 1, got {seconds} and {margin}")
        self.seconds = float(seconds)
        self.margin = float(margin)
        self.clock = clock
        self.epochs_run = 0
        self.elapsed_seconds = 0.0
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        self.start = self.last_epoch_end = self.clock()
        self.epochs_run, self.elapsed_seconds, self.stopped_early = 0, 0.0, False

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        last_epoch_seconds = now - self.last_epoch_end
        self.last_epoch_end = now
        self.epochs_run += 1
        self.elapsed_seconds = now - self.start
        if self.elapsed_seconds + self.margin * last_epoch_seconds > self.seconds:
            self.stopped_early = True
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.elapsed_seconds = self.clock() - self.start


class TimeLimit(keras.callbacks.Callback):
    """Stop training once ``seconds`` of wall time have passed (checked after every batch).

    A safety net for time-boxed runs whose ``num_epochs`` was chosen to fit the budget (so a
    learning-rate decay completes); it only stops a run that a busy machine made slower, in
    the middle of an epoch if need be. That partial epoch is not checkpointed nor recorded in
    the history or the TensorBoard logs (a resume runs it again, whole); only the final
    ``model.weights.h5`` includes it. :class:`TimeBudget` instead ends at an epoch boundary. ``stopped_early`` says whether
    it fired.
    """

    def __init__(self, seconds, clock=time.monotonic):
        super().__init__()
        # nan never stopped a run (no time is > nan), and 0 or less stopped it after one batch.
        if not float(seconds) > 0:
            raise ValueError(f"need seconds > 0, got {seconds}")
        self.seconds = float(seconds)
        self.clock = clock
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        self.start = self.clock()

    def on_train_batch_end(self, batch, logs=None):
        if self.clock() - self.start > self.seconds:
            self.stopped_early = True
            self.model.stop_training = True


# ---- fit ----------------------------------------------------------------------------------


def _resolve_strategy(strategy):
    if strategy in (None, "default"):
        return None
    if strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if isinstance(strategy, tf.distribute.Strategy):
        return strategy
    raise ValueError(
        f"strategy must be None, 'default', 'mirrored' or a tf.distribute.Strategy, got {strategy!r}"
    )


def _num_examples(data) -> int:
    # make_dataset's own checks (at least one array, all of one length, numeric), made here,
    # before the run folder is touched: made there, they came after an earlier run was set aside.
    structure, count = _as_structure(data, None)
    # A NaN image trains a whole epoch before the NaN guard stops it, blaming the model's loss.
    floats = [array for array in tf.nest.flatten(structure) if array.dtype.kind == "f"]
    bad = sum(int(array.size - np.count_nonzero(np.isfinite(array))) for array in floats)
    if bad:
        raise DataError(
            f"the data hold {bad} NaN or Inf values; every loss would be NaN from the first "
            "batch that holds one"
        )
    return count


def _set_aside_earlier_run(run_dir: Path, newest: Path | None) -> None:
    """Move an earlier run's outputs (checkpoints, samples, history, weights, exported models,
    ...) into ``replaced/`` for a new run.

    A new run must not share the folder's checkpoints with an earlier one: keep-newest-two would
    delete the new run's first checkpoints and keep the old run's later ones, which a resume
    would then restore. Nor its other files: the old run's later sample grids, history and
    weights would sit beside the new run's config.json as if the new run had made them.
    Refusing would break re-running a notebook cell (same folder, by design), so they are set
    aside, one generation deep; the command line refuses instead (``recipes.train``), where a
    run folder is a deliberate choice.
    """
    replaced = run_dir / REPLACED_RUN
    # Gathered in a staging folder, then swapped in for the generation before: a kill part-way
    # leaves what was moved in staging, where the new run's next start completes it. Moving
    # straight into replaced/ lost the moved part to that next start, which discards replaced/.
    staging = run_dir / _REPLACING
    staging.mkdir(exist_ok=True)
    # The checkpoints first: once they are moved, a resume can no longer continue the old run.
    for path in [run_dir / name for name in _RUN_OUTPUTS] + sorted(run_dir.glob("*.keras")):
        if path.exists():
            os.replace(path, staging / path.name)
    dropped = replaced.exists()
    if dropped:
        _discard(replaced)
    os.replace(staging, replaced)
    logger.warning(
        "%s: new run (resume=False); the earlier run (%s, samples, history, weights) was moved "
        "to %s%s",
        run_dir,
        f"checkpoints up to {newest.name}" if newest else "no complete checkpoint",
        replaced.name,
        ", replacing the one set aside before" if dropped else "",
    )


def _restore_interrupted_set_aside(run_dir: Path) -> None:
    """Move what a killed set-aside had staged back into ``run_dir``, for a resume."""
    staging = run_dir / _REPLACING
    staged = sorted(staging.iterdir())
    clashes = [path.name for path in staged if (run_dir / path.name).exists()]
    if clashes:
        raise DataError(
            f"run folder {run_dir}: {staging.name}/ holds {', '.join(clashes)}, and so does the "
            "run folder; a set-aside was interrupted there and something wrote since: move "
            f"{staging.name}/ away to resume, or start a new run"
        )
    for path in staged:
        os.replace(path, run_dir / path.name)
    staging.rmdir()
    logger.warning(
        "%s: a new run was stopped while it set this run aside; the resume continues this run",
        run_dir,
    )


# Settings a resumed run may change: its total epochs (that is how a run is extended).
_EXTENSIBLE_SETTINGS = frozenset({"num_epochs", "epochs"})
# A learning-rate schedule planned over the whole run (CycleGAN's decay), recorded as this
# config key, fixes the epochs: another length would restart the decay part-way through.
_PLANNED_STEPS = "total_steps"


def _as_json(value):
    # What config.json will hold, so a tuple or numpy number compares equal to its stored form.
    return json.loads(json.dumps(value, default=_json_value))


def _short(value, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _check_resume_settings(
    run_dir: Path, config: dict, engine: dict, read_recorded_config=None
) -> None:
    """Refuse to resume a run with other data or settings than those in its ``config.json``
    (its ``config`` read through ``read_recorded_config``, when given)."""
    stored = read_run_config(run_dir, required=False)
    if stored is None:
        return  # removed by hand: the checkpoint's variable shapes are all there is to check
    recorded_config = stored["config"]
    if read_recorded_config is not None:
        recorded_config = read_recorded_config(dict(recorded_config))
    differences, reported = [], set()
    for current, recorded in (
        (_as_json(dict(config)), recorded_config),
        (_as_json(engine), stored["engine"]),
    ):
        # Keys on one side only come from another version of the package, not from a setting.
        for key in sorted(set(current) & set(recorded) - _EXTENSIBLE_SETTINGS - {_PLANNED_STEPS}):
            # A setting such as batch_size is both the caller's and the engine's: said once.
            if current[key] != recorded[key] and key not in reported:
                reported.add(key)
                differences.append(f"{key} {_short(current[key])} (run: {_short(recorded[key])})")
    if differences:
        raise DataError(
            f"{run_dir / 'config.json'}: resuming with other settings than the run's: {', '.join(differences)}; "
            "resume with the run's settings (only the number of epochs may change) or use a "
            "new folder"
        )
    planned, asked = stored["config"].get(_PLANNED_STEPS), _as_json(config.get(_PLANNED_STEPS))
    if planned is not None and asked is not None and asked != planned:
        raise DataError(
            f"{run_dir / 'config.json'}: the run's learning-rate decay is planned over its "
            f"{stored['engine'].get('num_epochs', '?')} epochs ({planned} steps), so a resume "
            f"cannot change them (asked: {asked} steps); to train longer, start a new run "
            "(another folder) with the longer --epochs"
        )


def fit(
    model,
    data,
    run_dir,
    *,
    num_epochs: int,
    batch_size: int | None = None,
    seed: int = 0,
    resume: bool = False,
    sample_fn=None,
    sample_value_range=None,
    config: dict | None = None,
    strategy=None,
    mixed_precision: bool = False,
    callbacks=(),
    verbose="auto",
    tensorboard: bool = True,
    read_recorded_config=None,
) -> TrainingHistory:
    """Train ``model`` for ``num_epochs`` epochs, writing the run folder described above.

    Args:
        model: a compiled ``keras.Model``, or a zero-argument callable returning one (required
            with ``strategy`` or ``mixed_precision``: the engine calls it under the
            ``mixed_float16`` policy and inside ``strategy.scope()``, after
            ``keras.utils.set_random_seed(seed)``).
        data: an array, tuple or dict of arrays (the engine batches and shuffles them, epoch
            by epoch, with ``seed``), or a ready ``tf.data.Dataset`` (one pass per epoch).
        run_dir: run folder (created once the model is built).
        num_epochs: total epochs, counting those of a resumed run.
        batch_size: global batch size (required with arrays).
        seed: shuffle seed, and the global seed before building a model from a callable.
        resume: restore the newest complete checkpoint of ``run_dir`` and continue from its
            epoch (from scratch when there is none, unless the folder holds an earlier run's
            :func:`trained_outputs`: a DataError then, rather than overwrite them). The
            settings recorded in ``config.json``
            (``config``, ``batch_size``, ``seed``, the number of examples, mixed precision)
            must be the same; only ``num_epochs`` may change, never to fewer than the
            checkpoint's epochs (a DataError): more extends a run, unless
            ``config`` has a ``total_steps`` (a learning-rate schedule planned over the run, as
            CycleGAN's). Without ``resume``, a new run starts: an earlier run's outputs in
            ``run_dir`` (checkpoints, samples, history, weights, exported models) are moved to
            ``replaced/`` (replacing the one before), never mixed with the new. A resume that
            trains a step removes an evaluation of the run (``metrics.json``,
            ``evaluation.png``): it scored the model before.
        sample_fn: ``sample_fn(model) -> images`` (fixed noise), saved each epoch as
            ``samples/epoch_NNN.png``; ``sample_value_range`` is passed to the grid.
        config: JSON-serialisable settings recorded in ``config.json``.
        strategy: None/"default", "mirrored" or a ``tf.distribute.Strategy``.
        mixed_precision: build the model under the ``mixed_float16`` policy (restored after).
        callbacks: extra Keras callbacks.
        verbose: Keras' verbosity; "auto" shows the progress bar only when stdout is a
            terminal (not in notebooks, logs or pipes), else 0.
        tensorboard: write TensorBoard logs under ``run_dir/logs``.
        read_recorded_config: ``read_recorded_config(recorded) -> dict``, applied on resume
            to the ``config`` a run folder's ``config.json`` holds before it is compared with
            ``config``: how the caller reads runs an older version recorded (keys renamed
            since, ...). The new ``config`` is recorded as given.

    Returns:
        The :class:`TrainingHistory` of all epochs so far (resumed ones included), with
        ``.model`` and ``.stopped_reason`` (set when the NaN guard stopped training).

    Raises:
        DataError: a resume with other settings or fewer epochs than its checkpoint's, or with
            no checkpoint in a folder that holds an earlier run; an unreadable checkpoint or
            ``config.json``; a ``run_dir`` that is a file.
        ValueError: ``num_epochs`` or ``batch_size`` not a whole number >= 1; a ``config``
            that JSON cannot hold; ``steps_per_execution`` (of the model's ``compile``) does
            not divide the steps of an epoch. All before anything is written.
    """
    run_dir = Path(run_dir)
    # num_epochs=0 trained nothing, yet set an earlier run in run_dir aside for its new one.
    if not is_whole_number(num_epochs) or num_epochs < 1:
        raise ValueError(f"{run_dir}: num_epochs must be a whole number >= 1, got {num_epochs!r}")
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 0
    strategy = _resolve_strategy(strategy)
    if (strategy is not None or mixed_precision) and isinstance(model, keras.Model):
        raise ValueError(
            "with a strategy or mixed precision, pass a function that builds and compiles the "
            "model, so the engine can build it in the right scope and policy"
        )
    is_dataset = isinstance(data, tf.data.Dataset)
    if not is_dataset and batch_size is None:
        raise ValueError("batch_size is required when data are arrays")
    # Checked here, not by the first step: by then an earlier run in run_dir was set aside
    # (True trained with batches of 1, 2.5 failed inside the traced step).
    if batch_size is not None and (not is_whole_number(batch_size) or batch_size < 1):
        raise ValueError(f"{run_dir}: batch_size must be a whole number >= 1, got {batch_size!r}")
    if config is not None:
        try:
            _as_json(dict(config))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{run_dir}: config must hold JSON values for config.json; {error}"
            ) from None
    if run_dir.exists() and not run_dir.is_dir():
        raise DataError(f"run folder {run_dir} is a file; give a folder's path")
    num_replicas = (strategy or tf.distribute.get_strategy()).num_replicas_in_sync
    if not is_dataset and num_replicas > 1 and batch_size % num_replicas:
        # tf.distribute would split it unevenly: the models' losses, divided by the replica
        # count, would then weigh the smaller replica's images more (losses.scale_for_replicas).
        raise ValueError(
            f"batch_size={batch_size} does not split evenly over {num_replicas} replicas; use a "
            f"multiple of {num_replicas}"
        )
    if resume and (run_dir / _REPLACING).is_dir():
        # A new run was killed while it set the earlier run aside, before it wrote anything of
        # its own: the staging folder and run_dir hold the earlier run whole. A resume found no
        # checkpoint (they are staged first) and trained a run beside them, and every later new
        # run then failed to stage its checkpoints. The resume continues the earlier run.
        _restore_interrupted_set_aside(run_dir)
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    trained = trained_outputs(run_dir)
    if resume and checkpoint is None and trained:
        # Starting over here would overwrite a finished run (its exported model, history) with
        # a new one, and a resume is never asked for to lose a run.
        raise DataError(
            f"run folder {run_dir}: nothing to resume (no complete checkpoint in checkpoints/), "
            f"but it holds an earlier run ({', '.join(trained)}); nothing was changed: train "
            "into another folder, or remove those files to start over here"
        )
    if not trained:
        _check_config_is_a_runs(run_dir)
    # An earlier run, when this call starts a new run: set aside once the model is built
    # (below), so a builder that fails leaves the folder as it was.
    # A staging folder left by a kill during an earlier set-aside: that set-aside is finished
    # first, whatever is left of the earlier run's outputs.
    earlier_run = not resume and (bool(trained) or (run_dir / _REPLACING).is_dir())
    newest_earlier = checkpoint if earlier_run else None
    if earlier_run:
        checkpoint = None
    num_examples = None if is_dataset else _num_examples(data)
    steps = None if is_dataset else steps_per_epoch(num_examples, batch_size)
    if steps and num_epochs * steps > MAX_BATCHES:
        # make_dataset refuses it too, but only once the run folder exists.
        raise ValueError(
            f"{run_dir}: num_epochs={num_epochs} makes {num_epochs * steps} batches, more than "
            "tf.data counts (2**62)"
        )
    if steps == 0:
        # make_dataset refuses it too, but only once the run folder exists and an earlier run
        # in it was set aside for a run that cannot start.
        raise DataError(
            f"{num_examples} examples is fewer than batch_size={batch_size}, so an epoch has no "
            f"full batch; use a smaller batch size or more data (nothing was written to {run_dir})"
        )
    if checkpoint is not None:
        # Checked before anything is built or written: a refused resume changes nothing. These
        # decide the batches and the numerics; the strategy and the number of replicas may
        # change (resuming on another machine), since the global batch size stays the same.
        engine_settings = {
            "batch_size": batch_size,
            "seed": seed,
            "num_examples": num_examples,
            "mixed_precision": bool(mixed_precision),
        }
        _check_resume_settings(run_dir, config or {}, engine_settings, read_recorded_config)
        # The folder's name is the epoch (load_checkpoint refuses a meta.json that disagrees).
        trained_epochs = int(_CHECKPOINT_PATTERN.match(checkpoint.name).group(1))
        if num_epochs < trained_epochs:
            # It trained nothing, yet recorded the smaller total in config.json as the run's.
            raise DataError(
                f"run folder {run_dir}: the run has trained {trained_epochs} epochs; "
                f"num_epochs={num_epochs} would shorten it (give --epochs {trained_epochs} or "
                "more; a resume only extends a run)"
            )
    _remove_unfinished(run_dir)

    previous_policy = keras.mixed_precision.global_policy()
    scope = strategy.scope() if strategy is not None else tf.distribute.get_strategy().scope()
    try:
        if mixed_precision:
            keras.mixed_precision.set_global_policy("mixed_float16")
        with scope:
            if not isinstance(model, keras.Model):
                keras.utils.set_random_seed(seed)
                model = model()
                if not isinstance(model, keras.Model):
                    raise ValueError("the model function must return a compiled keras.Model")
            if not is_dataset and callable(getattr(model, "check_training_data", None)):
                # The model's own checks of numpy input (a Bernoulli VAE's [0, 1], a conditional
                # GAN's label range), which its fit skips on the dataset built here. Before the
                # run folder is touched: a refused run writes nothing.
                model.check_training_data(_as_structure(data, None)[0], "training data")
            execution = model.steps_per_execution
            if steps is not None and steps % execution:
                # Keras runs whole groups of steps across epoch ends: the epochs would drift
                # from the dataset's, and checkpoints with them.
                raise ValueError(
                    f"steps_per_execution {execution} does not divide the {steps} steps of an "
                    f"epoch; compile with a divisor of {steps}, or pick a batch size that makes "
                    f"{execution} one"
                )
            # Created only now: a builder that refuses its settings leaves no empty folder.
            run_dir.mkdir(parents=True, exist_ok=True)
            if earlier_run:
                _set_aside_earlier_run(run_dir, newest_earlier)
            history = TrainingHistory(model=model)
            initial_epoch = 0
            if checkpoint is not None:
                meta = load_checkpoint(model, checkpoint)
                initial_epoch = int(meta["epoch"])
                history.update({key: list(values) for key, values in meta["history"].items()})
                # A kill between the checkpoint and history.json left the file an epoch
                # behind, and a resume that trains no further epoch never wrote it again.
                _write_json(run_dir / "history.json", history)
            elif resume:
                # Whatever the verbosity: the command line runs at 0 when stdout is no terminal,
                # and a --resume into a mistyped folder would start a new run in silence.
                logger.warning(
                    "%s: nothing to resume (no checkpoint); a new run starts at epoch 0", run_dir
                )

            if is_dataset:
                dataset = data
            elif initial_epoch < num_epochs:
                dataset = make_dataset(
                    data,
                    batch_size=batch_size,
                    shuffle=True,
                    seed=seed,
                    initial_epoch=initial_epoch,
                    num_epochs=num_epochs,
                )
            _write_json(
                run_dir / "config.json",
                {
                    "config": dict(config or {}),
                    "engine": {
                        "model": type(model).__name__,
                        "num_epochs": num_epochs,
                        "batch_size": batch_size,
                        "seed": seed,
                        "num_examples": num_examples,
                        "steps_per_epoch": steps,
                        "strategy": type(strategy).__name__ if strategy else None,
                        "num_replicas": (
                            strategy or tf.distribute.get_strategy()
                        ).num_replicas_in_sync,
                        "mixed_precision": bool(mixed_precision),
                        "resumed_from_epoch": initial_epoch if checkpoint is not None else None,
                        "optimizers": [type(opt).__name__ for opt in find_optimizers(model)],
                    },
                },
            )
            run_callback = _RunFolderCallback(run_dir, history, sample_fn, sample_value_range)
            all_callbacks = [run_callback]
            if tensorboard:
                all_callbacks.append(_ScalarLogger(run_dir / "logs" / "train", run_callback))
            all_callbacks.extend(callbacks)
            if initial_epoch < num_epochs:
                model.fit(
                    dataset,
                    epochs=num_epochs,
                    initial_epoch=initial_epoch,
                    steps_per_epoch=steps,
                    callbacks=all_callbacks,
                    verbose=verbose,
                    shuffle=False,  # the dataset is already shuffled, per epoch and resumable
                )
            history.stopped_reason = run_callback.stopped_reason
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    if history:
        import matplotlib.pyplot as plt

        from medgen_tf.viz import plot_history

        plt.close(
            plot_history(
                history, run_dir / "loss_curves.png", title=f"{type(model).__name__} training"
            )
        )
    if history.stopped_reason is None:
        if run_callback.epoch_changed is not None:
            # A resume stopped part-way through its first epoch records no epoch, yet the
            # weights written below are no longer those that metrics.json scored.
            _drop_evaluation(run_dir, run_callback.epoch_changed)
        # Replaced in one rename: a kill mid-save must not leave a truncated file in its place.
        with atomic_path(run_dir / "model.weights.h5", suffix=".weights.h5") as temporary:
            model.save_weights(temporary)
    return history
