"""Part-of-speech tagging data: Universal Dependencies English EWT, any CoNLL-U treebank, and plain
``word/TAG`` or two-column files."""

from __future__ import annotations

from workbench.api import DatasetSpec, Param, hookimpl

_COMMON = [
    Param("lowercase", bool, True, "lower-case words for the word vocabulary (character features keep case)"),
    Param("min_freq", int, 1, "words seen fewer times in training are read as <unk>", min=1, max=1000),
    Param("max_train_sentences", int, 0, "use only the first N training sentences (0 = all)", min=0,
          max=10_000_000),
]
_SPLIT = [
    Param("valid_fraction", float, 0.1, "share held out for validation when no dev file is given", min=0.0, max=0.5),
    Param("test_fraction", float, 0.1, "share held out for testing when no test file is given", min=0.0, max=0.5),
    Param("split_seed", int, 0, "random state of that split", min=0, max=2**31 - 1),
]
_PATH = Param("path", str, "", "your file or folder (default: --data-dir)")
_COLUMN = Param("column", str, "upos", "which tag to learn: upos (column 4, universal) or xpos (column 5, "
                "language-specific)", choices=("upos", "xpos"))
_DEFAULTS = {
    "train.epochs": 20,
    "train.batch_size": 32,
    "train.lr": 0.002,
    "train.patience": 3,
    "train.clip_grad_norm": 5.0,
}


@hookimpl
def workbench_datasets() -> list[DatasetSpec]:
    data = "workbench_plugins.ud_data"
    return [
        DatasetSpec(
            name="ud-ewt",
            task="tagging",
            description="Universal Dependencies English Web Treebank: 12,544 / 2,001 / 2,077 sentences "
            "(train/dev/test) of web text with universal part-of-speech tags (17 tags)",
            load=f"{data}:load_ewt",
            params=[_COLUMN, *_COMMON],
            default_arch="char-bilstm-tagger",
            defaults=_DEFAULTS,
            source="https://github.com/UniversalDependencies/UD_English-EWT (CC BY-SA 4.0)",
        ),
        DatasetSpec(
            name="conllu",
            task="tagging",
            description="Your own CoNLL-U treebank (--data-dir: a .conllu file, split at random, or a folder "
            "with *train*, *dev* and *test* .conllu files)",
            load=f"{data}:load_conllu",
            params=[_PATH, _COLUMN, *_COMMON, *_SPLIT],
            default_arch="char-bilstm-tagger",
            defaults=_DEFAULTS,
        ),
        DatasetSpec(
            name="tagged-text",
            task="tagging",
            description="Your own tagged text (--data-dir: a file or a folder with train/dev/test files): "
            "word/TAG word/TAG one sentence per line, or one 'word TAG' per line with blank lines "
            "between sentences",
            load=f"{data}:load_tagged_text",
            params=[Param("format", str, "auto", "slash (word/TAG), columns (word TAG per line) or auto",
                          choices=("auto", "slash", "columns")), _PATH, *_COMMON, *_SPLIT],
            default_arch="char-bilstm-tagger",
            defaults=_DEFAULTS,
        ),
    ]
