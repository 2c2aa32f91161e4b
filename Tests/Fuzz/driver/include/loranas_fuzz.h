/* Starts libFuzzer with a test-one-input callback (LLVMFuzzerRunDriver, libFuzzer's entry point
 * for programs that keep their own main). SwiftPM links Linux executables with
 * `--defsym main=<module>_main`, so libFuzzer's own main cannot be used; each fuzz target's @main
 * calls this instead. */
#ifndef LORANAS_FUZZ_H
#define LORANAS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

typedef int (*loranas_fuzz_fn)(const uint8_t *data, size_t size);

/* Runs libFuzzer with the process's arguments; returns its exit status. */
int loranas_fuzz_main(int argc, char **argv, loranas_fuzz_fn fn);

#endif
