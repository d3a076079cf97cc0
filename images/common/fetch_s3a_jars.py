"""Put hadoop-aws and the AWS SDK bundle into pyspark's jars/: downloaded by default, or from a folder.

Runs at image BUILD time (stdlib only). Default: download the hadoop-aws and AWS SDK v2 bundle that
match the Hadoop client inside pyspark. It fails the build, with the fix in the message, when:
- the pinned Hadoop version differs from the hadoop-client-api jar that pyspark ships;
- the pinned AWS SDK version differs from the one that Hadoop release was built against;
- a download does not match Maven Central's published SHA-1, or an optional pinned SHA-256.

With --from-dir (build arg S3A_JARS_DIR), no Maven download: the jars named in --sha256 ("name=sha256 ...",
build arg S3A_JARS_SHA256) are copied from that folder, or fetched from it when it is an http(s) URL
(a local server, so the jars need not be in the build context), each checked against its SHA-256; a
jar that is missing, unlisted or different fails the build.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import urllib.request
from pathlib import Path

MAVEN = os.environ.get("MAVEN_REPO", "https://repo1.maven.org/maven2").rstrip("/")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as resp:
        return resp.read()


def download(group: str, artifact: str, version: str, dest: Path, sha256: str | None) -> None:
    base = f"{MAVEN}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.jar"
    data = fetch(base)
    expected_sha1 = fetch(base + ".sha1").decode().split()[0].strip()
    if hashlib.sha1(data).hexdigest() != expected_sha1:
        sys.exit(f"{artifact}-{version}.jar: SHA-1 mismatch with {base}.sha1")
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        sys.exit(f"{artifact}-{version}.jar: SHA-256 is {hashlib.sha256(data).hexdigest()}, pinned {sha256}")
    (dest / f"{artifact}-{version}.jar").write_bytes(data)
    print(f"fetched {artifact}-{version}.jar ({len(data)} bytes)")


def read_jar(src: Path | str, name: str) -> bytes:
    if isinstance(src, str):  # an http(s) URL
        try:
            return fetch(f"{src.rstrip('/')}/{name}")
        except OSError as e:
            sys.exit(f"{name}: not at {src} (S3A_JARS_DIR): {e}")
    jar = src / name
    if not jar.is_file():
        sys.exit(
            f"{name}: not in {src} (S3A_JARS_DIR); it has: {', '.join(p.name for p in src.glob('*.jar')) or 'no jars'}"
        )
    return jar.read_bytes()


def copy_pinned(src: Path | str, dest: Path, pins: str, hadoop: str) -> None:
    wanted = dict(item.split("=", 1) for item in pins.split())
    if not wanted:
        sys.exit(f"S3A_JARS_DIR={src} needs S3A_JARS_SHA256='<jar>=<sha256> ...' naming every jar to take from it")
    jars = {}
    for name, sha256 in wanted.items():  # every jar checked before any is copied
        jars[name] = read_jar(src, name)
        digest = hashlib.sha256(jars[name]).hexdigest()
        if digest != sha256:
            sys.exit(f"{name}: SHA-256 is {digest}, pinned {sha256} (S3A_JARS_SHA256)")
    for name, data in jars.items():
        (dest / name).write_bytes(data)
        print(f"copied {name} ({len(data)} bytes, SHA-256 checked)")
    aws = [n for n in wanted if n.startswith("hadoop-aws-")]
    if aws and aws[0] != f"hadoop-aws-{hadoop}.jar":
        print(
            f"note: {aws[0]} with the Hadoop {hadoop} client works only with the numeric S3A settings "
            "that spark_apps/session.py sets"
        )


def pyspark_jars() -> Path | None:
    try:
        import pyspark
    except ImportError:
        return None
    return Path(pyspark.__file__).parent / "jars"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hadoop", required=True)
    p.add_argument("--aws-sdk", required=True)
    p.add_argument("--dest", help="jars folder; default: the installed pyspark's jars/ (checked against either)")
    p.add_argument("--hadoop-aws-sha256", default=os.environ.get("HADOOP_AWS_SHA256") or None)
    p.add_argument("--aws-sdk-sha256", default=os.environ.get("AWS_SDK_SHA256") or None)
    p.add_argument(
        "--from-dir",
        default=os.environ.get("S3A_JARS_DIR") or None,
        help="take the jars from this folder or http(s) URL instead of Maven (relative: under /tmp/build-inputs)",
    )
    p.add_argument(
        "--sha256", default=os.environ.get("S3A_JARS_SHA256", ""), help="'<jar>=<sha256> ...' for --from-dir"
    )
    a = p.parse_args()
    dest = Path(a.dest) if a.dest else pyspark_jars()
    if dest is None:
        sys.exit("no pyspark installed: pass --dest")
    dest.mkdir(parents=True, exist_ok=True)
    # A separate --dest (a layer of its own) is checked against the installed pyspark's Hadoop client.
    shipped = sorted(dest.glob("hadoop-client-api-*.jar")) or sorted(
        (pyspark_jars() or dest).glob("hadoop-client-api-*.jar")
    )
    if shipped and shipped[0].name != f"hadoop-client-api-{a.hadoop}.jar":
        sys.exit(f"HADOOP_VERSION={a.hadoop} but Spark ships {shipped[0].name}: set the build arg to match")
    if a.from_dir:
        if re.match(r"^https?://", a.from_dir):
            src: Path | str = a.from_dir
        else:
            src = Path(a.from_dir) if Path(a.from_dir).is_absolute() else Path("/tmp/build-inputs") / a.from_dir
        copy_pinned(src, dest, a.sha256, a.hadoop)
        return
    pom = fetch(f"{MAVEN}/org/apache/hadoop/hadoop-project/{a.hadoop}/hadoop-project-{a.hadoop}.pom").decode()
    m = re.search(r"<aws-java-sdk-v2\.version>([^<]+)</aws-java-sdk-v2\.version>", pom)
    if m and m.group(1) != a.aws_sdk:
        sys.exit(f"Hadoop {a.hadoop} is built against AWS SDK {m.group(1)}, not {a.aws_sdk}: set AWS_SDK_VERSION")
    download("org.apache.hadoop", "hadoop-aws", a.hadoop, dest, a.hadoop_aws_sha256)
    download("software.amazon.awssdk", "bundle", a.aws_sdk, dest, a.aws_sdk_sha256)


if __name__ == "__main__":
    main()
