"""Package-wide settings, read in one place.

``QUICK`` is the course's single speed switch: ``MEDGEN_QUICK=1`` (set by ``make test``)
shrinks every notebook and demo to a smoke run. Notebooks write, for example,
``num_epochs = 1 if QUICK else 30``. ``QUICK`` is the value when the package was imported;
:func:`quick_mode` (what ``notebook.setup`` returns) reads the variable again.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "0")
    word = value.strip().lower()
    if word not in _TRUE + _FALSE:
        # "2" or "y" ran the full course in silence where a smoke run was meant.
        warnings.warn(
            f"{name}={value!r} is none of {', '.join(_TRUE)} (on) or 0, false, no, off: read as off",
            stacklevel=2,
        )
    return word in _TRUE


def quick_mode() -> bool:
    """``MEDGEN_QUICK`` as it is now (``QUICK`` is its value when the package was imported)."""
    return _env_flag("MEDGEN_QUICK")


QUICK: bool = _env_flag("MEDGEN_QUICK")

#: Default seed for data generation, weight initialisation and sampling.
SEED: int = 0
#: The largest seed: keras.utils.set_random_seed takes 0 .. 2**32 - 1 (keras.random fails
#: with a traceback from 2**63 on), so one range serves every command and notebook.
SEED_MAX: int = 2**32 - 1

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def data_dir() -> Path:
    """Folder holding the embedded MNI template files (``MEDGEN_DATA_DIR`` overrides).

    An installed wheel carries them in ``medgen_tf/template``; a source checkout (also an
    editable install) reads the repository's ``data/`` folder, where they live with their notice.
    """
    if os.environ.get("MEDGEN_DATA_DIR"):
        return Path(os.environ["MEDGEN_DATA_DIR"])
    packaged = PACKAGE_DIR / "template"
    return packaged if packaged.is_dir() else REPO_DIR / "data"


def cache_dir() -> Path:
    """Folder for derived data such as the synthetic cohort (``MEDGEN_CACHE_DIR`` overrides)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says to ignore an empty or relative value: it would put the cache wherever
    # the process happens to run.
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return Path(os.environ.get("MEDGEN_CACHE_DIR") or base / "medgen_tf")
