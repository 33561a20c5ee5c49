"""The ``medgen-tf`` command line: argument parsing and error printing only.

Every subcommand calls one function of the package; bad input surfaces as a
``DataError`` whose one-line message is printed, with a non-zero exit and no traceback.
"""

from __future__ import annotations

import argparse
import sys

from medgen_tf import config
from medgen_tf.errors import DataError
from medgen_tf.notebook import import_tensorflow_quietly

GAN_MODELS = ("dcgan", "cgan", "wgan-gp")
MODELS = GAN_MODELS + ("vae", "cyclegan")


def _int_at_least(minimum: int, what: str, maximum: int | None = None):
    """An argparse type: an integer >= ``minimum`` (and <= ``maximum``), else argparse's
    one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{what}, got {value}")
        return value

    return parse


_positive = _int_at_least(1, "must be a positive integer")
# 10**20 epochs were tf.data's "out-of-range integer" traceback, after the run folder was made.
MAX_EPOCHS = 1_000_000
# A sample grid's images are drawn in one call: a million was a segmentation fault (or the OOM
# killer); 10**9 latent dimensions a ResourceExhaustedError traceback from the first layer.
MAX_SAMPLES = 1024
MAX_LATENT_DIM = 4096
# One range for every command, so a seed works in all (see config.SEED_MAX).
SEED_MAX = config.SEED_MAX
_seed = _int_at_least(0, f"must be an integer from 0 to {SEED_MAX} (2**32 - 1)", SEED_MAX)
# The smallest side every model can build (GAN generators start at 4 to 7 pixels and double
# at least twice); other sizes a model cannot build are refused by its builders' own rules
# before any data is loaded (recipes.train).
# The largest side any command takes: above it the data alone outgrow memory (100000 asked
# numpy for 3.49 TiB, a traceback, after the builders had accepted it); MedMNIST's largest
# files are 224 pixels.
MAX_IMAGE_SIZE = 512
_image_size = _int_at_least(
    16, f"must be an integer from 16 to {MAX_IMAGE_SIZE} (pixels)", MAX_IMAGE_SIZE
)


def _identity_weight(text: str) -> float:
    """An argparse type: a finite number >= 0 (float() would take "nan" and "inf")."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _path(text: str) -> str:
    """An argparse type: a non-empty path. An empty argument is an unset variable (``--out
    "$RUN"``), which pathlib would read as the current folder: translate wrote its volumes
    there, and ``--input ""`` translated every NIfTI file in it."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path (an unset variable?)")
    return text


def _image_out(text: str):
    """``--out`` of a figure, checked before any work: matplotlib would refuse an unknown
    extension only once the figure is drawn. A missing extension is matplotlib's default
    format, added here so that the path printed is the file written."""
    import os
    from pathlib import Path

    import matplotlib
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(text)
    # "/" has no name to add an extension to, ".." would become "...png", and pathlib drops
    # the slash that makes "figs/" a folder (figs.png was written beside it), as it would the
    # extension added to an existing folder's name.
    separators = tuple(sep for sep in (os.sep, os.altsep) if sep)
    if path.name in ("", ".", "..") or text.endswith(separators) or path.is_dir():
        example = os.path.join(text, "grid.png")
        raise DataError(f"--out {text}: names a folder, not an image file (e.g. {example})")
    if not path.suffix:
        return path.with_name(f"{path.name}.{matplotlib.rcParams['savefig.format']}")
    # pgf is listed but needs a LaTeX installation to write.
    formats = sorted(set(FigureCanvasBase.get_supported_filetypes()) - {"pgf"})
    extension = path.suffix[1:].lower()
    if extension not in formats:
        listed = ", ".join(f".{name}" for name in sorted(formats, key=lambda name: name != "png"))
        raise DataError(f"--out {path}: unsupported image format {extension!r} (use {listed})")
    return path


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medgen-tf",
        description="Generative models for medical imaging (GAN, VAE, CycleGAN): preview data, "
        "train, sample, evaluate and translate. Bad input is one line on stderr and exit code 2.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="inspect datasets").add_subparsers(
        dest="data_command", required=True
    )
    preview = data.add_parser("preview", help="write a labelled grid of a dataset")
    preview.add_argument(
        "--data", default="brain", help="data spec, e.g. brain, brain:t2, nifti:DIR"
    )
    preview.add_argument(
        "--out",
        type=_path,
        default="data_preview.png",
        help="image to write: .png, .pdf, ... (%(default)s)",
    )
    # A preview builds no model: any side the resize can make will do.
    preview.add_argument(
        "--image-size",
        type=_int_at_least(4, f"must be an integer from 4 to {MAX_IMAGE_SIZE}", MAX_IMAGE_SIZE),
        default=64,
    )

    train = commands.add_parser(
        "train",
        help="train a model and write a run folder",
        description="Train a model and write a run folder: config.json, history.json, sample "
        "grids, checkpoints and the trained networks.",
        epilog="With MEDGEN_QUICK=1 in the environment, a smoke run: a quarter of the filters and "
        "an 8-subject cohort instead of 32 subjects.",
    )
    train.add_argument("model", choices=MODELS)
    train.add_argument("--data", default=None, help="data spec (GANs, VAE; default brain)")
    train.add_argument("--data-a", default=None, help="domain A spec (CycleGAN; default brain:t1)")
    train.add_argument("--data-b", default=None, help="domain B spec (CycleGAN; default brain:t2)")
    train.add_argument(
        "--image-size", type=_image_size, default=64, metavar="N", help="pixels (%(default)s)"
    )
    train.add_argument(
        "--epochs",
        dest="num_epochs",
        type=_int_at_least(1, f"must be an integer from 1 to {MAX_EPOCHS}", MAX_EPOCHS),
        default=10,
        metavar="N",
        help="(%(default)s)",
    )
    train.add_argument(
        "--batch-size", type=_positive, default=32, metavar="N", help="(%(default)s)"
    )
    train.add_argument(
        "--latent-dim",
        type=_int_at_least(1, f"must be an integer from 1 to {MAX_LATENT_DIM}", MAX_LATENT_DIM),
        default=None,
        metavar="N",
        help="GANs (default 128), VAE (default 512)",
    )
    train.add_argument(
        "--identity-weight",
        type=_identity_weight,
        default=None,
        metavar="W",
        help="CycleGAN: identity loss weight as a fraction of the cycle loss's (default 0.5, the "
        "paper's; 0 turns it off, as notebook 03 does for T1 -> T2)",
    )
    train.add_argument(
        "--out", dest="run_dir", type=_path, required=True, metavar="DIR", help="run folder"
    )
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint; give the run's settings again (an error lists "
        "any that differ); more --epochs extends a GAN or VAE run",
    )
    train.add_argument("--mixed-precision", action="store_true", help="mixed_float16 policy")
    train.add_argument(
        "--strategy",
        choices=("default", "mirrored"),
        default="default",
        help="mirrored: tf.distribute.MirroredStrategy over the visible GPUs (%(default)s)",
    )
    train.add_argument("--seed", type=_seed, default=0, metavar="N", help="(%(default)s)")

    sample = commands.add_parser("sample", help="draw samples from a trained run")
    sample.add_argument("run_dir", type=_path)
    sample.add_argument(
        "--n",
        type=_int_at_least(1, f"must be an integer from 1 to {MAX_SAMPLES}", MAX_SAMPLES),
        default=64,
    )
    sample.add_argument(
        "--out",
        type=_path,
        default="samples.png",
        help="image to write: .png, .pdf, ... (%(default)s)",
    )
    sample.add_argument("--seed", type=_seed, default=0)

    evaluate = commands.add_parser(
        "evaluate", help="score the samples of a GAN or VAE run (FD-medgen, KID, ...)"
    )
    evaluate.add_argument("run_dir", type=_path)
    evaluate.add_argument(
        "--n", type=_positive, default=500, help="samples (and real slices) per score"
    )
    evaluate.add_argument("--seed", type=_seed, default=0)

    translate = commands.add_parser("translate", help="translate images with a CycleGAN run")
    translate.add_argument("run_dir", type=_path)
    translate.add_argument(
        "--input",
        type=_path,
        required=True,
        help="NIfTI file (PATH#N: volume N of a 4-D file), folder or data spec",
    )
    translate.add_argument("--direction", choices=("a2b", "b2a"), default="a2b")
    translate.add_argument("--out", type=_path, required=True, help="output folder")
    translate.add_argument(
        "--intensity",
        choices=("cohort", "percentiles"),
        default=None,
        help="how NIfTI inputs are scaled; default: as the run's training data (brain: cohort, "
        "nifti: percentiles); needed for runs trained on other data",
    )

    demo = commands.add_parser("demo", help="quick tour: data preview and a short GAN run")
    demo.add_argument(
        "--out", type=_path, default="outputs/demo", help="folder to write (%(default)s)"
    )
    return parser


# Measured by make bench (benchmarks/RESULTS.md and RESULTS-intel-xeon.md, CPU facts: the
# mixed_float16 row against graph mode, images/s of a 64 px DCGAN step; its float16 step is
# timed on a small batch). The message's "6 to over 100 times" must stay true to those ratios.
MIXED_PRECISION_ON_CPU = (
    "--mixed-precision on a CPU: float16 has no fast kernels there, and a 64 px DCGAN trained "
    "6 to over 100 times slower (images per second) than in float32 on the two reference CPUs "
    "(benchmarks/RESULTS*.md); the switch is for GPUs, leave it off here"
)


def _gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _run(args: argparse.Namespace) -> None:
    # Imports are deferred so `medgen-tf --help` answers without loading TensorFlow.
    if args.command == "data":
        from medgen_tf.data import preview_grid

        out = _image_out(args.out)
        path = preview_grid(args.data, out, image_size=args.image_size)
        print(f"wrote {path}")
    elif args.command == "train":
        from medgen_tf import recipes

        if args.mixed_precision and not _gpu_visible():
            print(f"medgen-tf: warning: {MIXED_PRECISION_ON_CPU}", file=sys.stderr)
        options = {key: value for key, value in vars(args).items() if key not in ("command",)}
        run_dir = recipes.train(**options)
        print(f"run folder: {run_dir}")
    elif args.command == "sample":
        out = _image_out(args.out)
        from medgen_tf import recipes

        path = recipes.sample(args.run_dir, num_samples=args.n, out=out, seed=args.seed)
        print(f"wrote {path}")
    elif args.command == "evaluate":
        from medgen_tf.evaluate import evaluate_run

        print(f"wrote {evaluate_run(args.run_dir, num_samples=args.n, seed=args.seed)}")
    elif args.command == "translate":
        from medgen_tf import recipes

        paths = recipes.translate(
            args.run_dir,
            args.input,
            direction=args.direction,
            out_dir=args.out,
            intensity=args.intensity,
        )
        for path in paths:
            print(f"wrote {path}")
    elif args.command == "demo":
        from medgen_tf import recipes

        for path in recipes.demo(args.out):
            print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        # TensorFlow's C++ start-up notes (oneDNN, CUDA probing) would bury the command's output.
        import_tensorflow_quietly()
        _run(args)
    except DataError as error:
        print(f"medgen-tf: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # A missing file, an --out that is a file, a full or read-only disk: the message names
        # the path, which is all a command-line user needs (a traceback would bury it).
        print(f"medgen-tf: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: a traceback through TensorFlow's frames (51 lines in train) says nothing a
        # user can act on. A run keeps every epoch checkpointed before the interrupt.
        resume = "; the same command with --resume continues from the last complete epoch"
        print(f"medgen-tf: interrupted{resume if args.command == 'train' else ''}", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
    return 0


if __name__ == "__main__":
    sys.exit(main())
