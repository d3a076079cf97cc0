"""Fixtures of the reliability tests; the helpers live in tests/reliability/harness.py."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.reliability.harness import HOURS, checksums, cycle, land_hour, make_lake


@dataclass
class Reference:
    settings: object
    after: dict  # hour index (0, 1, 2) -> checksums after that hour


@pytest.fixture(scope="session")
def reference(tmp_path_factory, spark) -> Reference:
    settings = make_lake(tmp_path_factory.mktemp("reference"))
    after = {}
    for i, hour in enumerate(HOURS):  # in order: each hour lands, then a run
        land_hour(settings, i)
        cycle(settings, hour)
        after[i] = checksums(spark, settings)
    return Reference(settings, after)


@dataclass
class Trained:
    settings: object
    figures: dict
    log_text: str  # every log record emitted while training, at DEBUG


@pytest.fixture(scope="session")
def trained(reference) -> Trained:
    """The reference lake with a model trained on its Gold and registered as champion."""
    import io
    import logging

    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        report = cycle(reference.settings, HOURS[-1], stages=("train_model",))
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    return Trained(reference.settings, report.figures("train_model"), buf.getvalue())
