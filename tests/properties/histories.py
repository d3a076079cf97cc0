"""Random histories of what users and the world do, through the real pipeline, checked after every run
(issue 28).

A Hypothesis state machine whose rules are deliveries and operations on one embedded lake: land a
generated hour (current or older), resend part of an earlier one, a late record (clean or not) into
an old hour, deletes (full or minimal), a file under a contract without an event time (the same
name or another, the same hour or later), a contract change followed by a backfill or `--all`, a
crash at a crash point and the retry of that stage, a run with nothing new. Field values come from
strategies derived from the contract's types (tests/properties/values.py). Each run goes through
bronze_to_silver -> validate_silver -> silver_to_gold in process (the shared Spark session).

After every run, what docs/RELIABILITY.md promises:
- no stage exits 1, 4 or 5 on any input, and the retry after a crash succeeds (exit 2 only for a
  changed contract outside `--all`; exit 3, the gate, only where the input was beyond the contract's
  thresholds as its producer made it, see `History.required_to_pass`);
- what published (Silver state, quarantine, the gate's batch, Gold, the run's figures) equals the
  DuckDB oracle (tests/oracle/oracle.py, which shares no code with the Spark path) computed from
  scratch over the same Bronze, under the current contract after a contract change;
- the records a run read are the records written to Bronze (this machine's own ledger, not the
  Parquet footers the stage counts);
- a resend or re-ingest of what Silver has read changes nothing in Silver or Gold;
- `--all` on a copy of the lake gives the incremental path's Silver (rule `all_on_a_copy`).

A failing history shrinks, and its steps are written as a shell script of `mdp` commands and the
input files they read (printed with the failure; `History.script`).

What a crash is here: the stage raises `Crash` (a BaseException, which no stage handler catches) at
the crash point, in process: the SIGKILL of tests/reliability/test_reliability_crash.py without the
JVM start. `finally` blocks still run (the lease is released; a real kill leaves it to expire).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import yaml
from hypothesis import note as _note
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, precondition, rule

from ingestion.file_source import ingest_file
from ingestion.generator import generate_hour
from mdp.core.context import RunContext
from mdp.core.contract import CONTRACTS_DIR
from mdp.core.errors import MdpError
from mdp.core.lake import Interval
from mdp.core.settings import get_settings
from mdp.core.stages import get_stage
from mdp.core.storage import store_for
from mdp.core.tables import silver_dataset
from mdp.shell.runner import run_pipeline
from tests.oracle.oracle import POSITION, bronze_objects, compare, differences, expected, land, published
from tests.properties.values import RAW, text_cell, value_for

ROOT = Path(__file__).resolve().parents[2]
H = [datetime(2026, 5, 4, h, tzinfo=UTC) for h in range(10)]
STAGES = ("bronze_to_silver", "validate_silver", "silver_to_gold")
# The thresholds a bad record counts against (conflicting copies have their own: `Delivery.conflicts`).
SHARES = ("max_quarantined", "max_unparseable", "max_unknown_fields", "max_bad_type", "max_per_rule")
KINDS = ("customers", "customers-without-tombstone", "customers-nullable-key", "subscribers")
# `make fuzz FUZZ_KINDS=subscribers`: spend a fuzzing session on some starting contracts only.
FUZZ_KINDS = tuple(k for k in os.environ.get("FUZZ_KINDS", ",".join(KINDS)).split(",") if k in KINDS) or KINDS
# name -> (stage, layer, when). The first two are MDP_TEST_CRASH_BEFORE_POINTER=silver in each stage
# (mdp/core/lake.py: in `stage` and in `commit`), the Gold one MDP_TEST_CRASH_BEFORE_POINTER=gold.
# "after" has no hook in the code: the process dies right after the pointer write returned.
CRASHES = {
    "bronze_to_silver dies before its version is staged": ("bronze_to_silver", "silver", "before"),
    "validate_silver dies before the Silver pointer moves": ("validate_silver", "silver", "before"),
    "validate_silver dies after the Silver pointer moved": ("validate_silver", "silver", "after"),
    "silver_to_gold dies before the Gold pointer moves": ("silver_to_gold", "gold", "before"),
    "silver_to_gold dies after the Gold pointer moved": ("silver_to_gold", "gold", "after"),
}
CHANGES = {
    "customers": (
        "age at most 82",
        "full_name upper-cased",
        "a new nullable column",
        "tombstone toggled",
        "the key made non-nullable",
        "max_quarantined loosened to 0.2",
    ),
    "subscribers": ("tenure_months at most 60", "a new nullable column", "max_quarantined loosened to 0.2"),
}
TIGHTENING = {"age at most 82", "tenure_months at most 60"}  # makes clean records bad: the producer view is lost


def note(text: str) -> None:
    """Hypothesis's note (printed with a failing example), or nothing outside a Hypothesis test."""
    try:
        _note(text)
    except Exception:
        pass


class Crash(BaseException):
    """The process dies here. Not an Exception: no handler in a stage catches it."""


@contextmanager
def crash_at(layer: str, when: str):
    """Make the first publishing step of `layer` (staging, or the Delta commit) die before (or just
    after) it happens: the hooks that MDP_TEST_CRASH_{BEFORE,AFTER}_POINTER fire in a real process."""
    import mdp.core.tables as tables

    hook, fired = tables._crash_hook, []
    wanted = "MDP_TEST_CRASH_BEFORE_POINTER" if when == "before" else "MDP_TEST_CRASH_AFTER_POINTER"

    def _hook(var: str, at: str) -> None:
        if var == wanted and at == layer and not fired:
            fired.append(True)
            raise Crash(f"killed {when} the {layer} commit")
        hook(var, at)

    tables._crash_hook = _hook
    try:
        yield fired
    finally:
        tables._crash_hook = hook


def allowed(limit: float, rows: int, smallest: int) -> int:
    """Bad rows a share threshold lets through in `rows` rows, by the rule of docs/RELIABILITY.md
    ("The smallest batch a share applies to"), written here again from the text."""
    if rows >= smallest or rows == 0:
        return math.floor(limit * rows + 1e-9)
    share = max(limit, min(math.floor(limit * smallest) / rows, 0.5))
    return math.floor(share * rows + 1e-9)


def eid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def path_of(uri: str) -> str:
    return str(Path(uri.removeprefix("file://")))


@dataclass
class Delivery:
    """What one producer sent in one go: its messages and how many of them may be bad (an upper bound)."""

    n: int
    messages: list[bytes]
    bad: list[int]  # per message: 0, or how many rows of a threshold it may count for
    hour: int
    source: str
    partition: int
    offsets: list[int]
    file: Path | None = None  # a file ingest: the file
    conflicts: int = 0  # event ids sent with two contents (the generator's conflicting duplicates)
    copies_of: list[str] = field(default_factory=list)  # Bronze objects whose records these are copies of


def customer_rows(first: int, n: int, shift: int) -> list[dict]:
    regions, plans = ["Central", "East", "North", "South", "West"], ["Month-to-month", "One year", "Two year"]
    return [
        {
            "account_no": first + i,
            "region": regions[i % 5],
            "contract_type": plans[i % 3],
            "internet_service": "DSL",
            "tenure_months": 1 + (i * 7) % 72 + shift,
            "monthly_charges": 20.0 + i,
            "total_charges": None if i % 9 == 0 else 20.0 * i,
            "support_calls": i % 4,
            "paperless_billing": i % 2,
            "email": f"a{first + i}@example.com",
            "churn": "Yes" if i % 3 == 0 else "No",
        }
        for i in range(n)
    ]


class Failed(AssertionError):
    pass


class History:
    """One lake, its history, and what the world wrote to it (the ledger the checks count from)."""

    def __init__(self, root: Path, kind: str):
        self.root, self.kind = root, kind
        self.home, self.replay = root / "lake", root / "replay"
        (self.replay / "inputs").mkdir(parents=True)
        (self.replay / "contracts").mkdir()
        self.contract_no = 0
        self.contract_path = self._write_contract(self._initial_contract(), "initial")
        self.ledger: dict[str, tuple[int, int]] = {}  # Bronze object -> (records written, may be bad)
        self.copies: dict[str, list[str]] = {}  # Bronze object -> objects it copies
        self.hours: dict[int, list[int]] = {}  # ingest hour -> [records, may be bad], every delivery
        self.seen: list[str] = []  # the Bronze objects the published Silver has read
        self.offsets: dict[tuple[str, int], int] = {}
        self.customers: dict[str, dict] = {}
        self.ids = count(1)
        self.runs = count(1)
        self.mixed = False  # a changed contract not yet applied to all of Silver (docs: new events only)
        self.tracked = True  # the producer view of bad records is known (not after a tightening)
        self.refusals: list[str] = []
        self.steps: list[str] = []
        self.script = self.replay / "replay.sh"
        self.lines = [
            "#!/usr/bin/env bash",
            "# A history found by tests/properties (issue 28). Run from the repository root.",
            'export MDP_HOME="${MDP_HOME:-$(mktemp -d)}" PYTHONPATH="$PWD"',
            f"R={self.replay}",
            f"export MDP_CONTRACT=$R/contracts/{self.contract_path.name}  # {kind}",
        ]
        self._flush()

    # ---- contracts -------------------------------------------------------------------------------
    def _initial_contract(self) -> dict:
        name = "subscribers" if self.kind == "subscribers" else "customers"
        data = yaml.safe_load((CONTRACTS_DIR / f"{name}.yaml").read_text())
        if self.kind == "customers-without-tombstone":
            data.pop("tombstone")
        if self.kind == "customers-nullable-key":  # a hand-written contract that leaves out `nullable: false`
            key = next(c for c in data["columns"] if c["name"] == data["primary_key"])
            key.pop("nullable")
        return data

    def _write_contract(self, data: dict, why: str) -> Path:
        path = self.replay / "contracts" / f"c{self.contract_no}.yaml"
        self.contract_no += 1
        path.write_text(f"# {why}\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        self.contract_data = data
        return path

    @property
    def settings(self):
        # Built once per contract: building settings and loading the contract costs tens of ms.
        if getattr(self, "_settings_for", None) != self.contract_path:
            self._settings = get_settings(home=self.home, seed=0, contract=str(self.contract_path))
            self._settings_for = self.contract_path
        return self._settings

    @property
    def contract(self):
        return self.settings.data_contract

    def change_contract(self, change: str) -> None:
        data = json.loads(json.dumps(self.contract_data))
        cols = {c["name"]: c for c in data["columns"]}
        if change == "age at most 82":
            cols["age"]["max"] = 82
        elif change == "tenure_months at most 60":
            cols["tenure_months"]["max"] = 60
        elif change == "full_name upper-cased":
            cols["full_name"]["normalise"] = ["trim", "upper"]
        elif change == "a new nullable column":
            data["columns"].append(
                {"name": f"note{self.contract_no}", "type": "string", "nullable": True, "feature": "excluded"}
            )
        elif change == "tombstone toggled":
            if data.pop("tombstone", None) is None:
                data["tombstone"] = {"column": "event_type", "value": "customer_deleted"}
        elif change == "the key made non-nullable":
            cols[data["primary_key"]]["nullable"] = False
        elif change == "max_quarantined loosened to 0.2":
            data.setdefault("quality", {})["max_quarantined"] = 0.2
        self.contract_path = self._write_contract(data, change)
        self.tracked &= change not in TIGHTENING
        self.mixed = True
        self.step(
            f"the contract changes: {change}", f"export MDP_CONTRACT=$R/contracts/{self.contract_path.name}  # {change}"
        )

    # ---- the replay script -----------------------------------------------------------------------
    def step(self, human: str, *commands: str) -> None:
        self.steps.append(human)
        note(f"step {len(self.steps)}: {human}")
        self.lines += [f"# {len(self.steps)}. {human}", *commands]
        self._flush()

    def _flush(self) -> None:
        self.script.write_text("\n".join(self.lines) + "\n")

    def fail(self, what: str) -> None:
        steps = "\n".join(f"  {i}. {s}" for i, s in enumerate(self.steps, 1))
        (self.replay / "FAILED.txt").write_text(what + "\n")  # which examples failed, for the fuzz log
        raise Failed(
            f"{what}\n\nhistory ({self.kind}):\n{steps}\n\nreplay: bash {self.script}  (inputs under {self.replay})"
        )

    # ---- deliveries ------------------------------------------------------------------------------
    def next_offsets(self, source: str, partition: int, n: int) -> list[int]:
        first = self.offsets.get((source, partition), 0)
        self.offsets[(source, partition)] = first + n
        return list(range(first, first + n))

    def deliver(self, d: Delivery, at: datetime, why: str) -> list[str]:
        """Land a delivery into Bronze as a landing does, and book it."""
        k = next(self.ids)
        # Each delivery 1.001 ms x k later: no two records of two deliveries share an ingest time (the
        # last tie of the arrival order is broken differently by Spark and the oracle, by design).
        at += timedelta(microseconds=1001 * k)
        if d.file is not None:
            try:
                figures = ingest_file(self.settings, store_for(self.settings), d.file, at=at)
            except MdpError as exc:  # a refusal with a clear error (e.g. to rewrite a Bronze object)
                self.refusals.append(f"ingest {d.file.name}: exit {exc.exit_code} {exc}")
                self.step(f"{why}: refused ({type(exc).__name__}: {str(exc)[:200]})")
                return []
            if figures["events"] != d.n:
                self.fail(
                    f"{d.file}: {d.n} rows, {figures['events']} events sent (a row lost or doubled by the file source)"
                )
            written = [path_of(u) for u in figures["bronze_objects"]]
            self.step(
                why,
                f"python -m tests.properties.replay ingest $R/{d.file.relative_to(self.replay)} --at {at.isoformat()}"
                "  # = mdp ingest FILE, at that time",
            )
        else:
            try:
                uris = land(self.settings, d.messages, d.offsets, at, source=d.source, partition=d.partition)
            except MdpError as exc:  # as a landing, it refuses to rewrite an object with other records
                self.refusals.append(f"{why}: {exc}")
                self.step(f"{why}: refused ({type(exc).__name__}: {str(exc)[:200]})")
                return []
            written = [path_of(u) for u in uris]
            name = self.replay / "inputs" / f"{k:03d}.jsonl"
            name.write_text("".join(json.dumps(m.decode()) + "\n" for m in d.messages))
            self.step(
                why,
                f"python -m tests.properties.replay land $R/inputs/{name.name} --at {at.isoformat()} --source {d.source} "
                f"--partition {d.partition} --first-offset {d.offsets[0]}",
            )
        assert len(written) == 1, written  # one hour, one partition: one object
        self.ledger[written[0]] = (d.n, sum(d.bad), d.conflicts)
        self.copies[written[0]] = list(d.copies_of)
        hour = self.hours.setdefault(d.hour, [0, 0, 0])
        hour[0] += d.n
        hour[1] += sum(d.bad)
        hour[2] += d.conflicts
        for m, bad in zip(d.messages, d.bad if d.messages else [], strict=True):
            e = json.loads(m) if not bad else None
            if (
                isinstance(e, dict)
                and isinstance(e.get("customer_id"), str)
                and e.get("event_type") != "customer_deleted"
            ):
                self.customers[e["customer_id"]] = e
        d.copies_of = written  # what a later resend of this delivery copies
        return written

    # ---- the gate's verdict as the producers made the data -----------------------------------------
    def within(self, n: int, bad: int, conflicts: int) -> bool:
        """`bad` records (each may count against any share) and `conflicts` in `n` within every threshold."""
        q = self.contract.quality
        return bad <= allowed(min(getattr(q, s) for s in SHARES), n, q.min_batch_rows) and conflicts <= allowed(
            q.max_conflicting_duplicates, n, q.min_batch_rows
        )

    def healthy(self) -> bool:
        """Every ingest hour, over all that was ever delivered into it, within the thresholds."""
        return self.tracked and all(self.within(*hour) for hour in self.hours.values())

    def required_to_pass(self, batch: list[str]) -> bool:
        """The gate must pass a run whose history is healthy and whose batch (as produced) is too."""
        n, bad, conflicts = (sum(self.ledger[o][i] for o in batch) for i in range(3))
        return n > 0 and self.healthy() and self.within(n, bad, conflicts)

    # ---- runs ------------------------------------------------------------------------------------
    def _stage(self, name: str, ctx: RunContext) -> tuple[int | str, dict, str | None]:
        try:
            return 0, run_pipeline(ctx, [get_stage(name)]).figures(name), None
        except Crash as exc:
            return "crash", {}, str(exc)
        except MdpError as exc:
            return exc.exit_code, {}, f"{type(exc).__name__}: {exc}"
        except Exception:
            return 1, {}, traceback.format_exc()

    def run(
        self,
        why: str,
        backfill: tuple[int, int] | None = None,
        everything: bool = False,
        crash: str | None = None,
        contract_step: bool = False,
    ) -> None:
        r = next(self.runs)
        settings, contract = self.settings, self.contract
        objects = bronze_objects(settings)
        if not objects:
            return  # nothing landed yet: `mdp run` says "land events first" (exit 1 by design), not a history
        hours = sorted({int(Path(o).parent.name.split("=")[1]) for o in objects})
        if everything:
            interval = Interval(H[hours[0]], H[hours[-1]] + timedelta(hours=1))
        elif backfill:
            interval = Interval(H[backfill[0]], H[backfill[1]] + timedelta(hours=1))
        else:
            interval = Interval.hour_of(H[0])
        ctx = RunContext(
            settings, interval, run_id=f"r{r}", backfill=bool(everything or backfill), all_bronze=everything
        )
        silver = silver_dataset(settings)
        current = silver.current()
        before_version = current and current["version"]
        before_tables = published(settings) if current else None
        pending = [o for o in objects if o not in self.seen]
        reread = [
            o
            for o in objects
            if backfill and int(Path(o).parent.name.split("=")[1]) in range(backfill[0], backfill[1] + 1)
        ]
        rebuild = bool(
            current and ctx.backfill and (everything or current.get("contract") != contract.silver_fingerprint)
        )
        batch = objects if rebuild else sorted(set(pending) | set(reread))
        must_pass = self.required_to_pass(batch)
        scope = (
            " --all"
            if everything
            else f" --since {interval.start:%Y-%m-%dT%H} --until {interval.end:%Y-%m-%dT%H}"
            if backfill
            else ""
        )
        commands = [
            f"mdp run -s bronze_to_silver -s validate_silver -s silver_to_gold --run-id r{r}{scope}; echo exit $?"
        ]
        if crash:
            where, layer, when = CRASHES[crash]
            env = f"MDP_TEST_CRASH_BEFORE_POINTER={layer} " if when == "before" else ""
            commands = [
                f"{env}mdp stage {s} --run-id r{r}{scope}" if s == where else f"mdp stage {s} --run-id r{r}{scope}"
                for s in STAGES[: STAGES.index(where) + 1]
            ]
            if not env:
                commands[-1] += "  # dies right after its pointer write (in the test: raised after the Delta commit)"
            commands += [
                f"mdp stage {s} --run-id r{r}{scope}; echo exit $?  # the retry"
                if s == where
                else f"mdp stage {s} --run-id r{r}{scope}"
                for s in STAGES[STAGES.index(where) :]
            ]
        self.step(f"run r{r}{scope}: {why}" + (f" ({crash}, then the retry)" if crash else ""), *commands)

        figures, code, err, failed_stage = {}, 0, None, None
        for name in STAGES:
            if crash and CRASHES[crash][0] == name:
                with crash_at(*CRASHES[crash][1:]):
                    code, figures[name], err = self._stage(name, ctx)
                if code == "crash":
                    note(f"  {err}; retried")
                    code, figures[name], err = self._stage(name, ctx)  # the retry: same run id, as Airflow's
            else:
                code, figures[name], err = self._stage(name, ctx)
            if code != 0:
                failed_stage = name
                break
        outcome = "exit 0" if code == 0 else f"{failed_stage} exit {code}"
        note(f"  -> {outcome}" + (f": {err.splitlines()[0][:300]}" if err else ""))
        self.lines.append(
            f"#    expected by the test: exit 0{' (the gate must pass)' if must_pass else ''}; it gave {outcome}"
        )
        self._flush()

        if code in (1, 4, 5, 6, "crash"):  # 6: a stage refused (StageError) input a healthy history makes
            self.fail(
                f"run r{r}: {failed_stage} exited {code} (a stage must not fail unexpectedly on any input, and a retry "
                f"after a crash must succeed):\n{err}"
            )
        if code == 2:
            if not self.mixed or everything:
                self.fail(
                    f"run r{r}: {failed_stage} refused the run with exit 2 "
                    f"{'under --all, which rebuilds Silver whatever the contract' if everything else 'with no contract change to refuse'}"
                    f":\n{err}"
                )
            self.refusals.append(f"r{r}: exit 2 {err[:200]}")
            return
        if code == 3:
            if must_pass:
                self.fail(
                    f"run r{r}: the gate failed (exit 3) although every delivery so far is within the contract's "
                    f"thresholds as its producer made it, and so is this run's batch:\n{err}"
                )
            self.refusals.append(f"r{r}: exit 3")
            return
        self.check(r, settings, objects, pending, reread, before_version, before_tables, figures, contract_step)

    def check(
        self, r, settings, objects, pending, reread, before_version, before_tables, figures, contract_step
    ) -> None:
        current = silver_dataset(settings).current()
        if current is None:
            return
        now = bronze_objects(settings)
        assert now == objects, "Bronze changed during the run"
        b2s = figures["bronze_to_silver"]
        staged = b2s.get("staged") is not None
        moved = current["version"] != before_version
        rebuilt = bool(moved and current.get("rebuilt"))
        run_files = now if rebuilt else sorted(set(pending) | set(reread))
        if staged:
            written = sum(self.ledger[o][0] for o in run_files)
            if b2s["bronze_in"] != written:
                self.fail(
                    f"run r{r}: bronze_to_silver read {b2s['bronze_in']} records, the objects it read hold {written} "
                    f"as written (rows lost or doubled)"
                )
        actual = published(settings)
        if contract_step or rebuilt:
            # After a contract change (and its backfill or --all), Silver is what a from-scratch run under
            # the new contract gives (docs/RELIABILITY.md "A backfill under a changed contract rebuilds").
            exp = expected(settings, [], now, self.root / "oracle")
            if not rebuilt:
                exp.tables.pop("batch")
                actual.pop("batch")
            comparison = compare(exp, actual, b2s if rebuilt and staged else None, settings.data_contract)
            what = "the from-scratch oracle under the current contract"
        elif self.mixed:
            note("  (a changed contract applies to new events only until a rebuild: tables not compared)")
            comparison = None
        else:
            exp = expected(settings, self.seen, run_files, self.root / "oracle")
            if not staged:
                exp.tables.pop("batch")
                actual.pop("batch")
            comparison = compare(exp, actual, b2s if staged else None, settings.data_contract)
            what = "the oracle over the same Bronze"
        if comparison is not None and not comparison.equal:
            self.fail(f"run r{r}: what published differs from {what}:\n{comparison}")
        # A resend, or a re-ingest under either name, of records Silver has read changes nothing.
        if (
            staged
            and moved
            and not rebuilt
            and pending
            and not reread
            and before_tables is not None
            and all(self.copies.get(o) and set(self.copies[o]) <= set(self.seen) for o in pending)
        ):
            for table, key in (
                ("state", [settings.data_contract.primary_key]),
                ("gold", [settings.data_contract.primary_key]),
            ):
                if table in before_tables and table in actual:
                    diff = differences(before_tables[table], actual[table], key)
                    if diff:
                        self.fail(
                            f"run r{r}: only copies of records Silver had read, yet {table} changed:\n"
                            + "\n".join(diff)
                        )
        self.seen = now
        if contract_step or rebuilt:
            self.mixed = False

    def all_on_a_copy(self) -> None:
        """`--all` on a copy of the lake gives the Silver that the incremental runs published."""
        settings = self.settings
        objects = bronze_objects(settings)
        if self.mixed or not objects or sorted(self.seen) != objects or not silver_dataset(settings).current():
            return
        copy = self.root / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(self.home, copy)
        other = get_settings(home=copy, seed=0, contract=str(self.contract_path))
        hours = sorted({int(Path(o).parent.name.split("=")[1]) for o in objects})
        ctx = RunContext(
            other,
            Interval(H[hours[0]], H[hours[-1]] + timedelta(hours=1)),
            run_id="all-on-a-copy",
            backfill=True,
            all_bronze=True,
        )
        self.step(
            "--all on a copy of the lake",
            'rm -rf "$MDP_HOME.copy"; cp -r "$MDP_HOME" "$MDP_HOME.copy"',
            'MDP_HOME="$MDP_HOME.copy" mdp run -s bronze_to_silver -s validate_silver --all --run-id all; echo exit $?',
        )
        must_pass = self.required_to_pass(objects)
        for name in STAGES[:2]:
            code, _, err = self._stage(name, ctx)
            if code != 0:
                if code == 3 and not must_pass:
                    note("  -> the gate refused the rebuild (the history is beyond a threshold)")
                    return
                self.fail(f"--all on a copy of the lake: {name} exited {code}:\n{err}")
        mine, theirs = published(settings), published(other)
        key = [settings.data_contract.primary_key]
        diff = differences(mine["state"], theirs["state"], key) + differences(
            mine["quarantine"], theirs["quarantine"], POSITION
        )
        shutil.rmtree(copy, ignore_errors=True)
        if diff:
            self.fail(
                "--all on a copy gives another Silver than the incremental runs (incremental vs --all):\n"
                + "\n".join(diff)
            )


# ---- the machine -----------------------------------------------------------------------------------
LAND = dict(
    hour=st.integers(0, 9),
    seed=st.integers(0, 3),
    n=st.one_of(st.integers(3, 30), st.integers(31, 300)),
    dirty=st.sampled_from([0.0, 0.03, 0.3]),
    edges=st.integers(0, 3),
    ascii_only=st.booleans(),
    minute=st.integers(0, 39),
    partition=st.integers(0, 2),
    then_run=st.booleans(),
)
FILE = dict(
    stem=st.sampled_from(["subscribers", "export"]),
    first=st.sampled_from([1, 21]),
    n=st.integers(3, 60),
    shift=st.integers(0, 2),
    edges=st.integers(0, 3),
    hour=st.integers(0, 9),
    minute=st.integers(0, 50),
    then_run=st.booleans(),
)


class Histories(RuleBasedStateMachine):
    BASE: Path = Path("/tmp/mdp-histories")  # the test sets it (its tmp_path)
    examples = count(1)
    deliveries = Bundle("deliveries")

    def __init__(self):
        super().__init__()
        self.h: History | None = None

    @initialize(target=deliveries, kind=st.sampled_from(FUZZ_KINDS), data=st.data())
    def start(self, kind, data):
        """A lake with its first delivery (so that every rule is possible from the first step: Hypothesis
        turns rules off at random per history, and a history whose only possible rule is off is lost)."""
        root = self.BASE / f"history-{next(self.examples):04d}"
        shutil.rmtree(root, ignore_errors=True)
        self.h = History(root, kind)
        note(f"history {root}: contract {kind}")
        first = FILE if kind == "subscribers" else LAND
        args = {k: data.draw(v, label=k) for k, v in first.items()}
        return (self.ingest_a_file if kind == "subscribers" else self.land_an_hour)(**args, data=data)

    def teardown(self):
        if self.h is not None:
            shutil.rmtree(self.h.home, ignore_errors=True)  # the replay folder stays: it is small
            shutil.rmtree(self.h.root / "oracle", ignore_errors=True)
            shutil.rmtree(self.h.root / "copy", ignore_errors=True)

    @property
    def events(self) -> bool:
        return self.h is not None and self.h.kind != "subscribers"

    def _mutate(self, data, events: list, how_many: int) -> list[int]:
        """Replace one field in `how_many` events with an edge value of its type; each gets a fresh
        event id (so that no id is sent with two contents). Returns the indexes changed."""
        contract = self.h.contract
        columns = [c for c in contract.columns if c.name != contract.event_id]
        changed = []
        for _ in range(min(how_many, len(events))):
            i = data.draw(st.integers(0, len(events) - 1), label="record")
            if data.draw(st.booleans(), label="raw bytes") and data.draw(st.booleans(), label="really"):
                events[i] = data.draw(RAW, label="message")
            else:
                col = data.draw(st.sampled_from(columns), label="column")
                e = dict(events[i]) if isinstance(events[i], dict) else {}
                e[contract.event_id] = eid(10**9 + next(self.h.ids))
                e[col.name] = data.draw(value_for(col.type), label=col.name)
                events[i] = e
            changed.append(i)
        return changed

    @staticmethod
    def _encode(events: list, ascii_only: bool) -> list[bytes]:
        return [e if isinstance(e, bytes) else json.dumps(e, ensure_ascii=ascii_only).encode() for e in events]

    # -- events (a contract with an event time) --
    @precondition(lambda self: self.events)
    @rule(target=deliveries, **LAND, data=st.data())
    def land_an_hour(self, hour, seed, n, dirty, edges, ascii_only, minute, partition, then_run, data):
        generated = generate_hour((seed * 1000 + n) * 10 + int(dirty * 10), H[hour], n, dirty)  # its own event ids
        events = [
            json.loads(e.message) if e.dirty not in ("unparseable_json", "truncated_json") else e.message
            for e in generated
        ]
        bad = [0 if e.dirty is None else 2 if e.dirty == "conflicting_duplicate" else 1 for e in generated]
        conflicts = 2 * sum(e.dirty == "conflicting_duplicate" for e in generated)  # both copies, to be safe
        for i in self._mutate(data, events, edges):
            bad[i] = max(bad[i], 1)
        d = Delivery(
            n,
            self._encode(events, ascii_only),
            bad,
            hour,
            "kafka",
            partition,
            self.h.next_offsets("kafka", partition, n),
            conflicts=conflicts,
        )
        self.h.deliver(
            d,
            H[hour] + timedelta(minutes=minute),
            f"land hour {hour}: {n} events (seed {seed}, dirty {dirty}, {edges} edge values) on partition {partition}",
        )
        if then_run:
            self.h.run("the next run")
        return d

    @precondition(lambda self: self.h is not None and self.h.kind != "subscribers")
    @rule(
        d=deliveries,
        start=st.integers(0, 299),
        length=st.integers(1, 300),
        later=st.integers(0, 3),
        other_source=st.booleans(),
        same_offsets=st.booleans(),
        then_run=st.booleans(),
    )
    def resend(self, d, start, length, later, other_source, same_offsets, then_run):
        """Part of an earlier delivery again: a producer resend (new offsets) or a redelivery of the
        same records (same source, partition and offsets: a landing that crashed before its commit)."""
        start = min(start, d.n - 1)
        part = slice(start, min(d.n, start + length))
        source = "crm" if other_source else d.source
        # A redelivery goes into a later hour: into its own one it would rewrite the object Silver read
        # (which a landing refuses). The last hour has no later one: its records are resent.
        same_offsets = same_offsets and not other_source and d.hour < 9
        hour = min(9, d.hour + max(later, 1 if same_offsets else 0))
        offsets = d.offsets[part] if same_offsets else self.h.next_offsets(source, d.partition, len(d.offsets[part]))
        # At most the original's
        again = Delivery(
            len(offsets),
            d.messages[part],
            d.bad[part],
            hour,
            source,
            d.partition,
            offsets,
            copies_of=d.copies_of,
            conflicts=d.conflicts,
        )
        self.h.deliver(
            again,
            H[hour] + timedelta(minutes=57 if other_source else 55),
            f"{'redeliver' if same_offsets else 'resend'} records {part.start}-"
            f"{part.stop - 1} of the hour-{d.hour} delivery into hour {hour}, source {source}",
        )
        if then_run:
            self.h.run("the next run")

    @precondition(lambda self: self.events and self.h.hours)
    @rule(which=st.integers(0, 9), clean=st.booleans(), then_run=st.booleans(), data=st.data())
    def a_late_record(self, which, clean, then_run, data):
        """One record with an old event time, landed late into an old hour (already landed)."""
        old = sorted(self.h.hours)[which % len(self.h.hours)]
        e = json.loads(generate_hour(7000 + next(self.h.ids), H[old], 1, 0.0)[0].message)
        e["event_id"] = eid(next(self.h.ids))
        events = [e]
        if not clean:
            self._mutate(data, events, 1)
        d = Delivery(
            1, self._encode(events, True), [0 if clean else 1], old, "kafka", 9, self.h.next_offsets("kafka", 9, 1)
        )
        self.h.deliver(
            d,
            H[old] + timedelta(minutes=59),
            f"a late {'clean' if clean else 'malformed'} record into hour {old}: {d.messages[0][:200]!r}",
        )
        if then_run:
            self.h.run("the next run")

    @precondition(lambda self: self.events and self.h.customers)
    @rule(
        full=st.booleans(),
        burst=st.integers(1, 20),
        newer=st.booleans(),
        hour=st.integers(0, 9),
        then_run=st.booleans(),
    )
    def deletes(self, full, burst, newer, hour, then_run):
        cids = sorted(self.h.customers)[:burst]
        out = []
        for cid in cids:
            when = H[hour] + timedelta(minutes=30) if newer else H[0] - timedelta(days=1)
            base = {**self.h.customers[cid]} if full else {}
            out.append(
                {
                    **base,
                    "event_id": eid(next(self.h.ids)),
                    "event_type": "customer_deleted",
                    "event_ts": ts(when),
                    "customer_id": cid,
                }
            )
        n = len(out)
        # A minimal delete is bad under a contract without a tombstone: counted as maybe bad always.
        d = Delivery(
            n,
            self._encode(out, True),
            [0 if full else 1] * n,
            hour,
            "crm-deletes",
            0,
            self.h.next_offsets("crm-deletes", 0, n),
        )
        self.h.deliver(
            d,
            H[hour] + timedelta(minutes=41),
            f"{n} {'full' if full else 'minimal'} deletes "
            f"({'newer' if newer else 'older'} than the state) into hour {hour}",
        )
        if then_run:
            self.h.run("the next run")

    # -- files (a contract without an event time) --
    @precondition(lambda self: self.h is not None and self.h.kind == "subscribers")
    @rule(target=deliveries, **FILE, data=st.data())
    def ingest_a_file(self, stem, first, n, shift, edges, hour, minute, then_run, data):
        rows = customer_rows(first, n, shift)
        bad = [0] * n
        contract = self.h.contract
        columns = [c for c in contract.columns if c.name != contract.event_id]
        for _ in range(edges):
            i = data.draw(st.integers(0, n - 1), label="row")
            col = data.draw(st.sampled_from(columns), label="column")
            rows[i][col.name] = data.draw(value_for(col.type), label=col.name)
            bad[i] = 1
        folder = self.h.replay / "inputs" / f"f{next(self.h.ids):03d}"
        folder.mkdir()
        path = folder / f"{stem}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(list(rows[0]))
            w.writerows([[text_cell(v) for v in r.values()] for r in rows])
        d = Delivery(n, [], bad, hour, stem, 0, [], file=path)
        self.h.deliver(
            d,
            H[hour] + timedelta(minutes=minute),
            f"ingest {path.name} ({n} accounts from {first}, tenure +{shift}, {edges} edge values) in hour {hour}",
        )
        if then_run:
            self.h.run("the next run")
        return d

    @precondition(lambda self: self.h is not None and self.h.kind == "subscribers")
    @rule(
        d=deliveries,
        other_name=st.booleans(),
        later=st.integers(0, 2),
        minute=st.integers(0, 9),
        then_run=st.booleans(),
    )
    def ingest_a_file_again(self, d, other_name, later, minute, then_run):
        path = d.file
        if other_name:
            folder = self.h.replay / "inputs" / f"f{next(self.h.ids):03d}"
            folder.mkdir()
            path = folder / f"again-{d.file.name}"
            shutil.copyfile(d.file, path)
        hour = min(9, d.hour + later)
        again = Delivery(d.n, [], d.bad, hour, path.stem, 0, [], file=path, copies_of=d.copies_of)
        self.h.deliver(
            again, H[hour] + timedelta(minutes=50 + minute), f"ingest {d.file.name} again as {path.name} in hour {hour}"
        )
        if then_run:
            self.h.run("the next run")

    # -- operations, for either --
    @precondition(lambda self: self.h is not None and self.h.ledger)
    @rule()
    def run(self):
        self.h.run("a run (nothing new, if nothing landed since the last one)")

    @precondition(lambda self: self.h is not None and self.h.ledger)
    @rule(first=st.integers(0, 9), hours=st.integers(0, 2))
    def backfill(self, first, hours):
        self.h.run("a backfill", backfill=(first, min(9, first + hours)))

    @precondition(lambda self: self.h is not None and self.h.ledger)
    @rule(data=st.data(), everything=st.booleans(), first=st.integers(0, 9), hours=st.integers(0, 2))
    def change_the_contract(self, data, everything, first, hours):
        options = CHANGES["subscribers" if self.h.kind == "subscribers" else "customers"]
        change = data.draw(st.sampled_from(options), label="change")
        self.h.change_contract(change)
        self.h.run(
            f"after the change: {change}",
            backfill=None if everything else (first, min(9, first + hours)),
            everything=everything,
            contract_step=True,
        )

    @precondition(lambda self: self.h is not None and self.h.ledger)
    @rule(crash=st.sampled_from(sorted(CRASHES)))
    def a_crash_then_the_retry(self, crash):
        self.h.run("a run that crashes", crash=crash)

    @precondition(lambda self: self.h is not None and self.h.ledger)
    @rule()
    def all_on_a_copy(self):
        self.h.all_on_a_copy()
