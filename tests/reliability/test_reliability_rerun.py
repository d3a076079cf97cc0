"""Issue 7.3 - idempotent reruns and backfills.

The same three hours of Bronze as the clean in-order reference run (including H1 events that are
delivered again, some with conflicting content, in H3). Here H1 runs three times, then H3, then H2
(a late backfill). After every H1 run Silver and Gold equal the reference after H1; at the end they
equal the reference after H3: Silver customers, Silver quarantine and Gold, by content checksum.
"""

from __future__ import annotations

import pytest

from mdp.core.lake import silver_dataset
from tests.reliability.harness import HOURS, checksums, cycle, make_lake, write_bronze_hours

pytestmark = pytest.mark.integration


def test_three_reruns_then_an_out_of_order_backfill_equal_one_clean_in_order_run(tmp_path, spark, reference):
    settings = make_lake(tmp_path)
    write_bronze_hours(settings)
    versions = []
    for attempt in range(3):
        report = cycle(settings, HOURS[0])
        assert report.conservation()[0]
        versions.append(silver_dataset(settings).current()["version"])
        assert checksums(spark, settings) == reference.after[0], f"H1 run #{attempt + 1} differs from the reference"
    assert len(set(versions)) == 3  # each rerun really wrote and published a new version
    cycle(settings, HOURS[2])  # H3 before H2: out of order
    cycle(settings, HOURS[1])
    final = checksums(spark, settings)
    assert set(final) == {"silver/customers", "silver/quarantine", "gold/customer_features"}
    assert final == reference.after[2]
