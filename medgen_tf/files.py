"""The files of a run folder: written so that a crash never leaves a half-written one where a
good one was, and ``config.json`` read back in one place, with one-line errors."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from medgen_tf.errors import DataError, first_line


def _umask():
    # Linux reports it without changing it; os.umask can only read it by setting it, which
    # another thread could observe for an instant.
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _plain_file_mode(path):
    """The replaced file's mode, or for a new file 0o666 less the process umask."""
    if path.exists():
        return path.stat().st_mode & 0o7777
    return 0o666 & ~_umask()


#: How the temporary file of an :func:`atomic_path` write begins: hidden, and recognisable so
#: that what a SIGKILL leaves mid-write can be removed by a later run in the same folder. The
#: writer's PID follows (``.partial_<pid>_<name>.``), so that a file still being written by
#: another process (``medgen-tf evaluate`` into a run folder a resumed run opens) is told apart.
PARTIAL_PREFIX = ".partial_"

#: Most bytes of ``path``'s stem, and of its suffix, that an :func:`atomic_path` temporary name
#: keeps. The prefix, PID and random part add about 25 bytes, so a full stem made a name that
#: open() writes fine (up to 255 bytes on most file systems) fail as "File name too long".
TEMPORARY_NAME_PART_BYTES = 80

#: A temporary file younger than this is never taken for abandoned: its writer may be alive
#: where its PID cannot be looked up (another container, or another host sharing the folder).
PARTIAL_MIN_AGE_SECONDS = 600


def abandoned_partial(path, now=None) -> bool:
    """True when ``path`` is an :func:`atomic_path` temporary file that no writer will finish.

    It must be untouched for :data:`PARTIAL_MIN_AGE_SECONDS`; on POSIX systems its writer's PID
    must also be gone (signal 0 asks whether a process exists; on Windows ``os.kill`` would
    terminate it, so age alone decides there). A PID reused since keeps a file, never the
    reverse; an odd name is kept.
    """
    path = Path(path)
    name = path.name
    pid_text = name[len(PARTIAL_PREFIX) :].partition("_")[0]
    if not name.startswith(PARTIAL_PREFIX) or not (pid_text.isascii() and pid_text.isdigit()):
        return False
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    if age < PARTIAL_MIN_AGE_SECONDS:
        return False
    if os.name != "posix":
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        return False
    return False


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path beside ``path``; when the block ends without an error, the
    temporary file replaces ``path`` in one rename, otherwise it is removed.

    A reader (or a resumed run) therefore sees the old file or the new one, never a truncated
    mix. The temporary name keeps ``path``'s suffix (or ``suffix``), since writers such as
    ``keras.Model.save`` and ``nibabel.save`` choose the format from it. Of a long name it keeps
    the first 80 bytes of the stem and the last 80 of the suffix, so it stays under 190 bytes
    (file systems allow 255) however long ``path``'s name is.

    Example:
        >>> with atomic_path("metrics.json") as temporary:  # doctest: +SKIP
        ...     temporary.write_text("{}")
    """
    path = Path(path)
    if path.is_symlink():
        # Write through the link, as open() would, instead of replacing the link by a file.
        path = Path(os.path.realpath(path))
    # The folders made here are removed again if nothing is written: a refused write (a figure
    # matplotlib could not draw, a model Keras could not save) left empty folders behind.
    made = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes) or ".tmp"
    # The end of the suffix is what writers read the format from (".weights.h5", ".nii.gz").
    stem = _shortened(path.stem, TEMPORARY_NAME_PART_BYTES, keep="start")
    suffix = _shortened(suffix, TEMPORARY_NAME_PART_BYTES, keep="end")
    try:
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f"{PARTIAL_PREFIX}{os.getpid()}_{stem}.", suffix=suffix
        )
    except OSError as error:
        raise _naming(error, path) from None
    os.close(handle)
    temporary = Path(temporary)
    written = False
    try:
        yield temporary
        # mkstemp makes the file owner-only; give it the mode a plain open() would have given.
        os.chmod(temporary, _plain_file_mode(path))
        os.replace(temporary, path)
        written = True
    except OSError as error:
        # The user asked for path; the hidden temporary name would only puzzle them.
        if error.filename not in (str(temporary), temporary):
            raise
        raise _naming(error, path) from None
    finally:
        if temporary.exists():
            temporary.unlink()
        if not written:
            for folder in made:  # innermost first; a folder something else filled stays
                with contextlib.suppress(OSError):
                    folder.rmdir()


def _shortened(text: str, limit: int, keep: str) -> str:
    # Counted in bytes, as the file system limits names, and cut between characters.
    while len(os.fsencode(text)) > limit:
        text = text[:-1] if keep == "start" else text[1:]
    return text


def _naming(error: OSError, path: Path) -> OSError:
    return type(error)(error.errno, error.strerror, str(path))


def read_run_config(run_dir, required=True):
    """``RUN_DIR/config.json`` as ``{"config": {...}, "engine": {...}}``; None when the file is
    missing and not ``required``.

    :func:`medgen_tf.training.fit` writes the caller's settings under ``"config"`` and its own
    under ``"engine"``; a flat file (settings only) reads as ``{"config": file, "engine": {}}``.
    A damaged file is a one-line DataError naming it. Kept free of TensorFlow, so the command
    line can read a run before importing it.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        if required:
            raise DataError(f"run folder {run_dir}: no config.json (not a medgen-tf run folder?)")
        return None
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error.msg})") from None
    except ValueError:  # UnicodeDecodeError: binary junk, not even text
        raise DataError(f"{path}: not valid JSON (not UTF-8 text)") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: not a run config (expected a JSON object)")
    if "config" not in raw and "engine" not in raw:
        raw = {"config": raw}
    sections = {part: raw.get(part, {}) for part in ("config", "engine")}
    if not all(isinstance(section, dict) for section in sections.values()):
        raise DataError(f'{path}: not a run config ("config" and "engine" must be JSON objects)')
    return sections


#: ``RUN_DIR/export.json``: how many epochs the run had trained when its models were exported.
EXPORT_RECORD = "export.json"


def _trained_epochs(run_dir: Path) -> int | None:
    # history.json holds one value per epoch and metric, rewritten every epoch (and from the
    # checkpoint on resume); None when there is none to read.
    try:
        history = json.loads((run_dir / "history.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(history, dict):
        return None
    return max((len(values) for values in history.values() if isinstance(values, list)), default=0)


def record_export(run_dir) -> None:
    """Write ``RUN_DIR/export.json`` after a run's models were exported: the epoch they hold,
    which :func:`load_keras_file` compares with ``history.json``."""
    run_dir = Path(run_dir)
    with atomic_path(run_dir / EXPORT_RECORD) as temporary:
        temporary.write_text(json.dumps({"epoch": _trained_epochs(run_dir)}, indent=2))


def check_export_current(path) -> None:
    """DataError naming ``path`` when its run trained on after the export (an interrupted
    ``--resume``): the file holds an earlier model than the run's history and checkpoints say.

    A folder without ``export.json`` (a model saved by hand, a notebook's run) is not checked.
    """
    path = Path(path)
    record = path.parent / EXPORT_RECORD
    if not record.is_file():
        return
    try:
        exported = json.loads(record.read_text())["epoch"]
    except (OSError, ValueError, TypeError, KeyError):
        raise DataError(f'{record}: not an export record (expected {{"epoch": N}})') from None
    trained = _trained_epochs(path.parent)
    if isinstance(exported, int) and trained is not None and trained > exported:
        raise DataError(
            f"{path}: the model of epoch {exported}, but the run has trained on to epoch "
            f"{trained} (a --resume interrupted or stopped by the NaN guard); finish it with "
            f"the same train command and --resume, or delete {EXPORT_RECORD} to use this "
            "earlier model"
        )


def load_keras_file(path, **kwargs):
    """``keras.saving.load_model(path, **kwargs)``, with a one-line DataError naming the file.

    Keras reports a truncated ``.keras`` archive as "File not found" and a damaged member as a
    traceback from h5py or json; a run folder's exported model is user data like any other.
    Every medgen_tf model class is registered first, so that a file of another model than the
    caller expects (a VAE saved as ``generator.keras``) loads, and the caller's own check says
    what it is, instead of Keras' "Could not locate class" with the file's whole config. A
    run's export older than its training is refused (:func:`check_export_current`).
    """
    import zipfile

    import keras

    import medgen_tf.models.cyclegan  # noqa: F401  (registers the serializable classes)
    import medgen_tf.models.gan  # noqa: F401
    import medgen_tf.models.pix2pix  # noqa: F401
    import medgen_tf.models.vae  # noqa: F401

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such model file")
    check_export_current(path)
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a .keras archive (truncated or damaged; export it again)")
    try:
        return keras.saving.load_model(path, **kwargs)
    except Exception as error:  # zip, h5py, json and Keras errors alike
        raise DataError(f"{path}: damaged .keras model ({first_line(error)})") from error


def check_generator(model, path) -> None:
    """DataError naming ``path`` unless ``model`` maps noise to images: its first input a batch
    of vectors (batch, latent_dim), its first output a batch of images (batch, h, w, c).

    A discriminator exported in a generator's place, called with noise, fails with Keras'
    multi-line "Exception encountered when calling Functional.call()" traceback.
    """
    inputs = list(getattr(model, "inputs", None) or [])
    outputs = list(getattr(model, "outputs", None) or [])
    if inputs and outputs and len(inputs[0].shape) == 2 and len(outputs[0].shape) == 4:
        return
    shapes = ", ".join(str(tuple(tensor.shape)) for tensor in inputs) or "none"
    raise DataError(
        f"{path}: not a generator (its inputs: {shapes}); a generator takes noise vectors "
        "(batch, latent_dim) and makes images"
    )
