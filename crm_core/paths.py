"""Where the project keeps its runtime files (databases, mail capture, Prefect home).

Everything the embedded defaults write goes under one ``var/`` folder so that a fresh clone
can be reset with ``rm -rf var``. ``CRM_VAR_DIR`` moves it (tests point it at a temp dir).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    path = Path(os.environ.get("CRM_VAR_DIR", PROJECT_ROOT / "var"))
    path.mkdir(parents=True, exist_ok=True)
    return path
