"""The writer's lease (issue 20 item 12): a renewal that errors is retried, a lease that cannot be
renewed fences its holder, and a newcomer never trusts another host's clock.

A real local store; the store errors are injected into its compare-and-swap, as an S3 503 would be.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest

from mdp.core.errors import Busy
from mdp.core.lake import Lease, utcnow
from mdp.core.storage import LocalStore

pytestmark = pytest.mark.unit

TTL = 0.6


class FlakyStore(LocalStore):
    """A local store whose compare-and-swap fails with an error `fail` times in a row (or for ever)."""

    def __init__(self, fail: int | float = 0):
        super().__init__()
        self.fail, self.renewed, self.errors = fail, threading.Event(), 0

    def put_if_match(self, uri, data, token):
        if self.fail > 0:
            self.fail -= 1
            self.errors += 1
            raise OSError("503 Slow Down")
        ok = super().put_if_match(uri, data, token)
        self.renewed.set()
        return ok


def _until(predicate, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_a_renewal_error_is_retried_and_the_lease_stays_held(tmp_path):
    store = FlakyStore(fail=1)
    lease = Lease(store, str(tmp_path / "_LEASE.json"), "run-a", TTL).acquire()
    try:
        assert store.renewed.wait(30), "the renewal thread died on the first error"
        assert store.errors == 1
        lease.check()  # renewed after the error: still ours
        with pytest.raises(Busy, match="is held by run 'run-a'"):
            Lease(LocalStore(), str(tmp_path / "_LEASE.json"), "run-b", TTL).acquire()
    finally:
        lease.release()


def test_a_lease_that_cannot_be_renewed_fences_its_holder(tmp_path):
    store = FlakyStore(fail=float("inf"))
    lease = Lease(store, str(tmp_path / "_LEASE.json"), "run-a", TTL).acquire()
    try:
        lease.check()
        assert _until(lambda: store.errors >= 2)

        def fenced() -> bool:
            try:
                lease.check()
            except Busy as exc:
                assert "lapsed" in str(exc) and "503 Slow Down" in str(exc)
                return True
            return False

        assert _until(fenced), "a holder that cannot renew kept writing"
    finally:
        lease.release()


def _foreign_lease(path, expired: bool) -> None:
    """A lease held by a process on another host, whose clock may run ahead of or behind ours."""
    at = utcnow() + timedelta(seconds=-3600 if expired else 3600)
    path.write_text(json.dumps({"holder": "run-x", "owner": "other-host:1:abcd", "expires_at": at.isoformat()}))


def test_a_live_holder_with_a_slow_clock_is_not_taken_over(tmp_path):
    path = tmp_path / "_LEASE.json"
    _foreign_lease(path, expired=True)  # its clock is an hour behind: the lease looks expired here
    stop = threading.Event()

    def renew():  # ...but its holder is alive and renews it
        store = LocalStore()
        while not stop.wait(TTL / 6):
            data, token = store.get_versioned(str(path))
            doc = json.loads(data)
            store.put_if_match(
                str(path),
                json.dumps({**doc, "expires_at": (utcnow() - timedelta(hours=1)).isoformat()}).encode(),
                token,
            )

    t = threading.Thread(target=renew, daemon=True)
    t.start()
    try:
        with pytest.raises(Busy, match="run 'run-x'"):
            Lease(LocalStore(), str(path), "run-b", TTL).acquire()
    finally:
        stop.set()
        t.join()


def test_a_dead_holder_on_another_host_is_taken_over_once_its_lease_stops_changing(tmp_path):
    path = tmp_path / "_LEASE.json"
    _foreign_lease(path, expired=True)
    lease = Lease(LocalStore(), str(path), "run-b", TTL).acquire()
    try:
        assert json.loads(path.read_text())["holder"] == "run-b"
        lease.check()
    finally:
        lease.release()
    assert not path.exists()


def test_an_unexpired_lease_on_another_host_is_busy_at_once(tmp_path):
    path = tmp_path / "_LEASE.json"
    _foreign_lease(path, expired=False)
    with pytest.raises(Busy, match="another writer is working on this dataset"):
        Lease(LocalStore(), str(path), "run-b", TTL).acquire()
