"""Settings: one object, built from a profile (data) plus environment and an optional file.

Precedence, highest first: explicit kwargs > MDP_* environment > MDP_SETTINGS_FILE (YAML) >
the profile's entry in profiles.yaml > field defaults. The profile chooses endpoints and the
runner; nothing else in the code base looks at the profile name.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlparse

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mdp.core.errors import ConfigError, Unavailable

if TYPE_CHECKING:
    from mdp.core.contract import Contract

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")
LAYERS = ("bronze", "silver", "gold", "mlflow")


def load_profiles() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(PROFILES_FILE.read_text())


class SecretRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    keys: dict[str, str]  # env var in the pod -> key in the Secret


class KubernetesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: str = "mdp-jobs"
    service_account: str = "mdp-jobs"
    spark_service_account: str = "mdp-spark"
    spark_executors: int = Field(
        default=1,
        ge=0,
        le=8,
        description="executor pods per SparkApplication; 0: driver-only, Spark runs local[*] inside the driver pod",
    )
    images: dict[str, str] = Field(default_factory=dict)
    config_map: str = "mdp-config"
    secrets: dict[str, SecretRef] = Field(default_factory=dict)


class _ProfileSource(PydanticBaseSettingsSource):
    """Lowest-priority source: the chosen profile's entry, then MDP_SETTINGS_FILE on top."""

    def get_field_value(
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:  # pragma: no cover - unused, __call__ does it all
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        profile = os.environ.get("MDP_PROFILE") or self.current_state.get("profile") or "embedded"
        data: dict[str, Any] = {}
        file = os.environ.get("MDP_SETTINGS_FILE")
        file_data: dict[str, Any] = {}
        if file:
            try:
                file_data = yaml.safe_load(Path(file).read_text()) or {}
            except FileNotFoundError as exc:
                raise ConfigError(f"MDP_SETTINGS_FILE: no such file {file!r}") from exc
            profile = os.environ.get("MDP_PROFILE") or file_data.get("profile", profile)
        profiles = load_profiles()
        if profile not in profiles:
            raise ConfigError(f"MDP_PROFILE: unknown profile {profile!r}; choose one of {', '.join(profiles)}")
        data.update(profiles[profile])
        data.update(file_data)
        data["profile"] = profile
        return data


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MDP_", env_nested_delimiter="__", extra="forbid", populate_by_name=True
    )

    profile: Literal["embedded", "local", "compose", "kind"] = "embedded"
    home: Path = Field(default=Path("."), description="base folder for relative paths (.mdp lives here)")
    lake_root: str = ".mdp/lake"
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    contract: str = Field(default="customers", description="a bundled contract's name or a YAML path (MDP_CONTRACT)")
    kafka_bootstrap: str | None = None
    kafka_topic: str | None = Field(default=None, description="default: the contract's entity")
    mlflow_tracking_uri: str = "sqlite:///.mdp/mlflow.db"
    mlflow_experiment: str | None = Field(default=None, description="default: the registered model's name")
    registered_model: str | None = Field(default=None, description="default: the contract's model name")
    postgres_dsn: str | None = None
    spark_master: str = "local[*]"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING",
        description="INFO or DEBUG also shows the libraries' logs (Spark, GX, MLflow); `mdp --verbose`",
    )
    spark_shuffle_partitions: int = Field(default=4, ge=1)
    score_in_driver_max_rows: int = Field(
        default=250_000,
        ge=0,
        description="score_customers scores a Gold snapshot of up to this many rows in the driver, with the model "
        "loaded once (no Python workers to start); larger ones in Spark's workers (mapInPandas). 0: always Spark",
    )
    source: Literal["generator", "kafka", "file"] = "generator"
    input_file: str | None = Field(
        default=None,
        validate_default=True,
        description="a CSV or Parquet file: the run's source (`mdp run --input`; with source file or kafka)",
    )
    runner: Literal["inline", "kubernetes"] = "inline"
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    events: int = Field(default=100_000, ge=1, description="events generated per run")
    dirty_fraction: float = Field(default=0.03, ge=0.0, le=1.0)
    seed: int = 42
    min_test_rows: int = Field(
        default=200, ge=1, description="train_model moves `champion` only with this many test rows"
    )
    connect_timeout_s: float = Field(default=10.0, gt=0)
    lease_ttl_s: float = Field(default=120.0, gt=0, description="a writer's lease on a lake dataset lapses after this")
    continuous_landing: bool = Field(
        default=False, description="a `mdp land --follow` service lands Kafka continuously; the DAG starts at Bronze"
    )

    # Credentials: the standard variable names, so boto3, MLflow and libpq read the same ones.
    s3_access_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("MDP_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
    )
    s3_secret_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("MDP_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")
    )
    postgres_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("MDP_POSTGRES_PASSWORD", "PGPASSWORD")
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ProfileSource(settings_cls), file_secret_settings)

    @field_validator("lake_root")
    @classmethod
    def _check_lake_root(cls, v: str) -> str:
        parsed = urlparse(v)
        if parsed.scheme not in ("", "file", "s3"):
            raise ValueError(f"unsupported scheme {parsed.scheme!r} in {v!r}: use a folder, file:// or s3://")
        if parsed.scheme == "s3" and parsed.path not in ("", "/"):
            raise ValueError(f"{v!r}: an s3 lake root is 's3://' (one bucket per layer) or 's3://BUCKET'")
        if not v.strip():
            raise ValueError("empty lake root")
        return v

    @field_validator("input_file")
    @classmethod
    def _check_input_file(cls, v: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("source") == "file" and not v:
            raise ValueError("source 'file' needs a CSV or Parquet file here")
        return v

    @field_validator("s3_endpoint", "mlflow_tracking_uri")
    @classmethod
    def _check_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parsed = urlparse(v)
        if parsed.scheme in ("http", "https") and not parsed.hostname:
            raise ValueError(f"{v!r} has no host")
        return v

    # ---- derived facts -------------------------------------------------------------------
    @property
    def data_contract(self) -> Contract:
        """The contract every stage works to (loaded once per process)."""
        from mdp.core.contract import load_contract

        return load_contract(self.contract)

    @property
    def topic(self) -> str:
        return self.kafka_topic or self.data_contract.entity

    @property
    def model_name(self) -> str:
        return self.registered_model or self.data_contract.registered_model

    @property
    def experiment(self) -> str:
        return self.mlflow_experiment or self.model_name

    @property
    def lake_is_s3(self) -> bool:
        return self.lake_root.startswith("s3://")

    @cached_property
    def lake_base(self) -> str:
        """The lake root as an absolute URI (file:///... or s3://...).

        A local lake's URI is `file://` + the absolute path as it is, not percent-encoded: Hadoop's
        Path (Spark), pyarrow and the local store all take it literally, so a folder with a space or
        a non-ASCII letter is one folder for all of them (a `file://` root given encoded is decoded)."""
        if self.lake_is_s3:
            return self.lake_root
        root = unquote(self.lake_root[len("file://") :]) if self.lake_root.startswith("file://") else self.lake_root
        path = Path(root) if Path(root).is_absolute() else (self.home / root)
        return f"file://{path.resolve()}"

    def layer_uri(self, layer: str) -> str:
        """bronze/silver/gold/mlflow: a bucket on S3 ('s3://' root), else a sub-folder."""
        if layer not in LAYERS:
            raise ConfigError(f"unknown lake layer {layer!r}")
        if self.lake_base in ("s3://", "s3:///"):
            return f"s3://{layer}"
        return f"{self.lake_base.rstrip('/')}/{layer}"

    @property
    def mlflow_uri(self) -> str:
        """Tracking URI with relative sqlite paths made absolute under `home`."""
        uri = self.mlflow_tracking_uri
        prefix = "sqlite:///"
        if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
            return prefix + str((self.home / uri[len(prefix) :]).resolve())
        return uri

    def secret_values(self) -> list[str]:
        """Every configured credential, so logs can be scanned or masked for them."""
        return [s.get_secret_value() for s in (self.s3_access_key, self.s3_secret_key, self.postgres_password) if s]

    def redacted(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"s3_access_key", "s3_secret_key", "postgres_password"})


def connect_failure(exc: BaseException | str) -> str:
    """A short reason for a failed connection: 'connection refused', 'timed out', 'unknown host' or the text."""
    text = str(exc)
    low = text.lower()
    if "refused" in low:
        return "connection refused"
    if "timed out" in low or "timeout" in low:
        return f"timed out ({text})"
    if "name or service not known" in low or "nodename nor servname" in low or "getaddrinfo" in low:
        return f"unknown host ({text})"
    return f"cannot connect ({text})"


def check_reachable(key: str, url: str, timeout: float) -> None:
    """Fail fast when nothing answers at an http(s):// or host:port endpoint: Unavailable (retryable)
    naming the setting, its variable and the endpoint, after one TCP connect bounded by `timeout`."""
    parsed = urlparse(url if "://" in url else f"tcp://{url}")
    if parsed.scheme not in ("http", "https", "tcp") or not parsed.hostname:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else connect_failure(exc)
        raise Unavailable(f"{key} (MDP_{key.upper()}) {url}: {reason}") from None


SECRET_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "PGPASSWORD",
    "MDP_S3_ACCESS_KEY",
    "MDP_S3_SECRET_KEY",
    "MDP_POSTGRES_PASSWORD",
)


class SecretMask(logging.Filter):
    """Replaces credential values with '***' in log records. Defence in depth: libraries log request
    headers at DEBUG (botocore's Authorization header carries the access key id)."""

    def __init__(self, values: list[str] | None = None):
        super().__init__()
        found = values if values is not None else [os.environ.get(k) for k in SECRET_ENV]
        self.values = sorted({v for v in found if v and len(v) >= 4}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for v in self.values:
            text = text.replace(v, "***")
        return _URL_PASSWORD.sub(r"\1***@", text)

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        masked = self.redact(msg)
        if masked != msg:
            record.msg, record.args = masked, None
        return True


_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]+:)[^@\s]+@")  # scheme://user:PASSWORD@host


def redact(text: str) -> str:
    """`text` with credential values from the environment and passwords inside URLs replaced by ***."""
    return SecretMask().redact(text)


def install_secret_mask(values: list[str] | None = None) -> SecretMask:
    """Mask credentials (from the environment, or `values`) in everything the root handlers emit."""
    mask = SecretMask(values)
    for handler in logging.getLogger().handlers:
        handler.addFilter(mask)
    return mask


def get_settings(**overrides: Any) -> Settings:
    """Build settings; a validation error becomes a ConfigError naming each bad key."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "settings"
            env = "MDP_" + key.upper().replace(".", "__")
            lines.append(f"{key} ({env}): {err['msg']}")
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
