"""`medgen-tf data preview` end to end, in a subprocess like a user would run it."""

import os
import subprocess
import sys

import pytest


def _run(*arguments):
    return subprocess.run(
        [sys.executable, "-m", "medgen_tf.cli", "data", "preview", *arguments],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )


def test_preview_brain_writes_grid(tmp_path):
    out = tmp_path / "grid.png"
    result = _run("--data", "brain", "--out", str(out), "--image-size", "32")
    assert result.returncode == 0, result.stderr
    assert out.exists() and out.stat().st_size > 1000
    assert str(out) in result.stdout


@pytest.mark.parametrize(
    "make_spec, problem",
    [
        (lambda tmp: "scan:brain", "unknown kind"),
        (lambda tmp: f"nifti:{tmp / 'empty'}", "no .nii or .nii.gz files"),
        (lambda tmp: f"nifti:{tmp / 'bad.nii.gz'}", "unreadable or corrupt"),
        (lambda tmp: "brain:t7", "unknown contrast"),
    ],
)
def test_bad_input_prints_one_line_and_fails(tmp_path, make_spec, problem):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b truncated")
    result = _run("--data", make_spec(tmp_path), "--out", str(tmp_path / "x.png"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("medgen-tf: error:")]
    assert len(lines) == 1 and problem in lines[0]
    assert not (tmp_path / "x.png").exists()
