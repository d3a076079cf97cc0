"""Random histories through the real pipeline, checked against the oracle and docs/RELIABILITY.md
after every run (tests/properties/histories.py; issue 28).

`make test` runs a small fixed budget (the "ci" settings below: derandomised, so every run of the
suite replays the same histories). `make fuzz` runs as many examples as asked with random seeds
(FUZZ_EXAMPLES, FUZZ_STEPS), keeping Hypothesis's example database in .cache/hypothesis, so that a
history that failed once is replayed first next time. A failure prints the shrunk history, step by
step, and the path of a replay script of `mdp` commands with the input files it reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.stateful import run_state_machine_as_test

from tests.properties.histories import Histories

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.large_base_example]
# No explain phase: it traces every line the stages run (Spark, GX, pandas), many times slower.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]


def budget() -> settings:
    if os.environ.get("FUZZ_EXAMPLES"):
        return settings(
            max_examples=int(os.environ["FUZZ_EXAMPLES"]),
            stateful_step_count=int(os.environ.get("FUZZ_STEPS", "12")),
            deadline=None,
            derandomize=False,
            suppress_health_check=SLOW,
            report_multiple_bugs=False,
            phases=PHASES,
            database=DirectoryBasedExampleDatabase(str(ROOT / ".cache" / "hypothesis")),
            print_blob=True,
        )
    # The suite's fixed budget: two short histories, the same ones every run (derandomised); the
    # search itself is `make fuzz`'s.
    return settings(
        max_examples=2,
        stateful_step_count=5,
        deadline=None,
        derandomize=True,
        database=None,
        phases=PHASES,
        suppress_health_check=SLOW,
        print_blob=True,
    )


def test_random_histories_keep_the_promises(spark, tmp_path):
    Histories.BASE = tmp_path
    run_state_machine_as_test(Histories, settings=budget())
