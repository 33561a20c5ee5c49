"""CycleGAN runs end to end: unpaired domains, training through the engine, translating files.

The ``cyclegan`` recipe and ``medgen-tf translate`` call these functions; the notebook
``notebooks/03_cyclegan.ipynb`` uses them too.

Unpaired for real: when both specs name brain contrasts (``brain:t1``, ``brain:t2``), domain A
comes from the first half of the split's subjects and domain B from the second half, so no
image of A has its counterpart in B.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from medgen_tf.errors import DataError
from medgen_tf.files import atomic_path, read_run_config
from medgen_tf.training import TimeLimit  # re-exported: notebook 03 imports it from here

__all__ = [
    "TimeLimit",
    "build_cyclegan",
    "build_pix2pix",
    "load_generator",
    "normalize_for_model",
    "run_intensity",
    "train_cyclegan",
    "translate_nifti",
    "translate_run",
    "unpaired_domains",
]

GENERATOR_FILES = {"a2b": "generator_ab.keras", "b2a": "generator_ba.keras"}
#: How translate_nifti scales a volume to [-1, 1]; it must match the generator's training data.
INTENSITY_MODES = ("cohort", "percentiles")


def _brain_contrast(spec):
    kind, _, argument = str(spec).strip().partition(":")
    if kind.lower() == "brain" and argument.lower() in ("t1", "t2", "pd"):
        return argument.lower()
    return None


def unpaired_domains(spec_a, spec_b, image_size=64, split="train", seed=0, num_subjects=32):
    """Images of domain A and domain B, from different subjects, of equal count.

    Returns ``(images_a, images_b, info)``; ``info`` records the subjects of each domain (brain
    specs) and the counts. The shorter domain is resampled (fixed ``seed``) to the longer's
    length, because the engine batches the two arrays together.
    """
    from medgen_tf.data import brain_slices, load_spec

    contrast_a, contrast_b = _brain_contrast(spec_a), _brain_contrast(spec_b)
    info = {"spec_a": spec_a, "spec_b": spec_b, "split": split}
    if contrast_a and contrast_b:
        data = brain_slices(
            tuple(dict.fromkeys((contrast_a, contrast_b))),
            split=split,
            image_size=image_size,
            seed=seed,
            num_subjects=num_subjects,
            return_labels=True,
        )
        subjects = np.unique(data["subject"])
        if len(subjects) < 2:
            raise DataError(f"{spec_a} / {spec_b}: split {split!r} has fewer than 2 subjects")
        half = len(subjects) // 2
        rows_a = np.isin(data["subject"], subjects[:half])
        rows_b = np.isin(data["subject"], subjects[half:])
        images_a, images_b = data[contrast_a][rows_a], data[contrast_b][rows_b]
        info.update(subjects_a=subjects[:half].tolist(), subjects_b=subjects[half:].tolist())
    else:
        images_a = load_spec(spec_a, image_size=image_size, split=split, seed=seed)["images"]
        images_b = load_spec(spec_b, image_size=image_size, split=split, seed=seed)["images"]
    if images_a.shape[1:] != images_b.shape[1:]:
        raise DataError(
            f"{spec_a} / {spec_b}: image shapes differ ({images_a.shape[1:]} vs {images_b.shape[1:]})"
        )
    info.update(num_images_a=len(images_a), num_images_b=len(images_b))
    rng = np.random.default_rng(seed)
    count = max(len(images_a), len(images_b))
    if len(images_a) < count:
        images_a = images_a[rng.choice(len(images_a), count)]
    if len(images_b) < count:
        images_b = images_b[rng.choice(len(images_b), count)]
    return images_a, images_b, info


def build_cyclegan(
    image_size=64,
    channels=1,
    filters=64,
    discriminator_filters=None,
    num_residual_blocks=None,
    total_steps=None,
    pool_size=50,
    seed=0,
):
    """A compiled :class:`~medgen_tf.models.cyclegan.CycleGAN` with the paper's optimizers."""
    from medgen_tf.models import cyclegan

    discriminator_filters = discriminator_filters or filters

    def generator(name):
        return cyclegan.build_resnet_generator(
            image_size, channels, filters, num_residual_blocks, name=name
        )

    def discriminator(name):
        return cyclegan.build_patchgan_discriminator(
            image_size, channels, discriminator_filters, name=name
        )

    model = cyclegan.CycleGAN(
        generator("generator_ab"),
        generator("generator_ba"),
        discriminator("discriminator_a"),
        discriminator("discriminator_b"),
        pool_size=pool_size,
        seed=seed,
    )
    model.compile(**cyclegan.default_optimizers(total_steps=total_steps))
    return model


def train_cyclegan(
    run_dir,
    data_a="brain:t1",
    data_b="brain:t2",
    image_size=64,
    num_epochs=10,
    batch_size=1,
    filters=64,
    discriminator_filters=None,
    num_residual_blocks=None,
    seed=0,
    resume=False,
    mixed_precision=False,
    strategy=None,
    verbose="auto",
    domains=None,
    callbacks=(),
):
    """Train a CycleGAN with :func:`medgen_tf.training.fit` and save both generators.

    Writes the engine's run folder plus ``generator_ab.keras`` / ``generator_ba.keras`` (what
    ``medgen-tf translate`` loads) and ``domains.json`` (which subjects went where). The
    learning rate is constant for the first half of ``num_epochs`` and decays to zero over the
    second. ``domains``: ready ``(images_a, images_b, info)`` instead of loading the specs.

    Returns the engine's :class:`~medgen_tf.training.TrainingHistory` (``.model`` attached).
    """
    from medgen_tf.training import fit

    run_dir = Path(run_dir)
    images_a, images_b, info = domains or unpaired_domains(data_a, data_b, image_size, seed=seed)
    total_steps = num_epochs * (len(images_a) // batch_size)
    settings = dict(
        image_size=image_size,
        channels=int(images_a.shape[-1]),
        filters=filters,
        discriminator_filters=discriminator_filters,
        num_residual_blocks=num_residual_blocks,
        total_steps=total_steps,
        seed=seed,
    )
    samples_a = images_a[np.linspace(0, len(images_a) - 1, 8).astype(int)]

    def sample_fn(model):
        # Inputs above their translations: one grid shows what each image became.
        return np.concatenate([samples_a, model.translate(samples_a, "a2b")], axis=0)

    history = fit(
        lambda: build_cyclegan(**settings),
        (images_a, images_b),
        run_dir,
        num_epochs=num_epochs,
        batch_size=batch_size,
        seed=seed,
        resume=resume,
        sample_fn=sample_fn,
        sample_value_range=(-1.0, 1.0),
        config={"model": "cyclegan", "data_a": data_a, "data_b": data_b, **settings},
        strategy=strategy,
        mixed_precision=mixed_precision,
        verbose=verbose,
        callbacks=callbacks,
    )
    with atomic_path(run_dir / "domains.json") as temporary:
        temporary.write_text(json.dumps(info, indent=2))
    _save_generators(history.model, run_dir)
    return history


def _save_generators(model, run_dir):
    """Both generators as ``.keras`` files, each written whole or not at all: a run killed
    mid-save must not leave a truncated file that ``translate`` then fails to load."""
    for direction, name in GENERATOR_FILES.items():
        generator = model.generator_ab if direction == "a2b" else model.generator_ba
        with atomic_path(Path(run_dir) / name) as temporary:
            generator.save(temporary)


def load_generator(run_dir, direction="a2b"):
    """The generator a CycleGAN run saved for ``direction`` (``"a2b"`` or ``"b2a"``)."""
    import medgen_tf.models.cyclegan  # noqa: F401  (registers the custom layers)

    if direction not in GENERATOR_FILES:
        raise DataError(f"direction {direction!r}: use 'a2b' or 'b2a'")
    path = Path(run_dir) / GENERATOR_FILES[direction]
    if not path.is_file():
        raise DataError(f"{run_dir}: no {path.name}; is this a finished CycleGAN run folder?")
    return keras.saving.load_model(path)


def _predict_in_full_batches(generator, images, batch_size):
    """``generator(images)`` in batches of one shape (the last one padded): a single trace."""
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        padded = np.concatenate([batch, np.repeat(batch[-1:], batch_size - len(batch), 0)])
        outputs.append(np.asarray(generator(padded, training=False))[: len(batch)])
    return np.concatenate(outputs, axis=0)


def _translate_slices(generator, slices, image_size, batch_size=16, spacing=None):
    """(n, h, w) slices in [-1, 1] -> translated (n, h, w), resized to the model and back.

    The way in is training's (:func:`~medgen_tf.data.nifti.resize_slices`, with the pixel size
    ``spacing`` in mm per row and column), so anatomy reaches the model with the shape it
    learned; the way back crops the padding and resizes to the input's grid.
    """
    import tensorflow as tf

    from medgen_tf.data.nifti import millimetre_true_size, resize_slices

    _, height, width = slices.shape
    resized = resize_slices(slices, image_size, fill_value=-1.0, spacing=spacing)
    translated = _predict_in_full_batches(generator, np.clip(resized, -1, 1), batch_size)
    if spacing is None or np.isclose(spacing[0], spacing[1], rtol=1e-3, atol=0.0):
        # Square pixels: the slices were padded to a square, then resized.
        side = max(height, width)
        back = tf.image.resize(translated, (side, side), method="bilinear").numpy()[..., 0]
        top, left = (side - height) // 2, (side - width) // 2
        return back[:, top : top + height, left : left + width]
    # Non-square pixels: resized to the millimetre aspect on the model's grid, then padded.
    inner_height, inner_width = millimetre_true_size((height, width), spacing, image_size)
    top, left = (image_size - inner_height) // 2, (image_size - inner_width) // 2
    inner = translated[:, top : top + inner_height, left : left + inner_width]
    return tf.image.resize(inner, (height, width), method="bilinear").numpy()[..., 0]


def normalize_for_model(volume, intensity, name=None):
    """Scale a volume to [-1, 1] the way the generator's training images were scaled.

    ``"cohort"``: as the built-in cohort (``brain:`` specs, ``data.brain._unit_scale``): zero
    signal stays -1 and the 99.5th percentile of the foreground goes to 1, clipped. A plain
    NIfTI has no brain mask, so the head (:func:`~medgen_tf.data.nifti.foreground_mask`) stands
    in for the cohort's brain. ``"percentiles"``: as ``nifti:`` specs,
    :func:`~medgen_tf.data.nifti.normalize_intensity` (foreground 0.5th..99.5th percentiles to
    [-1, 1]). The two differ most for dark tissue: percentiles put the darkest foreground at
    the air's -1, so a cohort-trained model would read CSF as background. ``name`` (the file)
    goes into the DataError raised for a constant foreground (a mask or label file).
    """
    from medgen_tf.data.nifti import foreground_mask, normalize_intensity

    if intensity not in INTENSITY_MODES:
        raise DataError(f"intensity {intensity!r}: use one of {list(INTENSITY_MODES)}")
    volume = np.asarray(volume, np.float32)
    mask = foreground_mask(volume)
    if intensity == "percentiles":
        return normalize_intensity(volume, (-1.0, 1.0), mask=mask, name=name)
    values = volume[mask] if mask.any() else volume.ravel()
    if float(values.min()) == float(values.max()):
        raise DataError(
            f"{name or 'volume'}: foreground intensity is constant ({values.min():g}); a mask or "
            "label file? nothing to translate"
        )
    high = max(float(np.percentile(values, 99.5)), 1e-8)
    return (2.0 * np.clip(volume / high, 0.0, 1.0) - 1.0).astype(np.float32)


def translate_nifti(generator, path, out_path, intensity="percentiles", volume_index=None):
    """Translate a NIfTI volume slice by slice; the result has the INPUT's grid and affine.

    ``intensity`` must be the normalisation of the generator's training data (see
    :func:`normalize_for_model`): ``"cohort"`` for a model trained on ``brain:`` specs,
    ``"percentiles"`` (the default) for one trained on ``nifti:`` specs;
    :func:`translate_run` reads it from the run folder. The volume is reoriented to RAS and cut
    into axial slices in display orientation (as the training slices were), translated at the
    model's size, resized back, reassembled, turned back to the input's orientation and written
    as float32 in [0, 1] (MR has no unit), with the header's display range set to [0, 1].
    ``volume_index`` picks one volume of a 4-D file (the output is that one 3-D volume).
    """
    import nibabel as nib

    from medgen_tf.data.nifti import in_plane_spacing, load_volume

    image_size = int(generator.inputs[0].shape[1])
    volume, affine = load_volume(path, volume_index=volume_index)
    volume = normalize_for_model(volume, intensity, name=str(path))
    # Axial slices, rot90 as in data.nifti.extract_slices, so the model sees training's layout.
    slices = np.rot90(np.moveaxis(volume, 2, 0), axes=(1, 2))
    translated = _translate_slices(
        generator, np.ascontiguousarray(slices), image_size, spacing=in_plane_spacing(affine, 2)
    )
    canonical = np.moveaxis(np.rot90(translated, k=-1, axes=(1, 2)), 0, 2)
    canonical = ((np.clip(canonical, -1.0, 1.0) + 1.0) / 2.0).astype(np.float32)
    original = nib.load(str(path))
    to_input = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt(("R", "A", "S")),
        nib.orientations.io_orientation(original.affine),
    )
    data = nib.orientations.apply_orientation(canonical, to_input).astype(np.float32)
    header = original.header.copy()
    header.set_data_dtype(np.float32)
    header.set_data_shape(data.shape)  # 3-D, also when one volume of a 4-D file was picked
    # The input's display window (e.g. 0..1000) would show the [0, 1] output as black.
    header["cal_min"], header["cal_max"] = 0.0, 1.0
    out_path = Path(out_path)
    with atomic_path(out_path) as temporary:
        nib.save(nib.Nifti1Image(data, original.affine, header), str(temporary))
    return out_path, slices, np.rot90(np.moveaxis(canonical * 2 - 1, 2, 0), axes=(1, 2))


def run_intensity(run_dir, direction="a2b"):
    """The :func:`normalize_for_model` mode of a run's source domain, from its ``config.json``.

    The source of ``"a2b"`` is ``data_a``, of ``"b2a"`` ``data_b``: a ``brain`` spec means
    ``"cohort"``, a ``nifti`` spec ``"percentiles"``. Anything else (no config.json, a 2-D
    data set) raises DataError: guessing would feed the model intensities it never saw.
    """
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise DataError(
            f"{path}: not found; choose intensity='cohort' or 'percentiles' (--intensity)"
        )
    config = read_run_config(run_dir)["config"]
    key = "data_a" if direction == "a2b" else "data_b"
    kind = str(config.get(key, "")).strip().partition(":")[0].lower()
    if kind == "brain":
        return "cohort"
    if kind == "nifti":
        return "percentiles"
    raise DataError(
        f"{path}: {key} {config.get(key)!r} is neither a brain: nor a nifti: spec, so its "
        "intensity scaling is unknown; choose one: intensity='cohort' or 'percentiles' "
        "(command line: --intensity)"
    )


def translate_run(
    run_dir, source, direction="a2b", out_dir="translated", num_images=16, intensity=None
):
    """``medgen-tf translate``: translate a NIfTI file, a folder of them, or a data spec.

    NIfTI inputs give one translated volume each (``<name>_<direction>.nii.gz``, the input's
    affine) plus a PNG of its middle slices; ``PATH#N`` picks volume N of 4-D files
    (``<name>_vol<N>_<direction>.nii.gz``), as ``nifti:PATH#N`` does in a data spec. A data
    spec (e.g. ``brain:t1``, test split) gives a PNG grid of inputs above their translations.
    NIfTI volumes are scaled as the source domain's training data (``intensity``; default
    :func:`run_intensity`). Returns the written paths.
    """
    from medgen_tf import viz
    from medgen_tf.data import load_spec
    from medgen_tf.data.nifti import is_nifti_path, nifti_files
    from medgen_tf.data.spec import split_volume_index

    generator = load_generator(run_dir, direction)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source_path, volume_index = Path(str(source)), None
    if not source_path.exists() and "#" in str(source):
        # PATH#N: the form load_volume's 4-D message asks for (taken literally if it exists).
        candidate, index = split_volume_index(str(source), str(source))
        if candidate.exists():
            source_path, volume_index = candidate, index
    written = []
    if source_path.exists():
        files = nifti_files(source_path)
        if intensity is None:
            intensity = run_intensity(run_dir, direction)
        for file in files:
            if not is_nifti_path(file):
                raise DataError(f"{file}: not a NIfTI file (expected .nii or .nii.gz)")
            stem = file.name.removesuffix(".gz").removesuffix(".nii")
            if volume_index is not None:
                stem = f"{stem}_vol{volume_index}"
            out_path, inputs, outputs = translate_nifti(
                generator,
                file,
                out_dir / f"{stem}_{direction}.nii.gz",
                intensity=intensity,
                volume_index=volume_index,
            )
            middle = np.linspace(len(inputs) * 0.3, len(inputs) * 0.7, 6).astype(int)
            grid = out_dir / f"{stem}_{direction}.png"
            figure = viz.compare_rows(
                {"input": inputs[middle][..., None], direction: outputs[middle][..., None]},
                path=grid,
                title=f"{file.name}: {direction}",
                value_range=(-1.0, 1.0),
            )
            viz.plt.close(figure)
            written += [out_path, grid]
        return written
    images = load_spec(str(source), image_size=int(generator.inputs[0].shape[1]), split="test")
    chosen = images["images"][np.linspace(0, len(images["images"]) - 1, num_images).astype(int)]
    translated = generator.predict(chosen, batch_size=16, verbose=0)
    grid = out_dir / f"{direction}.png"
    figure = viz.compare_rows(
        {"input": chosen, direction: translated},
        path=grid,
        title=f"{source} (test split): {direction}",
        value_range=(-1.0, 1.0),
    )
    viz.plt.close(figure)
    return [grid]


def build_pix2pix(
    image_size=64, channels=1, filters=64, adversarial=True, num_residual_blocks=None
):
    """A compiled paired reference: the CycleGAN generator trained with L1 (+ a PatchGAN)."""
    from medgen_tf.models import cyclegan
    from medgen_tf.models.pix2pix import Pix2Pix

    generator = cyclegan.build_resnet_generator(
        image_size, channels, filters, num_residual_blocks, name="generator"
    )
    discriminator = None
    if adversarial:
        discriminator = cyclegan.build_patchgan_discriminator(
            image_size, 2 * channels, filters, name="discriminator"
        )
    model = Pix2Pix(generator, discriminator)
    model.compile()
    return model


# ---- the "cyclegan" recipe (medgen_tf.recipes registers these) --------------------------------


def recipe_load_data(config):
    """Recipe hook: unpaired ``(images_a, images_b)``; records the subjects and steps in config."""
    images_a, images_b, info = unpaired_domains(
        config["data_a"],
        config["data_b"],
        config["image_size"],
        seed=config["seed"],
        num_subjects=config.get("num_subjects") or 32,
    )
    config["domains"] = info
    config["total_steps"] = config["num_epochs"] * (len(images_a) // config["batch_size"])
    # A fixed handful of A images for the per-epoch grids, stored as indices (config is JSON).
    config["sample_indices"] = np.linspace(0, len(images_a) - 1, 8).astype(int).tolist()
    _SAMPLE_IMAGES[id(config)] = images_a[config["sample_indices"]]
    return images_a, images_b


_SAMPLE_IMAGES = {}


def recipe_build(config):
    """Recipe hook: a compiled CycleGAN with the learning-rate decay over the whole run."""
    return build_cyclegan(
        config["image_size"],
        channels=1,
        filters=config.get("base_filters") or 64,
        total_steps=config.get("total_steps"),
        seed=config["seed"],
    )


def recipe_samples(model, config):
    """Recipe hook: the fixed A images above their A -> B translations."""
    images = _SAMPLE_IMAGES[id(config)]
    return np.concatenate([images, model.translate(images, "a2b")], axis=0)


def recipe_export(model, run_dir):
    """Recipe hook: both generators as ``.keras`` files, which ``translate`` loads."""
    _save_generators(model, run_dir)


def recipe_translate(
    run_dir, config, source, direction="a2b", out_dir="translated", intensity=None
):
    """Recipe hook for ``medgen-tf translate``."""
    return translate_run(run_dir, source, direction=direction, out_dir=out_dir, intensity=intensity)
