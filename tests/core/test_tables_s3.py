"""mdp.core.tables on S3 (SeaweedFS): the scenario of tests/core/test_tables.py, with delta-rs
committing by conditional put (`aws_conditional_put: etag`)."""

from __future__ import annotations

from tests.core.test_tables import scenario


def test_write_commit_retry_stale_abort_vacuum_on_s3(local_settings, bucket_lake):
    scenario(local_settings(lake_root=bucket_lake))
