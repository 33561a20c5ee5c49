"""Run the benchmark suite and write ``benchmarks/RESULTS.md``.

Usage (from the repository root)::

    make bench                                   # = python benchmarks/run.py --out benchmarks/RESULTS.md
    python benchmarks/run.py --only throughput   # one section (names: see SECTIONS)
    python benchmarks/run.py --quality           # time-to-quality runs (long; capped per model),
                                                 # printed: --out also writes the JSON and figure
    python benchmarks/run.py --smoke             # every section, tiny windows: checks the harness
    bash benchmarks/gpu.sh                       # XLA / mixed precision on and off, on a GPU

Each measurement runs in a subprocess (``--worker JSON``) so it gets a fresh TensorFlow, its
own environment (oneDNN switch, mixed precision) and its own peak memory. The methods are in
``benchmarks/harness.py``; the hand-written loops compared with ``fit`` are in
``benchmarks/reference_loops.py``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MARK = "BENCH_JSON:"
SECTIONS = ("facts", "throughput", "profile", "pipeline", "cpu", "notebooks", "scaling")
# Written by `make bench-quality`, quoted by `make bench`.
SAVED_QUALITY = REPO / "benchmarks" / "RESULTS-quality.json"


def worker(spec_json):
    from benchmarks import harness

    result = harness.run_task(json.loads(spec_json))
    print(MARK + json.dumps(result), flush=True)


def run_worker(spec, env=None, timeout=1800):
    """Run one task in a subprocess; returns its result dict or ``{"error": ...}``."""
    environment = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONWARNINGS": "ignore",
        **(env or {}),
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    start = time.perf_counter()
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=environment,
            cwd=REPO,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(MARK):
            result = json.loads(line[len(MARK) :])
            summary = {
                name: round(entry["images_per_s"], 2)
                for name, entry in result.get("contenders", {}).items()
            }
            unit = result.get("unit", "images")
            log(
                f"  done in {result.get('wall_s')} s, peak {result.get('peak_rss_mib')} MiB"
                + (f", {unit}/s {summary}" if summary else "")
            )
            return result
    tail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
    return {
        "error": f"exit {completed.returncode} after {time.perf_counter() - start:.0f} s: "
        + " | ".join(tail)
    }


def machine_load():
    """Load average and the other processes using over 10 % of a CPU (shared machines)."""
    busy = []
    try:
        listing = subprocess.run(
            ["ps", "-eo", "pid=,pcpu=,args="], capture_output=True, text=True, check=False
        ).stdout
        for line in listing.splitlines():
            pid, cpu, args = line.split(None, 2)
            if float(cpu) > 10 and int(pid) != os.getpid():
                busy.append(f"{float(cpu):.0f}% {args[:70]}")
    except (OSError, ValueError):
        pass
    try:
        load = [round(v, 1) for v in os.getloadavg()]
    except OSError:
        load = None
    return {"load_average": load, "busy_processes": busy}


DEADLINE = [float("inf")]


def over_budget():
    """True once ``--budget-s`` is spent: the remaining measurements are skipped, and say so."""
    return time.perf_counter() > DEADLINE[0]


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- sections ----------------------------------------------------------------------------------


def section_facts(options):
    facts = run_worker({"task": "facts"})
    facts["date_utc"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts["load_at_start"] = machine_load()
    return facts


def section_throughput(options):
    results = {}
    # The CPU facts' XLA row rides along with the DCGAN's contenders: interleaved with ours in
    # the same rounds, it saves a process of its own (52 s in the run at 4d50906) for a fifth
    # contender's windows here.
    with_xla = options.jit_compile == "auto" and "cpu" in getattr(options, "sections", ())
    for model in ("dcgan", "vae", "cyclegan"):
        log(
            f"throughput {model}"
            + (" (and ours with XLA)" if with_xla and model == "dcgan" else "")
        )
        results[model] = run_worker(
            {
                "task": "throughput",
                "model": model,
                "windows": options.windows,
                "window_seconds": options.window_seconds,
                "jit_compile": options.jit_compile,
                "mixed_precision": options.mixed_precision,
                "with_xla": with_xla and model == "dcgan",
            }
        )
    return results


def section_cpu(options, throughput=None):
    """XLA against graph mode (interleaved in one process); oneDNN off, one thread and the two
    mixed-precision policies (each alone in its own process, one ``fit`` call: compare with
    the graph-mode figure, minutes apart).

    ``throughput``: the throughput section's results; when its DCGAN run had ``ours_xla``
    among its contenders, the XLA row is taken from there instead of measured again."""
    results = {}
    dcgan = (throughput or {}).get("dcgan") or {}
    if "ours_xla" in dcgan.get("contenders", {}):
        log("cpu facts: XLA vs graph, from the DCGAN throughput run")
        results["xla"] = {
            **dcgan,
            "contenders": {name: dcgan["contenders"][name] for name in ("ours", "ours_xla")},
            "measured_in": "throughput",
        }
    else:
        log("cpu facts: XLA vs graph")
        results["xla"] = run_worker(
            {
                "task": "throughput",
                "model": "dcgan",
                "contenders": ["ours", "ours_xla"],
                # 3 windows: these rows are facts about the machine, not the comparison with
                # the loops.
                "windows": min(3, options.windows),
                "window_seconds": options.window_seconds,
            }
        )
    alone = {"task": "fit_steps", "model": "dcgan", **own_process_steps(options)}
    log("cpu facts: oneDNN off")
    results["onednn_off"] = run_worker(alone, env={"TF_ENABLE_ONEDNN_OPTS": "0"})
    log("cpu facts: one thread")
    results["one_thread"] = run_worker(
        {**alone, "task": "threads", "measure": "fit_steps", "intra_op_threads": 1}
    )
    log("cpu facts: mixed_bfloat16")
    results["mixed_bfloat16"] = run_worker({**alone, "mixed_precision": "mixed_bfloat16"})
    # On a CPU a float16 step takes tens of seconds at batch 32 (two minutes on a 2-core Xeon
    # without float16 kernels): one timed step of a 2-image batch says as much.
    log(f"cpu facts: mixed_float16 (one timed step of {FLOAT16_BATCH} images)")
    results["mixed_float16"] = run_worker(
        {
            "task": "fit_steps",
            "model": "dcgan",
            "mixed_precision": "mixed_float16",
            "batch_size": FLOAT16_BATCH,
            "steps": 1,
        }
    )
    return results


FLOAT16_BATCH = 2


def own_process_steps(options):
    """``fit_steps`` settings for a configuration measured alone: two warm-up steps (the first
    traces), then at least two timed steps and half ``--window-seconds``."""
    if options.smoke:
        return {"warmup_steps": 1, "steps": 1, "min_seconds": 0.0}
    return {"warmup_steps": 2, "steps": 2, "min_seconds": options.window_seconds / 2}


def section_profile(options):
    log("profile: the pieces of a DCGAN step")
    return run_worker({"task": "profile", "repeats": 3 if options.smoke else 5})


def section_pipeline(options):
    """Each model's own input pipeline (its arrays, its batch size), in one process."""
    models = ("dcgan", "vae", "cyclegan")
    log("input pipelines: " + ", ".join(models))
    result = run_worker(
        {"task": "pipelines", "models": models, "batches": 40 if options.smoke else 200}
    )
    if "error" in result:
        return {model: result for model in models}
    return result["models"]


# Batch 32 at 64 px is the DCGAN's default: the throughput section measures it.
SCALING_BATCH_SIZES = (16, 64, 128)
SCALING_IMAGE_SIZES = (28, 64, 128, 256)
SCALING_IMAGE_BATCH = 16


def section_scaling(options):
    """DCGAN (ours, fit) images/s and peak memory: batch size at 64 px, then image size at
    batch 16; one subprocess per configuration so ``ru_maxrss`` is that configuration's."""
    spec = {
        "task": "fit_steps",
        "model": "dcgan",
        **own_process_steps(options),
        # Every size from the 64 px slices: no cohort to build at 28, 128 or 256 px.
        "resize_from": 64,
    }
    rows = []
    batch_sizes = (16, 64) if options.smoke else SCALING_BATCH_SIZES
    image_sizes = (28, 64) if options.smoke else SCALING_IMAGE_SIZES
    for batch_size in batch_sizes:
        if over_budget():
            rows.append(("batch_size", {"error": f"skipped (time budget), batch {batch_size}"}))
            continue
        log(f"scaling batch_size={batch_size}")
        rows.append(
            ("batch_size", run_worker({**spec, "batch_size": batch_size, "image_size": 64}))
        )
    for image_size in image_sizes:
        if image_size == 64 and SCALING_IMAGE_BATCH in batch_sizes:
            rows.append(("image_size", rows[batch_sizes.index(SCALING_IMAGE_BATCH)][1]))
            continue
        if over_budget():
            rows.append(("image_size", {"error": f"skipped (time budget), {image_size} px"}))
            continue
        log(f"scaling image_size={image_size}")
        rows.append(
            (
                "image_size",
                run_worker({**spec, "batch_size": SCALING_IMAGE_BATCH, "image_size": image_size}),
            )
        )
    return rows


def section_notebooks(options):
    """Quick-mode wall time of every notebook (executed to a temporary copy), and the full-mode
    training times the committed notebooks print."""
    notebooks = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    jupyter = Path(sys.executable).with_name("jupyter")
    rows = []
    for notebook in notebooks:
        row = {"notebook": notebook.name, **_committed_notebook_fields(read_notebook(notebook))}
        if options.smoke or over_budget():
            row["quick_s"] = None
            row["quick_status"] = "skipped (--smoke)" if options.smoke else "skipped (time budget)"
        else:
            log(f"notebook {notebook.name} (quick mode)")
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                completed = subprocess.run(
                    [
                        str(jupyter),
                        "nbconvert",
                        "--to",
                        "notebook",
                        "--execute",
                        "--ExecutePreprocessor.timeout=900",
                        "--output-dir",
                        folder,
                        str(notebook),
                    ],
                    capture_output=True,
                    text=True,
                    cwd=REPO,
                    check=False,
                    env={**os.environ, "MEDGEN_QUICK": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
                )
                row["quick_s"] = round(time.perf_counter() - start, 1)
                row["quick_status"] = (
                    "ok"
                    if completed.returncode == 0
                    else ("FAILED: " + (completed.stderr.strip().splitlines() or ["?"])[-1][:120])
                )
        rows.append(row)
    return rows


# A number and its unit at most one space apart: a table's "subject 31      min to max" is no time.
TIME_PATTERN = re.compile(r"(?i)\b\d+(\.\d+)? ?(s|sec|seconds?|min|minutes?|h)\b|/s\b")
QUALITY_PATTERN = re.compile(r"(?i)(psnr|ssim|\bfd\b|fr[ée]chet|dB)\b.*?\d")


def read_notebook(notebook):
    """The committed notebook as a dict, or None when it cannot be read as JSON."""
    try:
        return json.loads(notebook.read_text())
    except (OSError, ValueError):
        return None


def _committed_notebook_fields(content):
    """What the committed notebook recorded of its full-mode run: its span and printed lines."""
    return {
        "full_run": committed_run(content),
        "full_mode_lines": full_mode_lines(content),
        "quality_lines": full_mode_lines(content, QUALITY_PATTERN),
    }


def committed_run(content):
    """Mode, date and minutes of the committed run, from the execution timestamps that
    nbconvert records per cell (first input to last reply); None without timestamps."""
    if content is None:
        return None
    starts, ends = [], []
    for cell in content.get("cells", []):
        execution = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in execution and "shell.execute_reply" in execution:
            starts.append(datetime.datetime.fromisoformat(execution["iopub.execute_input"]))
            ends.append(datetime.datetime.fromisoformat(execution["shell.execute_reply"]))
    if not starts:
        return None
    return {
        "mode": content.get("metadata", {}).get("medgen_tf", {}).get("mode", "unknown"),
        "date": min(starts).strftime("%Y-%m-%d"),
        "minutes": round((max(ends) - min(starts)).total_seconds() / 60, 1),
    }


def full_mode_lines(content, pattern=TIME_PATTERN, limit=6):
    """Output lines of the committed (full-mode) notebook that report a time (or ``pattern``)."""
    if content is None:
        return []
    mode = content.get("metadata", {}).get("medgen_tf", {}).get("mode", "unknown")
    found = []
    for cell in content.get("cells", []):
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain") or ""
            text = "".join(text) if isinstance(text, list) else text
            for line in text.splitlines():
                if pattern.search(line) and len(line) < 200:
                    found.append(line.strip())
    if len(found) > limit:  # the first lines and the last ones, where the end result is
        found = found[: limit // 3] + ["..."] + found[-(limit - limit // 3) :]
    return [f"[mode: {mode}]"] + found if found else []


# ---- quality (separate target) -----------------------------------------------------------------


def section_quality(options):
    """Each model trained as its notebook trains it, to its target or its cap (one process
    each); ``--quality-cap-s`` caps every model, else ``QUALITY_CAPS_S``."""
    results = {}
    for model, cap in QUALITY_CAPS_S.items():
        cap = options.quality_cap_s or cap
        log(f"time-to-quality {model} (cap {cap} s of training)")
        results[model] = run_worker(
            {"task": "quality", "model": model, "cap_s": cap}, timeout=2 * cap + 900
        )
    return results


# Training seconds per model: about what a class can spend on one model.
QUALITY_CAPS_S = {"vae": 600, "dcgan": 480, "cyclegan": 600}


def plot_quality(quality, path):
    """One panel per model: score against training minutes, with the target line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no quality figure")
        return
    measured = {m: r for m, r in quality.items() if isinstance(r, dict) and r.get("curve")}
    if not measured:
        return
    figure, axes = plt.subplots(1, len(measured), figsize=(4.2 * len(measured), 3.2), squeeze=False)
    for axis, (model, result) in zip(axes[0], measured.items(), strict=True):
        minutes = [seconds / 60 for seconds, _ in result["curve"]]
        axis.plot(minutes, [value for _, value in result["curve"]], marker="o", markersize=3)
        axis.axhline(result["target"], color="tab:red", linestyle="--", label="target")
        axis.set_title(f"{model}: {result['metric'].split(',')[0]}", fontsize=9)
        axis.set_xlabel("training minutes on this CPU")
        axis.set_xlim(left=0)
        if not result.get("higher_is_better", True):
            axis.set_yscale("log")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.suptitle("Time to quality (make bench-quality)")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    log(f"wrote {path.name}")


SECTION_FUNCTIONS = {
    "facts": section_facts,
    "throughput": section_throughput,
    "profile": section_profile,
    "cpu": section_cpu,
    "pipeline": section_pipeline,
    "scaling": section_scaling,
    "notebooks": section_notebooks,
}


def _saved_quality():
    if not SAVED_QUALITY.exists():
        return None
    try:
        return json.loads(SAVED_QUALITY.read_text())
    except ValueError as error:
        log(f"ignoring {SAVED_QUALITY.name}: not readable JSON ({error})")
        return None


def render_saved(json_path, options):
    """The report of an earlier run, from its JSON: no measurement is repeated."""
    from benchmarks.report import render

    try:
        results = json.loads(json_path.read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"{json_path}: cannot read the results JSON ({error})") from None
    if options.reread_notebooks and results.get("notebooks"):
        # Full mode is never re-run here: its figures are what the committed notebooks
        # recorded, so a notebook re-run since the measurement is read again, nothing else.
        for row in results["notebooks"]:
            row.update(
                _committed_notebook_fields(read_notebook(REPO / "notebooks" / row["notebook"]))
            )
        json_path.write_text(json.dumps(results, indent=1, default=str))
    results["rendered_by"] = (
        f"python benchmarks/run.py --render {json_path}"
        + (" --reread-notebooks" if options.reread_notebooks else "")
        + (f" --out {options.out}" if options.out else "")
    )
    text = render(results, options, None if "quality" in results else _saved_quality())
    return _write_report(text, options.out, f"from {json_path} (nothing re-measured)")


def _write_report(text, out, how):
    if out:
        Path(out).write_text(text)
        log(f"wrote {out} {how}")
    else:
        print(text)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the Markdown report here")
    parser.add_argument(
        "--json", default=None, help="raw results as JSON (default: --out with .json)"
    )
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=None)
    parser.add_argument("--quality", action="store_true", help="run the time-to-quality section")
    parser.add_argument("--quality-cap-s", type=int, default=None)
    parser.add_argument("--smoke", action="store_true", help="tiny windows, skip notebooks")
    # 4 rounds: with the order rotated every round, each of the DCGAN's 4 contenders runs in
    # every position once (the VAE's and CycleGAN's 3 in the first position twice; XLA, the
    # DCGAN's fifth when the CPU facts run, never first). Each round more costs about 30 s of
    # the 20 minutes that make bench may take.
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument(
        "--budget-s",
        type=float,
        # make bench stays under 20 minutes with the venv's install (about 1.5 minutes).
        default=1020,
        help="skip the measurements left once this many seconds are spent (default 17 min)",
    )
    parser.add_argument("--window-seconds", type=float, default=2.0)
    parser.add_argument("--jit-compile", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument(
        "--render",
        default=None,
        metavar="RESULTS_JSON",
        help="measure nothing: write the Markdown again from a saved results JSON",
    )
    parser.add_argument(
        "--reread-notebooks",
        action="store_true",
        help="with --render: read the committed notebooks' full-mode runs again (after a "
        "notebook was re-run) and save them in the JSON; the quick-mode times stay as measured",
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.worker:
        worker(options.worker)
        return 0
    if options.reread_notebooks and not options.render:
        parser.error("--reread-notebooks goes with --render RESULTS_JSON")
    if options.render:
        return render_saved(Path(options.render), options)
    options.jit_compile = {"auto": "auto", "true": True, "false": False}[options.jit_compile]
    if options.smoke:
        options.windows, options.window_seconds = 2, 0.5
    if options.quality:
        sections = ["facts", "quality"]
    else:
        sections = list(options.only or SECTIONS)
        if "facts" not in sections:
            sections.insert(0, "facts")
    options.sections = sections
    start = time.perf_counter()
    results = {}
    DEADLINE[0] = start + options.budget_s
    for name in sections:
        function = section_quality if name == "quality" else SECTION_FUNCTIONS[name]
        if over_budget() and name not in ("notebooks", "scaling"):
            log(f"skipping {name}: --budget-s {options.budget_s} spent")
            results.setdefault("skipped", []).append(name)
            continue
        # The CPU facts reuse the throughput section's XLA windows when it ran them.
        earlier = (results.get("throughput"),) if name == "cpu" else ()
        results[name] = function(options, *earlier)
    results["total_s"] = round(time.perf_counter() - start, 1)
    results["load_at_end"] = machine_load()
    results["command"] = "python benchmarks/run.py " + " ".join(argv or sys.argv[1:])
    json_path = options.json or (options.out and Path(options.out).with_suffix(".json"))
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=1, default=str))
    from benchmarks.report import render

    saved_quality = None
    if "quality" in results:
        if json_path:
            plot_quality(results["quality"], Path(json_path).with_suffix(".png"))
        else:
            # The figure goes next to its JSON or nowhere: alone it would overwrite the
            # committed RESULTS-quality.png with curves RESULTS-quality.json does not hold.
            log("no --out or --json: no JSON and no figure written, the report is printed")
    else:
        saved_quality = _saved_quality()
    text = render(results, options, saved_quality)
    return _write_report(text, options.out, f"in {results['total_s']:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
