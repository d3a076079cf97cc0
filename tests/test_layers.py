"""The folders show the architecture: mdp.core is the ground, the stage packages stand on it, and
mdp.shell (CLI, runner, services, Kubernetes specs) is the roof. import-linter checks the arrows."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]


def test_no_import_points_up_or_sideways():
    linter = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout
