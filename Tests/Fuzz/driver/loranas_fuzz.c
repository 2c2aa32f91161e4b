#include "loranas_fuzz.h"

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*fn)(const uint8_t *data, size_t size));

int loranas_fuzz_main(int argc, char **argv, loranas_fuzz_fn fn) {
    return LLVMFuzzerRunDriver(&argc, &argv, fn);
}
