"""``loranas.evaluate``: perplexity (token-weighted and the paper's batch mean) and exact-match answer accuracy by
greedy generation, in the engine."""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field

from . import _bindings as B
from ._handle import hold
from .data import as_dataset
from .errors import InvalidArgumentError, check
from .results import take_result

__all__ = ["EvalResult", "evaluate"]


@dataclass
class EvalResult:
    """What :func:`evaluate` measured.

    ``perplexity`` is exp(Σ NLL / Σ target tokens); ``perplexity_batch_mean`` is exp of the mean of per-batch
    mean losses (the paper's figure). ``accuracy`` is the share of samples whose last answer greedy decoding
    reproduces token for token (None without ``generate``); ``answers`` holds, per sample, the ``reference``
    and ``generated`` ids, ``correct``, and their texts when a tokenizer was at hand (None unless asked for).
    """

    perplexity: float
    perplexity_batch_mean: float
    n_tokens: int
    n_samples: int
    accuracy: float | None = None
    answers: list[dict] | None = field(default=None, repr=False)


def evaluate(model, data, adapter: str | os.PathLike | None = None, generate: bool = True, batch_size: int = 8,
             answers: bool = False) -> EvalResult:
    """Evaluate ``model`` on ``data`` (a :class:`Dataset` or an iterable of sample dicts).

    ``adapter``, a PEFT adapter directory, is loaded onto the model first (replacing its adapters).
    ``generate`` adds answer accuracy: each sample's last answer (its last run of labelled tokens, the answer
    and its ``<|eot_id|>``) is generated greedily from the tokens before it and compared token for token.
    ``answers=True`` keeps the per-sample answers, decoded with the model directory's tokenizer when it has one.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be a positive integer, got {batch_size!r}", context="evaluate")
    if adapter is not None:
        model.load_adapter(adapter)
    dataset, owned = as_dataset(model, data, "data")
    try:
        ppl = model.evaluate(dataset, batch_size=batch_size)
        result = EvalResult(perplexity=ppl["perplexity"], perplexity_batch_mean=ppl["mean_batch_perplexity"],
                            n_tokens=ppl["tokens"], n_samples=len(dataset))
        if generate:
            out = B.loranas_result_p()
            with hold(model, dataset) as (h, d):
                check(B.loranas_evaluate_answers(h, d, ctypes.byref(out)), "loranas_evaluate_answers")
            obj = take_result(out, "loranas_evaluate_answers")
            result.accuracy = float(obj["accuracy"])
            if answers:
                result.answers = _with_texts(obj["answers"], model)
        return result
    finally:
        if owned:
            dataset.close()


def _with_texts(answers: list[dict], model) -> list[dict]:
    """The answers with ``reference_text`` and ``generated_text`` when the model directory has a tokenizer."""
    from .tokenizer import Tokenizer

    path = os.path.join(getattr(model, "path", ""), "tokenizer.json")
    if not os.path.isfile(path):
        return answers
    with Tokenizer.from_file(path) as tok:
        for a in answers:
            a["reference_text"] = tok.decode(a["reference"], skip_special_tokens=True)
            a["generated_text"] = tok.decode(a["generated"], skip_special_tokens=True)
    return answers
