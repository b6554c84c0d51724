"""The bot keeps OpenBLAS on one thread (see bot/__init__.py): its spinning helper threads
cost several ms of CPU per question that gets the embedding's second opinion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = (
    "import bot, numpy, os;"
    "print(os.environ['OPENBLAS_NUM_THREADS'])"
)


def run_probe(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_openblas_runs_on_one_thread_in_the_bot() -> None:
    assert run_probe() == "1"


def test_an_operator_setting_is_kept() -> None:
    assert run_probe(OPENBLAS_NUM_THREADS="2") == "2"
