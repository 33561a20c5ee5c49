"""Whether the stacked passes pay: the package's ``fit`` with them on against the same model
with them off, interleaved in one process.

The DCGAN's discriminator judges the real and fake batches in one pass over both stacked
(``GAN.joint_discriminator_pass``), and each CycleGAN generator its translation and identity
batches (``CycleGAN.joint_generator_passes``). This times both settings of the model's flag
side by side, as ``make bench`` times its contenders. Not part of ``make bench``:
``python benchmarks/stacking_ab.py dcgan --windows 10``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FLAGS = {"dcgan": "joint_discriminator_pass", "cyclegan": "joint_generator_passes"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(FLAGS))
    parser.add_argument("--windows", type=int, default=10)
    options = parser.parse_args(argv)

    from benchmarks import harness, report

    config, _ = harness.model_defaults(options.model)
    dataset, _ = harness.model_dataset(options.model, config)
    contenders = []
    for name, stacked in (("stacked", True), ("separate", False)):
        model = harness.package_model(options.model, config)
        setattr(model, FLAGS[options.model], stacked)
        contenders.append(harness.FitContender(name, model, dataset))
    results = harness.interleaved_throughput(
        contenders, config["batch_size"], windows=options.windows
    )
    for name, entry in results.items():
        print(
            f"{name}: {entry['images_per_s']:.3f} images/s, {entry['images_per_cpu_s']:.3f} per CPU-s"
        )
    # The report's own ratio and paired-round figures, as RESULTS.md prints them.
    stacked, separate = results["stacked"], results["separate"]
    print(f"stacked / separate, wall: {report._ratio_with_range(stacked, separate)}")
    print(f"stacked / separate, CPU, paired: {report._paired(stacked, separate, 'cpu_windows')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
