"""Notebook hygiene, enforced for every notebook and solution under notebooks/.

A committed notebook is what a learner reads first, so its outputs must come from a full
run, be free of machine-specific noise and stay small. ``notebook_problems`` returns one
line per violation; the planted-violation tests below show that each rule can fail.

Main notebooks (``notebooks/NN_name.ipynb``) end with 3 or 4 Exercises and Next steps; their
worked solutions live in ``notebooks/solutions/NN_name_solutions.ipynb`` with one
"Solution ..." heading per exercise instead, and every main notebook must have one.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").rglob("*.ipynb"))
NOTEBOOKS = [path for path in NOTEBOOKS if ".ipynb_checkpoints" not in path.parts]
MAIN_NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS_DIR = ROOT / "notebooks" / "solutions"

MAX_BYTES = 3 * 1024 * 1024
# What the README promises of every main notebook.
REQUIRED_SECTIONS = ("Overview", "Setup", "Summary", "Exercises", "Next steps")
SOLUTION_SECTIONS = ("Overview", "Setup", "Summary")
# Unfinished work left in the prose a learner reads.
UNFINISHED = re.compile(r"\b(TODO|FIXME)\b")
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(tmp|root|home|work|Users|private/var)/")
# Lines whose only content is a timing: Keras progress bars, %time output, ETA counters.
TIMING_ONLY = re.compile(r"(\d+m?s/step|\bETA\b|^\s*(CPU|Wall) times?:)", re.MULTILINE)
# A notebook teaches with the package's models; it never defines one itself.
DEFINES_MODEL = re.compile(
    r"^\s*(def\s+train_step\b|class\s+\w+\((keras|tf\.keras)\.(Model|layers\.Layer)\))",
    re.MULTILINE,
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


def is_solutions(path: Path) -> bool:
    return path.parent.name == "solutions"


def solutions_path(main_notebook: Path) -> Path:
    """Where the solutions of ``notebooks/NN_name.ipynb`` live."""
    return main_notebook.parent / "solutions" / f"{main_notebook.stem}_solutions.ipynb"


def notebook_problems(path: Path) -> list[str]:
    """Every hygiene violation of one notebook, one line each.

    A notebook in a ``solutions`` folder needs "Solution" headings instead of Exercises.
    """
    problems = []
    name = path.name
    if path.stat().st_size > MAX_BYTES:
        problems.append(f"{name}: {path.stat().st_size / 2**20:.1f} MB, over 3 MB")
    notebook = json.loads(path.read_text())
    headings = _headings(notebook)
    if not any(level == 1 for level, _, _ in headings):
        problems.append(f"{name}: no title (a level-1 heading)")
    titles = " | ".join(title for _, title, _ in headings).lower()
    solutions = is_solutions(path)
    for section in SOLUTION_SECTIONS if solutions else REQUIRED_SECTIONS:
        if section.lower() not in titles:
            problems.append(f"{name}: no '{section}' section")
    if solutions:
        if not any(
            level >= 2 and title.lower().startswith("solution") for level, title, _ in headings
        ):
            problems.append(f"{name}: no 'Solution ...' heading")
    else:
        exercises = _exercise_count(notebook, headings)
        if not 3 <= exercises <= 4:
            problems.append(f"{name}: {exercises} numbered exercises, expected 3 or 4")
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "markdown" and UNFINISHED.search(_text(cell["source"])):
            problems.append(f"{name} cell {index}: TODO/FIXME left in the text")
    mode = notebook.get("metadata", {}).get("medgen_tf", {}).get("mode")
    if mode != "full":
        problems.append(
            f"{name}: metadata medgen_tf.mode is {mode!r}, outputs must come from a full run"
        )
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


@pytest.mark.parametrize("path", MAIN_NOTEBOOKS, ids=[p.name for p in MAIN_NOTEBOOKS])
def test_main_notebook_has_solutions(path):
    expected = solutions_path(path)
    assert expected.is_file(), f"{path.name}: no solutions notebook {expected.relative_to(ROOT)}"


def test_the_course_notebooks_are_all_found():
    # The hygiene tests above are parametrised over a glob: a notebook deleted or renamed, or
    # the folder moved, leaves them fewer (or no) cases, all passing; an empty list is only a
    # skip. The course is six notebooks, 00 to 05, each with its solutions.
    assert [path.name[:2] for path in MAIN_NOTEBOOKS] == ["00", "01", "02", "03", "04", "05"]
    solutions = sorted(path.name for path in SOLUTIONS_DIR.glob("*.ipynb"))
    assert solutions == sorted(solutions_path(path).name for path in MAIN_NOTEBOOKS)
    assert set(NOTEBOOKS) >= set(MAIN_NOTEBOOKS) | {SOLUTIONS_DIR / name for name in solutions}


def test_every_solutions_notebook_belongs_to_a_main_notebook():
    main_stems = {path.stem for path in MAIN_NOTEBOOKS}
    orphans = [
        p.name
        for p in SOLUTIONS_DIR.glob("*.ipynb")
        if p.stem.removesuffix("_solutions") not in main_stems
    ]
    assert orphans == []


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
            markdown("## Exercises\n1. one\n2. two\n3. three\n"),
            markdown("## Next steps\ntext"),
        ],
    }


def _clean_solutions_notebook() -> dict:
    # Overview, Setup and the code cell, then a solution, then Summary last.
    notebook = _clean_notebook()
    solution = {"cell_type": "markdown", "metadata": {}, "source": "## Solution 1: one\ntext"}
    notebook["cells"] = [*notebook["cells"][:3], solution, notebook["cells"][3]]
    return notebook


def _write(tmp_path, notebook, folder="") -> Path:
    path = tmp_path / folder / "planted.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook))
    return path


def test_clean_notebook_has_no_problems(tmp_path):
    assert notebook_problems(_write(tmp_path, _clean_notebook())) == []


def test_clean_solutions_notebook_has_no_problems(tmp_path):
    assert notebook_problems(_write(tmp_path, _clean_solutions_notebook(), "solutions")) == []


@pytest.mark.parametrize(
    "plant, expected",
    [
        (lambda nb: nb["cells"].pop(3), "no 'Solution ...' heading"),
        (lambda nb: nb["cells"].pop(4), "no 'Summary' section"),
        (
            lambda nb: nb["cells"][3].__setitem__("source", "## Solution 1\nTODO: write this"),
            "TODO/FIXME",
        ),
        (
            lambda nb: nb["cells"][2]["outputs"].append(
                {"output_type": "stream", "name": "stderr", "text": "W0000 cuda"}
            ),
            "stderr output",
        ),
        (
            lambda nb: nb["cells"][2].__setitem__(
                "source", "def train_step(self, data):\n    pass"
            ),
            "defines a model",
        ),
        (
            lambda nb: nb["metadata"]["medgen_tf"].__setitem__("mode", "quick"),
            "must come from a full run",
        ),
    ],
    ids=["solution-heading", "summary", "todo", "stderr", "train-step", "mode"],
)
def test_planted_violation_in_solutions_is_caught(tmp_path, plant, expected):
    notebook = _clean_solutions_notebook()
    plant(notebook)
    problems = notebook_problems(_write(tmp_path, notebook, "solutions"))
    assert any(expected in problem for problem in problems), problems


def test_main_notebook_is_not_judged_as_solutions(tmp_path):
    # Solution headings do not replace a main notebook's Exercises.
    problems = notebook_problems(_write(tmp_path, _clean_solutions_notebook()))
    assert any("no 'Exercises' section" in problem for problem in problems), problems


def test_solutions_path_of_a_main_notebook():
    assert (
        solutions_path(ROOT / "notebooks" / "02_vae.ipynb")
        == SOLUTIONS_DIR / "02_vae_solutions.ipynb"
    )


@pytest.mark.parametrize(
    "plant, expected",
    [
        (lambda nb: nb["cells"].pop(3), "no 'Summary' section"),
        (lambda nb: nb["cells"].pop(5), "no 'Next steps' section"),
        (lambda nb: nb["cells"][0].__setitem__("source", "## Overview\ntext"), "no title"),
        (
            lambda nb: nb["cells"].__setitem__(
                4, {**nb["cells"][4], "source": "## Exercises\n1. only"}
            ),
            "1 numbered exercises",
        ),
        (
            lambda nb: nb["cells"].__setitem__(
                4, {**nb["cells"][4], "source": "## Exercises\n1. a\n2. b\n"}
            ),
            "2 numbered exercises, expected 3 or 4",
        ),
        (
            lambda nb: nb["cells"].__setitem__(
                4, {**nb["cells"][4], "source": "## Exercises\n1. a\n2. b\n3. c\n4. d\n5. e\n"}
            ),
            "5 numbered exercises",
        ),
        (lambda nb: nb["metadata"].pop("medgen_tf"), "must come from a full run"),
        (
            lambda nb: nb["cells"][2]["outputs"].append(
                {"output_type": "stream", "name": "stderr", "text": "W0000 cuda"}
            ),
            "stderr output",
        ),
        (
            lambda nb: nb["cells"][2]["outputs"].append(
                {"output_type": "stream", "name": "stdout", "text": "saved to /tmp/abc/x.png"}
            ),
            "absolute local path",
        ),
        (
            lambda nb: nb["cells"][2]["outputs"].append(
                {"output_type": "stream", "name": "stdout", "text": "10/10 - 1s 50ms/step"}
            ),
            "timing-only output",
        ),
        (
            lambda nb: nb["cells"][2]["outputs"].append(
                {"output_type": "stream", "name": "stdout", "text": "3/10 [==>....] - ETA: 4s"}
            ),
            "timing-only output",
        ),
        (
            lambda nb: nb["cells"][2]["outputs"].append(
                {"output_type": "stream", "name": "stdout", "text": "CPU times: user 2 s\n"}
            ),
            "timing-only output",
        ),
        (lambda nb: nb["cells"][2].__setitem__("execution_count", None), "not executed"),
        (
            lambda nb: nb["cells"][2].__setitem__(
                "source", "class Generator(keras.Model):\n    pass"
            ),
            "defines a model",
        ),
        (
            lambda nb: nb["cells"][2]["outputs"].append(
                {"output_type": "display_data", "data": {"image/png": "iVBOR"}, "metadata": {}}
            ),
            "figure without a title",
        ),
        (
            lambda nb: nb["cells"][3].__setitem__("source", "## Summary\nFIXME: numbers"),
            "TODO/FIXME",
        ),
    ],
    ids=[
        "section",
        "next-steps",
        "title",
        "exercises",
        "two-exercises",
        "too-many-exercises",
        "mode",
        "stderr",
        "path",
        "timing",
        "eta",
        "cpu-times",
        "unexecuted",
        "model",
        "figure",
        "fixme",
    ],
)
def test_planted_violation_is_caught(tmp_path, plant, expected):
    notebook = _clean_notebook()
    plant(notebook)
    problems = notebook_problems(_write(tmp_path, notebook))
    assert any(expected in problem for problem in problems), problems


def test_oversized_notebook_is_caught(tmp_path):
    notebook = _clean_notebook()
    notebook["cells"][2]["outputs"].append(
        {
            "output_type": "display_data",
            "data": {"text/plain": "x" * (MAX_BYTES + 1)},
            "metadata": {},
        }
    )
    assert any("over 3 MB" in problem for problem in notebook_problems(_write(tmp_path, notebook)))
