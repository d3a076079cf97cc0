"""The one-time conversion of a lake in the pre-Delta layout (`v=<version>/` folders behind
`_CURRENT.json`) into Delta tables: `mdp lake convert`.

Each dataset's published version becomes version 0 of its Delta tables (the files are copied into
a write's staging folder and committed, as a stage would); the Silver checkpoint goes with it, so
the next run reads only what that version had not. Older versions, pins and staged entries are
not carried over: the old pointer is renamed `_CURRENT.json.converted` and the `v=` folders are
left for the user to delete once satisfied. MLflow tags that name an old Gold snapshot keep
naming it.
"""

from __future__ import annotations

import json

from mdp.core.errors import StageError
from mdp.core.settings import Settings
from mdp.core.storage import join, store_for
from mdp.core.tables import Dataset, SilverDataset, gold_dataset, scores_dataset, silver_dataset

OLD_POINTER = "_CURRENT.json"


def old_pointer_uri(dataset: Dataset) -> str:
    """Where the pre-Delta layout kept a dataset's pointer (scores: inside their own folder)."""
    if dataset.tables == (dataset.settings.data_contract.scores_name,):
        return join(dataset.root, dataset.tables[0], OLD_POINTER)
    return join(dataset.root, OLD_POINTER)


def convert(settings: Settings) -> list[str]:
    """Convert every dataset still in the old layout; returns what was done, one line each."""
    store = store_for(settings)
    done: list[str] = []
    silver_versions: dict[int, int] = {}  # old version -> its Delta version
    for dataset in (silver_dataset(settings, store), gold_dataset(settings, store), scores_dataset(settings, store)):
        pointer = old_pointer_uri(dataset)
        text = store.get_text(pointer)
        if text is None:
            continue
        old = json.loads(text)
        version = old["version"]
        manifest = {k: v for k, v in old.items() if k not in ("version", "history", "published_at", "status")}
        if manifest.get("silver_version") in silver_versions:  # Gold built from the Silver converted above
            manifest["silver_version"] = silver_versions[manifest["silver_version"]]
        with dataset.lease("convert"):
            if dataset.primary.exists():
                raise RuntimeError(f"{dataset.root}: has both {OLD_POINTER} and Delta tables; convert it by hand")
            write = dataset.begin("convert")
            for table in dataset.tables:
                src = join(dataset.root, table, f"v={version}")  # the scores too: their folder is the table's
                names = [
                    n
                    for n in store.walk_files(src)
                    if n.endswith(".parquet") and not n.split("/")[-1].startswith(("_", "."))
                ]
                for n in names:
                    data = store.get_bytes(join(src, n))
                    if data is None:
                        raise StageError(f"{join(src, n)}: vanished while converting; convert again")
                    store.put_bytes(join(write.staging(table), n), data)
            if isinstance(dataset, SilverDataset):
                checkpoint = dataset.checkpoint_uri(write.write_id)
                store.copy_prefix(join(dataset.root, "_checkpoint", f"v={version}"), checkpoint)
                manifest["checkpoint"] = checkpoint
            new = write.commit({**manifest, "converted_from": version})
            if isinstance(dataset, SilverDataset):
                silver_versions[version] = new
            store.put_text(pointer + ".converted", text)
            store.delete(pointer)
        done.append(f"{dataset.primary.uri}: version {version} is now Delta version {new}")
    return done
