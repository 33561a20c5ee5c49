"""Models by name: what ``medgen-tf train|sample|translate|demo`` and the notebooks call.

A :class:`Recipe` says, for one model name, how to load its data from the spec(s), how to
build and compile the model from a config dict, how to draw a fixed-noise sample grid during
training, what to export at the end and how to draw from an exported run. Adding a model is a
few lines::

    register(Recipe(
        name="vae",
        value_range=(0.0, 1.0),
        load_data=lambda config: load_spec(config["data"], ...)["images"],
        build=lambda config: build_vae(...),        # returns a compiled keras.Model
        sample_fn=lambda model, config: model.sample(64, seed=config["seed"]),
        export=lambda model, run_dir: model.save(run_dir / "vae.keras"),
        draw=lambda run_dir, config, num_samples, seed: ...,   # images for `sample`
        check=lambda config: _num_downsamples(config["image_size"]),  # before the data load
    ))

The config dict every recipe receives: ``model``, its data (``data``, or ``data_a`` and
``data_b`` for a two-domain recipe), ``image_size, num_epochs, batch_size``, ``latent_dim``
(recipes that have one), ``seed, num_subjects, base_filters`` (recorded in
``RUN_DIR/config.json``). Quick mode (``MEDGEN_QUICK=1``) trains on an 8-subject cohort with
narrower networks; that is the only speed switch.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medgen_tf.config import QUICK
from medgen_tf.errors import DataError, check_whole_at_least, is_whole_number
from medgen_tf.files import (
    atomic_path,
    check_generator,
    load_keras_file,
    read_run_config,
    record_export,
)

__all__ = ["RECIPES", "Recipe", "demo", "register", "sample", "train", "translate"]


@dataclass(frozen=True)
class Recipe:
    """How to train, sample and export one model family by name (see the module docstring)."""

    name: str
    value_range: tuple[float, float]
    load_data: Callable[[dict], object]
    build: Callable[[dict], object]
    sample_fn: Callable[[object, dict], np.ndarray] | None = None
    export: Callable[[object, Path], None] | None = None
    draw: Callable[[Path, dict, int, int], np.ndarray] | None = None
    translate: Callable[..., list] | None = None
    default_latent_dim: int | None = None
    #: Trains on two domains (``data_a``, ``data_b``) instead of one ``data`` spec.
    two_domains: bool = False
    #: Called with the config before any data is loaded: raises ValueError, as ``build``
    #: would, for settings the networks cannot be built with. It asks the builders' own
    #: rules (or builds the networks), so it cannot drift from them.
    check: Callable[[dict], None] | None = None
    #: How a resume reads the config an older version recorded (``training.fit``'s
    #: ``read_recorded_config``): settings added since, set to what those runs used.
    read_recorded_config: Callable[[dict], dict] | None = None


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Add (or replace) a recipe under its name."""
    RECIPES[recipe.name] = recipe
    return recipe


def get_recipe(name: str) -> Recipe:
    if not isinstance(name, str) or name not in RECIPES:
        raise DataError(f"unknown model {name!r}; choose one of {sorted(RECIPES)}")
    return RECIPES[name]


def _brain_subjects() -> int:
    return 8 if QUICK else 32


# ---- the GAN family ---------------------------------------------------------------------


def _gan_data(config, conditional=False):
    from medgen_tf.data import load_spec

    data = load_spec(
        config["data"],
        image_size=config["image_size"],
        split="train",
        value_range=(-1.0, 1.0),
        seed=config["seed"],
        num_subjects=config["num_subjects"],
    )
    config["channels"] = int(data["images"].shape[-1])  # 3 for RGB MedMNIST sets
    if not conditional:
        return data["images"]
    if data["labels"] is None:
        raise DataError(f"data spec {config['data']!r}: a conditional GAN needs labels")
    labels = data["labels"].astype(np.int32)
    # A local .npz names no classes: its labels are the classes 0 .. max.
    names = list(data["label_names"])
    if not names:
        largest = int(labels.max())
        if largest >= len(labels):
            # Then most classes have no image, and the label embeddings (one image-sized row per
            # class) grow with the largest label: ids such as 2**31 - 1 ran out of memory.
            raise DataError(
                f"data spec {config['data']!r}: labels go up to {largest} ({largest + 1} "
                f"classes) for {len(labels)} images; a conditional GAN needs class indices "
                "0..k-1 (renumber them)"
            )
        names = [str(label) for label in range(largest + 1)]
    config["num_classes"] = len(names)
    config["label_names"] = names
    return data["images"], labels


def _build_gan(config, loss="non_saturating"):
    from medgen_tf.models.gan import GAN, build_discriminator, build_generator, default_optimizers

    channels = config.get("channels", 1)
    generator = build_generator(
        config["latent_dim"],
        config["image_size"],
        channels=channels,
        base_filters=config["base_filters"],
    )
    discriminator = build_discriminator(
        config["image_size"],
        channels=channels,
        base_filters=config["base_filters"],
        # a critic with a gradient penalty must not use batch statistics (Gulrajani et al.)
        normalization="layer" if loss == "wgan_gp" else None,
    )
    model = GAN(generator, discriminator, loss=loss, seed=config["seed"])
    model.compile(*default_optimizers(loss))
    return model


def _build_cgan(config):
    from medgen_tf.models.gan import (
        ConditionalGAN,
        build_discriminator,
        build_generator,
        default_optimizers,
    )

    num_classes, channels = config["num_classes"], config.get("channels", 1)
    model = ConditionalGAN(
        build_generator(
            config["latent_dim"],
            config["image_size"],
            channels=channels,
            base_filters=config["base_filters"],
            num_classes=num_classes,
        ),
        build_discriminator(
            config["image_size"],
            channels=channels,
            base_filters=config["base_filters"],
            num_classes=num_classes,
        ),
        num_classes=num_classes,
        seed=config["seed"],
    )
    model.compile(*default_optimizers())
    return model


def _check_gan(config):
    from medgen_tf.models.gan import _upsampling_plan

    # The generator's rule (the discriminator takes any side): an --image-size it cannot reach
    # by doubling is refused before the data load, in build_generator's words.
    _upsampling_plan(config["image_size"])


def _class_labels(config, num_samples):
    return None if not config.get("num_classes") else np.arange(num_samples) % config["num_classes"]


def _gan_samples(model, config, num_samples=64):
    # the same integer seed every epoch: the grids show one fixed set of noise vectors evolving
    return model.generate(
        num_samples, seed=config["seed"], labels=_class_labels(config, num_samples)
    )


def _save_model(model, path) -> None:
    # A finished run's export replaces the previous one in one rename (a resumed run exports
    # again): a crash mid-save leaves the old file, never a truncated one.
    with atomic_path(path) as temporary:
        model.save(temporary)


def _export_generator(model, run_dir):
    _save_model(model.generator, Path(run_dir) / "generator.keras")


def _draw_generator(run_dir, config, num_samples, seed):
    import keras

    import medgen_tf.models.gan  # noqa: F401  (registers the custom objects)

    path = Path(run_dir) / "generator.keras"
    if not path.is_file():
        raise DataError(f"run folder {run_dir}: no generator.keras (did training finish?)")
    generator = load_keras_file(path, compile=False)
    check_generator(generator, path)
    # The sizes come from the generator itself, not from config.json, which may be edited.
    latent_dim = int(generator.inputs[0].shape[-1])
    noise = keras.random.normal((num_samples, latent_dim), seed=seed)
    if len(generator.inputs) == 1:
        return keras.ops.convert_to_numpy(generator(noise, training=False))
    num_classes = generator.get_layer("label_embedding").input_dim
    labels = keras.ops.convert_to_tensor(np.arange(num_samples) % num_classes, "int32")
    return keras.ops.convert_to_numpy(generator([noise, labels], training=False))


for _name, _loss in (("dcgan", "non_saturating"), ("wgan-gp", "wgan_gp")):
    register(
        Recipe(
            name=_name,
            value_range=(-1.0, 1.0),
            load_data=_gan_data,
            build=lambda config, loss=_loss: _build_gan(config, loss),
            sample_fn=_gan_samples,
            export=_export_generator,
            draw=_draw_generator,
            check=_check_gan,
            default_latent_dim=128,
        )
    )
register(
    Recipe(
        name="cgan",
        value_range=(-1.0, 1.0),
        load_data=lambda config: _gan_data(config, conditional=True),
        build=_build_cgan,
        sample_fn=_gan_samples,
        export=_export_generator,
        draw=_draw_generator,
        check=_check_gan,
        default_latent_dim=128,
    )
)


# ---- the VAE ------------------------------------------------------------------------------

# The setup of notebooks/02_vae.ipynb: a Gaussian likelihood with a small fixed sigma keeps
# reconstructions sharp (recorded in config.json with the rest).
VAE_SETTINGS = {"likelihood": "gaussian", "gaussian_sigma": 0.02, "learning_rate": 1e-3}


def _vae_data(config):
    from medgen_tf.data import load_spec

    images = load_spec(
        config["data"],
        image_size=config["image_size"],
        split="train",
        value_range=(0.0, 1.0),  # the decoder's sigmoid range
        seed=config["seed"],
        num_subjects=config["num_subjects"],
    )["images"]
    config.update(VAE_SETTINGS)
    config["channels"] = int(images.shape[-1])
    config["base_filters"] = config["base_filters"] // 4  # a VAE at 64x64 trains well with 16
    return images


def _build_vae(config):
    from medgen_tf.models.layers import FusedAdam
    from medgen_tf.models.vae import build_vae

    model = build_vae(
        config["image_size"],
        channels=config["channels"],
        latent_dim=config["latent_dim"],
        base_filters=config["base_filters"],
        likelihood=config["likelihood"],
        gaussian_sigma=config["gaussian_sigma"],
        seed=config["seed"],
    )
    model.compile(FusedAdam(config["learning_rate"]))
    return model


def _check_vae(config):
    from medgen_tf.models.vae import _num_downsamples

    _num_downsamples(config["image_size"])  # the encoder's and decoder's rule


def _vae_samples(model, config, num_samples=64):
    import keras

    # the same seed every epoch: the grids show one fixed set of prior draws evolving
    return keras.ops.convert_to_numpy(model.sample(num_samples, seed=config["seed"]))


def _export_vae(model, run_dir):
    _save_model(model, Path(run_dir) / "vae.keras")


def _draw_vae(run_dir, config, num_samples, seed):
    import keras

    import medgen_tf.models.vae  # noqa: F401  (registers the custom objects)

    path = Path(run_dir) / "vae.keras"
    if not path.is_file():
        raise DataError(f"run folder {run_dir}: no vae.keras (did training finish?)")
    vae = load_keras_file(path, compile=False)
    if not callable(getattr(vae, "sample", None)):
        # A decoder (or any other model) saved under this name has no prior to draw from.
        raise DataError(
            f"{path}: not a VAE (a {type(vae).__name__} without sample()); sample needs the "
            "whole VAE that medgen-tf train vae exports"
        )
    return keras.ops.convert_to_numpy(vae.sample(num_samples, seed=seed))


register(
    Recipe(
        name="vae",
        value_range=(0.0, 1.0),
        load_data=_vae_data,
        build=_build_vae,
        sample_fn=_vae_samples,
        export=_export_vae,
        draw=_draw_vae,
        check=_check_vae,
        default_latent_dim=512,
    )
)


# ---- CycleGAN (the functions live in medgen_tf.translation) ------------------------------


def _cyclegan_hook(name):
    def hook(*args, **kwargs):
        from medgen_tf import translation

        return getattr(translation, name)(*args, **kwargs)

    return hook


def _checked_identity_weight(identity_weight):
    """The CycleGAN's identity_weight to record: None is the paper's 0.5."""
    from medgen_tf.translation import PAPER_IDENTITY_WEIGHT, check_identity_weight

    if identity_weight is None:
        return PAPER_IDENTITY_WEIGHT
    return check_identity_weight(identity_weight)


def _check_cyclegan(config):
    from medgen_tf.models.cyclegan import check_image_size

    # The generator's and the PatchGAN's rules (their builders call them too), in one message;
    # no network is built (that would also advance Keras' layer names).
    check_image_size(config["image_size"])


register(
    Recipe(
        name="cyclegan",
        value_range=(-1.0, 1.0),
        load_data=_cyclegan_hook("recipe_load_data"),
        build=_cyclegan_hook("recipe_build"),
        sample_fn=_cyclegan_hook("recipe_samples"),
        export=_cyclegan_hook("recipe_export"),
        translate=_cyclegan_hook("recipe_translate"),
        check=_check_cyclegan,
        read_recorded_config=_cyclegan_hook("recipe_read_recorded_config"),
        two_domains=True,
    )
)

# ---- entry points -----------------------------------------------------------------------


def train(
    model: str,
    data: str | None = None,
    data_a: str | None = None,
    data_b: str | None = None,
    image_size: int = 64,
    num_epochs: int = 10,
    batch_size: int = 32,
    latent_dim: int | None = None,
    identity_weight: float | None = None,
    run_dir="outputs/run",
    resume: bool = False,
    mixed_precision: bool = False,
    strategy: str = "default",
    seed: int = 0,
    verbose="auto",
) -> Path:
    """Train the model named ``model`` through :func:`medgen_tf.training.fit`; return the run
    folder (config.json, history.json, samples/, checkpoints/, the exported model).

    ``data`` (default ``"brain"``) and ``latent_dim`` are for the GANs and the VAE;
    ``data_a``, ``data_b`` (default ``"brain:t1"``, ``"brain:t2"``) and ``identity_weight``
    (default the paper's 0.5; notebook 03 trains with 0) for CycleGAN. Giving one
    the model does not use is a DataError: it would be recorded, and then compared on resume,
    as if it had shaped the run. ``image_size``, ``num_epochs``, ``batch_size`` and ``seed``
    are whole numbers (a ValueError otherwise, rather than truncating 32.7 to 32)."""
    from medgen_tf.training import fit, trained_outputs

    recipe = get_recipe(model)
    sizes = dict(image_size=image_size, num_epochs=num_epochs, batch_size=batch_size, seed=seed)
    for name, value in sizes.items():
        # int() would truncate 32.7 to 32 and record it as asked for.
        if not is_whole_number(value):
            raise ValueError(f"{name}={value!r}: give a whole number")
    # Checked before any data are loaded: batch_size=0 was a ZeroDivisionError after the load,
    # a negative seed numpy's "expected non-negative integer" from inside the cohort.
    for name, least in (("num_epochs", 1), ("batch_size", 1), ("seed", 0)):
        check_whole_at_least(name, sizes[name], least)
    # Defaults only for specs not given: an empty one (an unset variable, --data "$DATA") is
    # refused by the data loader in one line, not replaced by the built-in cohort in silence.
    if recipe.two_domains:
        settings = {
            "data_a": "brain:t1" if data_a is None else data_a,
            "data_b": "brain:t2" if data_b is None else data_b,
            "identity_weight": _checked_identity_weight(identity_weight),
        }
        unused = {"data (--data)": data, "latent_dim (--latent-dim)": latent_dim}
    else:
        settings = {
            "data": "brain" if data is None else data,
            # 0 was taken for "not given" and trained (and recorded) the default size.
            "latent_dim": recipe.default_latent_dim if latent_dim is None else latent_dim,
        }
        if latent_dim is not None and (not is_whole_number(latent_dim) or latent_dim < 1):
            raise ValueError(
                f"latent_dim={latent_dim!r}: give a whole number >= 1, or None for the model's "
                "default"
            )
        unused = {
            "data_a (--data-a)": data_a,
            "data_b (--data-b)": data_b,
            "identity_weight (--identity-weight)": identity_weight,
        }
    given = [name for name, value in unused.items() if value is not None]
    if given:
        takes = "data_a, data_b and identity_weight" if recipe.two_domains else "data"
        raise DataError(f"model {model!r} does not use {' or '.join(given)}; it takes {takes}")
    run_dir = Path(run_dir)
    earlier = trained_outputs(run_dir)
    if not resume and earlier:
        raise DataError(
            f"run folder {run_dir} already holds a run ({', '.join(earlier)}); pass --resume or "
            "another --out"
        )
    config = {
        "model": model,
        **settings,
        "image_size": int(image_size),
        "num_epochs": int(num_epochs),
        "batch_size": int(batch_size),
        "seed": int(seed),
        "num_subjects": _brain_subjects(),
        "base_filters": 16 if QUICK else 64,
        "quick": QUICK,
    }

    def buildable(step):
        try:
            return step(config)
        except DataError:
            raise
        except ValueError as error:
            # The builders refuse settings they cannot build (an --image-size the generator
            # cannot reach by doubling, ...) in one line: for the command line, bad input,
            # with the flag named beside the setting as for the data options above.
            message = re.sub(r"^image_size(=\S+)?", r"\g<0> (--image-size)", str(error))
            raise DataError(f"model {model!r}: {message}") from None

    if recipe.check is not None:
        # Before the data load (seconds) and before anything is written: a run that cannot
        # be built is refused at once, in the builders' words, and leaves the folder as it was.
        buildable(recipe.check)
    arrays = recipe.load_data(config)  # may add keys (e.g. num_classes) that build needs

    def build():
        return buildable(recipe.build)

    history = fit(
        build,
        arrays,
        run_dir,
        num_epochs=config["num_epochs"],
        batch_size=config["batch_size"],
        seed=config["seed"],
        resume=resume,
        sample_fn=(lambda trained: recipe.sample_fn(trained, config)) if recipe.sample_fn else None,
        sample_value_range=recipe.value_range,
        config=config,
        strategy=strategy,
        mixed_precision=mixed_precision,
        verbose=verbose,
        read_recorded_config=recipe.read_recorded_config,
    )
    if history.stopped_reason is not None:
        raise DataError(f"run folder {run_dir}: {history.stopped_reason}")
    if recipe.export is not None:
        recipe.export(history.model, run_dir)
        # A resume interrupted later leaves this export behind its checkpoints: sample,
        # evaluate and translate compare the two and refuse it (files.check_export_current).
        record_export(run_dir)
    return run_dir


def _read_config(run_dir) -> dict:
    config = read_run_config(run_dir)["config"]
    if "model" not in config:
        raise DataError(
            f"{Path(run_dir) / 'config.json'}: not a medgen-tf run config (no model name in "
            '"config")'
        )
    return config


def sample(run_dir, num_samples: int = 64, out="samples.png", seed: int = 0) -> Path:
    """Draw ``num_samples`` images (a whole number, at least 1) from a finished run and save
    them as a PNG grid."""
    from medgen_tf.viz import save_image_grid

    if not is_whole_number(num_samples) or num_samples < 1:
        raise ValueError(f"num_samples={num_samples}: give a whole number of images, at least 1")
    # int() would draw seed 1 for 1.5 and title the grid "seed 1.5".
    if not is_whole_number(seed):
        raise ValueError(f"seed={seed!r}: give a whole number")
    config = _read_config(run_dir)
    recipe = get_recipe(config["model"])
    if recipe.draw is None:
        raise DataError(f"run folder {run_dir}: model {config['model']!r} does not draw samples")
    images = recipe.draw(Path(run_dir), config, int(num_samples), int(seed))
    return save_image_grid(
        images,
        out,
        title=f"{config['model']} samples (seed {seed})",
        value_range=recipe.value_range,
    )


def translate(
    run_dir, input, direction: str = "a2b", out_dir="translated", intensity=None
) -> list[Path]:
    """Translate images with an image-to-image run (CycleGAN); the recipe does the work.

    ``intensity``: how NIfTI inputs are scaled (``"cohort"`` or ``"percentiles"``); None reads
    it from the run (:func:`medgen_tf.translation.run_intensity`)."""
    config = _read_config(run_dir)
    recipe = get_recipe(config["model"])
    if recipe.translate is None:
        raise DataError(
            f"run folder {run_dir}: model {config['model']!r} does not translate images"
        )
    return recipe.translate(
        Path(run_dir),
        config,
        input,
        direction=direction,
        out_dir=Path(out_dir),
        intensity=intensity,
    )


def demo(out_dir="outputs/demo") -> list[Path]:
    """A quick tour: a data preview and a short DCGAN run on 32x32 brain slices (about a
    minute in quick mode, a few minutes otherwise, on a 2-core CPU)."""
    from medgen_tf.data import preview_grid

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        preview_grid(
            "brain", out_dir / "data_preview.png", image_size=64, num_subjects=_brain_subjects()
        )
    ]
    import shutil

    run_dir = out_dir / "gan_run"
    # A new demo trains beside the last one and replaces it only once done: an interrupted or
    # failed demo leaves the last complete run as it was.
    staging = out_dir / ".gan_run.partial"
    if staging.exists():
        shutil.rmtree(staging)
    num_epochs = 1 if QUICK else 5
    start = time.perf_counter()
    train(
        "dcgan",
        data="brain:t1",
        image_size=32,
        num_epochs=num_epochs,
        batch_size=32,
        latent_dim=64,
        run_dir=staging,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    if run_dir.exists():
        shutil.rmtree(run_dir)
    os.replace(staging, run_dir)
    paths.append(sample(run_dir, num_samples=64, out=out_dir / "gan_samples.png"))
    history = json.loads((run_dir / "history.json").read_text())
    metrics = {
        "model": "dcgan",
        "image_size": 32,
        "num_epochs": num_epochs,
        "quick": QUICK,
        "training_seconds": round(seconds, 1),
        "final": {key: values[-1] for key, values in history.items()},
        "history": history,
    }
    metrics_path = out_dir / "metrics.json"
    with atomic_path(metrics_path) as temporary:
        temporary.write_text(json.dumps(metrics, indent=2))
    paths += [metrics_path, run_dir / "loss_curves.png"]
    return paths
