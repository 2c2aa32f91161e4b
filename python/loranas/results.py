"""What a search, a fine-tune and an evaluation return, parsed from the engine's result JSON."""

from __future__ import annotations

import json
import os
from typing import Any, TypeVar

import numpy as np

from . import _bindings as B
from ._handle import read_string
from ._files import atomic_write_text
from .errors import FormatError


def take_result(handle: B.loranas_result_p, context: str) -> dict:
    """Read a loranas_result's JSON, free the result (``handle`` is set to NULL first, so a
    caller's cleanup cannot free it twice), and parse the text."""
    try:
        text = read_string(B.loranas_result_json, handle.value, f"loranas_result_json ({context})")
    finally:
        value = handle.value
        handle.value = None
        B.loranas_result_free(value)
    return parse_json(text, context)


def parse_json(text: str, context: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise FormatError(f"not valid JSON ({exc}): {text[:200]!r}", context=context) from None


def _require(obj: dict, key: str, kind: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise FormatError(f"missing key {key!r}", context=kind)
    return obj[key]


def evaluation_from_json(obj: dict, kind: str = "evaluation") -> dict:
    """An evaluation dict: loss, perplexity, mean_batch_loss, mean_batch_perplexity (floats), tokens (int)."""
    try:
        out = {k: float(_require(obj, k, kind))
               for k in ("loss", "perplexity", "mean_batch_loss", "mean_batch_perplexity")}
        out["tokens"] = int(_require(obj, "tokens", kind))
    except (TypeError, ValueError) as exc:
        raise FormatError(f"malformed evaluation {obj!r}: {exc}", context=kind) from None
    return out


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _ranks(obj: Any, kind: str) -> dict[str, int]:
    if not isinstance(obj, dict):
        raise FormatError("ranks must be an object {module: rank}", context=kind)
    return {str(k): int(v) for k, v in obj.items()}


_R = TypeVar("_R", bound="_JsonResult")


class _JsonResult:
    """What the result classes share: the conversion from and to
    the engine's result JSON (one key per name in ``_FIELDS``, in that order), ``save``/``load``
    and equality by JSON. Subclasses set ``_FIELDS``, ``_KIND`` (the class name, for error
    contexts) and ``_WHAT`` (the result in words, for messages). Keys in ``_DEFAULTS`` may be
    absent (JSON from an older engine or an older ``save``) and then take the default."""

    _FIELDS: tuple[str, ...] = ()
    _DEFAULTS: dict[str, Any] = {"stopped": False, "budget_met": None}
    _KIND = "result"
    _WHAT = "result"

    @classmethod
    def _from_obj(cls: type[_R], obj: Any) -> _R:
        kind = cls._KIND
        if not isinstance(obj, dict):
            raise FormatError(f"a {cls._WHAT} is a JSON object", context=kind)
        fields = {k: obj.get(k, cls._DEFAULTS[k]) if k in cls._DEFAULTS else _require(obj, k, kind)
                  for k in cls._FIELDS}
        if "ranks" in fields:
            fields["ranks"] = _ranks(fields["ranks"], kind)
        try:
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise FormatError(f"malformed {cls._WHAT}: {exc}", context=kind) from None

    @classmethod
    def from_json(cls: type[_R], text: str) -> _R:
        """Parse the JSON written by :meth:`to_json` (or returned by the engine)."""
        return cls._from_obj(parse_json(text, f"{cls._KIND}.from_json"))

    def _to_obj(self) -> dict:
        """The fields as JSON values, in ``_FIELDS`` order; overridden where a field needs converting."""
        return {k: getattr(self, k) for k in self._FIELDS}

    def to_json(self, indent: int | None = None) -> str:
        """The result as JSON, in the engine's layout; ``from_json`` gives back an equal result."""
        return json.dumps(self._to_obj(), indent=indent)

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` to ``path`` atomically (a temporary file, then a rename)."""
        atomic_write_text(path, self.to_json(indent=1))

    @classmethod
    def load(cls: type[_R], path: str | os.PathLike) -> _R:
        """Read a result written by :meth:`save`."""
        with open(path, encoding="utf-8") as f:
            return cls.from_json(f.read())

    def __eq__(self, other: object) -> bool:
        # Only results of the same kind compare (a SearchResult never equals a FinetuneResult).
        if not isinstance(other, _JsonResult) or other._KIND != self._KIND:
            return NotImplemented
        return self.to_json() == other.to_json()

    __hash__ = None  # mutable


class SearchResult(_JsonResult):
    """The outcome of :func:`loranas.search`.

    Attributes
    ----------
    ranks : dict[str, int]
        The derived rank of every searched module, in model order.
    space : list[int]
        The rank choices searched.
    lora_alpha : float
        The LoRA alpha of the search (a fine-tune from this result uses it by default).
    alpha_history : dict[str, numpy.ndarray]
        Per module, the architecture logits after every step, shape (steps, len(space)).
    final_weights : dict[str, numpy.ndarray]
        Per module, softmax(alpha) at the end, shape (len(space),).
    lora_parameters, uniform_max_parameters, model_parameters : int
        LoRA parameters of the derived ranks, of uniform rank max(space) on the same modules,
        and the base model's parameter count.
    budget_parameters : int or None
        The parameter budget in force, if any.
    budget_met : bool or None
        With a budget: whether the derived ranks land within 5 % of it. False when no
        assignment from the space can (the closest total was taken); None without a budget.
    lora_share : float
        lora_parameters / model_parameters.
    epoch_times : list[float]
        Seconds per finished epoch.
    train_losses, validation_losses : list[float]
        The weight step's and the alpha step's loss at every step.
    steps : int
        Steps run (including those before a resume).
    stopped : bool
        True when the run ended early because the progress callback returned truthy (a clean
        stop: the result describes the steps run so far, and the run can be resumed from its
        checkpoint). Ctrl-C or an exception in the callback raises instead of returning a result.
    """

    _KIND = "SearchResult"
    _WHAT = "search result"
    _FIELDS = ("ranks", "space", "lora_alpha", "final_weights", "alpha_history", "lora_parameters",
               "uniform_max_parameters", "budget_parameters", "budget_met", "model_parameters", "lora_share",
               "steps", "epoch_times", "train_losses", "validation_losses", "stopped")

    def __init__(self, *, ranks, space, lora_alpha, final_weights, alpha_history, lora_parameters,
                 uniform_max_parameters, budget_parameters, model_parameters, lora_share, steps, epoch_times,
                 train_losses, validation_losses, budget_met=None, stopped=False):
        self.ranks: dict[str, int] = dict(ranks)
        self.space: list[int] = [int(r) for r in space]
        self.lora_alpha = float(lora_alpha)
        choices = len(self.space)
        self.final_weights = {m: np.asarray(w, dtype=np.float32).reshape(choices) for m, w in final_weights.items()}
        self.alpha_history = {m: np.asarray(h, dtype=np.float32).reshape(-1, choices) for m, h in alpha_history.items()}
        self.lora_parameters = int(lora_parameters)
        self.uniform_max_parameters = int(uniform_max_parameters)
        self.budget_parameters = None if budget_parameters is None else int(budget_parameters)
        self.budget_met = None if budget_met is None else _bool(budget_met, "budget_met")
        self.model_parameters = int(model_parameters)
        self.lora_share = float(lora_share)
        self.steps = int(steps)
        self.epoch_times = [float(x) for x in epoch_times]
        self.train_losses = [float(x) for x in train_losses]
        self.validation_losses = [float(x) for x in validation_losses]
        self.stopped = _bool(stopped, "stopped")

    def _to_obj(self) -> dict:
        obj = super()._to_obj()
        obj["final_weights"] = {m: [float(x) for x in w] for m, w in self.final_weights.items()}
        obj["alpha_history"] = {m: [[float(x) for x in row] for row in h] for m, h in self.alpha_history.items()}
        return obj

    def __repr__(self) -> str:
        counts: dict[int, int] = {}
        for r in self.ranks.values():
            counts[r] = counts.get(r, 0) + 1
        histogram = ", ".join(f"r={r}: {n}" for r, n in sorted(counts.items()))
        return (f"<loranas.SearchResult {len(self.ranks)} modules ({histogram}), "
                f"lora_parameters={self.lora_parameters}, steps={self.steps}>")


class FinetuneResult(_JsonResult):
    """The outcome of :func:`loranas.finetune`.

    Attributes
    ----------
    ranks : dict[str, int]
        The rank of every adapted module, in model order.
    lora_parameters, model_parameters : int
        Trained LoRA parameters and the base model's parameter count.
    lora_share : float
        lora_parameters / model_parameters.
    initial_evaluation : dict
        Validation before the first step (see :meth:`Model.evaluate` for the keys).
    evaluations : list[dict]
        Validation after every finished epoch.
    eval_perplexity : list[float]
        The token-weighted perplexity of each of ``evaluations``.
    epoch_times : list[float]
        Seconds per finished epoch.
    train_losses : list[float]
        Training loss at every step.
    steps : int
        Steps run (including those before a resume).
    stopped : bool
        True when the run ended early because the progress callback returned truthy, as in
        :class:`SearchResult`.

    A result read back with :meth:`from_json` or :meth:`load` is not tied to a model
    (:meth:`save_peft` needs the model the fine-tune ran on).
    """

    _KIND = "FinetuneResult"
    _WHAT = "fine-tune result"
    _FIELDS = ("ranks", "lora_parameters", "model_parameters", "lora_share", "initial_evaluation", "evaluations",
               "eval_perplexity", "epoch_times", "train_losses", "steps", "stopped")

    def __init__(self, *, ranks, lora_parameters, model_parameters, lora_share, initial_evaluation, evaluations,
                 eval_perplexity, epoch_times, train_losses, steps, stopped=False):
        kind = "FinetuneResult"
        self.ranks: dict[str, int] = dict(ranks)
        self.lora_parameters = int(lora_parameters)
        self.model_parameters = int(model_parameters)
        self.lora_share = float(lora_share)
        _set_run_fields(self, kind, initial_evaluation, evaluations, eval_perplexity, epoch_times, train_losses,
                        steps, stopped)
        self._model = None  # the Model it came from, for save_peft
        self._adapter_version: int | None = None

    def save_peft(self, directory: str | os.PathLike) -> None:
        """Save the fine-tuned adapters in PEFT's format (``adapter_config.json`` +
        ``adapter_model.safetensors``), loadable with ``peft.PeftModel.from_pretrained``.

        Raises ``RuntimeError`` if the result is not tied to a model (loaded from JSON), or if
        the model's adapters changed since this fine-tune.
        """
        model = self._model
        if model is None:
            raise RuntimeError("this FinetuneResult is not tied to a model (it was loaded from JSON); "
                               "use Model.save_adapter on the model that holds the adapters")
        if model._adapter_version != self._adapter_version:
            raise RuntimeError("the model's adapters changed after this fine-tune (another search, fine-tune, "
                               "load_adapter or clear_adapters); they are no longer the ones this result describes")
        model.save_adapter(directory)

    def __repr__(self) -> str:
        ppl = f"{self.eval_perplexity[-1]:.4g}" if self.eval_perplexity else "n/a"
        return (f"<loranas.FinetuneResult {len(self.ranks)} modules, lora_parameters={self.lora_parameters}, "
                f"steps={self.steps}, eval_perplexity={ppl}>")


class PretrainResult(_JsonResult):
    """The outcome of :func:`loranas.pretrain`.

    Attributes
    ----------
    model_parameters : int
    initial_evaluation : dict
        Validation before the first step.
    evaluations : list[dict]
        Validation after every finished epoch.
    eval_perplexity : list[float]
        The token-weighted perplexity of each of ``evaluations``.
    epoch_times, train_losses, steps, stopped
        As in :class:`FinetuneResult`.
    """

    _KIND = "PretrainResult"
    _WHAT = "pretraining result"
    _FIELDS = ("model_parameters", "initial_evaluation", "evaluations", "eval_perplexity", "epoch_times",
               "train_losses", "steps", "stopped")

    def __init__(self, *, model_parameters, initial_evaluation, evaluations, eval_perplexity, epoch_times,
                 train_losses, steps, stopped=False):
        kind = "PretrainResult"
        self.model_parameters = int(model_parameters)
        _set_run_fields(self, kind, initial_evaluation, evaluations, eval_perplexity, epoch_times, train_losses,
                        steps, stopped)


def _set_run_fields(result, kind: str, initial_evaluation, evaluations, eval_perplexity, epoch_times, train_losses,
                    steps, stopped) -> None:
    """The fields fine-tune and pretraining results share, converted and checked."""
    result.initial_evaluation = evaluation_from_json(initial_evaluation, kind)
    result.evaluations = [evaluation_from_json(e, kind) for e in evaluations]
    result.eval_perplexity = [float(x) for x in eval_perplexity]
    result.epoch_times = [float(x) for x in epoch_times]
    result.train_losses = [float(x) for x in train_losses]
    result.steps = int(steps)
    result.stopped = _bool(stopped, "stopped")
