"""`python -m bench` (or `make bench`): the issue-6 benchmark. Not part of the test suite.

Generates Bronze once (hourly partitions, a process pool), then for each size runs the embedded
pipeline in its own lake whose Bronze hours are symlinks to the shared ones, runs DuckDB (and
pandas, where it fits) on the very same Bronze files, checks that every engine's Silver, quarantine
and Gold equal Spark's, then the incremental hourly path and Kafka landing. Prints a Markdown table
and writes bench/results/bench-<time>.json (+ latest.json, latest.md). Exit 1 when an equality
check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

for _k in [k for k in os.environ if k.startswith("MDP_") and k != "MDP_SPARK_DRIVER_MEMORY"]:
    os.environ.pop(_k)  # a developer's shell settings must not change what is measured
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from bench.common import (  # noqa: E402 - imported after the environment above is cleaned
    BASE_HOUR,
    SEED,
    RssSampler,
    bronze_files,
    checksum,
    compare,
    generate_bronze,
    hours_from,
    machine,
    scenario_lake,
)

RESULTS = Path(__file__).with_name("results")
TARGETS = {
    "e2e_100k_s": 60.0,
    "spark_vs_duckdb_2m": 2.0,
    "scaling_1m_4m": 4.4,
    "incremental_fraction": 0.10,
    "landing_events_per_s": 50_000,
}
FULL = dict(
    events_per_hour=50_000,
    e2e=[100_000, 1_000_000],
    compare=[1_000_000, 2_000_000],
    scaling=[250_000, 1_000_000, 4_000_000],
    incremental=[1_000_000, 4_000_000],
    landing_batches=[1_000, 10_000, 50_000],
    landing_events=100_000,
    pandas_max=250_000,
    cli_events=100_000,
    cli_file_rows=7_000,
)
QUICK = dict(
    events_per_hour=10_000,
    e2e=[20_000, 50_000],
    compare=[50_000, 100_000],
    scaling=[20_000, 50_000, 100_000],
    incremental=[50_000, 100_000],
    landing_batches=[1_000, 10_000],
    landing_events=20_000,
    pandas_max=100_000,
    cli_events=20_000,
    cli_file_rows=2_000,
)
# The test suite runs this one (tests/pipeline/test_bench_tiny.py): every code path and equality check, at toy sizes.
# 250 customers: still a champion, so scoring runs too
TINY = dict(
    events_per_hour=1_000,
    e2e=[1_000],
    compare=[2_000],
    scaling=[1_000, 2_000],
    incremental=[2_000],
    landing_batches=[500],
    landing_events=1_000,
    pandas_max=2_000,
    cli_events=1_000,
    cli_file_rows=300,
    cli_env={"MDP_MIN_TEST_ROWS": "20"},
)
MODES = {"full": FULL, "quick": QUICK, "tiny": TINY}
CLI_TARGETS = {"fresh": 30.0, "quiet": 8.0, "file": 20.0}


def log(msg: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {msg}", flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def scenario_settings(root: Path, events_per_hour: int):
    from mdp.core.settings import get_settings

    return get_settings(home=root, lake_root=str(root / "lake"), events=events_per_hour, seed=SEED)


def spark_outputs(settings) -> dict:
    from mdp.core.tables import gold_dataset, silver_dataset

    silver, gold = silver_dataset(settings), gold_dataset(settings)
    v, g = silver.current()["version"], gold.current()["version"]
    return {  # a version's file lists: Delta tables
        "silver": silver.files("state", v),
        "quarantine": silver.files("quarantine", v),
        "gold": gold.files("features", g),
    }


def keys():
    from bench.duckdb_pipeline import QUARANTINE_KEY
    from mdp.core.contract import load_contract

    pk = load_contract().primary_key
    return {"silver": [pk], "quarantine": QUARANTINE_KEY, "gold": [pk]}


def check_equal(name: str, reference: dict, other: dict) -> dict:
    """Checksums of Spark's and another engine's outputs; differences named."""
    out = {}
    for table, key in keys().items():
        a, b = checksum(reference[table], key), checksum(other[table], key)
        out[table] = {"rows": a["rows"], "spark": a["checksum"], name: b["checksum"], "differences": compare(a, b)}
    out["equal"] = all(not v["differences"] for k, v in out.items() if isinstance(v, dict))
    return out


def run_spark(settings, interval, with_land: bool, sampler: RssSampler) -> dict:
    from mdp.core.context import RunContext
    from mdp.core.stages import STAGES
    from mdp.shell.runner import run_pipeline

    stages = [s for s in STAGES if with_land or s.name != "land_bronze"]
    sampler.reset()
    la = loadavg()
    t0 = time.perf_counter()
    report = run_pipeline(RunContext(settings, interval, run_id="bench"), stages)
    wall = time.perf_counter() - t0
    # bronze_to_silver raises ConservationError when a check fails, so a report means they passed.
    checks = report.conservation()
    ok, text = bool(checks), "; ".join(checks)
    return {
        "stages": {r.stage: round(r.seconds, 2) for r in report.results},
        "total_s": round(wall, 2),
        "spark_s": round(
            sum(r.seconds for r in report.results if r.stage in ("bronze_to_silver", "silver_to_gold")), 2
        ),
        "figures": {k: v for k, v in report.figures("bronze_to_silver").items() if k != "silver_version"},
        "gold_rows": report.figures("silver_to_gold").get("gold_rows"),
        "conservation_ok": ok,
        "conservation": text,
        "loadavg_before": la,
        **sampler.peaks_mb(),
    }


def run_scenario(
    events: int,
    cfg: dict,
    work: Path,
    shared: Path,
    sampler: RssSampler,
    with_land: bool,
    pandas_max: int,
    incremental: bool,
) -> dict:
    from mdp.core.lake import Interval

    eph = cfg["events_per_hour"]
    n_hours = max(1, events // eph)
    hours = hours_from(BASE_HOUR, n_hours)
    root = work / f"lake-{events}"
    # A clean scenario: the lake and its MLflow store (root/.mdp) go together, or a new lake meets
    # an old registry whose champion's artifacts are gone.
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    if not with_land:  # else the real land_bronze stage writes the (deterministic, so identical) Bronze itself
        scenario_lake(root / "lake", shared, hours)
    settings = scenario_settings(root, eph)
    interval = Interval(hours[0], hours[-1] + timedelta(hours=1))
    res = {"events": n_hours * eph, "hours": n_hours, "land_included": with_land}
    log(f"spark: {res['events']} events ({n_hours} hours){' incl. land_bronze' if with_land else ''}")
    res["spark"] = run_spark(settings, interval, with_land, sampler)
    res["spark"]["events_per_s"] = round(res["events"] / res["spark"]["total_s"])
    log(f"spark done: {res['spark']['stages']} total {res['spark']['total_s']}s")
    outputs = spark_outputs(settings)
    files = bronze_files(settings, interval)

    from bench import duckdb_pipeline

    log("duckdb")
    sampler.reset()
    duck = duckdb_pipeline.run(files, root / "duckdb")
    res["duckdb"] = {
        "stages": {k: round(v, 2) for k, v in duck["stages"].items()},
        "figures": duck["figures"],
        **sampler.peaks_mb(),
    }
    res["duckdb"]["equality"] = check_equal("duckdb", outputs, duck["outputs"])
    common = [k for k in duck["figures"] if k in res["spark"]["figures"]]
    res["duckdb"]["figures_equal"] = all(duck["figures"][k] == res["spark"]["figures"][k] for k in common)
    res["ratio_spark_duckdb"] = {
        st: round(res["spark"]["stages"][st] / max(duck["stages"][st], 1e-3), 2)
        for st in ("bronze_to_silver", "silver_to_gold")
    }
    res["ratio_spark_duckdb"]["both"] = round(res["spark"]["spark_s"] / max(sum(duck["stages"].values()), 1e-3), 2)
    log(
        f"duckdb {res['duckdb']['stages']} equal={res['duckdb']['equality']['equal']} ratio={res['ratio_spark_duckdb']}"
    )

    if events <= pandas_max:
        from bench import pandas_pipeline

        log("pandas")
        sampler.reset()
        try:
            pd_res = pandas_pipeline.run(files, root / "pandas")
            res["pandas"] = {"stages": {k: round(v, 2) for k, v in pd_res["stages"].items()}, **sampler.peaks_mb()}
            res["pandas"]["equality"] = check_equal("pandas", outputs, pd_res["outputs"])
            log(f"pandas {res['pandas']['stages']} equal={res['pandas']['equality']['equal']}")
        except MemoryError:
            res["pandas"] = {"skipped": "out of memory"}

    if incremental:
        res["incremental"] = run_incremental(settings, hours[-1] + timedelta(hours=1), res, sampler, root)
    return res


def run_incremental(settings, hour: datetime, full: dict, sampler: RssSampler, root: Path) -> dict:
    """Add 1% new events as a new hourly partition, then run the hourly path for that hour only."""
    from ingestion.land import land_from_generator
    from mdp.core.context import RunContext
    from mdp.core.lake import Interval

    new_events = max(1, round(full["events"] * 0.01))
    hour_settings = settings.model_copy(update={"events": new_events})
    land_from_generator(RunContext(hour_settings, Interval.hour_of(hour)))
    log(f"incremental: {new_events} new events in hour {hour:%Y-%m-%dT%H}")
    before = spark_outputs(settings)
    inc = run_spark(hour_settings, Interval.hour_of(hour), False, sampler)
    out = {"new_events": new_events, "spark": inc}
    out["fraction_of_full"] = round(inc["total_s"] / full["spark"]["total_s"], 3)
    out["spark_stages_fraction"] = round(inc["spark_s"] / full["spark"]["spark_s"], 3)
    # DuckDB, the oracle: Silver from scratch over every Bronze object, the run's figures on top of
    # the objects the full run had read. Same tables as Spark's incremental run.
    from bench import duckdb_pipeline
    from bench.common import bronze_files as files_of

    con = duckdb_pipeline.connect()
    out_dir = root / "duckdb-incremental"
    seen = files_of(hour_settings, Interval(BASE_HOUR, hour))
    duck = duckdb_pipeline.bronze_to_silver(
        con, files_of(hour_settings, Interval.hour_of(hour)), out_dir / "silver", before=seen
    )
    duckdb_pipeline.silver_to_gold(con, out_dir / "silver" / "customers", out_dir / "gold")
    con.close()
    merged = {
        "silver": str(out_dir / "silver" / "customers"),
        "quarantine": str(out_dir / "silver" / "quarantine"),
        "gold": str(out_dir / "gold" / "customer_features"),
    }
    spark_now = spark_outputs(settings)
    eq = check_equal("duckdb", spark_now, merged)
    figures = {k: v for k, v in inc["figures"].items() if k in duck}
    eq["figures"] = {"differences": [f"{k}: spark {v} != duckdb {duck[k]}" for k, v in figures.items() if duck[k] != v]}
    eq["equal"] = all(not v["differences"] for k, v in eq.items() if isinstance(v, dict))
    out["equality_vs_duckdb"] = eq
    out["silver_version_changed"] = before["silver"] != spark_now["silver"]
    log(f"incremental {inc['stages']} = {out['fraction_of_full']:.1%} of the full run; equal={eq['equal']}")
    return out


def run_landing(cfg: dict, work: Path) -> dict:
    """Kafka -> Bronze events/s against a local tansu broker, per batch size."""
    try:
        from ingestion.landing import Lander, LandingOptions
        from ingestion.producer import ensure_topic, make_producer, publish
    except ImportError as exc:
        return {"skipped": f"landing not available ({exc})"}
    import subprocess

    from mdp.core.storage import store_for
    from mdp.shell.services import find_binary, free_port, port_open

    try:
        tansu = find_binary("kafka")
    except Exception as exc:
        return {"skipped": f"landing not available: no tansu broker ({exc})"}
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            tansu,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out: dict = {"broker": "tansu", "events_per_batch_size": cfg["landing_events"], "runs": []}
    try:
        deadline = time.monotonic() + 15
        while not port_open(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        from ingestion.generator import generate_hour

        # One set of messages for every batch size, generated outside the timed part.
        events = generate_hour(SEED, BASE_HOUR, cfg["landing_events"], 0.03)
        messages = [(e.customer_id.encode() or None, e.message) for e in events]
        for bs in cfg["landing_batches"]:
            root = work / f"landing-{bs}"
            if root.exists():
                shutil.rmtree(root)
            settings = scenario_settings(root, cfg["events_per_hour"]).model_copy(
                update={
                    "kafka_bootstrap": f"127.0.0.1:{port}",
                    "kafka_topic": f"bench-{bs}-{int(time.time())}",
                    "source": "kafka",
                }
            )
            ensure_topic(settings.kafka_bootstrap, settings.topic, partitions=3)
            producer = make_producer(settings)
            t0 = time.perf_counter()
            publish(producer, settings.topic, messages)
            produce_s = time.perf_counter() - t0
            producer.close(timeout=10)
            opts = LandingOptions(
                batch_records=bs, max_records=len(messages), max_wait_s=3.0, group=f"bench-{bs}-{time.time_ns()}"
            )
            t0 = time.perf_counter()
            figures = Lander(settings, store_for(settings), opts).run()
            wall = time.perf_counter() - t0
            run = {
                "batch_records": bs,
                "landed": figures["landed"],
                "active_s": figures["active_seconds"],
                "events_per_s": figures["events_per_s"],
                "wall_s": round(wall, 2),
                "produce_events_per_s": round(len(messages) / produce_s),
                "bronze_objects": figures["bronze_objects"],
            }
            out["runs"].append(run)
            log(f"landing batch {bs}: {run}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out


def _timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return round(wall, 2)


def _state(home: Path) -> dict:
    """What a quiet rerun must leave as it was: Silver, Gold, scores and the registry's versions."""
    from mlflow.tracking import MlflowClient

    from mdp.core.settings import get_settings
    from mdp.core.tables import gold_dataset, scores_dataset, silver_dataset

    s = get_settings(home=home)
    client = MlflowClient(s.mlflow_uri, s.mlflow_uri)
    return {
        "silver": (silver_dataset(s).current() or {}).get("version"),
        "gold": (gold_dataset(s).current() or {}).get("version"),
        "scores": (scores_dataset(s).current() or {}).get("version"),
        "model_versions": len(client.search_model_versions(f"name = '{s.model_name}'")),
    }


def run_cli(cfg: dict, work: Path) -> dict:
    """Whole-process wall times of `mdp run` as a user types it: a fresh lake (Spark session start
    included), a rerun with nothing new, and a file of your own (`mdp run --input`)."""
    mdp = str(Path(sys.executable).with_name("mdp"))
    out: dict = {"events": cfg["cli_events"], "file_rows": cfg["cli_file_rows"]}
    home = work / "cli"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    env = {"MDP_EVENTS": str(cfg["cli_events"]), **cfg.get("cli_env", {})}

    def hour() -> datetime:
        return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    log(f"cli: mdp run, {cfg['cli_events']} events, fresh lake")
    landed = hour()
    out["fresh_s"] = _timed([mdp, "run"], home, env)
    for _ in range(3):  # `mdp run` lands the current hour: after a new hour began, the next run is not quiet
        before, now = _state(home), hour()
        log("cli: mdp run again, nothing new")
        out["quiet_s"] = _timed([mdp, "run"], home, env)
        after = _state(home)
        if now == landed:
            break
        landed = now
    out["quiet_changed_nothing"] = before == after
    out["state_before_after"] = [before, after]
    byod = work / "cli-file"
    if byod.exists():
        shutil.rmtree(byod)
    byod.mkdir(parents=True)
    _timed([mdp, "example", "subscribers", "--rows", str(cfg["cli_file_rows"]), "--out", "subscribers.csv"], byod)
    _timed(
        [
            mdp,
            "contract",
            "infer",
            "subscribers.csv",
            "--entity",
            "subscribers",
            "--key",
            "account_no",
            "--label",
            "churn",
            "--out",
            "subscribers.yaml",
        ],
        byod,
    )
    log(f"cli: mdp run --input, {cfg['cli_file_rows']} rows")
    out["file_s"] = _timed(
        [mdp, "run", "--input", "subscribers.csv"], byod, {"MDP_CONTRACT": "subscribers.yaml", **cfg.get("cli_env", {})}
    )
    log(f"cli: {out}")
    return out


def linear_fit(points: list[tuple[int, float]]) -> dict | None:
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for _, y in points) or 1e-12
    r2 = 1 - sum((y - (intercept + slope * x)) ** 2 for x, y in points) / ss_tot
    return {
        "seconds_per_million_events": round(slope * 1e6, 2),
        "fixed_overhead_s": round(intercept, 2),
        "r2": round(r2, 4),
        "points": [[x, round(y, 2)] for x, y in points],
    }


def summarise(doc: dict, cfg: dict) -> None:
    sc = {s["events"]: s for s in doc["scenarios"]}
    t: dict = {}
    e2e_small = min(cfg["e2e"])
    if e2e_small in sc:
        s = sc[e2e_small]
        t["e2e_small"] = {
            "events": e2e_small,
            "seconds": round(s["spark"]["total_s"] + doc["spark_session_start_s"], 2),
            "note": "all stages incl. land_bronze (generator) and the Spark session start",
        }
    cmp_big = max(cfg["compare"])
    if cmp_big in sc:
        t["spark_vs_duckdb"] = {"events": cmp_big, "ratio": sc[cmp_big]["ratio_spark_duckdb"]["both"]}
    lo, hi = sorted(cfg["scaling"])[-2:]
    if lo in sc and hi in sc:
        for what in ("total_s", "spark_s"):
            t.setdefault("scaling", {})[what] = round(sc[hi]["spark"][what] / sc[lo]["spark"][what], 2)
        t["scaling"]["events_ratio"] = hi / lo
        pts = [(e, sc[e]["spark"]) for e in sorted(sc) if e >= min(cfg["scaling"]) and not sc[e]["land_included"]]
        doc["linear_fit"] = {
            "pipeline_total": linear_fit([(e, r["total_s"]) for e, r in pts]),
            "spark_stages": linear_fit([(e, r["spark_s"]) for e, r in pts]),
        }
    incs = [s for s in doc["scenarios"] if "incremental" in s]
    if incs:
        inc = incs[-1]["incremental"]  # the largest size
        t["incremental"] = {"fraction": inc["fraction_of_full"], "spark_stages_fraction": inc["spark_stages_fraction"]}
        t["incremental_gate_s"] = {
            s["events"]: s["incremental"]["spark"]["stages"].get("validate_silver") for s in incs
        }
    big = max(cfg["scaling"])
    if big in sc:
        st = sc[big]["spark"]["stages"]
        t["gate_share"] = {"events": big, "share": round(st["validate_silver"] / st["bronze_to_silver"], 3)}
    cli = doc.get("cli") or {}
    if "fresh_s" in cli:
        t["cli"] = cli
    runs = doc.get("landing", {}).get("runs") or []
    if runs:
        best = max(runs, key=lambda r: r["batch_records"])
        t["landing"] = {"batch_records": best["batch_records"], "events_per_s": best["events_per_s"]}
    doc["targets"] = t


def markdown(doc: dict) -> str:
    m = doc["machine"]
    lines = [
        f"Run {doc['started']} on {m['cores']} cores, {m['ram_gb']} GB RAM ({m['platform']}); "
        f"load average at start {doc['loadavg_start']}, at end {doc['loadavg_end']}; mode {doc['mode']}.",
        "",
    ]
    lines += [
        "| events | land | b2s | validate | gate/b2s | s2g | train | score | total s | events/s | driver RSS MB | JVM RSS MB | DuckDB b2s | DuckDB s2g | Spark/DuckDB b2s | s2g | both | pandas b2s+s2g | equal |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for s in doc["scenarios"]:
        st = s["spark"]["stages"]
        d = s["duckdb"]["stages"]
        r = s["ratio_spark_duckdb"]
        p = s.get("pandas", {}).get("stages")
        eq = (
            s["duckdb"]["equality"]["equal"]
            and s["duckdb"]["figures_equal"]
            and s.get("pandas", {}).get("equality", {"equal": True})["equal"]
        )

        def f(k: str, st: dict = st) -> str:
            return f"{st[k]:.1f}" if k in st else "-"

        share = f"{st['validate_silver'] / st['bronze_to_silver']:.0%}" if st.get("bronze_to_silver") else "-"
        lines.append(
            f"| {s['events']:,} | {f('land_bronze')} | {f('bronze_to_silver')} | {f('validate_silver')} | {share} | {f('silver_to_gold')} | {f('train_model')} | {f('score_customers')} | "
            f"{s['spark']['total_s']:.1f} | {s['spark']['events_per_s']:,} | {s['spark']['driver_rss_mb']} | {s['spark']['jvm_rss_mb']} | "
            f"{d['bronze_to_silver']:.1f} | {d['silver_to_gold']:.2f} | {r['bronze_to_silver']} | {r['silver_to_gold']} | {r['both']} | "
            f"{f'{sum(p.values()):.1f}' if p else '-'} |"
        )
        lines[-1] += f" {'yes' if eq else '**NO**'} |"
    lines.append("")
    lines.append(f"Spark session start: {doc['spark_session_start_s']} s. Bronze generation: {doc['bronze']}.")
    for inc in [s["incremental"] for s in doc["scenarios"] if "incremental" in s]:
        lines.append(
            f"Incremental (+{inc['new_events']:,} events, one new hour): stages {inc['spark']['stages']}, total {inc['spark']['total_s']} s = "
            f"{inc['fraction_of_full']:.1%} of the full run (Spark stages alone: {inc['spark_stages_fraction']:.1%}); equal to DuckDB: {inc['equality_vs_duckdb']['equal']}."
        )
    fit = doc.get("linear_fit")
    if fit:
        for k, v in fit.items():
            if v:
                lines.append(
                    f"Linear fit, {k}: {v['seconds_per_million_events']} s per million events + {v['fixed_overhead_s']} s fixed (r² {v['r2']})."
                )
    land = doc.get("landing", {})
    if land.get("runs"):
        lines += [
            "",
            "| landing batch | events | events/s (active) | wall s | producer events/s |",
            "|---:|---:|---:|---:|---:|",
        ]
        for r in land["runs"]:
            lines.append(
                f"| {r['batch_records']:,} | {r['landed']:,} | {r['events_per_s']:,} | {r['wall_s']} | {r['produce_events_per_s']:,} |"
            )
    elif land:
        lines.append(f"Landing: {land.get('skipped') or land.get('error')}")
    t = doc.get("targets", {})
    lines += ["", "| target | goal | measured | met |", "|---|---|---|:---:|"]
    if "e2e_small" in t:
        v = t["e2e_small"]["seconds"]
        lines.append(
            f"| embedded end to end, {t['e2e_small']['events']:,} events | <= {TARGETS['e2e_100k_s']:.0f} s | {v} s | {'yes' if v <= TARGETS['e2e_100k_s'] else 'no'} |"
        )
    if "spark_vs_duckdb" in t:
        v = t["spark_vs_duckdb"]["ratio"]
        lines.append(
            f"| Spark / DuckDB, b2s+s2g at {t['spark_vs_duckdb']['events']:,} | <= {TARGETS['spark_vs_duckdb_2m']} | {v} | {'yes' if v <= TARGETS['spark_vs_duckdb_2m'] else 'no'} |"
        )
    if "scaling" in t:
        v = t["scaling"]
        lines.append(
            f"| time ratio for {v['events_ratio']:.0f}x events (pipeline total; Spark stages) | <= {TARGETS['scaling_1m_4m']} | {v['total_s']}; {v['spark_s']} | {'yes' if v['total_s'] <= TARGETS['scaling_1m_4m'] else 'no'} |"
        )
    if "incremental" in t:
        v = t["incremental"]
        lines.append(
            f"| incremental 1% / full run (all stages; Spark stages) | <= {TARGETS['incremental_fraction']:.0%} | {v['fraction']:.1%}; {v['spark_stages_fraction']:.1%} | {'yes' if v['fraction'] <= TARGETS['incremental_fraction'] else 'no'} |"
        )
    if "gate_share" in t:
        v = t["gate_share"]
        lines.append(
            f"| gate / bronze_to_silver at {v['events']:,} | <= 25% | {v['share']:.0%} | {'yes' if v['share'] <= 0.25 else 'no'} |"
        )
    if "incremental_gate_s" in t:
        lines.append(
            f"| incremental hour's gate, by full size | flat | {', '.join(f'{e:,}: {g} s' for e, g in t['incremental_gate_s'].items())} | - |"
        )
    if "cli" in t:
        v = t["cli"]
        for k, what in (
            ("fresh", f"`mdp run`, {v['events']:,} events, fresh lake (whole process)"),
            ("quiet", "`mdp run` again, nothing new (whole process)"),
            ("file", f"`mdp run --input`, {v['file_rows']:,}-row file (whole process)"),
        ):
            lines.append(
                f"| {what} | <= {CLI_TARGETS[k]:.0f} s | {v[f'{k}_s']} s | {'yes' if v[f'{k}_s'] <= CLI_TARGETS[k] else 'no'} |"
            )
        lines.append(
            f"| nothing new writes nothing (Silver, Gold, scores, model versions) | same | {v['state_before_after'][1]} | "
            f"{'yes' if v['quiet_changed_nothing'] else '**NO**'} |"
        )
    if "landing" in t:
        v = t["landing"]
        lines.append(
            f"| landing, batch {v['batch_records']:,} | >= {TARGETS['landing_events_per_s']:,}/s | {v['events_per_s']:,}/s | {'yes' if v['events_per_s'] >= TARGETS['landing_events_per_s'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes: a few minutes")
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="toy sizes: every code path and check, no meaningful times (the suite runs it)",
    )
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (shared Bronze is kept here and reused)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where the JSON and Markdown results go")
    ap.add_argument("--skip-cli", action="store_true", help="skip the whole-process `mdp run` timings")
    ap.add_argument(
        "--fresh-bronze", action="store_true", help="regenerate the shared Bronze even if a matching one exists"
    )
    ap.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], help="override: run only these sizes (events)"
    )
    ap.add_argument("--skip-landing", action="store_true")
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="processes generating Bronze")
    args = ap.parse_args(argv)
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    cfg = dict(MODES[mode])
    if args.skip_pandas:
        cfg["pandas_max"] = 0
    sizes = sorted(set(args.sizes or (cfg["e2e"] + cfg["compare"] + cfg["scaling"])))
    results = args.results
    work = (args.work or results / "work") / mode
    shared = work / "shared-lake"
    if args.fresh_bronze and shared.exists():
        shutil.rmtree(shared)
    shared.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)

    doc: dict = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": mode,
        "config": cfg,
        "sizes": sizes,
        "loadavg_start": loadavg(),
        "machine": machine(),
        "spark_driver_memory": os.environ.get("MDP_SPARK_DRIVER_MEMORY", "3g (default)"),
        "scenarios": [],
    }
    t_start = time.perf_counter()
    n_hours = max(sizes) // cfg["events_per_hour"]
    log(f"Bronze: {n_hours} hours x {cfg['events_per_hour']} events into {shared}")
    doc["bronze"] = generate_bronze(
        shared / "lake", hours_from(BASE_HOUR, n_hours), cfg["events_per_hour"], args.workers
    )
    shared = shared / "lake"
    log(f"Bronze ready: {doc['bronze']}")

    sampler = RssSampler()
    from mdp.core.settings import get_settings
    from spark_apps.session import get_spark

    t0 = time.perf_counter()
    get_spark(get_settings(home=work))
    doc["spark_session_start_s"] = round(time.perf_counter() - t0, 2)
    failed = False
    for events in sizes:
        try:
            s = run_scenario(
                events,
                cfg,
                work,
                shared,
                sampler,
                with_land=(events == min(cfg["e2e"]) and not args.sizes),
                pandas_max=cfg["pandas_max"],
                incremental=(events in cfg["incremental"]),
            )
        except Exception:
            log(f"scenario {events} failed:\n{traceback.format_exc()}")
            doc.setdefault("errors", []).append({"events": events, "error": traceback.format_exc()})
            failed = True
            continue
        doc["scenarios"].append(s)
        eq = [s["duckdb"]["equality"]["equal"], s["duckdb"]["figures_equal"], s["spark"]["conservation_ok"]]
        if "pandas" in s and "equality" in s["pandas"]:
            eq.append(s["pandas"]["equality"]["equal"])
        if "incremental" in s:
            eq.append(s["incremental"]["equality_vs_duckdb"]["equal"])
        if not all(eq):
            log(
                f"EQUALITY CHECK FAILED at {events} events: {json.dumps({k: s[k] for k in ('duckdb',)}, default=str)[:2000]}"
            )
            failed = True
    sampler.stop()

    if args.skip_landing:
        doc["landing"] = {"skipped": "--skip-landing"}
    else:
        try:
            doc["landing"] = run_landing(cfg, work)
        except Exception as exc:
            doc["landing"] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"landing failed:\n{traceback.format_exc()}")

    if args.skip_cli:
        doc["cli"] = {"skipped": "--skip-cli"}
    else:
        try:
            doc["cli"] = run_cli(cfg, work)
            failed |= not doc["cli"]["quiet_changed_nothing"]
        except Exception as exc:
            doc["cli"] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"cli timings failed:\n{traceback.format_exc()}")
            failed = True

    doc["loadavg_end"] = loadavg()
    doc["seconds"] = round(time.perf_counter() - t_start, 1)
    summarise(doc, cfg)
    doc["equality_ok"] = not failed
    md = (
        markdown(doc)
        + f"\nBenchmark wall time {doc['seconds']} s; equality checks {'passed' if not failed else 'FAILED'}.\n"
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    (results / f"bench-{doc['mode']}-{stamp}.json").write_text(json.dumps(doc, indent=1, default=str))
    (results / f"latest-{doc['mode']}.json").write_text(json.dumps(doc, indent=1, default=str))
    (results / f"latest-{doc['mode']}.md").write_text(md)
    print(md)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
