/* The C half of the ABI: the header's types, checked by the C compiler. The functions
   themselves are implemented in Swift (Sources/LoRANASCAPI) with @_cdecl. */
#include "loranas.h"
#include <stddef.h>

_Static_assert(sizeof(loranas_batch) == 14 * 8, "loranas_batch is fourteen 8-byte fields");
_Static_assert(offsetof(loranas_batch, pixel_values) == 10 * 8, "pixel_values offset");
