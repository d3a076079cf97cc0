"""What a stage receives: settings, the contract, the interval it works on, its run id and the store.

`interval` is the range of ingest hours a run is about: the hours a generator lands, or, when
`backfill` is set, the Bronze hours bronze_to_silver reprocesses. Without `backfill`, Bronze ->
Silver is incremental: every Bronze object not yet in Silver, whichever hour it sits in.
`run_id` ties the stages of one run together (bronze_to_silver stages a Silver version for it,
validate_silver publishes that version and no other).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mdp.core.contract import Contract
from mdp.core.errors import GateFailed, StageError  # noqa: F401  (re-exported for stage modules)
from mdp.core.lake import Interval
from mdp.core.settings import Settings
from mdp.core.storage import Store, store_for


@dataclass
class RunContext:
    settings: Settings
    interval: Interval
    run_id: str = "manual"
    backfill: bool = False
    # `--all`: the interval is Bronze's own span. Silver reprocesses it; a generator makes up no hours for it.
    all_bronze: bool = False
    _store: Store | None = field(default=None, repr=False)

    @cached_property
    def store(self) -> Store:
        return self._store or store_for(self.settings)

    @property
    def contract(self) -> Contract:
        return self.settings.data_contract
