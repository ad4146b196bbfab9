"""The hashed n-gram bag (workbench.nn.NgramBag) and the classifiers' ``ngrams`` parameter."""

from __future__ import annotations

import pytest
import torch

from helpers import FAST
from workbench.config import resolve_config
from workbench.engine import load_trained, train
from workbench.nn import NgramBag


def test_ngram_ids_frame_each_sequence_and_skip_padding():
    bag = NgramBag(vocab_size=10, max_n=2, buckets=1 << 20, dim=4)
    ids, valid = bag.ngram_ids(torch.tensor([[5, 6, 0, 0]]), torch.tensor([2]))
    # framed: <s> 5 6 </s>: 4 unigrams and 3 bigrams are real; the rest reach into padding
    assert int(valid.sum()) == 7
    real = ids[valid].tolist()
    assert len(set(real)) == 7  # <s>, 5, 6, </s>, <s>5, 56, 6</s> are all different n-grams


def test_the_same_ngram_gets_the_same_bucket_wherever_it_is():
    bag = NgramBag(vocab_size=10, max_n=2, buckets=1 << 20, dim=4)
    ids, valid = bag.ngram_ids(torch.tensor([[5, 5, 5]]), torch.tensor([3]))
    real = ids[valid].tolist()
    # unigrams <s> 5 5 5 </s> and bigrams <s>5 55 55 5</s>: six distinct n-grams, the repeats share a bucket
    assert len(real) == 9 and len(set(real)) == 6
    lone, lone_valid = bag.ngram_ids(torch.tensor([[5]]), torch.tensor([1]))
    # the 5 that starts a sequence ("<s>5") is the same n-gram in both, the bigram "55" is not in the lone one
    assert set(lone[lone_valid].tolist()) < set(real)


def test_padding_never_changes_the_bag():
    torch.manual_seed(0)
    bag = NgramBag(vocab_size=10, max_n=3, buckets=64, dim=8)
    short = bag(torch.tensor([[3, 4, 5]]), torch.tensor([3]))
    padded = bag(torch.tensor([[3, 4, 5, 9, 9, 7], [3, 4, 5, 0, 0, 0]]), torch.tensor([3, 3]))
    assert torch.allclose(padded[0], short[0], atol=1e-6) and torch.allclose(padded[1], short[0], atol=1e-6)
    other = bag(torch.tensor([[5, 4, 3]]), torch.tensor([3]))
    assert not torch.allclose(other, short)  # the same letters in another order are other n-grams


def test_bag_gradient_reaches_only_real_ngrams():
    bag = NgramBag(vocab_size=10, max_n=2, buckets=1 << 16, dim=3)
    bag(torch.tensor([[1, 2, 0]]), torch.tensor([2])).sum().backward()
    touched = (bag.bag.weight.grad.abs().sum(dim=1) > 0).sum()
    assert int(touched) == 7  # <s> 1 2 </s> <s>1 12 2</s>


def test_ngrams_param_is_validated(registry, shared_data):
    from workbench.errors import ParamError

    with pytest.raises(ParamError, match="ngrams"):
        resolve_config(registry, "names", "gru", "cpu", ["model.ngrams=-1"], data_dir=str(shared_data))


@pytest.mark.slow
def test_classifier_with_ngrams_trains_saves_and_predicts(registry, shared_data):
    config = resolve_config(registry, "names", "gru", "cpu", [*FAST, "model.ngrams=3", "model.ngram_buckets=4096",
                                                            "limit=3000", "lr=0.01"], data_dir=str(shared_data))
    result = train(config, registry=registry)
    assert result.state == "finished" and result.metrics["accuracy"] > 0.55
    loaded = load_trained(result.checkpoint, registry, "cpu")
    assert loaded.model.ngrams is not None and loaded.model.ngrams.bag.weight.shape == (4096, 16)
    prediction = loaded.task.predict(loaded.model, "Dostoevsky", loaded.device, top_k=2)
    assert len(prediction["top"]) == 2


def test_models_without_ngrams_keep_their_parameter_names(registry, shared_data):
    """ngrams=0 builds no bag, so checkpoints saved before the bag existed still load."""
    from workbench.engine import build_model
    from workbench.tasks.classification import ClassificationTask

    task = ClassificationTask.from_data(ClassificationTask.synthetic_data())
    for ngrams in (0, 2):
        config = resolve_config(registry, "names", "lstm", "cpu", [f"model.ngrams={ngrams}"],
                                data_dir=str(shared_data))
        names = set(build_model(config, task, registry).state_dict())
        assert any(name.startswith("ngrams.") for name in names) == bool(ngrams)
