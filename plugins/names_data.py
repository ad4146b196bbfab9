"""Loader for the names data: the tutorial zip, its extracted folder, or a folder of <Language>.txt.

Where it comes from, first found: the data dir (``--data-dir`` / WORKBENCH_DATA_DIR), a download
through WORKBENCH_DATA_MIRROR, a download already in the cache, else the copy bundled with the
package (``data/names.zip``, 63 KB, the same bytes; see ``data/NAMES-LICENSE.txt``), so the app's
default dataset trains on a fresh machine with no network. Every file's sha256 is checked, whichever
copy is read, except a data dir's (the user's own files, perhaps edited on purpose).
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

from workbench.api import (
    ClassificationData,
    DataError,
    LoadContext,
    decode_text,
    fetch,
    hold_out,
    unicode_to_ascii,
)

URL = "https://download.pytorch.org/tutorial/data.zip"
#: The copy shipped inside the package: names/<Language>.txt, the same bytes as the download's.
BUNDLED = Path(__file__).parent / "data" / "names.zip"

#: sha256 of each names file; the zip holds these same bytes under data/names/.
CHECKSUMS = {
    "Arabic.txt": "6f424a8dbe51cbbbabab7a57d38b617210125e4e3991f3c657cb79b8f104bafc",
    "Chinese.txt": "49263ef55a8cb1740e841d65cad8214b2f9b5b869bc534c811746422496fa91e",
    "Czech.txt": "145bbbd6d0816578f03388e92c264d39ef1c60df920b081d371fa5c5cc055a8e",
    "Dutch.txt": "924f32b635170eae561f84538632138fc07d4c8bbd70ba3fb980de1ecc4d2af3",
    "English.txt": "9cca037066d3d5989e24bc01801416162de506b5e28e15b7c092a47905d29bf2",
    "French.txt": "81e65b36c60ed5b89a17422f6edcadbb89546f38ad69e960e64e7ba682012a95",
    "German.txt": "7449cd590b97a733e18d613a4155decd77ec35dc5f8aadd7a82204dce4f051db",
    "Greek.txt": "3555b5186de7f401e6d991b088e9e644ca3099116477818c25ab5793801389e6",
    "Irish.txt": "cf8c7013256252a88d2503127b87282a11f21b2ff6db1bded68834c19a1ec058",
    "Italian.txt": "f88414c27d0606a11a678b4859277828c2565d6cc4d9ee932deef6e94f3b35e4",
    "Japanese.txt": "e0e717e114fec3e7eade4d9dabe0067c475f43147e36a22b47902ee76ad9e67f",
    "Korean.txt": "cd54221ccb362a6cba4c78828838cf3268a0e59744767a37cf6ec4b74036b136",
    "Polish.txt": "45bab898af2f60ed3a728bbf6980e28821011a7caa53227553b5785903a40826",
    "Portuguese.txt": "50a8735f41f4f73757c8ce5b16cb0275cd86b2b214bcbc8c9805f508cb131c53",
    "Russian.txt": "43b3e64ce351f77f1ac9e0cdf7566012d127f4371875fd25208845b5c9d6f7c3",
    "Scottish.txt": "78d0252711d87d948ea86fe34826c51d2d794a8e52d15b5d6f7b6244d45d62dd",
    "Spanish.txt": "1bcb462ed3316756a85781d68232bddae04498fdddd5d9219c53fd1fbdeba7a7",
    "Vietnamese.txt": "f3f9e4164ab47601178a6e45b216464a64122f49d05541f24bf18a757253281d",
}

RawFiles = dict[str, tuple[str, bytes]]  # language -> (where it came from, bytes)


def _read_folder(folder: Path) -> RawFiles:
    return {p.stem: (str(p), p.read_bytes()) for p in sorted(folder.glob("*.txt"))}


def _read_zip(path: Path) -> RawFiles:
    try:
        with zipfile.ZipFile(path) as archive:
            members = sorted(n for n in archive.namelist()
                             if n.endswith(".txt") and Path(n).parent.name == "names" and not n.startswith("__MACOSX"))
            if not members:
                raise DataError(f"{path} holds no names/<Language>.txt files")
            return {Path(n).stem: (f"{path}:{n}", archive.read(n)) for n in members}
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"{path} is not a readable zip archive ({exc}); delete it or point --data-dir elsewhere") from None


def _find(data_dir: Path) -> Path | None:
    """A zip, a folder holding names/ or data/names/ or data.zip, or a folder of <Language>.txt."""
    if data_dir.is_file():
        return data_dir
    for folder in (data_dir / "names", data_dir / "data" / "names"):
        if folder.is_dir() and any(folder.glob("*.txt")):
            return folder
    for archive in (data_dir / "data.zip", data_dir / "names" / "data.zip"):
        if archive.is_file():
            return archive
    if data_dir.is_dir() and sum(1 for _ in data_dir.glob("*.txt")) >= 2:
        return data_dir
    return None


def read_files(path: Path) -> RawFiles:
    """The <Language>.txt files of what :func:`_find` found (or the downloaded zip)."""
    return _read_zip(path) if path.is_file() else _read_folder(path)


def read_names(files: RawFiles, ascii_only: bool) -> tuple[list[str], list[tuple[str, int]]]:
    languages = sorted(files)
    if len(languages) < 2:
        raise DataError("the names data needs at least two <Language>.txt files")
    examples: list[tuple[str, int]] = []
    for index, language in enumerate(languages):
        where, raw = files[language]
        text = decode_text(raw, where)
        names = [line.strip() for line in text.split("\n") if line.strip()]
        if not names:
            raise DataError(f"{where} contains no names")
        for name in names:
            examples.append((unicode_to_ascii(name) if ascii_only else name, index))
    return languages, examples


def bundled_files() -> RawFiles:
    """The bundled copy, each file checked against its published sha256."""
    if not BUNDLED.is_file():
        raise DataError(f"the bundled names data ({BUNDLED}) is missing: reinstall seq-workbench, or pass "
                        f"--data-dir (download {URL})")
    files = _read_zip(BUNDLED)
    for language, (where, raw) in files.items():
        if hashlib.sha256(raw).hexdigest() != CHECKSUMS.get(f"{language}.txt"):
            raise DataError(f"{where} does not match its published sha256: reinstall seq-workbench")
    if len(files) != len(CHECKSUMS):
        raise DataError(f"{BUNDLED} holds {len(files)} of the {len(CHECKSUMS)} names files: reinstall seq-workbench")
    return files


def _source(context: LoadContext) -> tuple[RawFiles, str]:
    """The files and where they came from (see the module's docstring for the order)."""
    cached = context.cache_dir / "names" / "data.zip"
    if context.data_dir is None and context.mirror is None and not cached.is_file():
        return bundled_files(), f"bundled copy of {URL}"
    # The zip's own checksum is not published; its members' are, so those are verified.
    members = {f"names/{name}": digest for name, digest in CHECKSUMS.items()}
    path = fetch(context, URL, "names/data.zip", members=members, find=_find, what="names data",
                 expected="names/<Language>.txt, data/names/<Language>.txt, data.zip, or a folder of "
                 "<Language>.txt files")
    return read_files(path), URL if context.data_dir is None else str(path)


def load(context: LoadContext, params: dict[str, Any]) -> ClassificationData:
    files, source = _source(context)
    languages, examples = read_names(files, params["ascii"])
    train, test = hold_out(examples, params["test_fraction"], params["split_seed"])
    train, valid = hold_out(train, params["valid_fraction"], params["split_seed"])
    dropped = 0
    if params["split"] == "disjoint":
        seen = {name for name, _ in train}
        before = len(test) + len(valid)
        test = [e for e in test if e[0] not in seen]
        valid = [e for e in valid if e[0] not in seen]
        dropped = before - len(test) - len(valid)
    return ClassificationData(
        classes=languages,
        train=train,
        valid=valid,
        test=test,
        tokenizer="char",
        normalize="ascii" if params["ascii"] else "none",
        info={
            "source": source,
            "names": len(examples),
            "languages": len(languages),
            "split": params["split"],
            "dropped_overlapping": dropped,
        },
    )

