"""Issue 7.3 / 11 - idempotent reruns, out-of-order arrival and backfills.

The same three hours of Bronze as the clean in-order reference run (including H2 events that are
delivered again, some with conflicting content, in H3). Here H1 lands and runs three times (the
second and third runs find nothing new and change nothing), then H3 lands and runs before H2 (late
data), then a backfill reprocesses all three hours. Silver state, Silver quarantine and Gold equal
the reference by content checksum at each step where the reference has the same data.
"""

from __future__ import annotations

import pytest

from mdp.core.tables import silver_dataset
from tests.reliability.harness import HOURS, checksums, cycle, land_hour, make_lake

pytestmark = pytest.mark.integration


def test_reruns_late_arrival_and_a_backfill_equal_one_clean_in_order_run(tmp_path, spark, reference):
    settings = make_lake(tmp_path)
    land_hour(settings, 0)
    versions = []
    for attempt in range(3):
        report = cycle(settings, HOURS[0])
        versions.append(silver_dataset(settings).current()["version"])
        assert checksums(spark, settings) == reference.after[0], f"H1 run #{attempt + 1} differs from the reference"
        assert report.figures("bronze_to_silver")["bronze_in"] == (
            0 if attempt else report.figures("bronze_to_silver")["bronze_in"]
        )
    assert len(set(versions)) == 1  # a rerun with nothing new publishes nothing
    land_hour(settings, 2)  # H3 arrives before H2
    cycle(settings, HOURS[2])
    land_hour(settings, 1)
    cycle(settings, HOURS[1])
    final = checksums(spark, settings)
    assert set(final) == {"silver/state", "silver/quarantine", "gold/features"}
    assert final["silver/state"] == reference.after[2]["silver/state"]
    assert final["silver/quarantine"] == reference.after[2]["silver/quarantine"]
    assert final == reference.after[2]
    for hour in HOURS:  # reprocessing every hour again changes nothing
        cycle(settings, hour, backfill=True)
    assert checksums(spark, settings) == reference.after[2]
