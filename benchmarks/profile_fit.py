"""Where ``fit``'s time goes for the package's DCGAN: Python per step against the compiled step.

Runs ``fit`` for ``--steps`` steps under cProfile and prints the profile's top lines, the time
inside the compiled train function (``TFE_Py_Execute``: the step itself, in TensorFlow's C++
runtime) and what is left to Keras' Python. Then runs the same ``train_step`` from a hand-written
loop for comparison. Not part of ``make bench``: ``python benchmarks/profile_fit.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    options = parser.parse_args(argv)

    import numpy as np
    import tensorflow as tf

    from benchmarks import harness

    config, _ = harness.model_defaults("dcgan")
    (images,) = harness.load_images(config["image_size"])
    dataset, _ = harness.make_batches([images], config["batch_size"])
    gan = harness.package_model("dcgan", config)
    gan.fit(dataset, epochs=1, steps_per_epoch=3, verbose=0)  # trace and warm up

    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    gan.fit(dataset, epochs=1, steps_per_epoch=options.steps, verbose=0)
    profiler.disable()
    fit_s = time.perf_counter() - start
    stats = pstats.Stats(profiler)
    in_step = sum(
        entry[2]  # total time of the built-in itself
        for function, entry in stats.stats.items()
        if "TFE_Py_Execute" in function[2]
    )
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(8)
    print(text.getvalue())

    step = tf.function(gan.train_step)
    iterator = iter(dataset)
    for _ in range(3):
        step(next(iterator))
    start = time.perf_counter()
    for _ in range(options.steps):
        logs = step(next(iterator))
    float(np.asarray(logs["d_loss"]))
    loop_s = time.perf_counter() - start

    steps = options.steps
    print(f"fit, {steps} steps: {fit_s:.2f} s, of which {in_step:.2f} s inside the compiled step")
    print(
        f"  {1e3 * in_step / steps:.1f} ms per step compiled; {fit_s - in_step:.2f} s outside it "
        "in all (fit's start and end, paid once per call, and Keras' Python around each step)"
    )
    # Run one after the other, not interleaved: compare the two per-step figures only roughly
    # (benchmarks/run.py interleaves when it compares).
    print(
        f"hand loop over the same train_step, {steps} steps: {loop_s:.2f} s "
        f"({1e3 * loop_s / steps:.1f} ms per step)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
