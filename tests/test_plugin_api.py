"""The public plugin API: what a plugin may import, the loader kit (fetch, decode_text) and
ParamError from a plugin's build."""

from __future__ import annotations

import ast
import hashlib
import io
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from workbench import api
from workbench.api import DataError, LoadContext, decode_text, fetch

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "workbench-example-plugin"
#: The modules a plugin may import (docs/plugins.md, "What a plugin may import"); a plugin's own
#: tests may also use the contract check.
PUBLIC = {"workbench.api", "workbench.nn"}
PUBLIC_IN_TESTS = PUBLIC | {"workbench.testing"}


def workbench_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import of a workbench module in a file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            if node.module == "workbench":  # from workbench import data
                found += [(node.lineno, f"workbench.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name == "workbench" or name.startswith("workbench.")]


def test_plugins_import_only_the_public_api():
    files = sorted((REPO / "plugins").glob("*.py")) + sorted(EXAMPLE.rglob("*.py"))
    assert len(files) > 20 and any(f.parent.name == "tests" for f in files)
    wrong = []
    for file in files:
        allowed = PUBLIC_IN_TESTS if "tests" in file.relative_to(REPO).parts else PUBLIC
        wrong += [f"{file.relative_to(REPO)}:{line}: imports {name}" for line, name in workbench_imports(file)
                  if name not in allowed and name != "workbench"]
        wrong += [f"{file.relative_to(REPO)}:{line}: imports the bare package" for line, name in
                  workbench_imports(file) if name == "workbench"]
    assert not wrong, "plugins may import only " + ", ".join(sorted(PUBLIC)) + ":\n" + "\n".join(wrong)


def test_the_api_imports_no_torch_and_exports_what_it_lists():
    code = ("import sys, workbench.api as api; missing = [n for n in api.__all__ if not hasattr(api, n)]; "
            "print(missing, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "False"]
    for name in ("fetch", "decode_text", "read_text", "ParamError", "DataError", "stratified_split", "hookimpl"):
        assert name in api.__all__


def test_docs_list_every_public_name():
    from workbench import nn

    text = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text[text.index("## What a plugin may import"):text.index("## The hooks")]
    undocumented = [name for name in [*api.__all__, *nn.__all__] if f"`{name}`" not in section
                    and name not in ("CELLS", "SEQUENCE_MODES")]
    assert not undocumented, f"docs/plugins.md's 'What a plugin may import' lacks {undocumented}"


# -- fetch ---------------------------------------------------------------------------------------
DATA = b"line one\nline two\n"
SHA = hashlib.sha256(DATA).hexdigest()
URL = "https://example.invalid/files/data.txt"


def find_txt(folder: Path) -> Path | None:
    return folder / "data.txt" if (folder / "data.txt").is_file() else None


def test_fetch_prefers_the_data_dir_and_never_downloads(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "data.txt").write_bytes(b"my own edited copy")  # not verified: the user's own
    context = LoadContext(tmp_path / "mine", tmp_path / "cache", mirror="http://127.0.0.1:9")
    assert fetch(context, URL, "x/data.txt", sha256=SHA, find=find_txt) == tmp_path / "mine" / "data.txt"
    assert not (tmp_path / "cache").exists()
    empty = LoadContext(tmp_path / "cache", tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    with pytest.raises(DataError, match=r"no demo data in .*cache: expected data\.txt \(download https://"):
        fetch(empty, URL, "x/data.txt", find=find_txt, what="demo data", expected="data.txt")
    with pytest.raises(DataError, match="no demo data in .*gone: it does not exist"):
        fetch(LoadContext(tmp_path / "gone", tmp_path), URL, "x/data.txt", find=find_txt, what="demo data")


def test_fetch_downloads_through_the_mirror_with_progress_then_uses_the_cache(tmp_path, mirror):
    root, base = mirror
    (root / "files").mkdir()
    (root / "files" / "data.txt").write_bytes(DATA)
    seen = []
    context = LoadContext(None, tmp_path / "cache", mirror=base, progress=lambda *update: seen.append(update))
    path = fetch(context, URL, "demo/data.txt", sha256=SHA, find=find_txt)
    assert path == tmp_path / "cache" / "demo" / "data.txt" and path.read_bytes() == DATA
    assert seen[-1] == (len(DATA), len(DATA), "data.txt")
    (root / "files" / "data.txt").unlink()  # the cache answers from now on
    assert fetch(context, URL, "demo/data.txt", sha256=SHA) == path


def test_fetch_deletes_a_cached_file_whose_checksum_fails_and_says_so(tmp_path):
    cached = tmp_path / "cache" / "demo" / "data.txt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(DATA[:-3])
    context = LoadContext(None, tmp_path / "cache", mirror="http://127.0.0.1:9")
    with pytest.raises(DataError, match="did not match its sha256 .*it was removed, try again") as info:
        fetch(context, URL, "demo/data.txt", sha256=SHA)
    assert str(cached) in str(info.value) and not cached.exists()


def test_fetch_rejects_a_download_with_the_wrong_bytes(tmp_path, mirror):
    root, base = mirror
    (root / "files").mkdir()
    (root / "files" / "data.txt").write_bytes(b"tampered")
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(LoadContext(None, tmp_path / "cache", mirror=base), URL, "demo/data.txt", sha256=SHA)
    assert not (tmp_path / "cache" / "demo").exists() or not any((tmp_path / "cache" / "demo").iterdir())


def test_fetch_checks_archive_members_and_removes_a_bad_archive(tmp_path):
    def archive(member_bytes: bytes) -> None:
        path = tmp_path / "cache" / "demo" / "pack.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as handle:
            handle.writestr("pack/data.txt", member_bytes)
        path.write_bytes(buffer.getvalue())

    context = LoadContext(None, tmp_path / "cache")
    archive(DATA)
    assert fetch(context, URL, "demo/pack.zip", members={"data.txt": SHA}).is_file()
    archive(b"other bytes")
    with pytest.raises(DataError, match=r"pack.zip:pack/data.txt does not match its published sha256; "
                                        "the cached download was removed"):
        fetch(context, URL, "demo/pack.zip", members={"data.txt": SHA})
    assert not (tmp_path / "cache" / "demo" / "pack.zip").exists()
    archive(DATA)
    with pytest.raises(DataError, match="pack.zip lacks other.txt"):
        fetch(context, URL, "demo/pack.zip", members={"other.txt": SHA})


# -- decode_text ---------------------------------------------------------------------------------
def test_decode_text_names_the_file_line_byte_and_what_to_do():
    with pytest.raises(DataError) as info:
        decode_text("first\nsecond caf\xe9\n".encode("latin-1"), "data/train.txt")
    assert str(info.value).startswith("data/train.txt:2: not UTF-8 text (byte 16: invalid continuation byte")
    assert "iconv -f latin1 -t utf-8" in str(info.value)
    with pytest.raises(DataError, match=r"x.csv:1: not UTF-8 text .*; set encoding=latin-1$"):
        decode_text(b"caf\xe9", Path("x.csv"), hint="set encoding=latin-1")
    with pytest.raises(DataError, match=r"y.txt:1: .*truncated\?\)"):
        decode_text("café".encode()[:-1], "y.txt")
    with pytest.raises(DataError, match=r"z.neg: not Latin-1 text \(.*UTF-16 or binary"):
        decode_text("bad movie".encode("utf-16"), "z.neg", "latin-1")
    with pytest.raises(DataError, match="unknown text encoding 'klingon'"):
        decode_text(b"abc", "w.txt", "klingon")


def test_decode_text_reads_good_text():
    assert decode_text("\ufeffcafé\n".encode(), "a.txt") == "café\n"  # byte-order mark dropped
    assert decode_text("café".encode("latin-1"), "b.txt", "latin-1") == "café"
    assert decode_text(b"", "c.txt") == ""


# -- ParamError from a plugin's build ------------------------------------------------------------
PLUGIN = '''
from workbench.api import ArchitectureSpec, ParamError, hookimpl, recurrent_params


def build(context, params):
    if params["bidirectional"] and params["hidden_size"] % 2:
        raise ParamError("hidden_size must be even for bidirectional=true")
    raise AssertionError("the test never builds a model")


@hookimpl
def workbench_architectures():
    return [ArchitectureSpec(name="evenonly", tasks=("classification",), description="even sizes only",
                             build=build, params=recurrent_params())]
'''


@pytest.mark.slow
def test_param_error_from_build_is_one_clean_line(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "evenonly.py").write_text(textwrap.dedent(PLUGIN))
    command = [sys.executable, "-m", "workbench", "--plugins-dir", str(tmp_path / "plugins"), "train",
               "--dataset", "brackets", "--arch", "evenonly", "--set", "model.bidirectional=true",
               "--set", "model.hidden_size=33", "--set", "epochs=1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr == "workbench: error: hidden_size must be even for bidirectional=true\n"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run was made


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_pipe_or_device_as_a_text_file_is_one_line_not_a_hang(tmp_path, capsys, kind):
    """`--set data.path=/dev/zero` would fill the memory and a FIFO would block for ever."""
    from workbench.cli import main

    if kind == "fifo":
        target = tmp_path / "pipe.txt"
        os.mkfifo(target)
    else:
        target = Path("/dev/zero")
        if not target.exists():
            pytest.skip("no /dev/zero here")
    code = main(["train", "--dataset", "text-file", "--set", f"data.path={target}", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"{target} is not a regular file" in err
