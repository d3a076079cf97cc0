"""An S3 lake without the S3A jars fails with a clear message, not a JVM stack trace (issue 10)."""

from __future__ import annotations

import pytest

from mdp.core.errors import ConfigError

pytestmark = pytest.mark.unit


def test_s3_lake_without_s3a_jars_names_the_fix(make_settings, monkeypatch, tmp_path):
    from spark_apps import session

    monkeypatch.setenv("MDP_SPARK_JARS_DIR", str(tmp_path))  # an empty folder: no hadoop-aws anywhere
    monkeypatch.setattr(session, "_session", None)
    settings = make_settings(lake_root="s3://", s3_endpoint="http://127.0.0.1:9")
    assert settings.lake_is_s3
    with pytest.raises(ConfigError) as exc:
        session.get_spark(settings)
    msg = str(exc.value)
    assert "S3A jars" in msg and "scripts/setup.sh --test" in msg and "MDP_SPARK_JARS_DIR" in msg


def test_filesystem_lake_needs_no_s3a_jars(make_settings, monkeypatch, tmp_path):
    from spark_apps import session

    monkeypatch.setenv("MDP_SPARK_JARS_DIR", str(tmp_path))
    session.require_s3a(make_settings())  # embedded profile: a folder lake


def test_jars_in_pyspark_count_as_present(make_settings, monkeypatch, tmp_path):
    """In the images, fetch_s3a_jars.py puts hadoop-aws into pyspark's own jars/."""
    import pyspark

    from spark_apps import session

    fake = tmp_path / "pyspark"
    (fake / "jars").mkdir(parents=True)
    (fake / "jars" / "hadoop-aws-3.5.0.jar").write_bytes(b"x")
    monkeypatch.setenv("MDP_SPARK_JARS_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(pyspark, "__file__", str(fake / "__init__.py"))
    assert session.s3a_on_classpath()
    session.require_s3a(make_settings(lake_root="s3://", s3_endpoint="http://127.0.0.1:9"))


def test_run_stops_before_any_work_when_s3a_is_missing(make_settings, monkeypatch, tmp_path):
    """`mdp run --profile local` after `make run` alone: preflight names the missing jars first, before
    it contacts any endpoint (this one would not answer) and before any stage runs."""
    from mdp.core.stages import STAGES
    from mdp.shell.runner import preflight

    monkeypatch.setenv("MDP_SPARK_JARS_DIR", str(tmp_path))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    settings = make_settings(lake_root="s3://", s3_endpoint="http://127.0.0.1:9", source="generator")
    with pytest.raises(ConfigError, match="S3A jars"):
        preflight(settings, list(STAGES))
