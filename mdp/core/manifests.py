"""What the lake records about its versions and runs, as typed documents, and the one place each is
read from and written to JSON.

    Manifest         what a dataset version carries: the commitInfo `mdp` of its primary table's commit
    VersionManifest  a Manifest as read back, with the Delta version whose commit carries it
    StagedWrite      a run's write: its id and the table versions it started from
    StagedRun        a run's staged entry (<dataset>/_staged/<run>.json): its status, its write, and
                     the manifest its version will carry once the gate publishes it

The fields the code reads are declared; a stage's figures (rows in, rows quarantined, ...) ride
along as extra fields, read as `doc["bronze_in"]`. A document writes back exactly the keys it was
read or made with (`exclude_unset`), so lakes written before these types read and write the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mdp.core.lake import utcnow


class _Document(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def fields(self) -> dict[str, Any]:
        """The keys as written on disk (aliases, extras), only those read or given."""
        return self.model_dump(by_alias=True, exclude_unset=True)

    def __getitem__(self, key: str) -> Any:
        """A key as on disk, as a dict reads it: a stage's figure (`doc["bronze_in"]`), or a
        declared field that was read or given (KeyError otherwise, as the dict gave)."""
        extra = self.model_extra or {}
        if key in extra:
            return extra[key]
        for name, info in type(self).model_fields.items():
            if key in (name, info.alias) and name in self.model_fields_set:
                return getattr(self, name)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _ABSENT) is not _ABSENT

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


_ABSENT = object()


class Manifest(_Document):
    """What a run records in the commit that makes a dataset version (no version: the commit makes it)."""

    run_id: str | None = None
    write_id: str | None = None
    tables: dict[str, int | None] = Field(default_factory=dict)  # the other tables' versions that belong to it
    contract: str | None = None  # the contract's fingerprint the version was built under
    # Silver
    checkpoint: str | None = None  # the Structured Streaming checkpoint as of this version
    table_schema: dict[str, Any] | None = Field(default=None, alias="schema")  # the contract's columns (schema_of)
    profile: dict[str, Any] | None = None  # rows, keys and per-column figures the drift checks compare with
    silver_rows: int | None = None
    # Gold and scores. A version of the layout before Delta (`mdp lake convert`) was a text: a
    # version converted from it may still name one, and says which (`converted_from`).
    silver_version: int | str | None = None
    gold_snapshot: int | str | None = None
    model_name: str | None = None
    model_version: str | None = None  # MLflow's version (a text)
    rows: int | None = None
    converted_from: int | str | None = None

    def to_commit_info(self) -> str:
        return json.dumps(self.fields(), default=str)


class VersionManifest(Manifest):
    """A published version's manifest as read from the Delta log."""

    version: int = Field(exclude=True)  # never written: it is the version of the commit that carries it

    @classmethod
    def from_commit_info(cls, version: int, text: str | None) -> VersionManifest:
        return cls.model_validate({**json.loads(text or "{}"), "version": version})


class StagedWrite(_Document):
    run_id: str
    write_id: str
    based_on: dict[str, int | None]  # per table, the version the write started from (None: no table yet)


# Keys of a staged entry that are about the staging, not the version: the rest is the manifest.
_STAGING_KEYS = ("status", "write", "version", "staged_at", "based_on", "rejection", "rejected_at", "published_at")


class StagedRun(_Document):
    """A run's staged entry; its extra fields are the manifest the version will carry."""

    run_id: str
    status: Literal["staged", "published", "rejected"]
    staged_at: str
    version: int | None = None  # the version it was published as
    write: StagedWrite | None = None  # None: the run found nothing new
    based_on: int | None = None  # the dataset's published version when it was staged
    published_at: str | None = None
    rejected_at: str | None = None
    rejection: dict[str, Any] | None = None  # the gate's message, failures and Data Docs

    @classmethod
    def new(
        cls, run_id: str, write: StagedWrite | None, based_on: int | None, manifest: Mapping[str, Any]
    ) -> StagedRun:
        return cls.model_validate(
            {
                "run_id": run_id,
                "status": "staged",
                "staged_at": utcnow().isoformat(),
                "version": None,
                "write": write,
                "based_on": based_on,
                **manifest,
            }
        )

    def manifest(self) -> Manifest:
        """What the version commits: the run's own fields, none of the staging's."""
        doc = {k: v for k, v in self.fields().items() if k not in _STAGING_KEYS}
        return Manifest.model_validate(doc)

    def to_json(self) -> str:
        return json.dumps(self.fields(), indent=1, default=str)

    @classmethod
    def from_json(cls, text: str) -> StagedRun:
        return cls.model_validate_json(text)
