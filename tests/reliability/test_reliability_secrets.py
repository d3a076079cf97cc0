"""Issue 7.6 - secrets.

- No configured credential appears in what the CLI prints (at DEBUG log level too, where botocore
  logs the signed Authorization header), in MLflow params/tags, in the logs of a training run, or
  in any file of the lake or the MLflow store. The credentials are unique fake values
  (harness.FAKE_SECRETS), so a plain substring search finds any leak.
- Committed configuration carries no credential: config files are scanned for password-looking
  literals; only files marked as development files (name contains "dev" or ends in ".example")
  may hold the well-known dev values, and they must say so.
"""

from __future__ import annotations

import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.reliability.harness import CLI_OUTPUTS, FAKE_SECRETS, ROOT, cli_env, run_cli

pytestmark = pytest.mark.integration

SECRETS = list(FAKE_SECRETS.values())


def leaks(text: str) -> list[str]:
    return [name for name, value in FAKE_SECRETS.items() if value in text]


class _Refuse(BaseHTTPRequestHandler):
    """An S3 stand-in that refuses every key, and remembers the Authorization headers it saw."""

    seen: list[str] = []

    def _deny(self):
        self.seen.append(self.headers.get("Authorization", ""))
        body = b"<?xml version='1.0'?><Error><Code>InvalidAccessKeyId</Code><Message>no such key</Message></Error>"
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _deny

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def refusing_s3():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Refuse.seen.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_debug_logs_and_errors_never_show_credentials(refusing_s3, tmp_path):
    env = cli_env(tmp_path, MDP_PROFILE="local", MDP_S3_ENDPOINT=refusing_s3, MDP_LOG_LEVEL="DEBUG")
    r = run_cli(["stage", "validate_silver"], env, timeout=120)
    assert r.returncode == 2, r.text[-2000:]
    assert f"S3 at {refusing_s3} rejected the credentials (InvalidAccessKeyId)" in r.text
    assert "Traceback" not in r.stdout + r.stderr
    # The key really was sent (so it was there to leak) and botocore did log the signed header...
    assert any(FAKE_SECRETS["AWS_ACCESS_KEY_ID"] in h for h in _Refuse.seen)
    assert "Credential=***" in r.stderr
    # ...but not one credential made it to the output.
    assert leaks(r.stdout + r.stderr) == []


def test_no_cli_output_of_this_session_shows_a_credential():
    """Every CLI subprocess of the reliability tests ran with the fake credentials in its environment."""
    assert CLI_OUTPUTS, "no CLI output captured"
    found = {what: leaks(text) for what, text in CLI_OUTPUTS if leaks(text)}
    assert found == {}


def test_error_messages_redact_passwords_in_urls(monkeypatch):
    from mdp.core.settings import redact

    monkeypatch.setenv("PGPASSWORD", FAKE_SECRETS["PGPASSWORD"])
    text = redact(
        f"cannot connect to postgresql://mdp:inline-pw@127.0.0.1:5432/db (password {FAKE_SECRETS['PGPASSWORD']})"
    )
    assert "inline-pw" not in text and FAKE_SECRETS["PGPASSWORD"] not in text
    assert "postgresql://mdp:***@127.0.0.1:5432/db" in text


def test_mlflow_logs_and_lake_hold_no_credential(trained):
    from mlflow.tracking import MlflowClient

    settings = trained.settings
    assert sorted(settings.secret_values()) == sorted(SECRETS)  # they were configured
    client = MlflowClient(settings.mlflow_uri, settings.mlflow_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert runs
    for run in runs:
        assert leaks(repr(run.data.params) + repr(run.data.tags)) == [], run.info.run_id
    assert trained.log_text and leaks(trained.log_text) == []
    # Every file the platform wrote: Bronze, Silver, Gold, GX reports and Data Docs, MLflow's
    # sqlite store and its artifacts.
    files = [p for p in Path(settings.home).rglob("*") if p.is_file()]
    assert len(files) > 50
    dirty = [str(p) for p in files if any(v.encode() in p.read_bytes() for v in SECRETS)]
    assert dirty == []


# ---- committed configuration --------------------------------------------------------------------
CONFIG_GLOBS = [
    "mdp/core/profiles.yaml",
    "charts/**/*.yaml",
    "k8s/**/*.yaml",
    "docker-compose*.yml",
    ".env*",
    ".github/workflows/*.yml",
    "kind/*.yaml",
]
SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|access_?key|api_?key|token|credential)")
NOT_A_VALUE_KEY = re.compile(r"(?i)(name|file|ref|path|existingsecret|secrets|keys)$")
REFERENCE = re.compile(r"\$\{|\{\{|\$\(|^\$")  # ${VAR}, {{ template }}, $(cmd), $VAR
LITERAL_PATTERNS = {
    "aws access key id": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "password in a URL": re.compile(r"\w+://[^\s/@'\"]*?:([^\s@'\"]+)@"),  # group 1: the password
}


def config_files() -> list[Path]:
    """Config files in the repository (committed, or new and not ignored)."""
    listed = set(
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    )
    return sorted({p for g in CONFIG_GLOBS for p in ROOT.glob(g) if str(p.relative_to(ROOT)) in listed})


def is_dev_file(path: Path) -> bool:
    return "dev" in path.name.lower() or path.name.endswith(".example")


def literal_secrets(path: Path) -> list[str]:
    """Secret-looking keys with literal values, and secret-looking literals anywhere."""
    text = path.read_text(errors="replace")
    found = [
        f"{name}: line {text[: m.start()].count(chr(10)) + 1}"
        for name, rx in LITERAL_PATTERNS.items()
        for m in rx.finditer(text)
        if not (m.groups() and re.search(r"\$|\{\{|%s", m.group(1)))
    ]

    def check(key: str, value) -> None:
        if (
            isinstance(value, str)
            and value.strip()
            and SECRET_KEY.search(key)
            and not NOT_A_VALUE_KEY.search(key)
            and not REFERENCE.search(value)
            and not value.startswith("/")
            and not re.fullmatch(r"[A-Z][A-Z0-9_]*", value)
        ):  # names of variables/Secret keys
            found.append(f"{key}: {value!r}")

    def walk(node) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("name"), str) and "value" in node:  # env: [{name: X_PASSWORD, value: ...}]
                check(node["name"], node["value"])
            if node.get("kind") == "Secret":
                for section in ("data", "stringData"):
                    for k, v in (node.get(section) or {}).items():
                        check(f"Secret.{section}.{k}", str(v) if v is not None else "")
            for k, v in node.items():
                check(str(k), v)
                walk(v)
        elif isinstance(node, list):
            for item in node:
                if isinstance(item, str) and "=" in item:  # env as KEY=VALUE list items
                    check(*item.split("=", 1))
                walk(item)

    if path.suffix in (".yaml", ".yml") and "{{" not in text:
        for doc in yaml.safe_load_all(text):
            walk(doc)
    elif path.name.startswith(".env"):
        for line in text.splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                check(*line.split("=", 1))
    return found


def test_committed_configuration_holds_no_credentials():
    files = config_files()
    names = {str(p.relative_to(ROOT)) for p in files}
    assert {"mdp/core/profiles.yaml", "docker-compose.yml"} <= names and any(n.startswith("k8s/base/") for n in names)
    assert any(n.startswith("charts/") and n.endswith("/values.yaml") for n in names)
    offenders = {str(p.relative_to(ROOT)): hits for p in files if not is_dev_file(p) and (hits := literal_secrets(p))}
    assert offenders == {}, offenders


def test_dev_credentials_live_only_in_files_marked_as_dev():
    dev = [p for p in config_files() if is_dev_file(p) and literal_secrets(p)]
    for p in dev:
        head = p.read_text().lower()[:600]
        assert "dev" in head and ("only" in head or "not secret" in head or "throwaway" in head), (
            f"{p}: say it is dev-only"
        )


def test_the_scanner_finds_what_it_should(tmp_path):
    """The scan itself can fail: planted literals are found, references are not."""
    bad = tmp_path / "values.yaml"
    bad.write_text(
        "credentials:\n  s3:\n    secretAccessKey: hunter2\nenv:\n  - name: PGPASSWORD\n    value: s3cret\n"
        "url: postgresql://mdp:pw@db/x\nkey: AKIAABCDEFGHIJKLMNOP\n"
    )
    assert len(literal_secrets(bad)) == 4, literal_secrets(bad)
    good = tmp_path / "values-ok.yaml"
    good.write_text(
        "credentials:\n  s3:\n    existingSecret: mdp-s3\n    secretAccessKey: ''\nenv:\n  - name: PGPASSWORD\n"
        "    value: ${POSTGRES_PASSWORD}\nkeys: {AWS_ACCESS_KEY_ID: AWS_ACCESS_KEY_ID}\n"
        "url: postgresql://${U}:${P}@db/x\npasswords_file: /opt/auth/passwords.json\n"
    )
    assert literal_secrets(good) == []
