"""loranas.evaluate: perplexities equal Model.evaluate's, and answer accuracy equals what transformers' greedy
generate() says about each sample: samples whose labelled span is transformers' greedy continuation count as
correct, the same samples with one token of the span changed do not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
import loranas  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TILES4 = ROOT / "Tests/LoRANASTests/Fixtures/mllama/tiles4_gqa"


def greedy_spans(count: int, prompt_len: int, span_len: int, seed: int):
    """(prompt, span) pairs: span = transformers' greedy continuation of a random text prompt, cut at the first
    token that does not occur earlier in it (the engine stops at the span's last token)."""
    from transformers import MllamaForConditionalGeneration

    hf = MllamaForConditionalGeneration.from_pretrained(TILES4, dtype=torch.float32).eval()
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        prompt = rng.integers(3, 96, prompt_len)
        ids = torch.tensor(prompt[None])
        with torch.no_grad():
            gen = hf.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=span_len,
                              do_sample=False, min_new_tokens=span_len, eos_token_id=None, pad_token_id=2)
        span = gen[0, prompt_len:].tolist()
        for end in range(len(span) - 1, 1, -1):  # the longest prefix whose last token is new
            if span[end] not in span[:end]:
                out.append((prompt, span[:end + 1]))
                break
    return out


def sample(prompt, span):
    ids = np.concatenate([prompt, span]).astype(np.int64)
    labels = np.full(len(ids), -100, dtype=np.int64)
    labels[len(prompt):] = span
    return {"input_ids": ids, "labels": labels}


def test_accuracy_follows_transformers_greedy():
    pairs = greedy_spans(6, prompt_len=9, span_len=8, seed=3)
    good = [sample(p, s) for p, s in pairs]
    bad = []
    for p, s in pairs:
        s = list(s)
        s[len(s) // 2] = (s[len(s) // 2] + 1) % 96  # one wrong token in the middle of the answer
        bad.append(sample(p, s))
    with loranas.Model(TILES4) as model:
        result = loranas.evaluate(model, good + bad, answers=True)
        plain = model.evaluate(good + bad)
    assert result.n_samples == 12 and result.accuracy == 0.5
    assert [a["correct"] for a in result.answers] == [True] * 6 + [False] * 6
    for a, (p, s) in zip(result.answers, pairs):
        assert a["generated"] == a["reference"] == list(s)
    assert result.perplexity == plain["perplexity"]
    assert result.perplexity_batch_mean == plain["mean_batch_perplexity"]
    assert result.n_tokens == plain["tokens"]


def test_without_generation_and_with_an_adapter(tmp_path):
    rng = np.random.default_rng(0)
    samples = [sample(rng.integers(3, 96, 7), rng.integers(3, 96, 4)) for _ in range(4)]
    with loranas.Model(TILES4) as model:
        result = loranas.evaluate(model, samples, generate=False)
        assert result.accuracy is None and result.answers is None
        with_adapter = loranas.evaluate(model, samples, adapter=TILES4 / "peft", generate=False)
    assert with_adapter.perplexity != result.perplexity
    with loranas.Model(TILES4, adapter=TILES4 / "peft") as model:
        assert loranas.evaluate(model, samples, generate=False).perplexity == with_adapter.perplexity


def test_a_sample_whose_answer_starts_the_sequence_is_refused():
    s = {"input_ids": np.array([5, 6, 7]), "labels": np.array([5, 6, 7])}
    with loranas.Model(TILES4) as model, pytest.raises(loranas.InvalidArgumentError, match="no prompt"):
        loranas.evaluate(model, [s])
