"""The store's promises (mdp.core.storage), one test each, held by both backends: the local
filesystem under tmp_path and a real SeaweedFS S3 server (the transport tests' session stack).

Publishing rests on these: the writer's lease is a put-if-absent renewed by compare-and-swap, the
pins file is updated by compare-and-swap, and a run's staged entry is read back by the next process.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest

from mdp.core.storage import LocalStore, S3Store, Store, join, s3_client

# The transport tests' servers, started once per session (a session fixture, not a mock).

pytestmark = pytest.mark.integration

WRITERS = 8


@pytest.fixture(params=["local", "s3"])
def store_root(request: pytest.FixtureRequest, tmp_path) -> Iterator[tuple[Store, str]]:
    """A store and an empty root URI of its own in it."""
    if request.param == "local":
        yield LocalStore(), f"file://{tmp_path}/lake"
        return
    request.getfixturevalue("s3")
    settings = request.getfixturevalue("local_settings")()
    client = s3_client(settings)
    bucket = f"store-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    yield S3Store(client), f"s3://{bucket}/root"


def race(n: int, attempt: Callable[[int], bool]) -> list[int]:
    """Run `attempt(i)` in n threads released together; the indexes that got True."""
    barrier = threading.Barrier(n)
    won: list[int] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        barrier.wait()
        try:
            if attempt(i):
                won.append(i)
        except BaseException as exc:  # re-raised below: a writer's error is a failed promise
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return won


# ---- read after write -------------------------------------------------------------------------------
def test_an_object_reads_back_what_was_last_written(store_root):
    store, root = store_root
    uri = join(root, "a", "doc.json")
    store.put_bytes(uri, b"one")
    assert store.get_bytes(uri) == b"one"
    store.put_bytes(uri, b"two")
    assert store.get_bytes(uri) == b"two"
    store.put_text(uri, "drei \u00e9")
    assert store.get_text(uri) == "drei \u00e9"


def test_a_missing_object_reads_as_none(store_root):
    store, root = store_root
    uri = join(root, "nothing.json")
    assert store.get_bytes(uri) is None
    assert store.get_text(uri) is None
    assert store.get_versioned(uri) == (None, None)


def test_the_token_names_the_content_written_last(store_root):
    store, root = store_root
    uri = join(root, "doc.json")
    store.put_bytes(uri, b"one")
    data, first = store.get_versioned(uri)
    assert data == b"one" and first
    assert store.get_versioned(uri)[1] == first  # reading does not change it
    store.put_bytes(uri, b"two")
    data, second = store.get_versioned(uri)
    assert data == b"two" and second and second != first


# ---- conditional writes ---------------------------------------------------------------------------
def test_put_if_absent_creates_only_when_nothing_is_there(store_root):
    store, root = store_root
    uri = join(root, "_LEASE.json")
    assert store.put_if_absent(uri, b"first") is True
    assert store.put_if_absent(uri, b"second") is False
    assert store.get_bytes(uri) == b"first"


def test_put_if_absent_after_a_delete_creates_again(store_root):
    store, root = store_root
    uri = join(root, "_LEASE.json")
    assert store.put_if_absent(uri, b"first")
    store.delete(uri)
    assert store.put_if_absent(uri, b"again") is True
    assert store.get_bytes(uri) == b"again"


def test_put_if_match_writes_only_over_the_token_read(store_root):
    store, root = store_root
    uri = join(root, "_PINS.json")
    store.put_bytes(uri, b"v1")
    _, token = store.get_versioned(uri)
    assert token
    assert store.put_if_match(uri, b"v2", token) is True
    assert store.get_bytes(uri) == b"v2"
    assert store.put_if_match(uri, b"v3", token) is False  # the token read is stale now
    assert store.get_bytes(uri) == b"v2"


def test_put_if_match_refuses_an_object_deleted_since_it_was_read(store_root):
    store, root = store_root
    uri = join(root, "_LEASE.json")
    store.put_bytes(uri, b"v1")
    _, token = store.get_versioned(uri)
    assert token
    store.delete(uri)
    assert store.put_if_match(uri, b"v2", token) is False
    assert store.get_bytes(uri) is None


def test_of_concurrent_put_if_absent_writers_exactly_one_wins(store_root):
    store, root = store_root
    uri = join(root, "_LEASE.json")
    won = race(WRITERS, lambda i: store.put_if_absent(uri, f"writer {i}".encode()))
    assert len(won) == 1
    assert store.get_bytes(uri) == f"writer {won[0]}".encode()


def test_of_concurrent_writers_swapping_the_same_token_exactly_one_wins(store_root):
    store, root = store_root
    uri = join(root, "_LEASE.json")
    store.put_bytes(uri, b"held")
    _, token = store.get_versioned(uri)
    assert token
    won = race(WRITERS, lambda i: store.put_if_match(uri, f"writer {i}".encode(), token))
    assert len(won) == 1
    assert store.get_bytes(uri) == f"writer {won[0]}".encode()


# ---- listing ----------------------------------------------------------------------------------------
def test_listing_names_the_immediate_folders_and_files_sorted(store_root):
    store, root = store_root
    for rel in ("t/b/part-0.parquet", "t/a/x/part-1.parquet", "t/z.json", "t/m.json", "other/n.json"):
        store.put_bytes(join(root, rel), b"x")
    assert store.list_dirs(join(root, "t")) == ["a", "b"]
    assert store.list_files(join(root, "t")) == ["m.json", "z.json"]
    assert store.walk_files(join(root, "t")) == ["a/x/part-1.parquet", "b/part-0.parquet", "m.json", "z.json"]


def test_listing_a_missing_prefix_is_empty(store_root):
    store, root = store_root
    assert store.list_dirs(join(root, "none")) == []
    assert store.list_files(join(root, "none")) == []
    assert store.walk_files(join(root, "none")) == []


def test_a_prefix_is_a_folder_not_the_start_of_a_name(store_root):
    store, root = store_root
    store.put_bytes(join(root, "t", "f.json"), b"x")
    store.put_bytes(join(root, "tables", "g.json"), b"y")
    assert store.walk_files(join(root, "t")) == ["f.json"]
    store.delete_prefix(join(root, "t"))
    assert store.get_bytes(join(root, "tables", "g.json")) == b"y"


def test_copy_prefix_copies_every_object_under_it(store_root):
    store, root = store_root
    for rel in ("a.json", "d/b.json", "d/e/c.json"):
        store.put_bytes(join(root, "src", rel), rel.encode())
    assert store.copy_prefix(join(root, "src"), join(root, "dst")) == 3
    assert store.walk_files(join(root, "dst")) == ["a.json", "d/b.json", "d/e/c.json"]
    assert store.get_bytes(join(root, "dst", "d", "e", "c.json")) == b"d/e/c.json"
    assert store.walk_files(join(root, "src")) == ["a.json", "d/b.json", "d/e/c.json"]  # a copy, not a move
    assert store.copy_prefix(join(root, "none"), join(root, "dst2")) == 0


# ---- delete -----------------------------------------------------------------------------------------
def test_delete_removes_one_object_and_a_missing_one_is_no_error(store_root):
    store, root = store_root
    keep, gone = join(root, "keep.json"), join(root, "gone.json")
    store.put_bytes(keep, b"k")
    store.put_bytes(gone, b"g")
    store.delete(gone)
    assert store.get_bytes(gone) is None
    assert store.get_bytes(keep) == b"k"
    store.delete(gone)  # again: nothing there, no error
    assert store.list_files(root) == ["keep.json"]


def test_delete_prefix_removes_everything_under_it(store_root):
    store, root = store_root
    for rel in ("staged-1/part-0.parquet", "staged-1/sub/part-1.parquet", "_delta_log/0.json"):
        store.put_bytes(join(root, "t", rel), b"x")
    store.delete_prefix(join(root, "t", "staged-1"))
    assert store.walk_files(join(root, "t")) == ["_delta_log/0.json"]
    # Not promised: that list_dirs forgets the folder. SeaweedFS keeps the emptied folder's entry,
    # so sweep() and gc() may find and delete an empty staging folder twice (harmless).
    assert store.walk_files(join(root, "t", "staged-1")) == []
    store.delete_prefix(join(root, "t", "staged-1"))  # again: nothing there, no error
