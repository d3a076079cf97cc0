"""Issue 7.2 - crash and rerun.

A lake with H1 published. Then, in a subprocess (`mdp stage ...`, as Airflow or a pod runs it):
1. bronze_to_silver, with H2 newly landed, is SIGKILLed (with its JVM: the whole process group)
   the moment its new Silver state folder appears, i.e. while Spark is writing it, before any
   pointer, while it holds the Silver lease;
2. silver_to_gold is SIGKILLed after staging its snapshot and before the Delta commit
   (test hook MDP_TEST_CRASH_BEFORE_POINTER=gold in mdp/core/tables.py).
After each crash readers (who follow the pointers) see the previous complete version; a rerun
gives content identical to the uninterrupted reference run; afterwards no unreferenced version
folder, Spark `_temporary` folder or temp pointer file is left in the lake.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mdp.core.tables import gold_dataset, silver_dataset
from tests.reliability.harness import (
    CLI_OUTPUTS,
    HOURS,
    MDP,
    ROOT,
    checksums,
    cli_env,
    cycle,
    land_hour,
    make_lake,
    staged_dirs,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lake(tmp_path_factory, spark, reference):
    settings = make_lake(tmp_path_factory.mktemp("crash"))
    land_hour(settings, 0)
    cycle(settings, HOURS[0])
    assert checksums(spark, settings) == reference.after[0]
    return {"settings": settings, "published_hour": 0}


def spawn(settings, args: list[str], log: Path, **env) -> subprocess.Popen:
    fh = open(log, "wb")
    # A session of its own, so the kill takes the JVM that PySpark started along with the driver.
    return subprocess.Popen(
        [MDP, *args],
        env=cli_env(settings.home, **env),
        stdout=fh,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, log: Path, what: str) -> str:
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    text = log.read_text(errors="replace")
    CLI_OUTPUTS.append((what, text))
    return text


def layer_path(settings, layer: str) -> Path:
    return Path(settings.layer_uri(layer).removeprefix("file://"))


def leftovers(settings, layer: str) -> list[str]:
    """Spark temp folders and half-written pointer files anywhere in the layer."""
    root = layer_path(settings, layer)
    return [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.name in ("_temporary", "_STAGED.json.tmp") or p.name.startswith(".tmp-")
    ]


def test_sigkill_while_writing_silver_then_rerun(lake, spark, reference, tmp_path):
    settings = lake["settings"]
    silver = silver_dataset(settings)
    before_version = silver.current()["version"]
    before_dirs = staged_dirs(settings, "state")
    hour = HOURS[1]
    land_hour(settings, 1)
    log = tmp_path / "b2s.log"
    proc = spawn(settings, ["stage", "bronze_to_silver", "--run-id", "crashed"], log)
    deadline, new = time.monotonic() + 240, set()
    while time.monotonic() < deadline and proc.poll() is None:
        new = staged_dirs(settings, "state") - before_dirs
        if new:
            os.killpg(proc.pid, signal.SIGKILL)  # mid-write: the folder exists, Spark is filling it
            break
        time.sleep(0.05)
    out = finish(proc, log, "crash: stage bronze_to_silver")
    assert new, f"the stage ended (rc={proc.returncode}) before a Silver version folder appeared:\n{out[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    (orphan,) = new

    # Readers follow the pointer: still the previous complete version, nothing staged.
    assert silver.current()["version"] == before_version
    assert silver.staged("crashed") is None
    assert orphan.removeprefix("staged-") not in silver.waiting()
    assert checksums(spark, settings) == reference.after[0]

    # Rerun: the dead holder's lease is taken over; identical to the uninterrupted reference; the
    # crashed attempt is gone (its checkpoint too, so H2's objects were read again).
    report = cycle(settings, hour)
    assert len(report.conservation()) == 3
    assert checksums(spark, settings) == reference.after[1]
    lake["published_hour"] = 1
    for table in silver.tables:  # swept by the next writer, checkpoint and all
        assert orphan not in staged_dirs(settings, table), table
    assert orphan.removeprefix("staged-") not in silver.store.list_dirs(f"{silver.root}/_checkpoint")
    assert leftovers(settings, "silver") == []


def test_sigkill_before_the_gold_pointer_then_rerun(lake, spark, reference, tmp_path):
    settings = lake["settings"]
    gold = gold_dataset(settings)
    # The next hour reaches Silver; Gold has not been built from it yet.
    nxt = lake["published_hour"] + 1
    land_hour(settings, nxt)
    cycle(settings, HOURS[nxt], stages=("bronze_to_silver", "validate_silver"))
    expected = reference.after[nxt]
    gold_before = checksums(spark, settings)["gold/features"]
    before_version = gold.current()["version"]
    before_dirs = set(gold.staged_writes("features"))
    log = tmp_path / "gold.log"
    proc = spawn(settings, ["stage", "silver_to_gold"], log, MDP_TEST_CRASH_BEFORE_POINTER="gold")
    try:
        proc.wait(timeout=240)
    finally:
        out = finish(proc, log, "crash: stage silver_to_gold")
    assert proc.returncode == -signal.SIGKILL, out[-2000:]
    (orphan,) = set(gold.staged_writes("features")) - before_dirs
    orphan_path = layer_path(settings, "gold") / "customers" / "features" / orphan
    assert list(orphan_path.glob("*.parquet")), "the snapshot's data was written before the kill"

    assert gold.current()["version"] == before_version  # the staged files never entered the log
    assert checksums(spark, settings)["gold/features"] == gold_before

    cycle(settings, HOURS[nxt], stages=("silver_to_gold",))
    assert gold.current()["version"] == before_version + 1  # one commit
    assert checksums(spark, settings) == expected
    assert orphan not in gold.staged_writes("features")  # swept by the next writer
    assert leftovers(settings, "gold") == []
