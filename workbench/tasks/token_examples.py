"""Encoded classification examples as views over a token cache, instead of lists of id lists.

A :class:`TokenExamples` is what :meth:`ClassificationTask.encode` returns for a split a loader
streamed into the data cache (:mod:`workbench.text_cache`): record numbers, their full lengths,
their labels, and a table from the cache's lexicon ids to vocabulary ids. It behaves as the list
of ``(ids, label)`` the in-memory path builds (same length, same items, same batches), but reads
only the ids of the batch it is asked for from the cache file, so memory holds a few
integers per example, never the text or its tokens. :class:`TaggedExamples` does the same for
tagging (words and tags, two id streams sharing one set of offsets).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from workbench.errors import DataError
from workbench.text_cache import PairSplit, TaggedSplit, TextSplit


class _CacheView:
    """What the three views share: per-example arrays that a slice or an index list selects without
    reading any ids, a cap on the length, and one check that ids read from the cache fit its lexicon."""

    #: the per-example arrays (attribute names) that a view selects
    _per_example: tuple[str, ...] = ()
    cap: int
    where: str

    def __len__(self) -> int:
        return len(getattr(self, self._per_example[0]))

    def capped(self, cap: int) -> Any:
        """These examples cut to at most ``cap`` tokens."""
        subset = copy.copy(self)
        subset.cap = min(self.cap, cap) if self.cap else cap
        return subset

    def __getitem__(self, index: Any) -> Any:
        """Example ``index``; a slice, a list or an array of indices selects a view (``train.limit``,
        a distributed run's shard) without reading any ids."""
        if isinstance(index, (slice, list, np.ndarray, Tensor)):
            chosen = np.asarray(index, dtype=np.int64) if not isinstance(index, slice) else index
            subset = copy.copy(self)
            for name in self._per_example:
                setattr(subset, name, getattr(self, name)[chosen])
            return subset
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("example index out of range")
        return self._item(index)

    def _item(self, index: int) -> Any:
        raise NotImplementedError

    def _checked(self, ids: np.ndarray, lexicon_size: int) -> np.ndarray:
        if ids.size and int(ids.max()) >= lexicon_size:
            raise DataError(f"the token cache {self.where} is damaged (ids beyond its lexicon); delete it and "
                            "start again")
        return ids


class TokenExamples(_CacheView, Sequence[tuple[list[int], int]]):
    """A split's examples: each the (capped) token ids of one cached record and its class."""

    _per_example = ("labels", "starts", "full")

    def __init__(self, split: TextSplit, table: np.ndarray, cap: int = 0, keep_end: bool = False) -> None:
        texts = split.texts
        full = texts.lengths[split.records]
        keep = full > 0  # an empty text has nothing to read: skipped, as the in-memory path skips it
        self.texts = texts
        self.where = str(texts.path or texts.where)
        self.starts = texts.offsets[split.records[keep]]
        self.full = full[keep]
        self.labels = split.labels[keep]
        self.table = table
        self.cap = cap
        self.keep_end = keep_end

    @property
    def lengths(self) -> np.ndarray:
        """Each example's length as the model sees it (cut to ``cap``)."""
        return np.minimum(self.full, self.cap) if self.cap else self.full

    def _item(self, index: int) -> tuple[list[int], int]:
        return self._ids(index).tolist(), int(self.labels[index])

    def _ids(self, index: int) -> np.ndarray:
        full = int(self.full[index])
        length = min(full, self.cap) if self.cap else full
        start = int(self.starts[index]) + (full - length if self.keep_end else 0)
        raw = self.texts.read(start, start + length).astype(np.int64)
        return self.table[self._checked(raw, len(self.table))]

    def pad(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        """The examples ``indices`` as a [batch, longest] tensor of ids padded with 0, and their lengths
        (what :func:`workbench.tasks.base.pad_sequences` gives for their id lists)."""
        rows = [self._ids(int(i)) for i in indices]
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        tokens = torch.zeros((len(rows), int(lengths.max())), dtype=torch.long)
        for row, ids in enumerate(rows):
            tokens[row, : len(ids)] = torch.from_numpy(ids)
        return tokens, lengths

    def targets(self, indices: Sequence[int]) -> Tensor:
        return torch.from_numpy(self.labels[np.asarray(indices, dtype=np.int64)]).long()


class TaggedExamples(_CacheView, Sequence[tuple[list[int], Tensor, list[int]]]):
    """A tagging split's sentences in the token cache: each item is what :meth:`TaggingTask.encode`
    builds for it in memory (word ids, the [words, longest word] character ids, tag ids), made from
    the memory-mapped ids and tags of that sentence only when it is read."""

    _per_example = ("full", "starts")

    def __init__(self, split: TaggedSplit, word_table: np.ndarray, char_matrix: np.ndarray,
                 char_lengths: np.ndarray, tag_table: np.ndarray) -> None:
        texts = split.texts
        full = texts.lengths[split.records]
        keep = full > 0  # a sentence without words is skipped, as the in-memory path skips it
        assert texts.tags is not None
        self.texts = texts
        self.where = str(texts.path or texts.where)
        self.starts = texts.offsets[split.records[keep]]
        self.full = full[keep]
        self.word_table, self.tag_table = word_table, tag_table
        self.char_matrix, self.char_lengths = char_matrix, char_lengths
        self.cap = 0

    @property
    def lengths(self) -> np.ndarray:
        return np.minimum(self.full, self.cap) if self.cap else self.full

    def _item(self, index: int) -> tuple[list[int], Tensor, list[int]]:
        start, full = int(self.starts[index]), int(self.full[index])
        raw = self._checked(self.texts.read(start, start + full).astype(np.int64), len(self.word_table))
        tags = self._checked(self.texts.read(start, start + full, tags=True).astype(np.int64), len(self.tag_table))
        # the width is the sentence's longest word before any cut, as the in-memory encoding keeps it
        width = int(self.char_lengths[raw].max())
        length = min(full, self.cap) if self.cap else full
        chars = torch.from_numpy(self.char_matrix[raw[:length], :width].astype(np.int64))
        return self.word_table[raw[:length]].tolist(), chars, self.tag_table[tags[:length]].tolist()


class PairExamples(_CacheView, Sequence[tuple[list[int], list[int], tuple[str, ...], tuple[str, ...]]]):
    """A translation split's pairs in the token cache: each item is what :meth:`Seq2SeqTask.encode`
    builds in memory (source ids, target ids, source tokens, target tokens), read from the cache
    (two records, each with its own offsets) only when asked for."""

    _per_example = ("full_source", "full_target", "source_starts", "target_starts")

    def __init__(self, split: PairSplit, source_table: np.ndarray, target_table: np.ndarray) -> None:
        texts = split.texts
        source, target = split.source_records, split.target_records
        full_source, full_target = texts.lengths[source], texts.lengths[target]
        keep = (full_source > 0) & (full_target > 0)  # as the in-memory path skips a pair with an empty side
        self.texts = texts
        self.where = str(texts.path or texts.where)
        self.source_starts, self.target_starts = texts.offsets[source[keep]], texts.offsets[target[keep]]
        self.full_source, self.full_target = full_source[keep], full_target[keep]
        self.source_table, self.target_table = source_table, target_table
        self.cap = 0

    def lengths(self, side: str) -> np.ndarray:
        """Each pair's ``side`` ("source" or "target") length as the model sees it (cut to ``cap``)."""
        full = self.full_source if side == "source" else self.full_target
        return np.minimum(full, self.cap) if self.cap else full

    def _item(self, index: int) -> tuple[list[int], list[int], tuple[str, ...], tuple[str, ...]]:
        source = self.raw(index, "source")
        target = self.raw(index, "target")
        lexicon = self.texts.lexicon
        return (self.source_table[source].tolist(), self.target_table[target].tolist(),
                tuple(lexicon[i] for i in source.tolist()), tuple(lexicon[i] for i in target.tolist()))

    def raw(self, index: int, side: str) -> np.ndarray:
        """Lexicon ids of pair ``index``'s ``side`` (cut to ``cap``), read with ``pread``."""
        start = int((self.source_starts if side == "source" else self.target_starts)[index])
        full = int((self.full_source if side == "source" else self.full_target)[index])
        length = min(full, self.cap) if self.cap else full
        return self._checked(self.texts.read(start, start + length).astype(np.int64), len(self.source_table))
