"""Download hadoop-aws and the AWS SDK v2 bundle that match the Hadoop client inside pyspark.

Runs at image BUILD time (stdlib only). It fails the build, with the fix in the message, when:
- the pinned Hadoop version differs from the hadoop-client-api jar that pyspark ships;
- the pinned AWS SDK version differs from the one that Hadoop release was built against;
- a download does not match Maven Central's published SHA-1, or an optional pinned SHA-256.
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
    with urllib.request.urlopen(url, timeout=120) as resp:  # noqa: S310 - fixed https URLs
        return resp.read()


def download(group: str, artifact: str, version: str, dest: Path, sha256: str | None) -> None:
    base = f"{MAVEN}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.jar"
    data = fetch(base)
    expected_sha1 = fetch(base + ".sha1").decode().split()[0].strip()
    if hashlib.sha1(data).hexdigest() != expected_sha1:  # noqa: S324 - Maven's published checksum
        sys.exit(f"{artifact}-{version}.jar: SHA-1 mismatch with {base}.sha1")
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        sys.exit(f"{artifact}-{version}.jar: SHA-256 is {hashlib.sha256(data).hexdigest()}, pinned {sha256}")
    (dest / f"{artifact}-{version}.jar").write_bytes(data)
    print(f"fetched {artifact}-{version}.jar ({len(data)} bytes)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hadoop", required=True)
    p.add_argument("--aws-sdk", required=True)
    p.add_argument("--dest", help="jars folder; default: the installed pyspark's jars/")
    p.add_argument("--hadoop-aws-sha256", default=os.environ.get("HADOOP_AWS_SHA256") or None)
    p.add_argument("--aws-sdk-sha256", default=os.environ.get("AWS_SDK_SHA256") or None)
    a = p.parse_args()
    if a.dest:
        dest = Path(a.dest)
    else:
        import pyspark

        dest = Path(pyspark.__file__).parent / "jars"
    shipped = sorted(dest.glob("hadoop-client-api-*.jar"))
    if shipped and shipped[0].name != f"hadoop-client-api-{a.hadoop}.jar":
        sys.exit(f"HADOOP_VERSION={a.hadoop} but Spark ships {shipped[0].name}: set the build arg to match")
    pom = fetch(f"{MAVEN}/org/apache/hadoop/hadoop-project/{a.hadoop}/hadoop-project-{a.hadoop}.pom").decode()
    m = re.search(r"<aws-java-sdk-v2\.version>([^<]+)</aws-java-sdk-v2\.version>", pom)
    if m and m.group(1) != a.aws_sdk:
        sys.exit(f"Hadoop {a.hadoop} is built against AWS SDK {m.group(1)}, not {a.aws_sdk}: set AWS_SDK_VERSION")
    download("org.apache.hadoop", "hadoop-aws", a.hadoop, dest, a.hadoop_aws_sha256)
    download("software.amazon.awssdk", "bundle", a.aws_sdk, dest, a.aws_sdk_sha256)


if __name__ == "__main__":
    main()
