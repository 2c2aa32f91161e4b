"""The C ABI's enum values (``LORANAS_OK``, ``LORANAS_ERR_*``, ``LORANAS_DTYPE_*``), defined once.

``_bindings`` re-exports them and ``errors`` maps the status codes to exceptions; this module
imports nothing, so ``errors`` stays importable without loading the library. A test
(``test_status.py``) parses ``loranas.h`` and checks every value here against it.
"""

from __future__ import annotations

# enum { LORANAS_OK = 0, LORANAS_ERR_* ... } in loranas.h
LORANAS_OK = 0
LORANAS_ERR_INVALID_ARGUMENT = 1
LORANAS_ERR_IO = 2
LORANAS_ERR_FORMAT = 3
LORANAS_ERR_NOT_FOUND = 4
LORANAS_ERR_NUMERIC = 5
LORANAS_ERR_UNSUPPORTED = 6
LORANAS_ERR_BUFFER_TOO_SMALL = 7

# status code -> its C name
STATUS_NAMES = {value: name for name, value in globals().items()
                if name == "LORANAS_OK" or name.startswith("LORANAS_ERR_")}

# enum { LORANAS_DTYPE_* } in loranas.h: dtypes as stored in a checkpoint
LORANAS_DTYPE_F32 = 0
LORANAS_DTYPE_F16 = 1
LORANAS_DTYPE_BF16 = 2
LORANAS_DTYPE_I64 = 3
LORANAS_DTYPE_I32 = 4
LORANAS_DTYPE_F64 = 5
LORANAS_DTYPE_U8 = 6
LORANAS_DTYPE_I8 = 7
LORANAS_DTYPE_BOOL = 8
LORANAS_DTYPE_I16 = 9

# LORANAS_DTYPE_* -> the safetensors dtype name (the C name without the prefix)
DTYPE_NAMES = {value: name[len("LORANAS_DTYPE_"):] for name, value in globals().items()
               if name.startswith("LORANAS_DTYPE_")}
