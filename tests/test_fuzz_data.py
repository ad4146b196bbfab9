"""Fuzzing every dataset format's parser with real files written to a scratch folder.

Each example writes a folder or file the way a user might (names folders and zips, text-folder,
text-csv, CoNLL-U, tagged text, parallel TSV, fra-eng, a text-file corpus, an IMDB folder and
archive, rt-polarity) and runs what ``workbench train`` runs before the first step: the plan, the
dataset's loader, the task's vocabularies and encoding. The property: a DataError (or another
WorkbenchError) with a one-line message, or data the task can encode; never another exception.
"""

from __future__ import annotations

import io
import string
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from helpers import fuzz_examples
from workbench.config import plan_run
from workbench.engine import load_dataset
from workbench.errors import WorkbenchError
from workbench.tasks import task_class

pytestmark = pytest.mark.fuzz

#: Characters a file or folder name may hold on any common file system we test on.
NAME = st.text(alphabet=string.ascii_letters + string.digits + "-_ .é日", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..") and not s.startswith("."))
#: Text with the awkward parts over-represented: tabs, CR, NEL, BOM, NUL, quotes, slashes, digits.
AWKWARD = "\t\r\n\x85\ufeff\x00\"',;|/#_-.0123456789 "
awkward_text = st.text(alphabet=st.one_of(st.sampled_from(AWKWARD), st.characters()), max_size=60)
lines = st.lists(awkward_text, max_size=8).map("\n".join)


def encoded(text_strategy: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """Bytes as users' files come: UTF-8 (with and without BOM), Latin-1, UTF-16, or plain garbage."""
    def encode(text: str, how: str) -> bytes:
        if how == "utf-8-sig":
            return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
        if how in ("latin-1", "utf-16"):
            return text.encode(how, "replace")
        return text.encode("utf-8", "surrogatepass")
    return st.one_of(st.builds(encode, text_strategy, st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"])),
                     st.binary(max_size=80))


def load_and_encode(registry, dataset: str, data_dir: Path, sets: list[str] | None = None) -> None:
    """What a run does before its first step, up to encoded examples; one-line errors are fine."""
    try:
        config = plan_run(registry, dataset=dataset, data_dir=str(data_dir), assignments=sets or []).config
        data = load_dataset(config, registry)
        task_class(registry.dataset(dataset).task).from_data(data).encode(data)
    except WorkbenchError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        event(f"refused: {str(exc).split(':')[0][:20]}")
    else:
        event("loaded")


def in_scratch(tmp_path: Path, write: Callable[[Path], Path]) -> tuple[tempfile.TemporaryDirectory, Path]:
    scratch = tempfile.TemporaryDirectory(dir=tmp_path)
    return scratch, write(Path(scratch.name))


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_dir():
            path.write_bytes(content)


# -- names: a folder of <Language>.txt, or data.zip with names/<Language>.txt -----------------------
names_files = st.dictionaries(NAME.map(lambda s: f"{s}.txt"), encoded(lines), max_size=4)


@settings(max_examples=fuzz_examples(60))
@given(files=names_files, zipped=st.booleans())
@example(files={"A.txt": b"\n\n", "B.txt": b"x"}, zipped=False)
@example(files={"A.txt": b"\xff\xfe\x00", "B.txt": b"x"}, zipped=True)
def test_fuzzed_names_folders_and_zips(registry, tmp_path, files, zipped):
    def write(root: Path) -> Path:
        if zipped:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w") as archive:
                for name, content in files.items():
                    archive.writestr(f"names/{name}", content)
            (root / "data.zip").write_bytes(buffer.getvalue())
        else:
            write_files(root / "names", files)
        return root
    scratch, root = in_scratch(tmp_path, write)
    with scratch:
        load_and_encode(registry, "names", root)


# -- text-folder: one subfolder per class ----------------------------------------------------------
@settings(max_examples=fuzz_examples(40))
@given(classes=st.dictionaries(NAME, st.dictionaries(NAME.map(lambda s: f"{s}.txt"), encoded(awkward_text),
                                                      max_size=3), max_size=3),
       splits=st.booleans(), tokenizer=st.sampled_from(["word", "char"]))
def test_fuzzed_text_folders(registry, tmp_path, classes, splits, tokenizer):
    def write(root: Path) -> Path:
        for split in ("train", "test") if splits else ("",):
            for label, files in classes.items():
                write_files(root / split / label, files)
        return root
    scratch, root = in_scratch(tmp_path, write)
    with scratch:
        load_and_encode(registry, "text-folder", root, [f"data.tokenizer={tokenizer}"])


# -- text-csv ----------------------------------------------------------------------------------------
cell = st.one_of(st.sampled_from(["text", "label", "pos", "neg", "", '"', '""', '"a,b"', "a\nb", "\t"]),
                 st.text(max_size=10))


@st.composite
def csv_tables(draw: st.DrawFn) -> str:
    delimiter = draw(st.sampled_from([",", "\t", ";", "|"]))
    header = draw(st.one_of(st.just(["text", "label"]), st.just(["label", "text", "id"]), st.lists(cell, max_size=3)))
    rows = draw(st.lists(st.lists(cell, min_size=0, max_size=4), max_size=6))
    return "\n".join(delimiter.join(row) for row in [header, *rows])


@settings(max_examples=fuzz_examples(80))
@given(table=csv_tables(), suffix=st.sampled_from([".csv", ".tsv"]),
       delimiter=st.sampled_from(["auto", "comma", "tab", "semicolon", "pipe"]), raw=st.booleans(),
       garbage=encoded(awkward_text))
@example(table='text,label\n"unclosed,pos\n', suffix=".csv", delimiter="auto", raw=False, garbage=b"")
@example(table="text,label\nx\x00y,pos\n", suffix=".csv", delimiter="auto", raw=False, garbage=b"")
def test_fuzzed_csv_tables(registry, tmp_path, table, suffix, delimiter, raw, garbage):
    def write(root: Path) -> Path:
        path = root / f"train{suffix}"
        path.write_bytes(garbage if raw else table.encode("utf-8", "surrogatepass"))
        return path
    scratch, path = in_scratch(tmp_path, write)
    with scratch:
        load_and_encode(registry, "text-csv", path, [f"data.delimiter={delimiter}"])


# -- CoNLL-U and tagged text -------------------------------------------------------------------------
conllu_field = st.one_of(st.sampled_from(["_", "", "NOUN", "VERB", "1", "1-2", "1.1", "0", "-1", "01", "٣"]),
                         st.text(alphabet=st.characters(blacklist_characters="\t\n\r"), max_size=6))


@st.composite
def conllu_documents(draw: st.DrawFn) -> str:
    out = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            out.append("# " + draw(awkward_text))
        for number in range(1, draw(st.integers(1, 5)) + 1):
            fields = [str(number), "w", "w", "NOUN", "NN", "_", "0", "root", "_", "_"]
            for _ in range(draw(st.integers(0, 2))):  # a few fields broken or missing
                position = draw(st.integers(0, len(fields)))
                if position == len(fields):
                    fields.pop()
                else:
                    fields[position] = draw(conllu_field)
            out.append("\t".join(fields))
        out.append("")
    return "\n".join(out)


@settings(max_examples=fuzz_examples(60))
@given(document=conllu_documents(), column=st.sampled_from(["upos", "xpos"]), name=st.sampled_from(
    ["train.conllu", "en-ud-train.conllu", "x.conllu"]), extra=st.one_of(st.none(), conllu_documents()))
@example(document="1\tw\tw\tNOUN\tNN\t_\t0\troot\t_\t_\n", column="upos", name="x.conllu", extra=None)
def test_fuzzed_conllu_files(registry, tmp_path, document, column, name, extra):
    def write(root: Path) -> Path:
        (root / name).write_text(document, encoding="utf-8", errors="surrogatepass")
        if extra is not None:
            (root / "dev.conllu").write_text(extra, encoding="utf-8", errors="surrogatepass")
            return root
        return root / name
    scratch, path = in_scratch(tmp_path, write)
    with scratch:
        load_and_encode(registry, "conllu", path, [f"data.column={column}"])


tagged_line = st.one_of(
    st.lists(st.builds(lambda w, t: f"{w}/{t}", st.sampled_from(["a", "/", "", "a/b", "é"]),
                       st.sampled_from(["N", "", "/", "V"])), max_size=5).map(" ".join),
    st.builds(lambda w, sep, t: f"{w}{sep}{t}", st.sampled_from(["a", "", "-DOCSTART-", "#"]),
              st.sampled_from(["\t", " ", "  ", "\t\t"]), st.sampled_from(["N", "", "V", " "])),
    awkward_text)


@settings(max_examples=fuzz_examples(80))
@given(text=st.lists(tagged_line, max_size=8).map("\n".join),
       fmt=st.sampled_from(["auto", "slash", "columns"]))
def test_fuzzed_tagged_text_files(registry, tmp_path, text, fmt):
    def write(root: Path) -> Path:
        (root / "train.txt").write_text(text, encoding="utf-8", errors="surrogatepass")
        return root / "train.txt"
    scratch, path = in_scratch(tmp_path, write)
    with scratch:
        load_and_encode(registry, "tagged-text", path, [f"data.format={fmt}"])


# -- parallel TSV and fra-eng ------------------------------------------------------------------------
pair_line = st.one_of(
    st.builds(lambda s, t, rest: f"{s}\t{t}{rest}", awkward_text, awkward_text,
              st.sampled_from(["", "\tCC-BY", "\t\t"])), awkward_text)
pair_files = st.lists(pair_line, max_size=8).map("\n".join)


@settings(max_examples=fuzz_examples(80))
@given(text=pair_files, dataset=st.sampled_from(["parallel-tsv", "fra-eng"]),
       tokenizer=st.sampled_from(["whitespace", "word", "char"]), normalize=st.sampled_from(["nmt", "lower", "none"]))
@example(text="Go.\tVa !\n", dataset="fra-eng", tokenizer="word", normalize="nmt")
@example(text="\x85\t\x85\n", dataset="parallel-tsv", tokenizer="word", normalize="nmt")
def test_fuzzed_parallel_text(registry, tmp_path, text, dataset, tokenizer, normalize):
    def write(root: Path) -> Path:
        name = "fra.txt" if dataset == "fra-eng" else "pairs.tsv"
        (root / name).write_text(text, encoding="utf-8", errors="surrogatepass")
        return root / name
    scratch, path = in_scratch(tmp_path, write)
    sets = [] if dataset == "fra-eng" else [f"data.tokenizer={tokenizer}", f"data.normalize={normalize}"]
    with scratch:
        load_and_encode(registry, dataset, path, sets)


# -- a text-file corpus (and tinyshakespeare's input.txt) ---------------------------------------------
@settings(max_examples=fuzz_examples(60))
@given(content=encoded(st.text(max_size=200)), dataset=st.sampled_from(["text-file", "tinyshakespeare"]),
       seq_len=st.sampled_from([1, 2, 8, 128]))
@example(content=b"ab", dataset="text-file", seq_len=128)
@example(content=b"\r\r\r", dataset="text-file", seq_len=1)
def test_fuzzed_text_corpora(registry, tmp_path, content, dataset, seq_len):
    def write(root: Path) -> Path:
        (root / "input.txt").write_bytes(content)
        return root / "input.txt"
    scratch, path = in_scratch(tmp_path, write)
    with scratch:
        load_and_encode(registry, dataset, path, [f"data.seq_len={seq_len}"])


# -- IMDB: an extracted aclImdb folder or a tar.gz; rt-polarity -----------------------------------------
imdb_member = st.builds(lambda split, label, name: f"aclImdb/{split}/{label}/{name}",
                        st.sampled_from(["train", "test", "unsup", ""]), st.sampled_from(["pos", "neg", "unsup"]),
                        st.one_of(st.sampled_from(["0_7.txt", "12_1.txt", "00_0.txt", "9" * 30 + "_1.txt", "x_1.txt"]),
                                  NAME.map(lambda s: f"{s}.txt")))


@settings(max_examples=fuzz_examples(40))
@given(members=st.dictionaries(imdb_member, encoded(awkward_text), max_size=6), archived=st.booleans())
@example(members={"aclImdb/train/pos/1_1.txt": b"<br />good", "aclImdb/train/neg/1_1.txt": b"bad",
                  "aclImdb/test/pos/1_1.txt": b"\xff", "aclImdb/test/neg/1_1.txt": b""}, archived=True)
def test_fuzzed_imdb_layouts(registry, tmp_path, members, archived):
    def write(root: Path) -> Path:
        if archived:
            with tarfile.open(root / "aclImdb_v1.tar.gz", "w:gz") as archive:
                for name, content in members.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(content)
                    archive.addfile(info, io.BytesIO(content))
        else:
            for split in ("train", "test"):
                for label in ("pos", "neg"):
                    (root / "aclImdb" / split / label).mkdir(parents=True, exist_ok=True)
            write_files(root, {name.replace("aclImdb//", "aclImdb/x/"): content for name, content in members.items()})
        return root
    scratch, root = in_scratch(tmp_path, write)
    with scratch:
        load_and_encode(registry, "imdb", root, ["data.max_vocab=100"])


@settings(max_examples=fuzz_examples(60))
@given(pos=st.one_of(st.none(), encoded(lines)), neg=st.one_of(st.none(), encoded(lines)),
       archived=st.booleans(), garbage_archive=st.booleans())
@example(pos=b"\x85\n", neg=b"x", archived=False, garbage_archive=False)
def test_fuzzed_rt_polarity(registry, tmp_path, pos, neg, archived, garbage_archive):
    def write(root: Path) -> Path:
        files = {f"rt-polaritydata/rt-polarity.{k}": v for k, v in (("pos", pos), ("neg", neg)) if v is not None}
        if archived:
            archive_path = root / "rt-polaritydata.tar.gz"
            if garbage_archive:
                archive_path.write_bytes((pos or b"") + (neg or b""))
            else:
                with tarfile.open(archive_path, "w:gz") as archive:
                    for name, content in files.items():
                        info = tarfile.TarInfo(name)
                        info.size = len(content)
                        archive.addfile(info, io.BytesIO(content))
        else:
            write_files(root, {name.split("/", 1)[1]: content for name, content in files.items()})
        return root
    scratch, root = in_scratch(tmp_path, write)
    with scratch:
        load_and_encode(registry, "rt-polarity", root)
