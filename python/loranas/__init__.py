"""loranas: LoRA neural architecture search, a Swift engine driven from Python.

Importing this package loads libloranas (see ``loranas._lib`` for where it is looked for) and
checks its ABI version. Model loading, search and fine-tuning will be added to ``api``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .api import (
    abi_version,
    get_num_threads,
    library_path,
    matmul,
    open_checkpoint,
    set_num_threads,
    version,
)
from .checkpoint import Checkpoint
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
    "matmul",
    "Checkpoint",
    "LoranasError",
    "InvalidArgumentError",
    "EngineIOError",
    "FormatError",
    "NotFoundError",
    "NumericError",
    "UnsupportedError",
    "BufferTooSmallError",
]
