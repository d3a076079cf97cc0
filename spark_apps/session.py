"""One SparkSession factory for every Spark stage, reader and writer in a process."""

from __future__ import annotations

import glob
import os
import sys
import threading
from importlib.util import find_spec
from pathlib import Path

from pyspark.sql import SparkSession

from mdp.core.errors import ConfigError
from mdp.core.settings import Settings

_session: SparkSession | None = None
_lock = threading.Lock()  # the runner may start the session in a background thread (mdp/shell/runner.py)

LOG4J2 = Path(__file__).with_name("log4j2.properties")
# Printed by the JVM itself at start (no flag turns it off) and asking nothing of the user.
JVM_NOISE = (b"WARNING: Using incubator modules",)

# hadoop-aws 3.3.x reads these as plain numbers; Hadoop 3.4+ defaults are durations ("60s").
_S3A_NUMERIC_OVERRIDES = {
    "fs.s3a.connection.establish.timeout": "30000",
    "fs.s3a.connection.timeout": "200000",
    "fs.s3a.connection.ttl": "300000",
    "fs.s3a.multipart.purge.age": "86400",
    "fs.s3a.threads.keepalivetime": "60",
    "fs.s3a.assumed.role.session.duration": "1800",
}
# Hadoop 3.4.3/3.5.0 default to the `analytics` input stream (HADOOP-19559), which needs the
# analyticsaccelerator-s3 jar; the classic stream needs nothing beyond hadoop-aws and the SDK.
_S3A_STREAM = {"fs.s3a.input.stream.type": "classic"}


def s3a_jars() -> list[str]:
    """hadoop-aws + AWS SDK jars: MDP_SPARK_JARS_DIR, else the ones the sagemaker-pyspark sdist ships."""
    folder = os.environ.get("MDP_SPARK_JARS_DIR")
    if not folder:
        spec = find_spec("sagemaker_pyspark")
        if spec is not None and spec.origin:
            folder = os.path.join(os.path.dirname(spec.origin), "jars")
    if not folder:
        return []
    return sorted(
        glob.glob(os.path.join(folder, "hadoop-aws-*.jar"))
        + glob.glob(os.path.join(folder, "aws-java-sdk-bundle-*.jar"))
    )


def s3a_on_classpath() -> bool:
    """hadoop-aws where Spark finds it: the extra jars above, or pyspark's own jars/ (as in the images)."""
    import pyspark

    # Under spark-submit, pyspark imports from $SPARK_HOME/python/lib/pyspark.zip: look in SPARK_HOME too.
    homes = {os.path.dirname(pyspark.__file__), os.environ.get("SPARK_HOME", "")}
    return bool(s3a_jars()) or any(glob.glob(os.path.join(h, "jars", "hadoop-aws-*.jar")) for h in homes if h)


def require_s3a(settings: Settings) -> None:
    """An S3 lake without hadoop-aws fails later with a JVM stack trace; say what is missing instead."""
    if settings.lake_is_s3 and not s3a_on_classpath():
        raise ConfigError(
            "the lake is on S3 (lake_root s3://), but Spark has no S3A jars (hadoop-aws and the AWS SDK bundle). "
            "Install them with `scripts/setup.sh --test` (it adds sagemaker-pyspark 1.4.5, which ships them), "
            "or set MDP_SPARK_JARS_DIR to a folder holding hadoop-aws-*.jar and aws-java-sdk-bundle-*.jar."
        )


def spark_conf(settings: Settings) -> dict[str, str]:
    conf = {
        "spark.app.name": "mini-data-platform",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.coalescePartitions.enabled": "true",
        "spark.driver.memory": os.environ.get("MDP_SPARK_DRIVER_MEMORY", "3g"),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.parquet.compression.codec": "zstd",
        "spark.sql.mapKeyDedupPolicy": "LAST_WIN",  # a message repeating a key must not fail the run
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",  # readable by pyarrow and DuckDB as-is
    }
    if settings.spark_master != "k8s":  # under spark-operator, spark-submit already set a k8s:// master
        conf["spark.master"] = settings.spark_master
    # S3A is configured on every session (the jars must be there at JVM start), so one session
    # per process can serve a filesystem lake and an S3 lake alike; endpoint and keys are set at
    # runtime in _apply_s3.
    conf.update(
        {
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "spark.hadoop.fs.s3a.attempts.maximum": "2",
            "spark.hadoop.fs.s3a.retry.limit": "2",
            **{f"spark.hadoop.{k}": v for k, v in {**_S3A_NUMERIC_OVERRIDES, **_S3A_STREAM}.items()},
        }
    )
    jars = s3a_jars()
    if jars:
        conf["spark.jars"] = ",".join(jars)
    if quiet(settings):
        conf["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile={LOG4J2.as_uri()}"
    return conf


def quiet(settings: Settings) -> bool:
    return settings.log_level not in ("DEBUG", "INFO")


def get_spark(settings: Settings) -> SparkSession:
    """The process-wide session; created on first use, reused by every stage after it."""
    require_s3a(settings)
    with _lock:
        return _get_spark(settings)


def _get_spark(settings: Settings) -> SparkSession:
    global _session
    if _session is not None and _session.sparkContext._jsc is not None:
        _apply_s3(_session, settings)
        return _session
    if settings.spark_master.startswith("local"):
        # Python workers (mapInPandas) run this interpreter, with this environment's packages; the
        # SparkContext reads the variable, not spark.pyspark.python (images set it themselves).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder
    for k, v in spark_conf(settings).items():
        builder = builder.config(k, v)
    _session = _start_quietly(builder) if quiet(settings) else builder.getOrCreate()
    _apply_s3(_session, settings)
    return _session


def _start_quietly(builder) -> SparkSession:
    """getOrCreate with the JVM's stderr relayed through a filter that drops JVM_NOISE: the JVM is
    a child process that inherits file descriptor 2 while it starts."""
    read_end, write_end = os.pipe()
    out = os.dup(2)

    def relay() -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not line.startswith(JVM_NOISE):
                    os.write(out, line)

    threading.Thread(target=relay, name="jvm-stderr", daemon=True).start()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        return builder.getOrCreate()
    finally:
        os.dup2(saved, 2)  # Python's own stderr is the terminal again; the JVM keeps the pipe
        os.close(saved)


def _apply_s3(spark: SparkSession, settings: Settings) -> None:
    # Keys are set at runtime, not in the builder, so they never show in the Spark UI's environment tab.
    hconf = spark.sparkContext._jsc.hadoopConfiguration()
    if settings.s3_endpoint:
        hconf.set("fs.s3a.endpoint", settings.s3_endpoint)
        hconf.set("fs.s3a.connection.ssl.enabled", str(settings.s3_endpoint.startswith("https")).lower())
    if settings.s3_access_key and settings.s3_secret_key:
        hconf.set("fs.s3a.access.key", settings.s3_access_key.get_secret_value())
        hconf.set("fs.s3a.secret.key", settings.s3_secret_key.get_secret_value())
    # A cached S3A filesystem would keep old keys; settings may change between runs in one process.
    hconf.set("fs.s3a.impl.disable.cache", "true")


def stop_spark() -> None:
    global _session
    with _lock:
        if _session is not None:
            _session.stop()
            _session = None
