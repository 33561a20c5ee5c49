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


def test_verdict_counts_the_windows_where_ours_was_not_slower():
    ours = _entry([100.0, 100.0, 100.0])
    assert report.verdict(ours, _entry([110.0, 105.0, 120.0])) == "slower in every window (3)"
    assert report.verdict(ours, _entry([90.0, 95.0, 80.0])) == "faster or equal in every window (3)"
    # A tie is not slower.
    assert report.verdict(ours, _entry([90.0, 105.0, 100.0])) == "faster or equal in 2 of 3 windows"
    assert (
        report.verdict(ours, _entry([100.0, 100.0, 100.0])) == "faster or equal in every window (3)"
    )
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
    # Ratio of medians 100 / 111 = 0.90; per-round ratios 0.909, 0.911, 0.883: median 0.91.
    assert "0.90x (paired rounds: median 0.91x, 0.88-0.92) vs tutorial" in text
    assert (
        "Against the TF tutorial's own step: **0.90x** (paired rounds: median 0.91x), "
        "slower in every window (3)" in text
    )
    assert "package's update: **1.01x** (paired rounds: median 1.01x), faster or equal" in text


def test_paired_median_is_the_median_of_the_per_round_ratios():
    ours, other = _entry([100.0, 90.0, 120.0]), _entry([50.0, 100.0, 120.0])
    assert report.paired_median(ours, other) == 1.0  # of 2.0, 0.9, 1.0
    assert report._paired(ours, other) == "1.00x (0.90-2.00)"
    assert report.paired_median(ours, {"windows": []}) is None
    cpu = {**ours, "cpu_windows": [10.0, 10.0, 10.0]}
    assert (
        report.paired_median(cpu, {**other, "cpu_windows": [5.0, 20.0, 4.0]}, "cpu_windows") == 2.0
    )


def test_throughput_table_has_ratio_of_medians_and_paired_ratios_wall_and_cpu():
    result = _results()["throughput"]["dcgan"]
    result["window_order"] = "rotated"
    result["contenders"]["ours"]["cpu_windows"] = [10.0, 10.0, 10.0]
    result["contenders"]["tutorial"]["cpu_windows"] = [5.0, 20.0, 4.0]
    text = "\n".join(report.render_throughput_model("dcgan", result))
    assert "the order rotated every round" in text
    # wall: 0.90x of medians, paired median 0.91x (0.88-0.92); CPU: 2.00x of medians (1.0/1.0
    # in _entry), paired median 2.00x of 2.0, 0.5, 2.5
    assert "| 0.90x | 0.91x (0.88-0.92) | 1.00x | 2.00x (0.50-2.50) |" in text
    # A run saved before the rotation says that its order was fixed.
    del result["window_order"]
    text = "\n".join(report.render_throughput_model("dcgan", result))
    assert "the same order every round" in text


def test_cyclegan_figures_are_image_pairs():
    results = _results()
    results["throughput"]["cyclegan"] = results["throughput"].pop("dcgan")
    table = "\n".join(report.render_throughput_model("cyclegan", results["throughput"]["cyclegan"]))
    assert "| Contender | image pairs/s (median) |" in table
    assert "image pairs per CPU-s" in table and "one T1 and one T2 slice" in table
    assert "ours 100.00 image pairs/s" in "\n".join(report.render_headline(results))
    dcgan = "\n".join(report.render_throughput_model("dcgan", _results()["throughput"]["dcgan"]))
    assert "| Contender | images/s (median) |" in dcgan and "pairs" not in dcgan


def test_eager_labels_say_which_loop_ran():
    results = _results()
    contenders = results["throughput"]["dcgan"]["contenders"]
    contenders["eager"] = {**_entry([40.0, 41.0, 42.0]), "variant": "dcgan_article_step, eager"}
    dcgan = "\n".join(report.render_throughput_model("dcgan", results["throughput"]["dcgan"]))
    assert "the article's loop corrected just enough to run, eager" in dcgan
    assert "second generator pass on the same noise" in dcgan
    headline = "\n".join(report.render_headline(results))
    assert "vs eager (the article's loop, corrected to run)" in headline
    # A run saved before the change timed the package's update eagerly: labelled as such.
    del contenders["eager"]["variant"]
    old = "\n".join(report.render_throughput_model("dcgan", results["throughput"]["dcgan"]))
    assert "the package's update (D, then G on the same fakes) run eagerly" in old
    assert "the article's loop corrected" not in old
    assert "vs eager (the package's update" in "\n".join(report.render_headline(results))
    vae = report.contender_label("vae", "eager", {"variant": "vae_step, eager"})
    assert "CVAE tutorial's step, eager" in vae and "article's VAE loop" in vae
    assert "no CycleGAN code" in report.contender_label("cyclegan", "eager", {})


def _run_script(*arguments):
    """``python benchmarks/run.py ARGUMENTS`` from the repository root, its output captured."""
    return subprocess.run(
        [sys.executable, "benchmarks/run.py", *arguments],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_render_writes_a_saved_run_again_and_measures_nothing(tmp_path):
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(_results()))
    out = tmp_path / "RESULTS.md"
    completed = _run_script("--render", str(saved), "--out", str(out))
    assert completed.returncode == 0, completed.stderr
    text = out.read_text()
    assert "in 600 s" in text and "nothing was re-measured" in text
    assert "| 100.00 | 100.0, 102.0, 98.0 (4 steps each) |" in text

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    completed = _run_script("--render", str(broken))
    assert completed.returncode != 0
    assert "broken.json: cannot read the results JSON" in completed.stderr


def test_window_range_rounds_outwards():
    ours = _entry([99.8, 100.0, 100.0])
    assert report._window_range(ours, _entry([100.0, 100.0, 98.0])) == "0.99-1.03"
    assert report._window_range(_entry([110.0]), _entry([100.0])) == "1.10-1.10"


def test_window_range_never_carries_a_ratio_across_1():
    # RESULTS.md's CycleGAN row: slower in all six rounds, the highest ratio 0.9946. Rounded up
    # it showed as 1.00 next to "slower in every window (6)".
    ratios = [0.9455, 0.9892, 0.9946, 0.9737, 0.9895, 0.9897]
    ours, tutorial = _entry(ratios), _entry([1.0] * len(ratios))
    assert report._window_range(ours, tutorial) == "0.94-0.99"
    assert report.verdict(ours, tutorial) == "slower in every window (6)"
    # Just below 1 at both ends: never 1.00, whichever way it is rounded.
    assert report._window_range(_entry([0.99999999]), _entry([1.0])) == "0.99-0.99"
    # 1 or more never shows below 1.00; outwards rounding away from 1 is kept.
    assert report._window_range(_entry([1.0, 1.004]), _entry([1.0, 1.0])) == "1.00-1.01"
    assert report._window_range(_entry([0.98, 1.0]), _entry([1.0, 1.0])) == "0.98-1.00"
    assert report._window_range(_entry([0.9, 1.001]), _entry([1.0, 1.0])) == "0.90-1.01"


def test_windows_column_rounds_unrounded_windows_for_display():
    # Windows are saved unrounded (six significant figures); the table rounds them: two
    # decimals below 10 (a CycleGAN's 0.4 pairs/s), one from 10 up.
    result = _results()["throughput"]["dcgan"]
    result["contenders"]["ours"]["windows"] = [123.456789, 9.87654, 0.387654]
    text = "\n".join(report.render_throughput_model("dcgan", result))
    assert "| 123.5, 9.88, 0.39 (4 steps each) |" in text
    # A run saved with two-decimal windows renders as before, its small windows in full.
    result["contenders"]["ours"]["windows"] = [1.9, 0.38, 100.0]
    text = "\n".join(report.render_throughput_model("dcgan", result))
    assert "| 1.90, 0.38, 100.0 (4 steps each) |" in text


def test_each_model_gets_its_own_tutorial_label():
    result = _results()["throughput"]["dcgan"]
    result["contenders"]["ours"]["fit_call_overhead_s"] = 0.1
    del result["contenders"]["tutorial_alternating"]  # a DCGAN-only contender
    vae = "\n".join(report.render_throughput_model("vae", result))
    dcgan = "\n".join(report.render_throughput_model("dcgan", result))
    cyclegan = "\n".join(report.render_throughput_model("cyclegan", result))
    assert "one tape" in vae and "two tapes" not in vae
    assert "one persistent tape" in cyclegan and "two tapes" not in cyclegan
    assert "two tapes, one forward pass for both updates" in dcgan
    assert "paid once per fit call" in dcgan


def test_warmup_label_says_what_the_run_timed():
    result = _results()["throughput"]["dcgan"]
    result["contenders"]["ours"]["fit_call_overhead_s"] = 0.1
    # A saved run from before the one-step warm-up: two warm-up steps, then a probe.
    old = "\n".join(report.render_throughput_model("dcgan", result))
    assert "warm-up (trace + first steps): ours 1.0 s" in old
    for entry in result["contenders"].values():
        entry["warmup"] = "first_step"
    new = "\n".join(report.render_throughput_model("dcgan", result))
    assert "warm-up (the trace and the first step; ours also fit's start): ours 1.0 s" in new


def _pipeline(model, rate, batch_size):
    return {
        "model": model,
        "slices_per_s": rate,
        "source": "medgen_tf.data.pipeline.make_dataset",
        "structure": "single array",
        "image_size": 64,
        "batch_size": batch_size,
    }


def test_pipeline_rate_is_set_against_its_own_models_consumption():
    throughput = _results()["throughput"]
    throughput["cyclegan"] = {**throughput["dcgan"], "contenders": {"ours": _entry([10.0])}}
    pipelines = {
        "dcgan": _pipeline("dcgan", 1000.0, 32),
        "cyclegan": _pipeline("cyclegan", 50.0, 1),
    }
    text = "\n".join(report.render_pipeline(pipelines, throughput))
    assert "| dcgan |" in text and "| 1,000 | 100.00 | 10.00x |" in text
    assert "| 50 | 10.00 | 5.00x |" in text
    headline = "\n".join(report.render_headline({"throughput": throughput, "pipeline": pipelines}))
    # The headline divides by what ours consumes, as the table does (100 images/s for the
    # DCGAN, though its tutorial contender runs at 111).
    assert "dcgan (batch 32) 1,000 slices/s = 10.00x what ours (fit) consumes" in headline
    assert "cyclegan (batch 1) 50 slices/s = 5.00x what ours (fit) consumes" in headline
    # A run saved before the pipelines were per model renders as it did.
    old = "\n".join(report.render_pipeline(_pipeline(None, 1000.0, 64), throughput))
    assert "Pipeline alone" in old and "| dcgan | 100.00 | 10.00x |" in old


def test_cpu_table_labels_ours_from_what_auto_resolved_to():
    def xla(resolved):
        ours = {**_entry([100.0]), "xla": resolved} if resolved is not None else _entry([100.0])
        return {"xla": {"contenders": {"ours": ours, "ours_xla": _entry([120.0])}}}

    assert "resolved to XLA on this machine" in "\n".join(report.render_cpu(xla(True)))
    assert "resolved to graph mode" in "\n".join(report.render_cpu(xla(False)))
    assert "resolves to this on CPU" in "\n".join(report.render_cpu(xla(None)))
    # Taken from the DCGAN throughput run's rounds, the row says so.
    merged = xla(False)
    merged["xla"]["measured_in"] = "throughput"
    assert "interleaved, in the DCGAN throughput run |" in "\n".join(report.render_cpu(merged))
    assert "in the DCGAN throughput run" not in "\n".join(report.render_cpu(xla(False)))


def test_header_lists_network_settings_not_the_recipes_training_slices_and_gpu_memory():
    result = _results()["throughput"]["dcgan"]
    result["built_by"] = (
        "medgen_tf.recipes: seed=0, image_size=64, domains={'spec_a': 'brain:t1', 'split': "
        "'train', 'subjects_a': [0, 1]}, total_steps=10, sample_indices=[0, 5]"
    )
    result["peak_rss_mib"], result["peak_gpu_mib"] = 900.0, 512.5
    header = report.render_throughput_model("cyclegan", result)[0]
    assert "Networks built by medgen_tf.recipes: seed=0, image_size=64, total_steps=10." in header
    assert "domains" not in header and "sample_indices" not in header
    assert "peak RSS 900.0 MiB, peak GPU memory 512.5 MiB" in header
    scaling = report.render_scaling(
        [("batch_size", {**result, "config": {"image_size": 64, "batch_size": 16}, "wall_s": 9})]
    )
    assert "peak RSS MiB (GPU MiB)" in scaling[0] and "| 900.0 (GPU 512.5) | 9 |" in scaling[2]
    del result["peak_gpu_mib"]
    assert "GPU" not in report.render_throughput_model("dcgan", result)[0]


def test_cpu_table_shows_both_mixed_precision_policies_and_a_hundredfold_slowdown():
    base = {"xla": {"contenders": {"ours": _entry([100.0]), "ours_xla": _entry([90.0])}}}
    float16 = {"config": {"batch_size": 32}, "contenders": {"ours": _entry([0.64])}}
    table = "\n".join(
        report.render_cpu(
            {
                **base,
                "mixed_bfloat16": {"contenders": {"ours": _entry([170.0])}},
                "mixed_float16": float16,
            }
        )
    )
    assert "`mixed_bfloat16` policy" in table and "| 1.70x |" in table
    # 0.64 images/s against 100: "0.0064x", not a rounded "0.01x"; and the step's seconds.
    assert "| 0.0064x |" in table and "a step of 32 images: 50.0 s" in table
    # A run saved before these rows existed renders without them.
    assert "mixed_" not in "\n".join(report.render_cpu(base))


def test_machine_table_lists_the_cpu_instruction_sets_when_recorded():
    facts = {"cpu_model": "x", "nproc": 2, "affinity": 2, "cpu_features": ["avx2", "amx_bf16"]}
    assert "| avx2, amx_bf16 |" in "\n".join(report.render_facts(facts))
    assert "| none of them |" in "\n".join(report.render_facts({**facts, "cpu_features": []}))
    assert "instruction sets" not in "\n".join(report.render_facts({"cpu_model": "x"}))


def test_headline_gives_the_mixed_precision_policies_against_float32():
    cpu = {
        "xla": {"contenders": {"ours": _entry([100.0]), "ours_xla": _entry([90.0])}},
        "mixed_bfloat16": {"contenders": {"ours": _entry([170.0])}},
        "mixed_float16": {"config": {"batch_size": 32}, "contenders": {"ours": _entry([0.64])}},
    }
    headline = "\n".join(report.render_headline({"cpu": cpu}))
    assert "`mixed_bfloat16` 1.70x" in headline
    assert "`mixed_float16` (what `--mixed-precision` sets) 0.0064x" in headline
    assert "a step of 32 images: 50.0 s" in headline
    del cpu["mixed_bfloat16"], cpu["mixed_float16"]
    assert "Mixed precision" not in "\n".join(report.render_headline({"cpu": cpu}))


def _stub_quality_run(monkeypatch, tmp_path):
    """run.main with the facts and the time-to-quality runs stubbed (nothing trains) and the
    committed RESULTS-quality files moved to ``tmp_path``."""
    from benchmarks import run

    curve = [(30.0, 20.0), (60.0, 24.0), (90.0, 26.5)]
    quality_results = {
        "vae": {
            "metric": "test PSNR (dB)",
            "target": 26.0,
            "higher_is_better": True,
            "reached": True,
            "seconds_to_target": 90.0,
            "best": 26.5,
            "epochs": 3,
            "curve": curve,
            "training_s": 90.0,
            "cap_s": 600,
            "stopped_by": "target",
        }
    }
    monkeypatch.setattr(run, "SAVED_QUALITY", tmp_path / "RESULTS-quality.json")
    monkeypatch.setitem(run.SECTION_FUNCTIONS, "facts", lambda options: {})
    monkeypatch.setattr(run, "section_quality", lambda options: quality_results)
    return run


def test_quality_run_without_out_writes_neither_the_figure_nor_the_json(
    monkeypatch, tmp_path, capsys
):
    run = _stub_quality_run(monkeypatch, tmp_path)
    assert run.main(["--quality"]) == 0
    # A figure alone would stand for curves that no JSON next to it holds.
    assert sorted(path.name for path in tmp_path.iterdir()) == []
    assert "| vae | test PSNR (dB) | 26.0 | yes |" in capsys.readouterr().out


def test_quality_run_with_out_writes_the_figure_next_to_its_json(monkeypatch, tmp_path):
    run = _stub_quality_run(monkeypatch, tmp_path)
    assert run.main(["--quality", "--out", str(tmp_path / "quality.md")]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "quality.json",
        "quality.md",
        "quality.png",
    ]
    assert json.loads((tmp_path / "quality.json").read_text())["quality"]["vae"]["curve"]


def _cyclegan_throughput(mixed_precision):
    return {
        "throughput": {
            "cyclegan": {
                "mixed_precision": mixed_precision,
                "contenders": {
                    "ours": _entry([1.0, 1.1, 0.9]),
                    "tutorial": _entry([1.0, 1.0, 1.0]),
                },
            }
        }
    }


def test_cyclegan_headline_says_one_backward_pass_per_generator_when_the_loss_is_scaled():
    # CycleGAN.train_step shares one backward pass between the generators only when neither
    # optimizer scales the loss; each LossScaleOptimizer (mixed_float16) scales its own.
    for mixed_precision in (True, "mixed_float16"):
        text = "\n".join(report.render_headline(_cyclegan_throughput(mixed_precision)))
        assert "one backward pass for both" not in text
        assert "one backward pass per generator" in text
    for mixed_precision in (False, "mixed_bfloat16"):
        text = "\n".join(report.render_headline(_cyclegan_throughput(mixed_precision)))
        assert "one backward pass for both generators" in text


def test_timing_lines_of_a_committed_notebook_are_times_not_table_headers():
    from benchmarks import run

    content = {
        "metadata": {"medgen_tf": {"mode": "full"}},
        "cells": [
            {
                "outputs": [
                    {
                        "text": [
                            "CycleGAN: 7 epochs, 1008 steps of 4 image pairs, 3.5 minutes\n",
                            "epoch   1      22 s  validation PSNR 17.36 dB\n",
                            "method        subject 28  subject 31            min to max\n",
                            "11520 paired slices in 10 epochs: 101,161 slices/s\n",
                        ]
                    }
                ]
            }
        ],
    }
    # Notebook 03's per-subject table header was quoted as a timing line in RESULTS.md.
    assert run.full_mode_lines(content) == [
        "[mode: full]",
        "CycleGAN: 7 epochs, 1008 steps of 4 image pairs, 3.5 minutes",
        "epoch   1      22 s  validation PSNR 17.36 dB",
        "11520 paired slices in 10 epochs: 101,161 slices/s",
    ]


def test_render_can_read_the_committed_notebooks_again_and_keeps_the_quick_times(tmp_path):
    # After a notebook is re-run in full mode, RESULTS.md quoted its old run until the next
    # make bench; --reread-notebooks refreshes those rows alone.
    from benchmarks import run

    results = _results()
    stale = {"mode": "full", "date": "2020-01-01", "minutes": 99.9}
    results["notebooks"] = [
        {
            "notebook": "00_medical_images_as_data.ipynb",
            "full_run": stale,
            "full_mode_lines": ["stale"],
            "quality_lines": [],
            "quick_s": 12.3,
            "quick_status": "ok",
        }
    ]
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(results))
    out = tmp_path / "RESULTS.md"
    completed = _run_script("--render", str(saved), "--out", str(out), "--reread-notebooks")
    assert completed.returncode == 0, completed.stderr
    row = json.loads(saved.read_text())["notebooks"][0]
    committed = run.read_notebook(REPO_DIR / "notebooks" / "00_medical_images_as_data.ipynb")
    assert row["full_run"] == run.committed_run(committed) != stale
    assert row["full_mode_lines"] == run.full_mode_lines(committed)
    assert row["quick_s"] == 12.3
    text = out.read_text()
    assert "read again from the committed notebooks" in text and "| 12.3 | ok |" in text
    completed = _run_script("--reread-notebooks")
    assert completed.returncode == 2 and "goes with --render" in completed.stderr
