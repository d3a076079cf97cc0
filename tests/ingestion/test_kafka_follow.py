"""`mdp land --follow` as a real process against a real broker (tansu): it flushes by count and by
time, logs a line per flush, and on SIGTERM (or SIGINT) writes and commits what it polled, then
exits 0. A restarted follower goes on from the committed offsets: every record in Bronze once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingestion.producer import make_producer, publish
from mdp.core.lake import bronze_table_uri, read_parquet
from tests.server_helpers import bronze_offsets, committed_offsets, read_topic, subprocess_env

pytestmark = pytest.mark.integration


def _produce(settings, first: int, n: int) -> None:
    producer = make_producer(settings)
    try:
        publish(
            producer,
            settings.topic,
            [(f"C{i % 997:07d}".encode(), f'{{"i": {i}}}'.encode()) for i in range(first, first + n)],
        )
    finally:
        producer.close()


def _status(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _wait_for(pred, proc, what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert proc.poll() is None, f"the follower exited early ({proc.returncode}) while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class Follower:
    def __init__(self, settings, tmp_path: Path, name: str, *args: str):
        self.status = tmp_path / f"{name}.status.json"
        self.log = tmp_path / f"{name}.log"
        env = subprocess_env(settings, MDP_LOG_LEVEL="WARNING")
        cmd = [
            sys.executable,
            "-m",
            "mdp.shell.cli",
            "land",
            "--follow",
            "--group",
            f"g-{settings.topic}",
            "--status-file",
            str(self.status),
            *args,
        ]
        self._err = self.log.open("w")
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=self._err, text=True)

    def wait_for(self, what: str, pred) -> None:
        _wait_for(lambda: pred(_status(self.status)), self.proc, what)

    def stop(self, sig: int) -> tuple[int, dict, str]:
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=120)
        self._err.close()
        figures = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        return self.proc.returncode, figures, self.log.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._err.close()


def test_follow_flushes_and_drains_on_sigterm(local_settings, topic, tmp_path):
    s = local_settings(kafka_topic=topic, source="kafka", lake_root=".mdp/lake")

    def bronze():
        return read_parquet(s, bronze_table_uri(s))

    # Count-based flushes only (the time trigger is an hour away): 2,500 records give two flushes
    # of 1,000 and leave 500 polled but unwritten, which SIGTERM must write and commit.
    first = Follower(s, tmp_path, "first", "--flush-records", "1000", "--flush-seconds", "3600")
    try:
        first.wait_for("the group join", lambda st: st.get("state") == "following")
        _produce(s, 0, 2500)
        first.wait_for(
            "2,000 landed and 2,500 polled", lambda st: st.get("landed") == 2000 and st.get("polled") == 2500
        )
        assert bronze().num_rows == 2000  # Bronze fills while the follower runs
        code, figures, log = first.stop(signal.SIGTERM)
    finally:
        first.kill()
    assert code == 0, log[-2000:]
    assert figures["stopped_by"] == "signal" and figures["landed"] == 2500 and figures["batches"] == 3
    assert "SIGTERM: writing and committing what was polled" in log
    flush_lines = [line for line in log.splitlines() if "flush: " in line]
    assert len(flush_lines) == 3 and all("committed" in line for line in flush_lines)

    ends = {}
    for rec in read_topic(s.kafka_bootstrap, topic):
        ends[rec.partition] = max(ends.get(rec.partition, 0), rec.offset + 1)
    assert sum(ends.values()) == 2500
    assert bronze_offsets(bronze()) == {p: list(range(e)) for p, e in ends.items()}  # each record once
    assert committed_offsets(s.kafka_bootstrap, topic, f"g-{topic}") == {p: ends.get(p) for p in range(3)}

    # A restarted follower goes on from the committed offsets; a time-based flush writes a partial
    # batch; SIGINT stops it as cleanly.
    second = Follower(s, tmp_path, "second", "--flush-records", "1000", "--flush-seconds", "1")
    try:
        second.wait_for("the group join", lambda st: st.get("state") in ("following", "flushed"))
        _produce(s, 2500, 600)
        second.wait_for("600 landed", lambda st: st.get("landed") == 600)
        code, figures, log = second.stop(signal.SIGINT)
    finally:
        second.kill()
    assert code == 0, log[-2000:]
    assert figures["landed"] == 600 and figures["stopped_by"] == "signal"
    ends = {}
    for rec in read_topic(s.kafka_bootstrap, topic):
        ends[rec.partition] = max(ends.get(rec.partition, 0), rec.offset + 1)
    assert sum(ends.values()) == 3100
    assert bronze_offsets(bronze()) == {p: list(range(e)) for p, e in ends.items()}
    assert committed_offsets(s.kafka_bootstrap, topic, f"g-{topic}") == {p: ends.get(p) for p in range(3)}


def test_follow_without_a_broker_is_unavailable(local_settings, tmp_path):
    """Nothing listens at the bootstrap address: exit 5 (retry later), naming the setting and endpoint."""
    from mdp.shell.services import free_port

    s = local_settings(
        kafka_topic="customers",
        source="kafka",
        lake_root=".mdp/lake",
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        connect_timeout_s=2,
    )
    env = subprocess_env(s, MDP_CONNECT_TIMEOUT_S="2")
    done = subprocess.run(
        [sys.executable, "-m", "mdp.shell.cli", "land", "--follow"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 5, done.stderr
    assert f"cannot reach Kafka at {s.kafka_bootstrap} (kafka_bootstrap, MDP_KAFKA_BOOTSTRAP)" in done.stderr
