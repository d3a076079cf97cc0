"""Test helpers: write hand-made Bronze batches in the landing's exact layout; a changed contract;
the one SparkSession of the test process."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import yaml

from ingestion.bronze import RawRecord, write_bronze
from ingestion.generator import generate_hour, ingest_time
from mdp.core.contract import CONTRACTS_DIR
from mdp.core.storage import store_for


def write_messages(
    settings, hour: datetime, messages: list[bytes], source: str = "test", first_offset: int = 0
) -> None:
    records = [
        RawRecord(m, None, 0, first_offset + i, ingest_time(hour, i, len(messages))) for i, m in enumerate(messages)
    ]
    write_bronze(settings, store_for(settings), records, source=source, topic="customers")


def clean_events(seed: int, hour: datetime, n: int) -> list[dict]:
    return [json.loads(e.message) for e in generate_hour(seed, hour, n, dirty_fraction=0.0)]


def corrupt(events: list[dict], **changes) -> list[bytes]:
    """Apply `field=function(value)` to every event and serialise."""
    out = []
    for e in events:
        e = dict(e)
        for k, fn in changes.items():
            e[k] = fn(e.get(k))
        out.append(json.dumps(e).encode())
    return out


def headless_chromium(tmp_path):
    """A headless Chromium driven by Debian's chromedriver (the UI checks); skips where it is absent."""
    import shutil

    import pytest

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def changed_contract(where: Path) -> Path:
    """The customers contract with a tightened range (age at most 82) and a new normaliser
    (full_name upper-cased): what a backfill under a changed contract must apply to every row."""
    data = yaml.safe_load((CONTRACTS_DIR / "customers.yaml").read_text())
    for c in data["columns"]:
        if c["name"] == "age":
            c["max"] = 82
        if c["name"] == "full_name":
            c["normalise"] = ["trim", "upper"]
    path = where / "changed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def shared_spark():
    """The process's SparkSession (spark_apps.session keeps one), started here with the tests'
    settings if nothing started it yet: the `spark` fixture and in-process CLI runs share it."""
    from mdp.core.settings import get_settings
    from spark_apps.session import get_spark

    return get_spark(get_settings(home=Path("/tmp")))
