"""`mdp sql` on the local profile's S3 (SeaweedFS): the checks of tests/shell/test_sql.py, with
delta-rs and DuckDB reading the tables from a bucket."""

from __future__ import annotations

from tests.server_helpers import subprocess_env
from tests.shell.sql_lake import build_lake
from tests.shell.test_sql import check_every_layer


def test_mdp_sql_on_s3(local_settings, bucket_lake, tmp_path):
    settings = local_settings(lake_root=bucket_lake)
    lake = build_lake(settings)
    check_every_layer(subprocess_env(settings), lake, tmp_path)
