"""What a stage receives: settings, the interval it processes, the store, and a lazy Spark session."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mdp.lake import Interval
from mdp.settings import Settings
from mdp.storage import Store, store_for


class StageError(RuntimeError):
    """A stage refused to go on (bad input it cannot handle, a failed gate, ...)."""


class GateFailed(StageError):
    """The data-quality gate rejected the staged Silver."""


@dataclass
class RunContext:
    settings: Settings
    interval: Interval
    run_id: str = "manual"
    _store: Store | None = field(default=None, repr=False)

    @cached_property
    def store(self) -> Store:
        return self._store or store_for(self.settings)

    @property
    def spark(self):
        # Imported lazily: python stages never start a JVM.
        from spark_apps.session import get_spark

        return get_spark(self.settings)
