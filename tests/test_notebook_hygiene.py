"""Notebook hygiene, enforced for every notebook and solution under notebooks/.

A committed notebook is what a learner reads first, so its outputs must come from a full
run, be free of machine-specific noise and stay small. ``notebook_problems`` returns one
line per violation; the planted-violation tests below show that each rule can fail.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))
NOTEBOOKS = [path for path in NOTEBOOKS if ".ipynb_checkpoints" not in path.parts]

MAX_BYTES = 3 * 1024 * 1024
REQUIRED_SECTIONS = ("Overview", "Setup", "Summary", "Exercises")
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(tmp|root|home|work|Users|private/var)/")
# Lines whose only content is a timing: Keras progress bars, %time output, ETA counters.
TIMING_ONLY = re.compile(r"(\d+m?s/step|\bETA\b|^\s*(CPU|Wall) times?:)", re.MULTILINE)
# A notebook teaches with the package's models; it never defines one itself.
DEFINES_MODEL = re.compile(
    r"^\s*(def\s+train_step\b|class\s+\w+\((keras|tf\.keras)\.(Model|layers\.Layer)\))", re.MULTILINE
)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _headings(notebook) -> list[tuple[int, str, int]]:
    """(level, title, cell index) of every markdown heading."""
    found = []
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for line in _text(cell["source"]).splitlines():
            match = re.match(r"^(#{1,6})\s+(.*\S)", line)
            if match:
                found.append((len(match.group(1)), match.group(2), index))
    return found


def _exercise_count(notebook, headings) -> int:
    starts = [index for level, title, index in headings if "exercise" in title.lower()]
    if not starts:
        return 0
    text = _text(notebook["cells"][starts[0]]["source"])
    section = text.split("Exercises", 1)[-1]
    return len(re.findall(r"^\s*\d+\.\s", section, flags=re.MULTILINE))


def notebook_problems(path: Path) -> list[str]:
    """Every hygiene violation of one notebook, one line each."""
    problems = []
    name = path.name
    if path.stat().st_size > MAX_BYTES:
        problems.append(f"{name}: {path.stat().st_size / 2**20:.1f} MB, over 3 MB")
    notebook = json.loads(path.read_text())
    headings = _headings(notebook)
    if not any(level == 1 for level, _, _ in headings):
        problems.append(f"{name}: no title (a level-1 heading)")
    titles = " | ".join(title for _, title, _ in headings).lower()
    for section in REQUIRED_SECTIONS:
        if section.lower() not in titles:
            problems.append(f"{name}: no '{section}' section")
    exercises = _exercise_count(notebook, headings)
    if not 2 <= exercises <= 4:
        problems.append(f"{name}: {exercises} numbered exercises, expected 2 to 4")
    mode = notebook.get("metadata", {}).get("medgen_tf", {}).get("mode")
    if mode != "full":
        problems.append(f"{name}: metadata medgen_tf.mode is {mode!r}, outputs must come from a full run")
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = _text(cell["source"])
        where = f"{name} cell {index}"
        if DEFINES_MODEL.search(source):
            problems.append(f"{where}: defines a model or train step; import it from medgen_tf")
        if cell.get("execution_count") is None and source.strip():
            problems.append(f"{where}: not executed")
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                problems.append(f"{where}: stderr output")
            texts = [_text(output.get("text", ""))]
            texts += [_text(v) for k, v in output.get("data", {}).items() if k.startswith("text/")]
            texts.append(_text(output.get("traceback", "")))
            joined = "\n".join(texts)
            if ABSOLUTE_PATH.search(joined):
                problems.append(f"{where}: absolute local path in output")
            if TIMING_ONLY.search(joined):
                problems.append(f"{where}: timing-only output (progress bar or %time)")
            if "image/png" in output.get("data", {}) and "title" not in source.lower():
                problems.append(f"{where}: figure without a title")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_notebook_is_clean(path):
    assert notebook_problems(path) == []


# --- planted violations: each rule must be able to fail -------------------------------------


def _clean_notebook() -> dict:
    markdown = lambda text: {"cell_type": "markdown", "metadata": {}, "source": text}  # noqa: E731
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"medgen_tf": {"mode": "full"}},
        "cells": [
            markdown("# A title\n\n## Overview\ntext"),
            markdown("## Setup"),
            {
                "cell_type": "code",
                "execution_count": 1,
                "metadata": {},
                "source": "print(1 + 1)",
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "2\n"}],
            },
            markdown("## Summary\ntext"),
            markdown("## Exercises\n1. one\n2. two\n"),
        ],
    }


def _write(tmp_path, notebook) -> Path:
    path = tmp_path / "planted.ipynb"
    path.write_text(json.dumps(notebook))
    return path


def test_clean_notebook_has_no_problems(tmp_path):
    assert notebook_problems(_write(tmp_path, _clean_notebook())) == []


@pytest.mark.parametrize(
    "plant, expected",
    [
        (lambda nb: nb["cells"].pop(3), "no 'Summary' section"),
        (lambda nb: nb["cells"].__setitem__(4, {**nb["cells"][4], "source": "## Exercises\n1. only"}), "1 numbered exercises"),
        (lambda nb: nb["metadata"].pop("medgen_tf"), "must come from a full run"),
        (lambda nb: nb["cells"][2]["outputs"].append({"output_type": "stream", "name": "stderr", "text": "W0000 cuda"}), "stderr output"),
        (lambda nb: nb["cells"][2]["outputs"].append({"output_type": "stream", "name": "stdout", "text": "saved to /tmp/abc/x.png"}), "absolute local path"),
        (lambda nb: nb["cells"][2]["outputs"].append({"output_type": "stream", "name": "stdout", "text": "10/10 - 1s 50ms/step"}), "timing-only output"),
        (lambda nb: nb["cells"][2].__setitem__("execution_count", None), "not executed"),
        (lambda nb: nb["cells"][2].__setitem__("source", "class Generator(keras.Model):\n    pass"), "defines a model"),
        (lambda nb: nb["cells"][2]["outputs"].append({"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}}), "figure without a title"),
    ],
    ids=["section", "exercises", "mode", "stderr", "path", "timing", "unexecuted", "model", "figure"],
)
def test_planted_violation_is_caught(tmp_path, plant, expected):
    notebook = _clean_notebook()
    plant(notebook)
    problems = notebook_problems(_write(tmp_path, notebook))
    assert any(expected in problem for problem in problems), problems


def test_oversized_notebook_is_caught(tmp_path):
    notebook = _clean_notebook()
    notebook["cells"][2]["outputs"].append(
        {"output_type": "display_data", "data": {"text/plain": "x" * (MAX_BYTES + 1)}, "metadata": {}}
    )
    assert any("over 3 MB" in problem for problem in notebook_problems(_write(tmp_path, notebook)))
