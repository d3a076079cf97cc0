"""A tiny object-store interface over the local filesystem and S3 (boto3).

Only what the lake needs: put/get small objects atomically, compare-and-swap them (the writer
lease; Delta commits are delta-rs's own), list and copy prefixes, delete. Large tables are read
and written by Spark, pyarrow and delta-rs; this module finds them.

Compare-and-swap: `get_versioned` returns an object's bytes and a token (its ETag on S3, a content
hash locally); `put_if_match` writes only while the object still has that token, `put_if_absent`
only when there is none. On S3 these are conditional PUTs (If-Match / If-None-Match, which MinIO,
SeaweedFS and AWS honour); on a filesystem, a write under an flock'ed sidecar lock.
"""

from __future__ import annotations

import abc
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from mdp.core.errors import ConfigError, Unavailable
from mdp.core.settings import LAYERS, Settings, connect_failure


class Store(abc.ABC):
    @abc.abstractmethod
    def put_bytes(self, uri: str, data: bytes) -> None: ...
    @abc.abstractmethod
    def get_bytes(self, uri: str) -> bytes | None: ...
    @abc.abstractmethod
    def get_versioned(self, uri: str) -> tuple[bytes | None, str | None]: ...
    @abc.abstractmethod
    def put_if_absent(self, uri: str, data: bytes) -> bool: ...
    @abc.abstractmethod
    def put_if_match(self, uri: str, data: bytes, token: str) -> bool: ...
    @abc.abstractmethod
    def list_dirs(self, uri: str) -> list[str]: ...
    @abc.abstractmethod
    def list_files(self, uri: str) -> list[str]: ...
    @abc.abstractmethod
    def walk_files(self, uri: str) -> list[str]: ...  # every object under the prefix, relative paths
    @abc.abstractmethod
    def copy_prefix(self, src: str, dst: str) -> int: ...
    @abc.abstractmethod
    def delete_prefix(self, uri: str) -> None: ...
    @abc.abstractmethod
    def delete(self, uri: str) -> None: ...

    def put_text(self, uri: str, text: str) -> None:
        self.put_bytes(uri, text.encode())

    def get_text(self, uri: str) -> str | None:
        data = self.get_bytes(uri)
        return None if data is None else data.decode()


def _token(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalStore(Store):
    @staticmethod
    def _path(uri: str) -> Path:
        # A lake URI names the path literally (Settings.lake_base): no percent-decoding, no urlparse
        # (which would cut a folder name at '#' or '?').
        if uri.startswith("file://"):
            return Path(uri[len("file://") :])
        return Path(uri.removeprefix("file:"))

    def put_bytes(self, uri: str, data: bytes) -> None:
        # Write a temp file in the same folder, fsync, rename: readers see all or nothing.
        path = self._path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, uri: str) -> bytes | None:
        path = self._path(uri)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    def get_versioned(self, uri: str) -> tuple[bytes | None, str | None]:
        data = self.get_bytes(uri)
        return data, None if data is None else _token(data)

    @contextmanager
    def _locked(self, uri: str) -> Iterator[Path]:
        path = self._path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".{path.name}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def put_if_absent(self, uri: str, data: bytes) -> bool:
        with self._locked(uri) as path:
            if path.exists():
                return False
            self.put_bytes(uri, data)
            return True

    def put_if_match(self, uri: str, data: bytes, token: str) -> bool:
        with self._locked(uri):
            current = self.get_bytes(uri)
            if current is None or _token(current) != token:
                return False
            self.put_bytes(uri, data)
            return True

    def list_dirs(self, uri: str) -> list[str]:
        path = self._path(uri)
        return sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []

    def list_files(self, uri: str) -> list[str]:
        path = self._path(uri)
        return (
            sorted(p.name for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if path.is_dir()
            else []
        )

    def walk_files(self, uri: str) -> list[str]:
        root = self._path(uri)
        if not root.is_dir():
            return []
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))

    def copy_prefix(self, src: str, dst: str) -> int:
        s, d = self._path(src), self._path(dst)
        if not s.is_dir():
            return 0
        shutil.copytree(s, d, dirs_exist_ok=True)
        return sum(1 for p in d.rglob("*") if p.is_file())

    def delete(self, uri: str) -> None:
        self._path(uri).unlink(missing_ok=True)

    def delete_prefix(self, uri: str) -> None:
        shutil.rmtree(self._path(uri), ignore_errors=True)


@contextmanager
def s3_errors(endpoint: str | None) -> Iterator[None]:
    """ "Cannot reach S3" becomes Unavailable (retryable); "S3 refused the keys" a ConfigError. Both
    name the setting and the endpoint."""
    from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

    try:
        yield
    except ReadTimeoutError as exc:
        raise Unavailable(f"s3_endpoint (MDP_S3_ENDPOINT) {endpoint}: no answer in time ({exc})") from None
    except ConnectionError as exc:  # refused, DNS, connect timeout (EndpointConnectionError and kin)
        raise Unavailable(
            f"s3_endpoint (MDP_S3_ENDPOINT) {endpoint}: {connect_failure(exc.kwargs.get('error') or exc)}"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "?")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status in (401, 403) or code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            raise ConfigError(
                f"S3 at {endpoint} rejected the credentials ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from None
        if status in (500, 502, 503, 504) or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            raise Unavailable(f"s3_endpoint (MDP_S3_ENDPOINT) {endpoint}: {code} (HTTP {status})") from None
        raise


def _precondition_failed(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    code = exc.response.get("Error", {}).get("Code", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412)


class S3Client(Protocol):
    """The part of a boto3 S3 client the store calls (boto3 builds its methods at run time)."""

    meta: Any
    exceptions: Any

    def put_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def get_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def copy_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_object(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_objects(self, **kwargs: Any) -> dict[str, Any]: ...
    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]: ...
    def get_paginator(self, operation_name: str) -> Any: ...


@dataclass
class S3Store(Store):
    client: S3Client

    def _errors(self) -> AbstractContextManager[None]:
        return s3_errors(getattr(getattr(self.client, "meta", None), "endpoint_url", None))

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        return parsed.netloc, parsed.path.lstrip("/")

    def put_bytes(self, uri: str, data: bytes) -> None:
        bucket, key = self._split(uri)
        with self._errors():
            self.client.put_object(Bucket=bucket, Key=key, Body=data)  # a single PUT is atomic

    def get_versioned(self, uri: str) -> tuple[bytes | None, str | None]:
        bucket, key = self._split(uri)
        try:
            with self._errors():
                obj = self.client.get_object(Bucket=bucket, Key=key)
                return obj["Body"].read(), obj["ETag"]
        except self.client.exceptions.NoSuchKey:
            return None, None

    def get_bytes(self, uri: str) -> bytes | None:
        return self.get_versioned(uri)[0]

    def _conditional_put(self, uri: str, data: bytes, **condition: str) -> bool:
        bucket, key = self._split(uri)
        try:
            with self._errors():
                self.client.put_object(Bucket=bucket, Key=key, Body=data, **condition)
            return True
        except Exception as exc:
            if _precondition_failed(exc):
                return False
            raise

    def put_if_absent(self, uri: str, data: bytes) -> bool:
        return self._conditional_put(uri, data, IfNoneMatch="*")

    def put_if_match(self, uri: str, data: bytes, token: str) -> bool:
        return self._conditional_put(uri, data, IfMatch=token)

    def _list(self, uri: str, delimiter: str = "/") -> tuple[list[str], list[str]]:
        bucket, key = self._split(uri)
        prefix = key.rstrip("/") + "/" if key else ""
        dirs: list[str] = []
        files: list[str] = []
        with self._errors():
            kwargs: dict[str, str] = {
                "Bucket": bucket,
                "Prefix": prefix,
                **({"Delimiter": delimiter} if delimiter else {}),
            }
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                dirs += [p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", [])]
                # A folder marker (pyarrow writes `<prefix>/` itself) is not a file.
                files += [o["Key"][len(prefix) :] for o in page.get("Contents", []) if o["Key"] != prefix]
        return sorted(dirs), sorted(files)

    def list_dirs(self, uri: str) -> list[str]:
        return self._list(uri)[0]

    def list_files(self, uri: str) -> list[str]:
        return self._list(uri)[1]

    def walk_files(self, uri: str) -> list[str]:
        return [f for f in self._list(uri, delimiter="")[1] if not f.endswith("/")]

    def copy_prefix(self, src: str, dst: str) -> int:
        sb, sk = self._split(src)
        db, dk = self._split(dst)
        n = 0
        with self._errors():
            for rel in self.walk_files(src):
                self.client.copy_object(
                    Bucket=db,
                    Key=f"{dk.rstrip('/')}/{rel}",
                    CopySource={"Bucket": sb, "Key": f"{sk.rstrip('/')}/{rel}"},
                )
                n += 1
        return n

    def delete(self, uri: str) -> None:
        bucket, key = self._split(uri)
        with self._errors():
            self.client.delete_object(Bucket=bucket, Key=key)

    def delete_prefix(self, uri: str) -> None:
        bucket, key = self._split(uri)
        prefix = key.rstrip("/") + "/"
        with self._errors():
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                objs = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if objs:
                    self.client.delete_objects(Bucket=bucket, Delete={"Objects": objs})


def s3_client(settings: Settings) -> S3Client:
    import boto3
    from botocore.config import Config

    if not settings.s3_endpoint:
        raise ConfigError("s3_endpoint (MDP_S3_ENDPOINT): required when lake_root is s3://")
    if not (settings.s3_access_key and settings.s3_secret_key):
        raise ConfigError(
            f"S3 credentials missing for {settings.s3_endpoint}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key.get_secret_value(),
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=settings.connect_timeout_s,
            read_timeout=max(30.0, settings.connect_timeout_s),
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )


def check_s3(settings: Settings, buckets: tuple[str, ...] | None = None) -> None:
    """Fail fast when S3 is unreachable (Unavailable) or refuses us or lacks a bucket (ConfigError)."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

    if not settings.lake_is_s3:
        return
    client = s3_client(settings)
    wanted = buckets or tuple(sorted({urlparse(settings.layer_uri(layer)).netloc for layer in LAYERS}))
    for bucket in wanted:
        try:
            client.list_objects_v2(Bucket=bucket, MaxKeys=1)  # not HEAD: an error body names the cause
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise ConfigError(
                    f"S3 at {settings.s3_endpoint}: bucket {bucket!r} does not exist; create it (local profile: `mdp services bootstrap`)"
                ) from None
            if status in (401, 403) or code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
                raise ConfigError(
                    f"S3 at {settings.s3_endpoint} rejected the credentials ({code}): check AWS_ACCESS_KEY_ID and "
                    f'AWS_SECRET_ACCESS_KEY (for the local profile: eval "$(mdp services env)")'
                ) from None
            raise Unavailable(f"S3 at {settings.s3_endpoint}: {code} on bucket {bucket!r}") from None
        except (EndpointConnectionError, BotoCoreError) as exc:
            raise Unavailable(
                f"cannot reach S3 at {settings.s3_endpoint} (s3_endpoint, MDP_S3_ENDPOINT): {exc}"
            ) from None


def store_for(settings: Settings) -> Store:
    return S3Store(s3_client(settings)) if settings.lake_is_s3 else LocalStore()


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *[p.strip("/") for p in parts]])
