"""Quiet by default: `mdp` prints its own progress and results. Library logs and warnings that ask
nothing of the user show only with `mdp --verbose` (or MDP_LOG_LEVEL=INFO|DEBUG)."""

from __future__ import annotations

import logging
import os
import warnings

LIBRARIES = (
    "great_expectations",
    "mlflow",
    "alembic",
    "py4j",
    "pyspark",
    "sklearn",
    "urllib3",
    "botocore",
    "kafka",
    "confluent_kafka",
)


def configure(level: str | None = None) -> str:
    level = (level or os.environ.get("MDP_LOG_LEVEL") or "WARNING").upper()
    os.environ["MDP_LOG_LEVEL"] = level  # Settings.log_level, and child processes, see the same
    # MLflow installs its own handler at import, at INFO unless told otherwise.
    os.environ["MLFLOW_LOGGING_LEVEL"] = "INFO" if level == "DEBUG" else level
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    if level not in ("DEBUG", "INFO"):
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # GX raises its own loggers to INFO, so the filter sits on the handler; the project's own
        # loggers keep what a command asks for (`mdp land --follow` logs one line per flush).
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_libraries)
        pattern = "|".join(LIBRARIES)
        for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=rf"({pattern})(\.|$)")
    return level


def _quiet_libraries(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not record.name.startswith(LIBRARIES)
