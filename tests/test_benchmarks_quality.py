"""The time-to-quality harness: it stops at the target or the cap, keeps evaluation off the
training clock, and the report says what was measured. Speed itself is never tested here."""

import sys

import keras
import numpy as np

from medgen_tf.config import REPO_DIR

if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from benchmarks import quality, report  # noqa: E402


def _tiny_model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), loss="mse")
    return model


def _fit_with(callback, epochs=20):
    data = np.ones((8, 4), "float32")
    _tiny_model().fit(
        data, data[:, :1], epochs=epochs, batch_size=4, verbose=0, callbacks=[callback]
    )


class _FakeClock:
    """Seconds that pass only when told: each training batch takes 2 s, each evaluation 100 s,
    whatever the machine's load."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def _fit_on_the_clock(callback, clock, epochs=20):
    # 8 examples in batches of 4: 2 batches, so 4 s of training, an epoch.
    batches = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: clock.advance(2.0)
    )
    data = np.ones((8, 4), "float32")
    _tiny_model().fit(
        data, data[:, :1], epochs=epochs, batch_size=4, verbose=0, callbacks=[batches, callback]
    )


def test_stops_at_the_target_and_keeps_evaluation_off_the_training_clock():
    clock = _FakeClock()
    scores = iter([0.1, 0.2, 0.9, 0.95])

    def slow_score(model):
        clock.advance(100.0)  # an evaluation much slower than a training epoch
        return next(scores)

    callback = quality._quality_callback(
        slow_score, target=0.8, cap_s=600, higher_is_better=True, clock=clock
    )
    _fit_on_the_clock(callback, clock)
    summary = quality._summary(callback, 0.8, 600, "score")
    assert summary["epochs"] == 3  # stopped at the first epoch that reached 0.8
    assert summary["reached"] and summary["best"] == 0.9
    # Each clock second counted once, on one of the two clocks: 3 epochs of 4 s of training,
    # 3 evaluations of 100 s, and the curve and the time to target in training seconds only.
    assert summary["training_s"] == 12.0 and summary["evaluation_s"] == 300.0
    assert clock.now - 1000.0 == summary["training_s"] + summary["evaluation_s"]
    assert summary["curve"] == [(4.0, 0.1), (8.0, 0.2), (12.0, 0.9)]
    assert summary["seconds_to_target"] == 12.0
    assert summary["stopped_by"] == "target"


def test_the_cap_counts_training_seconds_only():
    clock = _FakeClock()

    def slow_score(model):
        clock.advance(100.0)
        return 5.0

    callback = quality._quality_callback(
        slow_score, target=1.0, cap_s=10.0, higher_is_better=False, clock=clock
    )
    _fit_on_the_clock(callback, clock)
    summary = quality._summary(callback, 1.0, 10.0, "distance", higher_is_better=False)
    # 4, 8, 12 training seconds: the third epoch is the first at the cap, although the first
    # evaluation alone took ten times the cap.
    assert summary["epochs"] == 3 and summary["training_s"] == 12.0
    assert summary["evaluation_s"] == 300.0
    assert not summary["reached"] and summary["seconds_to_target"] is None
    assert summary["stopped_by"] == "cap"


def test_stops_at_the_cap_when_the_target_is_not_reached():
    callback = quality._quality_callback(
        lambda model: 5.0, target=1.0, cap_s=0.0, higher_is_better=False
    )
    _fit_with(callback)
    summary = quality._summary(callback, 1.0, 0.0, "distance", higher_is_better=False)
    assert summary["epochs"] == 1
    assert not summary["reached"] and summary["seconds_to_target"] is None
    assert summary["best"] == 5.0


def test_report_says_reached_or_not_and_keeps_the_last_point_of_the_curve():
    curve = [(60.0 * minute, 20.0 + 0.1 * minute) for minute in range(1, 26)]
    results = {
        "vae": {
            "metric": "test PSNR (dB)",
            "target": 26.0,
            "reached": False,
            "seconds_to_target": None,
            "best": 22.5,
            "epochs": 25,
            "curve": curve,
            "training_s": 1500.0,
            "cap_s": 1500,
            "settings": "notebook 02",
        },
        "dcgan": {"error": "worker failed: out of memory"},
    }
    text = "\n".join(report.render_quality(results))
    assert "| vae | test PSNR (dB) | 26.0 | no | n/a | 22.500 | 25 | 25.0 (25) |" in text
    assert "25.0: 22.500" in text  # the last point survives the thinning
    assert "not measured: worker failed: out of memory" in text


def test_a_run_that_ends_with_its_epochs_says_so():
    # The CycleGAN's case: neither the target nor the cap before fit's last epoch.
    clock = _FakeClock()
    callback = quality._quality_callback(
        lambda model: 0.2, target=0.85, cap_s=600.0, higher_is_better=True, clock=clock
    )
    _fit_on_the_clock(callback, clock, epochs=3)
    summary = quality._summary(callback, 0.85, 600.0, "ssim")
    assert summary["epochs"] == 3 and summary["training_s"] == 12.0
    assert summary["stopped_by"] == "epochs"


def _saved_cyclegan(**fields):
    return {
        "metric": "SSIM",
        "target": 0.85,
        "reached": False,
        "seconds_to_target": None,
        "best": 0.284,
        "epochs": 7,
        "curve": [(60.0 * epoch, 0.2) for epoch in range(1, 8)],
        "training_s": 204.2,
        "cap_s": 600,
        "settings": "notebook 03",
        **fields,
    }


def test_report_says_what_stopped_each_run_and_derives_it_for_results_saved_without_it():
    results = {
        "cyclegan": _saved_cyclegan(stopped_by="epochs"),
        # Saved before the runs recorded why they stopped (RESULTS-quality.json of 2026-12-02).
        "cyclegan_saved": _saved_cyclegan(),
        "at_cap": _saved_cyclegan(training_s=612.0),
        "at_target": _saved_cyclegan(reached=True, seconds_to_target=120.0, training_s=120.0),
    }
    rows = {line.split(" | ")[0][2:]: line for line in report.render_quality(results)}
    assert "| 3.4 (10) | its last epoch | notebook 03 |" in rows["cyclegan"]
    assert "| 3.4 (10) | its last epoch | notebook 03 |" in rows["cyclegan_saved"]
    assert "| 10.2 (10) | time cap |" in rows["at_cap"]
    assert "| 2.0 (10) | target |" in rows["at_target"]
    assert report.stopped_by(_saved_cyclegan()) == "epochs"
