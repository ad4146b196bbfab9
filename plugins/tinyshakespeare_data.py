"""Loader for Tiny Shakespeare: a local file or folder, else a verified download into the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench_plugins.lm_corpus import make_file_data
from workbench_plugins.tinyshakespeare import URL

from workbench.api import LanguageModelData, LoadContext, fetch

SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SIZE = 1_115_394


def locate(data_dir: Path) -> Path | None:
    """A file as given, or input.txt in the folder, its tinyshakespeare/ subfolder or as tinyshakespeare.txt."""
    if data_dir.is_file():
        return data_dir
    for candidate in (data_dir / "tinyshakespeare" / "input.txt", data_dir / "input.txt",
                      data_dir / "tinyshakespeare.txt"):
        if candidate.is_file():
            return candidate
    return None


def load(context: LoadContext, params: dict[str, Any]) -> LanguageModelData:
    path = fetch(context, URL, "tinyshakespeare/input.txt", sha256=SHA256, find=locate, what="Tiny Shakespeare",
                 expected="input.txt, tinyshakespeare/input.txt or a file path")
    data = make_file_data(context, path, params, {"source": URL, "file": str(path)})
    # the checksum taken while tokenising (or stored with the cache): the file is not read again
    data.info["canonical"] = data.info["file_sha256"] == SHA256 and path.stat().st_size == SIZE
    return data
