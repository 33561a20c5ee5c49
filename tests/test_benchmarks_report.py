"""The benchmark report: window-by-window ratios, the verdict they give, and rendering a saved
run again without measuring. Speed itself is never tested here."""

import json
import subprocess
import sys

from medgen_tf.config import REPO_DIR

if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from benchmarks import report  # noqa: E402


def _entry(windows):
    return {
        "images_per_s": sorted(windows)[len(windows) // 2],
        "images_per_cpu_s": 1.0,
        "windows": windows,
        "steps_per_window": 4,
        "warmup_s": 1.0,
    }


def test_window_ratios_pair_the_interleaved_windows():
    ours, other = _entry([100.0, 90.0, 120.0]), _entry([50.0, 100.0, 120.0])
    assert report.window_ratios(ours, other) == [2.0, 0.9, 1.0]


def test_verdict_counts_the_windows_where_ours_was_faster():
    ours = _entry([100.0, 100.0, 100.0])
    assert report.verdict(ours, _entry([110.0, 105.0, 120.0])) == "slower in every window (3)"
    assert report.verdict(ours, _entry([90.0, 95.0, 80.0])) == "faster in every window (3)"
    # A tie is not faster.
    assert report.verdict(ours, _entry([90.0, 105.0, 100.0])) == "faster in 1 of 3 windows"
    assert report.verdict(ours, {"windows": []}) == "n/a"


def _results():
    return {
        "command": "python benchmarks/run.py --out benchmarks/RESULTS.md",
        "total_s": 600.0,
        "throughput": {
            "dcgan": {
                "config": {"batch_size": 32},
                "config_source": "test",
                "data_source": "test",
                "contenders": {
                    "ours": _entry([100.0, 102.0, 98.0]),
                    "tutorial": _entry([110.0, 112.0, 111.0]),
                    "tutorial_alternating": _entry([99.0, 103.0, 97.0]),
                },
            }
        },
    }


def test_headline_gives_each_ratio_its_range_and_verdict():
    text = "\n".join(report.render_headline(_results()))
    assert "0.90x (windows 0.88-0.91) vs tutorial" in text
    assert "Against the TF tutorial's own step: **0.90x**, slower in every window (3)" in text
    assert "package's update: **1.01x**, faster in 2 of 3 windows" in text


def test_render_writes_a_saved_run_again_and_measures_nothing(tmp_path):
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(_results()))
    out = tmp_path / "RESULTS.md"
    completed = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--render", str(saved), "--out", str(out)],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    text = out.read_text()
    assert "in 600 s" in text and "nothing was re-measured" in text
    assert "| 100.00 | 100.0, 102.0, 98.0 (4 steps each) |" in text

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    completed = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--render", str(broken)],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode != 0
    assert "broken.json: cannot read the results JSON" in completed.stderr
