"""Fixtures for tests/deploy; the code lives in deploy_helpers.py (importable by name)."""

from deploy_helpers import (  # noqa: F401 - re-exported as fixtures
    chart_renders,
    compose_config,
    dotenv_example,
    helm_shim,
    overlay_docs,
    overlay_text,
    profiles,
    render_dir,
    repo,
)
