"""The public plugin API, without torch: what a plugin's spec module and dataset loaders import.

A plugin may import exactly two workbench modules (``tests/test_plugin_api.py`` checks the
built-ins and the example plugin):

- ``workbench.api`` (this module, no torch): the hooks' :data:`hookimpl`, the specs, the data
  classes each task kind loads, :class:`Param` and :func:`recurrent_params`, the errors a plugin
  raises (:class:`DataError` from a loader, :class:`ParamError` from ``load`` or ``build`` for a
  value its ``Param`` could not rule out), and the loader kit: :func:`fetch` (local copy or
  verified download), :func:`decode_text` / :func:`read_text`, :func:`hold_out` (stratified), the text
  normalisers and tokenisers by name.
- ``workbench.nn`` (torch): building blocks for models, imported only where a model is built.

A plugin's own tests may also use ``workbench.testing`` (the contract check). Everything else in
``workbench`` is internal and may change between versions.

A plugin module implements one or both hooks with :data:`hookimpl` and returns specs::

    from workbench.api import hookimpl, DatasetSpec, Param

    @hookimpl
    def workbench_datasets():
        return [DatasetSpec(name="mydata", task="classification", description="...",
                            load="my_plugin.data:load")]

``load`` and ``build`` may be callables or ``"module:function"`` strings; strings are imported only
when the dataset or architecture is used, so a plugin that imports torch there stays cheap to list.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workbench.corpus import CharCorpus, CorpusText, char_corpus, split_sizes
from workbench.data import (
    decode_text,
    download,
    fetch,
    hold_out,
    read_text,
    sha256_file,
    stratified_split,
    verify_checksums,
)
from workbench.errors import DataError, ParamError, WorkbenchError
from workbench.events import EndEvent, EpochEvent, Event, StartEvent, StatusEvent, StepEvent
from workbench.hookspecs import hookimpl
from workbench.params import Param
from workbench.text import get_normalizer, get_tokenizer, unicode_to_ascii
from workbench.text_cache import PairSplit, Record, TaggedSplit, TextSplit, TokenizedTexts, tokenized_texts

__all__ = [
    "ArchitectureSpec",
    "CharCorpus",
    "ClassificationData",
    "CorpusText",
    "DataError",
    "DatasetSpec",
    "EndEvent",
    "EpochEvent",
    "Event",
    "EventSink",
    "EventSinkSpec",
    "InspectorSpec",
    "LanguageModelData",
    "LoadContext",
    "ModelContext",
    "PairSplit",
    "Param",
    "ParamError",
    "Record",
    "Seq2SeqData",
    "StartEvent",
    "StatusEvent",
    "StepEvent",
    "TASK_KINDS",
    "TaggedSplit",
    "TaggingData",
    "TextSplit",
    "TokenizedTexts",
    "WorkbenchError",
    "char_corpus",
    "decode_text",
    "download",
    "fetch",
    "get_normalizer",
    "get_tokenizer",
    "hold_out",
    "hookimpl",
    "read_text",
    "recurrent_params",
    "sha256_file",
    "split_sizes",
    "stratified_split",
    "tokenized_texts",
    "unicode_to_ascii",
    "verify_checksums",
]


def recurrent_params(
    embedding_dim: int = 64, hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = False,
    dropout: float = 0.0,
) -> list[Param]:
    """The usual knobs of an embedding + recurrent-stack model (input, sizes, layers, direction,
    dropout), so every architecture names them the same way; pass other defaults as needed."""
    return [
        Param("input", str, "embedding", "how tokens enter the network", choices=("embedding", "onehot")),
        Param("embedding_dim", int, embedding_dim, "embedding size (input=embedding)", min=1, max=4096),
        Param("hidden_size", int, hidden_size, "recurrent state size per direction", min=1, max=8192),
        Param("num_layers", int, num_layers, "stacked recurrent layers", min=1, max=16),
        Param("bidirectional", bool, bidirectional, "also read each sequence backwards"),
        Param("dropout", float, dropout, "dropout between layers and before the output", min=0.0, max=0.9),
    ]


#: The four task kinds the engine knows. A dataset has exactly one; an architecture supports one or more.
TASK_KINDS: tuple[str, ...] = ("classification", "tagging", "language_model", "seq2seq")


def resolve_callable(target: Callable[..., Any] | str, what: str) -> Callable[..., Any]:
    """Turn ``"package.module:function"`` into the function, importing lazily."""
    if callable(target):
        return target
    module_name, sep, attr = str(target).partition(":")
    if not sep:
        raise TypeError(f"{what} must be a callable or 'module:function', not {target!r}")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"{what}: module {module_name!r} has no attribute {attr!r}") from None


@dataclass(frozen=True)
class LoadContext:
    """What a dataset loader gets besides its own parameters."""

    #: A folder or file the user pointed at (``--data-dir`` / ``WORKBENCH_DATA_DIR``), or None.
    data_dir: Path | None
    #: Where downloads are cached.
    cache_dir: Path
    #: Base URL replacing a dataset's canonical host (``WORKBENCH_DATA_MIRROR``), or None.
    mirror: str | None = None
    #: Called with (done_bytes, total_bytes or None, label) while downloading.
    progress: Callable[[int, int | None, str], None] | None = None
    seed: int = 0
    #: Called with one line for the run's log (a cache being built or rebuilt), or None.
    status: Callable[[str], None] | None = None


@dataclass
class ClassificationData:
    """A sequence -> class dataset, as raw text; the engine builds the vocabulary and tensors."""

    classes: list[str]
    train: list[tuple[str, int]]
    valid: list[tuple[str, int]]
    test: list[tuple[str, int]]
    #: How text becomes tokens: "char" (characters) or "word" (lower-cased words and punctuation).
    tokenizer: str = "char"
    #: Applied to every input before tokenising, in training and in predict: "none", "ascii", "lower".
    normalize: str = "none"
    #: Vocabulary limits (0 = unlimited) applied when the engine builds it from ``train``.
    max_vocab: int = 0
    min_freq: int = 1
    #: Longest sequence fed to the model; longer ones are truncated (0 = no limit).
    max_length: int = 0
    #: Which part of a longer text is kept: "start" (its first ``max_length`` tokens) or "end" (its last).
    truncate: str = "start"
    #: Free-form facts shown by ``workbench train`` and the TUI (source, sizes, split).
    info: dict[str, Any] = field(default_factory=dict)
    #: More test splits by name (e.g. ``test_2x``: strings twice as long as in training, for length
    #: generalisation). The final evaluation and ``workbench eval`` report each one's metrics as
    #: ``<name>_<metric>`` next to the test metrics.
    extra_tests: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


@dataclass
class TaggingData:
    """Sentences with one tag per word (part-of-speech tags); the task builds word, character and tag
    vocabularies from ``train``."""

    #: Every tag name; each sentence's tags must be among them.
    tags: list[str]
    #: (words, tags) per sentence, both lists of the same length.
    train: list[tuple[list[str], list[str]]]
    valid: list[tuple[list[str], list[str]]]
    test: list[tuple[list[str], list[str]]]
    #: Lower-case words for the word vocabulary (character features still see the original case).
    lowercase: bool = True
    #: Word-vocabulary limits (0 = unlimited); words left out are read as <unk>.
    max_vocab: int = 0
    min_freq: int = 1
    #: Characters per word given to character features (longer words keep their start and end).
    max_word_length: int = 20
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Seq2SeqData:
    """Sentence pairs (source text, target text); the task builds both vocabularies from ``train``."""

    train: list[tuple[str, str]]
    valid: list[tuple[str, str]]
    test: list[tuple[str, str]]
    #: Applied to both sides before tokenising, in training and in predict (``workbench.text``
    #: normaliser names: "nmt", "lower", "none", ...).
    normalize: str = "nmt"
    #: How normalised text becomes tokens: "whitespace" (after "nmt"), "word" or "char".
    tokenizer: str = "whitespace"
    max_vocab: int = 0
    min_freq: int = 1
    #: (source, reference) pairs translated and scored after training, e.g. the course's probe sentences.
    probes: list[tuple[str, str]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: More test splits by name (e.g. ``test_2x``: sequences twice as long as the longest in training,
    #: for length generalisation), reported as ``<name>_<metric>`` next to the test metrics.
    extra_tests: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


@dataclass
class LanguageModelData:
    """A text corpus for next-token prediction, as raw text split contiguously.

    The engine builds the vocabulary from ``train`` and cuts each split into windows of
    ``seq_len`` tokens (targets are the inputs shifted by one). Training windows start every
    ``stride`` tokens (0 = ``seq_len``: non-overlapping); validation and test windows never overlap,
    so every character is scored exactly once.
    """

    #: Text, or a stretch of a corpus tokenised into the data cache (:func:`char_corpus`), which
    #: reads like text but is read from the cache a batch at a time: large corpora should use it.
    train: str | CorpusText
    valid: str | CorpusText = ""
    test: str | CorpusText = ""
    #: How text becomes tokens; "char" is the one generation supports.
    tokenizer: str = "char"
    seq_len: int = 128
    stride: int = 0
    #: Free-form facts shown by ``workbench train`` and the TUI (source, sizes, split).
    info: dict[str, Any] = field(default_factory=dict)
    #: Also score the test split in windows of twice ``seq_len`` (length generalisation: trained on
    #: windows of ``seq_len``), reported as ``test_2x_<metric>``.
    test_2x: bool = False


@dataclass(frozen=True)
class ModelContext:
    """What an architecture's ``build`` gets besides its own parameters."""

    task: str
    vocab_size: int
    pad_index: int
    num_classes: int = 0
    #: Sizes for sequence -> sequence models.
    target_vocab_size: int = 0
    #: Task-specific facts: tagging gives ``char_vocab_size``; seq2seq gives ``bos_index``, ``eos_index``.
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset a plugin provides."""

    name: str
    task: str
    description: str
    load: Callable[[LoadContext, dict[str, Any]], Any] | str
    params: Sequence[Param] = ()
    #: The architecture ``workbench train --dataset NAME`` uses when none is given.
    default_arch: str | None = None
    #: Overrides of training and model defaults that train this dataset well, e.g.
    #: ``{"train.epochs": 10, "model.hidden_size": 128}``.
    defaults: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASK_KINDS:
            raise ValueError(f"dataset {self.name!r}: task must be one of {TASK_KINDS}, not {self.task!r}")
        object.__setattr__(self, "params", tuple(self.params))


@dataclass(frozen=True)
class ArchitectureSpec:
    """A model family a plugin provides."""

    name: str
    tasks: Sequence[str]
    description: str
    build: Callable[[ModelContext, dict[str, Any]], Any] | str
    params: Sequence[Param] = ()

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASK_KINDS]
        if bad or not self.tasks:
            raise ValueError(f"architecture {self.name!r}: tasks must be a non-empty subset of {TASK_KINDS}")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "params", tuple(self.params))


class EventSink(Protocol):
    """What an event sink's ``create`` returns: called with every event of a run, in order (the
    :class:`StartEvent` first, the :class:`EndEvent` last); ``close()``, when it has one, is called
    once at the end, also when the run fails."""

    def __call__(self, event: Event) -> None: ...


@dataclass(frozen=True)
class EventSinkSpec:
    """A receiver of run events a plugin provides (a tracker, a file format), chosen per run with
    ``--set sinks=NAME[,NAME...]``."""

    name: str
    description: str
    #: ``create(run_dir, options) -> sink``: called when the run starts; ``run_dir`` is the run's
    #: folder (or the ``--output`` folder of ``workbench runs export``).
    create: Callable[[Path, dict[str, Any]], EventSink] | str
    #: The sink's options, passed to ``create`` as ``options`` (their defaults).
    params: Sequence[Param] = ()
    #: Packages the sink needs, as ``{import name: what to pip install}``; a run asking for the sink
    #: without them is refused before it starts, with the ``pip install`` line to type.
    requires: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "requires", dict(self.requires))


@dataclass(frozen=True)
class InspectorSpec:
    """How ``workbench inspect`` steps one recurrent layer type of a plugin's architecture, so its
    internal states (gates, memory) show next to the built-in LSTM's and GRU's.

    ``layer`` names the layer class (``"package.module:Class"`` or the class); every module of that
    class in a model is stepped instead of run whole. The layer must be called with the sequence
    ``x`` [batch, time, features] as its first argument and return its outputs [batch, time, hidden]
    (the :class:`workbench.nn.RecurrentStack` direction contract). ``step`` (``"module:function"``
    or the function) is called once per token as ``step(layer, x_t, h, carry, force)`` with ``x_t``
    [1, features], ``h`` the previous output [1, hidden] (None at the start; the inspector may have
    clamped units of it), ``carry`` whatever the previous call returned (None at the start) and
    ``force`` a dict of gate name -> value to fix that gate at; it returns ``(h, carry, internals)``
    with ``internals`` a dict of name -> [1, hidden] tensors. ``gates`` and ``states`` list which
    internals are gates (fractions 0..1, forcible) and which are other states (shown as values)."""

    name: str
    layer: type | str
    step: Callable[..., Any] | str
    gates: Sequence[str] = ()
    states: Sequence[str] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "gates", tuple(self.gates))
        object.__setattr__(self, "states", tuple(self.states))
