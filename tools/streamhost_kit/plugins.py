"""Plugin files in a plugin directory."""

from __future__ import annotations

import shutil
from pathlib import Path


def deploy(plugin_dir: Path, name: str, source: Path | bytes) -> None:
    """The documented safe deploy: write a hidden temporary file, then rename."""
    tmp = plugin_dir / f".{name}.tmp"
    if isinstance(source, bytes):
        tmp.write_bytes(source)
    else:
        shutil.copyfile(source, tmp)
    tmp.rename(plugin_dir / name)
