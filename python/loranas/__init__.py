"""loranas: LoRA neural architecture search, a Swift engine driven from Python.

Importing this package loads libloranas (see ``loranas._lib`` for where it is looked for) and
checks its ABI version.

Typical use::

    import loranas

    model = loranas.load_model("path/to/mllama")            # Model
    out = model.forward(input_ids, labels=labels)           # out.logits (B, S, V), out.loss
    result = loranas.search(model, train, val, space=(4, 8, 16), budget=0.5)
    tuned = loranas.finetune(model, train, val, ranks=result, init="warm")
    tuned.save_peft("adapter/")                             # PeftModel.from_pretrained loads it

``train`` and ``val`` are :class:`Dataset` objects or iterables of sample dicts (numpy arrays
named as in transformers, without the batch axis).

``loranas.Processor.from_pretrained(model_dir)`` is transformers' ``MllamaProcessor`` (Pillow image path)
run by the engine: ``proc(text=..., images=...)`` returns its ``return_tensors="np", padding=True`` dict, and
``proc.apply_chat_template(messages)`` renders the published Llama-3.2-Vision chat template.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import (
    abi_version,
    get_num_threads,
    init_model,
    library_path,
    load_model,
    matmul,
    open_checkpoint,
    set_num_threads,
    version,
)
from .checkpoint import Checkpoint
from .world import World, abort, is_main_process, world
from .data import Dataset
from .model import Model, ModelOutput
from .results import FinetuneResult, PretrainResult, SearchResult
from .processor import Processor
from .tokenizer import Tokenizer
from .training import finetune, pretrain, search
from .evaluation import EvalResult, evaluate
from .plots import plot_alpha, plot_losses, plot_ranks
from .errors import (
    BufferTooSmallError,
    EngineIOError,
    FormatError,
    InvalidArgumentError,
    LoranasError,
    NotFoundError,
    NumericError,
    UnsupportedError,
)

__all__ = [
    "__version__",
    "abi_version",
    "version",
    "library_path",
    "set_num_threads",
    "get_num_threads",
    "open_checkpoint",
    "world",
    "World",
    "is_main_process",
    "abort",
    "matmul",
    "Checkpoint",
    "load_model",
    "init_model",
    "Model",
    "ModelOutput",
    "Dataset",
    "Tokenizer",
    "Processor",
    "search",
    "SearchResult",
    "finetune",
    "FinetuneResult",
    "pretrain",
    "PretrainResult",
    "evaluate",
    "EvalResult",
    "plot_ranks",
    "plot_alpha",
    "plot_losses",
    "LoranasError",
    "InvalidArgumentError",
    "EngineIOError",
    "FormatError",
    "NotFoundError",
    "NumericError",
    "UnsupportedError",
    "BufferTooSmallError",
]

world()  # under mpirun this starts MPI now, in every process alike (see loranas.world)
