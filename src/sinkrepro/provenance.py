"""What every output says about where it came from."""
from __future__ import annotations

import importlib.metadata

STANDIN_NOTICE = (
    "WARNING: made with random-init stand-in models, not the paper's weights. "
    "These numbers exercise the pipeline; they are not scientific results."
)


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not-installed"


def notice_lines(standin: bool, comment: str = "") -> str:
    """The header line for a text output ('' when real models made it)."""
    return f"{comment}{STANDIN_NOTICE}\n" if standin else ""
