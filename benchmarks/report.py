"""Render the results dict of ``run.py`` as the Markdown of ``benchmarks/RESULTS.md``."""

from __future__ import annotations

import math
import re
import statistics

CONTENDER_LABELS = {
    "ours": "ours: `model.fit` (compiled `train_step`)",
    "ours_xla": "ours, `jit_compile=True` (XLA)",
    "tutorial": "TF tutorial's own step (`@tf.function`)",
    "tutorial_xla": "TF tutorial, `tf.function(jit_compile=True)`",
    "tutorial_alternating": "tutorial-style `@tf.function`, two tapes, the package's update (D, then G on the same fakes) and optimizer",
    "eager": "eager (no `tf.function`)",
    "ours_simultaneous": "control: `fit` running the tutorial's update (not the package's)",
    "ours_fresh_noise": "control: `fit`, alternating update with a second generator pass on new noise (keras.io's DCGAN)",
}

# The TF tutorial's step is written differently for each model (benchmarks/reference_loops.py).
TUTORIAL_LABELS = {
    "dcgan": "TF tutorial's own step: `@tf.function`, two tapes, one forward pass for both updates",
    "vae": "TF tutorial's own step (CVAE): `@tf.function`, one tape",
    "cyclegan": "TF tutorial's own step: `@tf.function`, one persistent tape for the four networks",
}


# The eager contender of each model: what it runs (benchmarks/reference_loops.py).
EAGER_LABELS = {
    "dcgan": (
        "the article's loop corrected just enough to run, eager (no `tf.function`): G's step, "
        "then D's step with a second generator pass on the same noise"
    ),
    "vae": (
        "the CVAE tutorial's step, eager (no `tf.function`): also the article's VAE loop "
        "corrected just enough to run (one tape, one optimizer for both networks)"
    ),
    "cyclegan": (
        "the TF tutorial's step, eager (no `tf.function`); the article has no CycleGAN code"
    ),
}
# Runs saved before the DCGAN's eager contender was the article's loop (no "variant" in them)
# timed the package's update run eagerly: say so when such a run is rendered again.
OLD_DCGAN_EAGER_LABEL = (
    "the package's update (D, then G on the same fakes) run eagerly (no `tf.function`), "
    "not the article's loop"
)


def contender_label(model, name, entry=None):
    if name == "tutorial" and model in TUTORIAL_LABELS:
        return TUTORIAL_LABELS[model]
    if name == "eager" and model in EAGER_LABELS:
        if model == "dcgan" and entry is not None and "variant" not in entry:
            return OLD_DCGAN_EAGER_LABEL
        return EAGER_LABELS[model]
    return CONTENDER_LABELS.get(name, name)


def short_name(model, name, entry=None):
    """The contender's name in the headline: ``eager`` says which loop it is for the DCGAN."""
    if model == "dcgan" and name == "eager":
        if entry is not None and "variant" not in entry:
            return "eager (the package's update, not the article's loop)"
        return "eager (the article's loop, corrected to run)"
    return name


# What one example is: a CycleGAN step trains on one T1 and one T2 slice.
UNITS = {"cyclegan": "image pairs"}


def unit(model):
    """``images`` or ``image pairs``: what the throughput figures of ``model`` count."""
    return UNITS.get(model, "images")


def _number(value, digits=1):
    return "n/a" if value is None else f"{value:.{digits}f}"


def _window_text(value):
    """One window's throughput in the windows column. The saved windows are not rounded (the
    paired ratios are computed from them); here they are: one decimal from 10 up, two below,
    so that a CycleGAN window of 0.38 pairs/s does not show as 0.4."""
    if value is None:
        return "n/a"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _ratio(numerator, denominator):
    if not numerator or not denominator:
        return "n/a"
    ratio = numerator / denominator
    if ratio < 0.095:  # two significant figures, not "0.01x" for a hundredfold slowdown
        return f"{ratio:.2g}x"
    return f"{ratio:.2f}x"


def window_ratios(ours, other, key="windows"):
    """``ours / other`` window by window. The contenders' windows are interleaved (one window of
    each per round), so window ``i`` of both ran under the same load; their ratios show how far
    the machine's noise alone moves the comparison. ``key="cpu_windows"``: per CPU-second."""
    pairs = zip(ours.get(key) or [], other.get(key) or [], strict=False)
    return [a / b for a, b in pairs if a and b]


def verdict(ours, other):
    """In how many of the interleaved windows ours was not slower (a tie counts with the
    faster): one disturbed window can reverse a single ratio, so the count says more than a
    yes or no."""
    ratios = window_ratios(ours, other)
    if not ratios:
        return "n/a"
    not_slower = sum(ratio >= 1.0 for ratio in ratios)
    if not_slower in (0, len(ratios)):
        return f"{'faster or equal' if not_slower else 'slower'} in every window ({len(ratios)})"
    return f"faster or equal in {not_slower} of {len(ratios)} windows"


def _floor2(value):
    # round() first so that 1.1 * 100 = 110.00000000000001 does not become 1.11
    return math.floor(round(value * 100, 6)) / 100


def _ceil2(value):
    return math.ceil(round(value * 100, 6)) / 100


def _same_side_of_1(value, rounded):
    """``rounded`` moved, if needed, to the side of 1 where ``value`` is: a ratio below 1 never
    shows as 1.00 or more (0.9946 rounded up would be 1.00: it shows as 0.99), and a ratio of 1
    or more never below 1.00."""
    if value < 1.0:
        return min(rounded, 0.99)
    return max(rounded, 1.0)


def _window_range(ours, other, key="windows"):
    """Lowest and highest window ratio, rounded outwards (down and up), except where rounding
    outwards would carry a ratio across 1: a window below 1 never shows as 1.00 (the highest,
    0.9946, shows as 0.99, not 1.00) and one of 1 or more never below 1.00."""
    ratios = window_ratios(ours, other, key)
    if not ratios:
        return "n/a"
    low, high = min(ratios), max(ratios)
    low_text = _same_side_of_1(low, _floor2(low))
    high_text = _same_side_of_1(high, _ceil2(high))
    return f"{low_text:.2f}-{high_text:.2f}"


def paired_median(ours, other, key="windows"):
    """Median of the per-round ratios ``ours / other`` (None without windows). Unlike the
    ratio of the two medians it compares windows that ran under the same load."""
    ratios = window_ratios(ours, other, key)
    return statistics.median(ratios) if ratios else None


def _paired(ours, other, key="windows"):
    """``median (min-max)`` of the per-round ratios, or n/a."""
    median = paired_median(ours, other, key)
    if median is None:
        return "n/a"
    return f"{median:.2f}x ({_window_range(ours, other, key)})"


def _ratio_with_range(ours, other):
    text = _ratio(ours.get("images_per_s"), other.get("images_per_s"))
    median = paired_median(ours, other)
    if median is None:
        return text
    return f"{text} (paired rounds: median {median:.2f}x, {_window_range(ours, other)})"


def _error(result):
    return isinstance(result, dict) and "error" in result


def render_facts(facts):
    if _error(facts):
        return [f"Machine facts not measured: {facts['error']}", ""]
    lines = [
        "| | |",
        "|---|---|",
        f"| Date | {facts.get('date_utc')} |",
        f"| CPU | {facts.get('cpu_model')}, {facts.get('nproc')} logical CPUs "
        f"({facts.get('affinity')} usable by this process) |",
        f"| GPU | {', '.join(facts.get('gpus') or []) or 'none'} |",
        *_cpu_features_row(facts),
        f"| Python / TensorFlow / Keras / NumPy | {facts.get('python')} / "
        f"{facts.get('tensorflow')} / {facts.get('keras')} / {facts.get('numpy')} |",
        f"| TF threads (intra / inter op; 0 = one per core) | "
        f"{facts.get('intra_op_threads')} / {facts.get('inter_op_threads')} |",
        f"| oneDNN (`TF_ENABLE_ONEDNN_OPTS`) | {facts.get('onednn_env')} |",
        f"| Platform | {facts.get('platform')} |",
    ]
    return lines + [""]


def _cpu_features_row(facts):
    if "cpu_features" not in facts:  # a run from before this row existed
        return []
    features = facts["cpu_features"]
    shown = "not readable" if features is None else ", ".join(features) or "none of them"
    return [
        f"| CPU instruction sets (of AVX2, AVX-512, AVX-512 BF16, AMX BF16, AVX-512 FP16) | {shown} |"
    ]


def render_load(results):
    lines = []
    for key, label in (("load_at_start", "start"), ("load_at_end", "end")):
        load = results.get(key) or results.get("facts", {}).get(key)
        if not load:
            continue
        others = "; ".join(load["busy_processes"]) or "none over 10 % CPU"
        lines.append(
            f"- At the {label}: load average (1, 5, 15 min) {load['load_average']}; other "
            f"processes over 10 % CPU (ps, averaged over their lifetime): {others}."
        )
    return lines + [""] if lines else []


def _network_settings(built_by):
    """``built_by`` less the recipe's choice of training slices (``domains``,
    ``sample_indices``), which runs saved before harness.py left them out still list: the
    timed data is ``harness.model_arrays``, named in the data source."""
    head, separator, items = built_by.partition(": ")
    if not separator or not head.startswith("medgen_tf.recipes"):
        return built_by
    kept = [
        item
        for item in re.split(r", (?=\w+=)", items)
        if not item.startswith(("domains=", "sample_indices="))
    ]
    return f"{head}: {', '.join(kept)}"


def render_throughput_model(model, result):
    if _error(result):
        return [f"**{model}**: not measured ({result['error']})", ""]
    config = result["config"]
    contenders = result["contenders"]
    ours = contenders.get("ours", {})
    built_by = _network_settings(result.get("built_by", "the model builders"))
    if built_by.startswith("medgen_tf.recipes"):
        # The recipe's settings (in built_by) are the ones used; show only the batch here.
        config = {"batch_size": config["batch_size"]}
    what = unit(model)
    order = (
        "the order rotated every round"
        if result.get("window_order") == "rotated"
        else "the same order every round (a run from before the order rotated)"
    )
    lines = [
        f"**{model.upper()}** ({', '.join(f'{k}={v}' for k, v in config.items())}; sizes from "
        f"{result['config_source']}; data from {result['data_source']}; peak RSS "
        f"{result.get('peak_rss_mib')} MiB{_gpu_peak(result)}). Networks built by "
        f"{built_by}. Windows interleaved, {order}.",
        "",
    ]
    if model in UNITS:
        lines += [
            f"Counted in {what}: each example is one T1 and one T2 slice (batch of "
            f"{result['config'].get('batch_size')}); the ratios do not depend on the unit.",
            "",
        ]
    lines += [
        f"| Contender | {what}/s (median) | windows | {what} per CPU-s | ours / this (wall), "
        "ratio of medians | ours / this (wall), paired by round: median (min-max) "
        "| ours / this (CPU), ratio of medians | ours / this (CPU), paired: median (min-max) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, entry in contenders.items():
        label = contender_label(model, name, entry)
        if entry.get("optimizer"):
            label += f"; optimizer `{entry['optimizer']}`"
        lines.append(
            f"| {label} | {_number(entry['images_per_s'], 2)} | "
            f"{', '.join(_window_text(w) for w in entry['windows'])} "
            f"({entry['steps_per_window']} steps each) | "
            f"{_number(entry.get('images_per_cpu_s'), 2)} | "
            f"{_ratio(ours.get('images_per_s'), entry['images_per_s'])} | "
            f"{_paired(ours, entry)} | "
            f"{_ratio(ours.get('images_per_cpu_s'), entry.get('images_per_cpu_s'))} | "
            f"{_paired(ours, entry, 'cpu_windows')} |"
        )
    if "fit_call_overhead_s" in ours:
        lines.append("")
        lines.append(
            f"fit's per-call start/stop (outside the timed steps; paid once per fit call): "
            f"{ours['fit_call_overhead_s']} s; warm-up ({_warmup_label(contenders)}): "
            + ", ".join(f"{n} {e['warmup_s']} s" for n, e in contenders.items())
        )
    return lines + [""]


def _warmup_label(contenders):
    """What the warm-up figures hold: runs that record ``warmup`` time the first step (fit:
    its start too); older runs warmed up for two steps before a probe step."""
    if all(e.get("warmup") == "first_step" for e in contenders.values()):
        return "the trace and the first step; ours also fit's start"
    return "trace + first steps"


def _auto_mode(entry):
    """What ``jit_compile="auto"`` resolved to for ``entry`` (runs before the field existed
    were all on a CPU: graph mode)."""
    return "XLA" if entry.get("xla") else "graph mode"


def _auto_row_label(entry):
    if "xla" not in entry:
        return 'graph mode (`jit_compile="auto"` resolves to this on CPU)'
    return f'`jit_compile="auto"`, resolved to {_auto_mode(entry)} on this machine'


def render_cpu(cpu):
    lines = []
    xla = cpu.get("xla", {})
    if _error(xla) or not xla:
        lines.append(f"XLA vs graph mode: not measured ({xla.get('error', 'not run')})")
        base = None
    else:
        c = xla["contenders"]
        base = c["ours"]["images_per_s"]
        mode = _auto_mode(c["ours"])
        lines += [
            f"| DCGAN, ours (fit) | images/s | images per CPU-s | vs {mode} (wall) | warm-up s |",
            "|---|---:|---:|---:|---:|",
            f"| {_auto_row_label(c['ours'])} | "
            f"{_number(base, 2)} | {_number(c['ours']['images_per_cpu_s'], 2)} | 1.00x | "
            f"{c['ours']['warmup_s']} |",
            "| XLA (`jit_compile=True`), same process, interleaved"
            + (", in the DCGAN throughput run" if xla.get("measured_in") == "throughput" else "")
            + " | "
            f"{_number(c['ours_xla']['images_per_s'], 2)} | "
            f"{_number(c['ours_xla']['images_per_cpu_s'], 2)} | "
            f"{_ratio(c['ours_xla']['images_per_s'], base)} | {c['ours_xla']['warmup_s']} |",
        ]
    for key, label in (
        ("onednn_off", "oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`), own process"),
        ("one_thread", "1 intra-op + 1 inter-op thread, own process"),
        ("mixed_bfloat16", "`mixed_bfloat16` policy (no loss scaling), own process"),
        (
            "mixed_float16",
            "`mixed_float16` policy with `LossScaleOptimizer` (`--mixed-precision`), own process",
        ),
    ):
        result = cpu.get(key, {})
        if key not in cpu and key.startswith("mixed_"):
            continue  # a run from before these rows existed
        if _error(result) or not result:
            lines.append(f"| {label} | not measured: {result.get('error', 'not run')} | | | |")
            continue
        entry = result["contenders"]["ours"]
        label += _own_process_note(result, show_step=key == "mixed_float16")
        lines.append(
            f"| {label} | {_number(entry['images_per_s'], 2)} | "
            f"{_number(entry['images_per_cpu_s'], 2)} | {_ratio(entry['images_per_s'], base)} | "
            f"{entry['warmup_s']} |"
        )
    return lines + [""]


def _own_process_note(result, show_step=False):
    """How a row measured alone in its process (``task_fit_steps``) was timed; with
    ``show_step``, its batch and the time of one step."""
    entry = result["contenders"]["ours"]
    if "warmup_steps" not in entry:  # a run from before one-fit-call rows: its label said
        if show_step and entry.get("images_per_s"):
            batch_size = (result.get("config") or {}).get("batch_size")
            return (
                f", one timed step after one warm-up step (a step of {batch_size} images: "
                f"{batch_size / entry['images_per_s']:.1f} s)"
            )
        return ""
    steps, warmup = entry["steps_per_window"], entry["warmup_steps"]
    note = (
        f", one fit call: {steps} timed step{'s' if steps != 1 else ''} after {warmup} "
        f"warm-up step{'s' if warmup != 1 else ''}"
    )
    batch_size = (result.get("config") or {}).get("batch_size")
    seconds = batch_size / entry["images_per_s"] if entry.get("images_per_s") else None
    if show_step and seconds is not None:
        note += f" (batch {batch_size}; a step of {batch_size} images: {seconds:.1f} s)"
    return note


def _pipelines(pipeline):
    """``{model: result}`` of a run, or None for a run that measured one pipeline for all."""
    if _error(pipeline) or "slices_per_s" in pipeline:
        return None
    return pipeline


def render_pipeline(pipeline, throughput):
    if _error(pipeline):
        return [f"Input pipeline: not measured ({pipeline['error']})", ""]
    per_model = _pipelines(pipeline)
    if per_model is not None:
        return render_model_pipelines(per_model, throughput)
    rate = pipeline["slices_per_s"]
    lines = [
        f"Pipeline alone ({pipeline['source']}, {pipeline['image_size']} px, batch "
        f"{pipeline['batch_size']}): **{rate:,.0f} slices/s**.",
        "",
        "| Consumer (ours, fit) | images/s consumed | pipeline / consumption |",
        "|---|---:|---:|",
    ]
    for model, result in (throughput or {}).items():
        if _error(result) or "ours" not in result.get("contenders", {}):
            continue
        consumed = result["contenders"]["ours"]["images_per_s"]
        lines.append(f"| {model} | {_number(consumed, 2)} | {_ratio(rate, consumed)} |")
    return lines + [""]


def render_model_pipelines(pipelines, throughput):
    """Each model's own pipeline (its arrays, its batch size) against what its fit consumes."""
    lines = [
        "Each model's own pipeline, alone (no model): the arrays and batch size its training "
        "uses, through the same `make_dataset`.",
        "",
        "| Consumer (ours, fit) | pipeline | batch | pipeline slices/s | images/s consumed "
        "(CycleGAN: image pairs/s, a slice being a pair) | pipeline / consumption |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for model, result in pipelines.items():
        if _error(result):
            lines.append(f"| {model} | not measured: {result['error'][:80]} | | | | |")
            continue
        rate = result["slices_per_s"]
        consumed = None
        measured = (throughput or {}).get(model)
        if measured and not _error(measured) and "ours" in measured.get("contenders", {}):
            consumed = measured["contenders"]["ours"]["images_per_s"]
        lines.append(
            f"| {model} | {result['source']}, {result.get('structure', '')}, "
            f"{result['image_size']} px | {result['batch_size']} | {rate:,.0f} | "
            f"{_number(consumed, 2)} | {_ratio(rate, consumed)} |"
        )
    return lines + [""]


def _gpu_peak(result):
    peak = result.get("peak_gpu_mib")
    return "" if peak is None else f", peak GPU memory {peak} MiB"


SCALING_SETTINGS = ("warmup_steps", "min_timed_steps", "min_seconds")


def render_scaling(rows):
    on_gpu = any("peak_gpu_mib" in result for _, result in rows)
    memory = "peak RSS MiB (GPU MiB)" if on_gpu else "peak RSS MiB"
    lines = [
        f"| Sweep | image_size | batch_size | images/s (ours, fit) | timed steps | {memory} "
        "| process wall s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for sweep, result in rows:
        if _error(result):
            lines.append(f"| {sweep} | | | not measured: {result['error'][:80]} | | | |")
            continue
        config = result["config"]
        entry = result["contenders"]["ours"]
        gpu = f" (GPU {result['peak_gpu_mib']})" if "peak_gpu_mib" in result else ""
        # Interleaved-window runs (before one fit call per row) timed their steps in windows.
        steps = entry.get("steps_per_window", "")
        steps = steps and steps * len(entry.get("windows", [1]))
        lines.append(
            f"| {sweep} | {config['image_size']} | {config['batch_size']} | "
            f"{_number(entry['images_per_s'], 2)} | {steps} | "
            f"{result['peak_rss_mib']}{gpu} | {result['wall_s']} |"
        )
    settings = {
        tuple(result["contenders"]["ours"].get(key) for key in SCALING_SETTINGS)
        for _, result in rows
        if not _error(result)
    }
    if len(settings) == 1 and None not in next(iter(settings)):
        warmup, steps, seconds = next(iter(settings))
        lines += [
            "",
            f"Each row is one `fit` call alone in its own process: {warmup} untimed warm-up "
            f"steps (the first traces), then timed steps until at least {steps} of them and "
            f"{seconds:g} s have passed; images/s is their images over their wall time.",
        ]
    resized = sorted(
        {
            result["config"]["image_size"]
            for _, result in rows
            if not _error(result) and "resized to" in result.get("data_source", "")
        }
    )
    if resized:
        lines += [
            "",
            f"At {', '.join(f'{size} px' for size in resized)} the images are the 64 px slices "
            "resized (`tf.image.resize`, antialiased): a step's time depends on the arrays' "
            "shape, not on what they show, and the sweep needs no cohort built at those sizes.",
        ]
    return lines + [""]


def render_notebooks(rows):
    lines = [
        "| Notebook | quick mode (`MEDGEN_QUICK=1`, nbconvert --execute), s | status | "
        "full mode, min (the committed run) | full mode: lines printed by the committed run |",
        "|---|---:|---|---:|---|",
    ]
    for row in rows:
        printed = (
            "<br>".join(line.replace("|", "/") for line in row["full_mode_lines"])
            or "no timing line found in the committed outputs"
        )
        full = row.get("full_run") or {}
        full_text = (
            f"{full['minutes']:.1f} ({full['mode']} mode, {full['date']})" if full else "n/a"
        )
        lines.append(
            f"| {row['notebook']} | {_number(row['quick_s'])} | {row['quick_status']} | "
            f"{full_text} | {printed} |"
        )
    total = sum((row.get("full_run") or {}).get("minutes", 0.0) for row in rows)
    return lines + [
        "",
        f"Full mode is not re-run by `make bench` ({total:.0f} minutes in all): its minutes "
        "are the span of the cell execution timestamps that `nbconvert --execute` recorded in "
        "the committed notebook.",
        "",
    ]


def _curve_text(curve, points=10):
    """``minutes: value`` pairs, thinned to about ``points`` (the last one always kept)."""
    if len(curve) > points:
        step = -(-len(curve) // points)
        curve = curve[::step] + ([curve[-1]] if (len(curve) - 1) % step else [])
    return ", ".join(f"{seconds / 60:.1f}: {value:.3f}" for seconds, value in curve)


def stopped_by(result):
    """Why a time-to-quality run ended: "target", "cap" or "epochs". Results saved before the
    runs recorded it get it from what they saved (the callback stops at the first epoch at
    the target, else at the first at the cap; otherwise fit ran out of epochs)."""
    if result.get("stopped_by"):
        return result["stopped_by"]
    if result["reached"]:
        return "target"
    return "cap" if result["training_s"] >= result["cap_s"] else "epochs"


STOP_REASONS = {"target": "target", "cap": "time cap", "epochs": "its last epoch"}


def render_quality(quality):
    lines = [
        "| Model | metric | target | reached | training min to target | best | epochs | "
        "training min (cap) | stopped by | settings |",
        "|---|---|---:|---|---:|---:|---:|---:|---|---|",
    ]
    curves = []
    for model, result in quality.items():
        if _error(result):
            lines.append(f"| {model} | not measured: {result['error'][:120]} | | | | | | | | |")
            continue
        target = result["target"]
        if model == "dcgan" and result.get("floor") is not None:
            target = f"{target} (2x the floor {result['floor']})"
        to_target = result.get("seconds_to_target")
        reason = stopped_by(result)
        lines.append(
            f"| {model} | {result['metric']} | {target} | "
            f"{'yes' if result['reached'] else 'no'} | "
            f"{'n/a' if to_target is None else f'{to_target / 60:.1f}'} | "
            f"{_number(result.get('best'), 3)} | {result['epochs']} | "
            f"{result['training_s'] / 60:.1f} ({result['cap_s'] / 60:.0f}) | "
            f"{STOP_REASONS.get(reason, reason)} | "
            f"{result.get('settings', '')} |"
        )
        curves.append(f"- {model} (training minutes: score): {_curve_text(result['curve'])}")
    notes = [
        "",
        "Training time only: the clock stops while the model is scored after each epoch. A run "
        "stops at its target, at its time cap, or after its last epoch (the CycleGAN trains "
        "notebook 03's fixed number of epochs, over which its learning rate decays to zero). "
        "Curves (all points in the JSON, plotted in `RESULTS-quality.png`):",
        "",
    ]
    return lines + notes + curves + [""]


def render_quoted_quality(rows):
    lines = [
        "Quality lines printed by the notebooks' committed full-mode runs (source: the "
        "notebook outputs, not this run):",
        "",
    ]
    for row in rows:
        quoted = [line.replace("|", "/") for line in row.get("quality_lines", [])]
        if quoted:
            lines.append(f"- {row['notebook']}: " + "; ".join(quoted))
    return lines + [""]


def render_saved_quality(saved):
    """The time-to-quality runs of ``make bench-quality`` (too long for ``make bench``)."""
    if not saved or "quality" not in saved:
        return [
            "No `make bench-quality` results yet (`benchmarks/RESULTS-quality.json`): each "
            "model trains for up to 10 minutes there, too long for `make bench`.",
            "",
        ]
    load = (saved.get("facts") or {}).get("load_at_start", {}).get("load_average")
    return [
        f"Not re-measured by this run (each model trains for up to 10 minutes): from "
        f"`make bench-quality` on {(saved.get('facts') or {}).get('date_utc', '?')} "
        f"(`{saved.get('command', '?')}`, {saved.get('total_s', 0) / 60:.0f} min, load average "
        f"at the start {load}); full report in `benchmarks/RESULTS-quality.md`.",
        "",
    ] + render_quality(saved["quality"])


def render_profile(profile):
    if _error(profile):
        return [f"Not measured: {profile['error'][:200]}", ""]
    config = profile["config"]
    lines = [
        f"Each piece timed alone as a `tf.function` (median of interleaved repeats; DCGAN "
        f"{config['image_size']} px, batch {config['batch_size']}, base_filters "
        f"{config['base_filters']}).",
        "",
        "| Piece | ms |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {ms:.1f} |" for name, ms in profile["milliseconds"].items()]
    lines += [
        "",
        f"Ours minus the tutorial's step: {profile['ours_minus_tutorial_ms']:.1f} ms; one "
        f"discriminator forward pass alone: {profile['discriminator_forward_ms']:.1f} ms. The "
        "package's step runs every piece of the tutorial's plus one more discriminator "
        "forward pass, on the fakes after D's update: the price of updating the networks in "
        "turn (the tutorial takes G's gradient from the pass before D's update). Where the "
        "difference exceeds one pass, the rest is not attributed by this profile; the update "
        "in turn also orders the work (G's step waits for D's update), which leaves the two "
        "cores less to run side by side.",
        "",
    ]
    if "optimizer_saving_ms" in profile:
        lines[-1:] = [
            "",
            f"The other way round: updating the {profile['weights']:,} weights of G and D "
            f"takes {_less_or_more(profile['optimizer_saving_ms'])} with the package's "
            "`FusedAdam` (one `ResourceApplyAdam` kernel per weight) than with Keras' Adam, "
            "which the tutorial writes (about eleven element-wise ops per weight, each a pass "
            "over memory). Same formula and state: `tests/test_layers.py`.",
            "",
        ]
    if "stacking_saving_ms" in profile:
        lines[-1:] = [
            "",
            f"And D's gradients take {_less_or_more(profile['stacking_saving_ms'])} from one "
            "pass over the real and fake batches stacked, as the package takes them, than from "
            "the tutorial's two passes (the same logits: D has no batch norm); a difference of a "
            "few ms is within the repeats' noise.",
            "",
        ]
    return lines


def _less_or_more(saving_ms):
    # A saving that came out negative is a cost: "-4.9 ms less" read as a typo.
    return f"{abs(saving_ms):.1f} ms {'less' if saving_ms >= 0 else 'more'}"


# Why ours and the TF tutorial's step differ in work, per model: quoted next to the ratio.
WORK_DIFFERENCE = {
    "dcgan": (
        "the tutorial takes both networks' gradients from one forward pass; the package updates "
        "D, then G against the updated D, which costs one more discriminator forward pass per "
        "step, and takes D's gradients from one pass over the real and fake batches stacked "
        "where the tutorial makes two (profile below)"
    ),
    "vae": "same work: one tape, the same ELBO; ours adds fit's loop and three Mean trackers",
    "cyclegan": (
        "ours lets the discriminators judge fakes from the image pool (two more discriminator "
        "passes per step), runs each generator once over its translation and identity batches "
        "stacked (4 generator passes per step where the tutorial makes 6) and takes one "
        "backward pass for both generators where the tutorial takes one per generator"
    ),
}
# Under mixed_float16 each generator's LossScaleOptimizer scales the loss on its own, and
# CycleGAN.train_step then takes one backward pass per generator, as the tutorial does.
WORK_DIFFERENCE_LOSS_SCALED = {
    "cyclegan": (
        "ours lets the discriminators judge fakes from the image pool (two more discriminator "
        "passes per step) and runs each generator once over its translation and identity "
        "batches stacked (4 generator passes per step where the tutorial makes 6); with the "
        "loss scaled (mixed_float16) ours, like the tutorial, takes one backward pass per "
        "generator"
    ),
}


def work_difference(model, result):
    """Why ours and the TF tutorial's step differ in work, for ``result``'s precision."""
    # mixed_bfloat16 scales no loss: only float16 (True is --mixed-precision's mixed_float16).
    loss_scaled = result.get("mixed_precision") in (True, "mixed_float16")
    if loss_scaled and model in WORK_DIFFERENCE_LOSS_SCALED:
        return WORK_DIFFERENCE_LOSS_SCALED[model]
    return WORK_DIFFERENCE.get(model, "see the table")


def _optimizer_difference(ours, other):
    """The clause naming the optimizers when ours and ``other`` update with different ones."""
    mine, theirs = ours.get("optimizer"), other.get("optimizer")
    if not mine or not theirs or mine == theirs:
        return ""
    return (
        f"; the package updates the weights with `{mine}` where the tutorial writes "
        f"`{theirs}` (the same formula; what it saves on the DCGAN: profile below)"
    )


def _paired_note(ours, other):
    """`` (paired rounds: median 0.93x)`` after a bold ratio of medians; empty without windows."""
    median = paired_median(ours, other)
    return "" if median is None else f" (paired rounds: median {median:.2f}x)"


def render_headline(results):
    """The headline ratios (ours against each other contender), each with its window-by-window range."""
    lines = []
    for model, result in (results.get("throughput") or {}).items():
        if _error(result):
            lines.append(f"- {model}: not measured ({result['error'][:100]})")
            continue
        c = result["contenders"]
        ours = c.get("ours", {})
        parts = [
            f"{_ratio_with_range(ours, c[name])} vs {short_name(model, name, c[name])} "
            f"(CPU-time {_ratio(ours.get('images_per_cpu_s'), c[name].get('images_per_cpu_s'))})"
            for name in (
                "tutorial",
                "tutorial_alternating",
                "eager",
                "ours_simultaneous",
                "ours_fresh_noise",
            )
            if name in c
        ]
        lines.append(
            f"- {model.upper()}: ours {_number(ours.get('images_per_s'), 2)} "
            f"{unit(model)}/s; ours is " + "; ".join(parts)
        )
        if "tutorial" in c:
            lines.append(
                f"  - Against the TF tutorial's own step: **{_ratio(ours.get('images_per_s'), c['tutorial']['images_per_s'])}**"
                f"{_paired_note(ours, c['tutorial'])}, "
                f"{verdict(ours, c['tutorial'])}; {work_difference(model, result)}"
                f"{_optimizer_difference(ours, c['tutorial'])}."
            )
        if "tutorial_alternating" in c:
            lines.append(
                "  - Against the tutorial-style loop computing the package's update: "
                f"**{_ratio(ours.get('images_per_s'), c['tutorial_alternating']['images_per_s'])}**"
                f"{_paired_note(ours, c['tutorial_alternating'])}, "
                f"{verdict(ours, c['tutorial_alternating'])}; the same work, so this is what fit and "
                "Keras cost or save."
            )
        if "ours_simultaneous" in c and "tutorial" in c:
            lines.append(
                "  - `fit` running the tutorial's own update against the tutorial's loop: "
                f"{_ratio_with_range(c['ours_simultaneous'], c['tutorial'])}, "
                f"{verdict(c['ours_simultaneous'], c['tutorial'])}."
            )
    pipeline = results.get("pipeline")
    throughput = results.get("throughput") or {}
    per_model = _pipelines(pipeline) if pipeline else None
    if per_model is not None:
        parts = []
        for model, result in per_model.items():
            measured = throughput.get(model)
            if _error(result) or not measured or _error(measured):
                continue
            # The table's divisor: what ours (fit) consumes.
            ours = measured["contenders"].get("ours")
            if not ours:
                continue
            parts.append(
                f"{model} (batch {result['batch_size']}) {result['slices_per_s']:,.0f} "
                f"slices/s = {_ratio(result['slices_per_s'], ours['images_per_s'])} what ours "
                "(fit) consumes"
            )
        if parts:
            lines.append("- Input pipeline, each model's own: " + "; ".join(parts) + ".")
    elif pipeline and not _error(pipeline):
        rates = [
            entry["images_per_s"]
            for result in throughput.values()
            if not _error(result)
            for entry in result["contenders"].values()
        ]
        if rates:
            lines.append(
                f"- Input pipeline: {pipeline['slices_per_s']:,.0f} slices/s = "
                f"{_ratio(pipeline['slices_per_s'], max(rates))} the fastest train step measured."
            )
    xla = (results.get("cpu") or {}).get("xla")
    if xla and not _error(xla):
        c = xla["contenders"]
        lines.append(
            f"- XLA on this machine (DCGAN, fit): {_ratio(c['ours_xla']['images_per_s'], c['ours']['images_per_s'])}"
            f' the speed of `jit_compile="auto"` ({_auto_mode(c["ours"])}).'
        )
        lines += _precision_headline(results["cpu"], c["ours"]["images_per_s"])
    return ["## Headline ratios", ""] + lines + [""] if lines else []


def _precision_headline(cpu, base):
    """The mixed-precision policies against float32 graph mode, where both were measured."""
    parts = []
    for key, label in (
        ("mixed_bfloat16", "`mixed_bfloat16`"),
        ("mixed_float16", "`mixed_float16` (what `--mixed-precision` sets)"),
    ):
        result = cpu.get(key)
        if not result or _error(result):
            continue
        speed = result["contenders"]["ours"]["images_per_s"]
        part = f"{label} {_ratio(speed, base)}"
        batch_size = (result.get("config") or {}).get("batch_size")
        if key == "mixed_float16" and batch_size and speed:
            part += f" (a step of {batch_size} images: {batch_size / speed:.1f} s)"
        parts.append(part)
    if not parts:
        return []
    return [f"- Mixed precision on this machine (DCGAN, fit), against float32: {'; '.join(parts)}."]


def render(results, options, saved_quality=None):
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{results['command']}` in {results['total_s']:.0f} s. Methods: "
        "`benchmarks/harness.py` docstring; the loops we compare with: "
        "`benchmarks/reference_loops.py`.",
        "",
    ]
    if results.get("rendered_by"):
        lines += [
            f"This report was written again from the run's JSON by `{results['rendered_by']}`; "
            "nothing was re-measured"
            + (
                " (the notebooks' full-mode rows were read again from the committed notebooks)."
                if "--reread-notebooks" in results["rendered_by"]
                else "."
            ),
            "",
        ]
    if results.get("skipped"):
        lines += [
            f"**Skipped because the time budget (`--budget-s`) was spent:** "
            f"{', '.join(results['skipped'])}.",
            "",
        ]
    lines += render_headline(results)
    lines += ["## Machine", ""] + render_facts(results.get("facts", {}))
    lines += render_load(results)
    if "throughput" in results:
        lines += [
            "## Train-step throughput, side by side in one process",
            "",
            "Median of interleaved timed windows after warm-up; `ours / this` > 1 means "
            "the package is faster. Each round runs one window of every contender; the ratio "
            "of medians divides the two medians, the paired ratios divide ours' window by the "
            "other's window of the same round (same load), and their median and min-max follow.",
            "",
        ]
        for model, result in results["throughput"].items():
            lines += render_throughput_model(model, result)
    if "profile" in results:
        lines += ["## Where a DCGAN step's time goes", ""] + render_profile(results["profile"])
    if "cpu" in results:
        lines += ["## CPU facts behind the defaults", ""] + render_cpu(results["cpu"])
    if "pipeline" in results:
        lines += ["## Input pipeline", ""] + render_pipeline(
            results["pipeline"], results.get("throughput")
        )
    if "scaling" in results:
        lines += ["## Scaling (DCGAN)", ""] + render_scaling(results["scaling"])
    if "notebooks" in results:
        lines += ["## Notebook runtimes", ""] + render_notebooks(results["notebooks"])
    if "quality" in results:
        lines += ["## Time to quality", ""] + render_quality(results["quality"])
    elif "notebooks" in results:
        lines += ["## Time to quality", ""] + render_saved_quality(saved_quality)
        lines += render_quoted_quality(results["notebooks"])
    return "\n".join(lines) + "\n"
