"""The two deliveries of a replay script (tests/properties/histories.py) that have no `mdp` command
with a chosen time: Kafka records landed into Bronze as the landing writes them, and `mdp ingest`
at a given time. The lake and contract come from MDP_HOME and MDP_CONTRACT, as for `mdp`.

    python -m tests.properties.replay land FILE.jsonl --at ISO --source S --partition P --first-offset O
    python -m tests.properties.replay ingest FILE.csv --at ISO
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime

from mdp.core.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tests.properties.replay")
    p.add_argument("what", choices=("land", "ingest"))
    p.add_argument("file")
    p.add_argument("--at", required=True, type=datetime.fromisoformat)
    p.add_argument("--source", default="kafka")
    p.add_argument("--partition", type=int, default=0)
    p.add_argument("--first-offset", type=int, default=0)
    a = p.parse_args(argv)
    settings = get_settings()
    if a.what == "land":
        from tests.oracle.oracle import land

        with open(a.file, encoding="utf-8") as fh:
            messages = [json.loads(line).encode() for line in fh]
        offsets = list(range(a.first_offset, a.first_offset + len(messages)))
        print(land(settings, messages, offsets, a.at, source=a.source, partition=a.partition))
    else:
        from ingestion.file_source import ingest_file
        from mdp.core.storage import store_for

        print(ingest_file(settings, store_for(settings), a.file, at=a.at)["bronze_objects"])


if __name__ == "__main__":
    main()
