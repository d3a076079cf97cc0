"""Test helpers: write hand-made Bronze batches in the landing's exact layout."""

from __future__ import annotations

import json
from datetime import datetime

from ingestion.bronze import RawRecord, write_bronze
from ingestion.generator import generate_hour, ingest_time
from mdp.core.storage import store_for


def write_messages(settings, hour: datetime, messages: list[bytes], source: str = "test", first_offset: int = 0) -> None:
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
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)
