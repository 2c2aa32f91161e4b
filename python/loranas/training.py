"""Layer 4: search and fine-tuning (the user API over ``loranas_search`` / ``loranas_finetune``)."""

from __future__ import annotations

import ctypes
import json
import os

import numpy as np

from . import _bindings as B
from ._handle import hold
from .data import Dataset, as_dataset
from .errors import InvalidArgumentError, check
from .model import Model
from .progress import ProgressBridge
from .results import FinetuneResult, PretrainResult, SearchResult, take_result


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _options_json(options: dict, context: str) -> bytes:
    """The options as a JSON object; None values are left out (the engine's default applies)."""
    cleaned = {k: v for k, v in options.items() if v is not None}
    try:
        return json.dumps(cleaned, default=_json_default, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"options cannot be sent to the engine: {exc}", context=context) from None


def _int_list(values, name: str, context: str):
    """A sequence of ints as a list (floats are refused rather than truncated)."""
    if values is None:
        return None
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise InvalidArgumentError(f"{name} must be a sequence of ints, got {type(values).__name__}", context=context)
    values = list(values)
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
        raise InvalidArgumentError(f"{name} must hold ints, got {values!r}", context=context)
    return [int(v) for v in values]


def _budget(budget, context: str):
    if budget is None or isinstance(budget, dict):
        return budget
    if isinstance(budget, bool):
        raise InvalidArgumentError("budget must be an int (parameters) or a float in (0, 1] (a fraction)",
                                   context=context)
    if isinstance(budget, (int, np.integer)):
        return int(budget)
    if isinstance(budget, (float, np.floating)):
        if not 0.0 < float(budget) <= 1.0:
            raise InvalidArgumentError(
                f"a float budget is a fraction of the uniform max-rank parameter count, in (0, 1]; got {budget} "
                "(pass an int for a parameter count)", context=context)
        return {"fraction": float(budget)}
    raise InvalidArgumentError(f"budget must be an int, a float in (0, 1] or None, got {type(budget).__name__}",
                               context=context)


def _targets(targets, context: str):
    """A comma-separated string or a sequence of module type names (the engine would skip
    non-string list items without a word, so they are refused here)."""
    if targets is None or isinstance(targets, str):
        return targets
    if isinstance(targets, (bytes, dict)) or not hasattr(targets, "__iter__"):
        raise InvalidArgumentError(f"targets must be a string or a list of strings, got {type(targets).__name__}",
                                   context=context)
    targets = list(targets)
    bad = [t for t in targets if not isinstance(t, str)]
    if bad or not targets:
        raise InvalidArgumentError(f"targets must be a non-empty list of module type names, got {targets!r}",
                                   context=context)
    return targets


def _run(kind: str, model: Model, train, val, options: dict, progress) -> dict:
    """Run loranas_search / loranas_finetune with datasets converted and progress bridged."""
    fn = {"search": B.loranas_search, "finetune": B.loranas_finetune, "pretrain": B.loranas_pretrain}[kind]
    context = f"loranas_{kind}"
    if not isinstance(model, Model):
        raise InvalidArgumentError(f"model must be a loranas.Model, got {type(model).__name__}", context=kind)
    if kind != "pretrain":
        options = {**options, "targets": _targets(options.get("targets"), kind)}
    options_json = _options_json(options, kind)
    bridge = ProgressBridge(progress, what=kind, epochs=int(options.get("epochs") or 1),
                            max_steps=options.get("max_steps"))
    made: list[Dataset] = []
    out = B.loranas_result_p()
    try:
        train_ds, owned = as_dataset(model, train, "train")
        if owned:
            made.append(train_ds)
        val_ds, owned = as_dataset(model, val, "val")
        if owned:
            made.append(val_ds)
        with hold(model, train_ds, val_ds, run=True) as (m, t, v):  # one global lock order
            model._adapter_version += 1
            status = bridge.call(fn, m, t, v, options_json, bridge.c_callback, None, ctypes.byref(out))
            # Ctrl-C or the callable's exception wins over the result (freed below) and over a
            # failure it caused.
            bridge.raise_pending()
            check(status, context)
        return take_result(out, context)
    finally:
        if out.value:  # not taken: an interrupted or failed run never leaves a result behind
            B.loranas_result_free(out.value)
        bridge.close()
        for dataset in made:
            dataset.close()


def search(model: Model, train, val, targets="all", side: str = "both", space=(4, 8, 16, 32, 64), budget=None,
           epochs: int = 1, batch_size: int = 4, lr: float = 1e-4, alpha_lr: float = 3e-3, seed: int = 0,
           checkpoint_dir: str | os.PathLike | None = None, progress=None, **options) -> SearchResult:
    """Search a LoRA rank per module with a weight-sharing supernet (LangVision-LoRA-NAS).

    A and B train on ``train`` batches with the architecture weights alpha frozen; alpha trains
    on ``val`` batches with A and B frozen; each module then gets ``argmax alpha``. The supernet
    stays attached to ``model``, so ``finetune(..., ranks=result, init="warm")`` can take over its
    slices.

    Parameters
    ----------
    model : Model
    train, val : Dataset or iterable of dict
        Labelled samples (see :class:`Dataset`); iterables are converted.
    targets : str or list of str
        ``"all"``, ``"mlp"``, ``"qk"``, or module types such as ``"q_proj,v_proj"``.
    side : {"both", "vision", "text"}
    space : sequence of int
        Rank choices, increasing.
    budget : int, float or None
        A LoRA parameter count (int), or a fraction in (0, 1] of what uniform rank
        ``max(space)`` would cost (float). The derived ranks are the most probable assignment
        (the largest sum of log softmax(alpha)) within 5 % of it; when no assignment from the
        space reaches that band, the closest total is taken and ``result.budget_met`` is False.
    epochs, batch_size, lr, alpha_lr, seed
        Training settings (lr for A and B with AdamW; alpha_lr for alpha with Adam).
    checkpoint_dir : str or PathLike, optional
        Save the run there (every ``checkpoint_every`` steps, at each epoch and when stopped) and
        resume from it when it already holds a checkpoint of the same run.
    progress : None, True or callable
        None: silent. True: a tqdm bar (or a line per epoch without tqdm). A callable gets each
        event dict (see :mod:`loranas.progress`) and returns truthy to stop the run cleanly: the
        result then has ``stopped=True`` (and the run is checkpointed when ``checkpoint_dir`` is
        set). An exception from the callable stops the run and is re-raised.
    **options
        Passed to the engine as is: ``slices``, ``lora_alpha``, ``budget_weight``,
        ``weight_decay``, ``alpha_weight_decay``, ``checkpoint_every``, ``max_steps``. Unknown
        names raise ``InvalidArgumentError`` with the engine's list of known ones.

    Returns
    -------
    SearchResult

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C (with or without progress): the run stops at the end of the current step,
        writes its checkpoint when ``checkpoint_dir`` is set (call again to resume), and no
        result is returned.
    """
    opts = {"targets": targets, "side": side, "space": _int_list(space, "space", "search"),
            "budget": _budget(budget, "search"), "epochs": epochs, "batch_size": batch_size, "lr": lr,
            "alpha_lr": alpha_lr, "seed": seed,
            "checkpoint_dir": None if checkpoint_dir is None else os.fspath(checkpoint_dir)}
    opts.update(options)
    return SearchResult._from_obj(_run("search", model, train, val, opts, progress))


def _ranks_option(ranks, context: str):
    """``ranks`` as the engine's JSON value; also the search's lora_alpha when given a SearchResult."""
    if isinstance(ranks, SearchResult):
        return dict(ranks.ranks), ranks.lora_alpha
    if isinstance(ranks, bool):
        raise InvalidArgumentError("ranks must be a SearchResult, a {module: rank} dict or an int", context=context)
    if isinstance(ranks, (int, np.integer)):
        return int(ranks), None
    if isinstance(ranks, dict):
        if "random" in ranks:  # {"random": parameter_count, "space": [...]}: the engine's random control
            return dict(ranks), None
        return {str(k): v for k, v in ranks.items()}, None
    raise InvalidArgumentError(
        f"ranks must be a SearchResult, a {{module: rank}} dict, {{'random': count, 'space': [...]}} or an int, "
        f"got {type(ranks).__name__}", context=context)


def finetune(model: Model, train, val, ranks=8, init: str = "fresh", epochs: int = 1, batch_size: int = 4,
             lr: float = 1e-4, seed: int = 0, checkpoint_dir: str | os.PathLike | None = None, progress=None,
             **options) -> FinetuneResult:
    """Fine-tune a mixed-rank LoRA on ``model`` (AdamW), evaluating ``val`` after every epoch.

    The adapters stay attached to ``model``; save them with :meth:`FinetuneResult.save_peft` or
    :meth:`Model.save_adapter`.

    Parameters
    ----------
    model : Model
    train, val : Dataset or iterable of dict
        Labelled samples (see :class:`Dataset`); iterables are converted.
    ranks : SearchResult, dict or int
        A search's result (its ``ranks``, and its ``lora_alpha`` unless ``lora_alpha`` is given),
        ``{module: rank}``, one rank for every targeted module, or
        ``{"random": parameter_count, "space": [...]}`` for random ranks at that budget.
    init : {"fresh", "warm"}
        fresh: A Kaiming-uniform, B zero. warm: start from the supernet slices of a search run on
        this model just before.
    epochs, batch_size, lr, seed
        Training settings.
    checkpoint_dir : str or PathLike, optional
        Save and resume the run there, as in :func:`search`.
    progress : None, True or callable
        As in :func:`search`.
    **options
        Passed to the engine as is: ``targets``, ``side``, ``lora_alpha``, ``dropout``,
        ``eval_batch_size``, ``weight_decay``, ``checkpoint_every``, ``max_steps``. Unknown names
        raise ``InvalidArgumentError``.

    Returns
    -------
    FinetuneResult

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C, as in :func:`search`: the adapters on ``model`` are then a partial run's.
    """
    rank_value, search_alpha = _ranks_option(ranks, "finetune")
    opts = {"ranks": rank_value, "init": init, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
            "checkpoint_dir": None if checkpoint_dir is None else os.fspath(checkpoint_dir)}
    if search_alpha is not None and "lora_alpha" not in options:
        opts["lora_alpha"] = search_alpha
    opts.update(options)
    result = FinetuneResult._from_obj(_run("finetune", model, train, val, opts, progress))
    result._model = model
    result._adapter_version = model._adapter_version
    return result


def pretrain(model: Model, train, val, epochs: int = 1, batch_size: int = 8, lr: float = 1e-3,
             warmup_steps: int = 100, seed: int = 0, checkpoint_dir: str | os.PathLike | None = None, progress=None,
             **options) -> PretrainResult:
    """Train every weight of ``model`` (vision tower, projector, decoder, LM head): AdamW with a linear
    warm-up to ``lr`` over ``warmup_steps`` and a cosine decay to ``min_lr_ratio * lr``, the gradient's
    global norm clipped to ``max_grad_norm``. ``val`` is evaluated before the first step and after
    every epoch. The model must have no adapters; start from :func:`loranas.init_model` to train from
    scratch.

    ``**options`` are passed to the engine as is: ``eval_batch_size``, ``min_lr_ratio`` (0.1),
    ``weight_decay`` (0.01, matrices and embeddings only), ``max_grad_norm`` (1.0), ``checkpoint_every``,
    ``max_steps``, ``group_by_length``. ``progress`` and ``checkpoint_dir`` work as in :func:`search`,
    and so does Ctrl-C.
    """
    opts = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "warmup_steps": warmup_steps, "seed": seed,
            "checkpoint_dir": None if checkpoint_dir is None else os.fspath(checkpoint_dir)}
    opts.update(options)
    return PretrainResult._from_obj(_run("pretrain", model, train, val, opts, progress))
