// bfloat16 GEMM on AVX512-BF16 dot products (vdpbf16ps), for the engine's bf16 mode (issue 12).
//
// C (fp32, m×n) = A (bf16, m×kp, row-major) · Wᵀ, where W (n×k) is packed once by lr_bf16_pack_w: the shape of
// a linear layer's forward, y = x·Wᵀ. kp is k rounded up to even (vdpbf16ps multiplies pairs along k); padding
// is zero. Products of two bf16 values are exact in fp32, and the sums accumulate in fp32.
// Every function needs lr_bf16_supported() == 1; the engine checks it once and otherwise computes in fp32.
#pragma once
#include <stddef.h>
#include <stdint.h>

/// 1 when the CPU has AVX512-BF16 (and AVX512F/BW) and the OS saves the zmm registers, else 0.
int lr_bf16_supported(void);

/// The OpenBLAS core type (OPENBLAS_CORETYPE) whose kernels this CPU runs best: "Cooperlake" (AVX-512 with
/// BF16), "SkylakeX" (AVX-512), "Haswell" (AVX2 + FMA), or NULL. OpenBLAS 0.3.21 does not recognize newer Intel
/// generations and falls back to Prescott (SSE3) kernels, two to three times slower.
const char *lr_openblas_preferred_core(void);

/// Columns of W per packed panel (two zmm registers of fp32 outputs).
enum { LR_BF16_PANEL = 32 };

/// kp: k rounded up to even.
static inline int64_t lr_bf16_kp(int64_t k) { return k + (k & 1); }

/// Elements (uint16) of W packed: ceil(n / 32) panels of 32 × kp.
static inline int64_t lr_bf16_packed_count(int64_t n, int64_t k) {
    return (n + LR_BF16_PANEL - 1) / LR_BF16_PANEL * LR_BF16_PANEL * lr_bf16_kp(k);
}

/// Where W[r][j] sits in the packing: panel r / 32 (32 × kp), pair j / 2 of it, the 32 pairs side by side.
static inline int64_t lr_bf16_index(int64_t r, int64_t j, int64_t kp) {
    return (r / 32) * 32 * kp + ((j / 2) * 32 + r % 32) * 2 + (j & 1);
}

/// Packs W (n×k bf16 bit patterns, row-major) into panels: for each 32 rows of W and each pair (2p, 2p + 1) of k,
/// the 32 pairs side by side. Rows past n and the odd k's partner are zero.
void lr_bf16_pack_w(const uint16_t *w, int64_t n, int64_t k, uint16_t *packed);

/// W (n×k bf16 bits) back out of lr_bf16_pack_w's packing.
void lr_bf16_unpack_w(const uint16_t *packed, int64_t n, int64_t k, uint16_t *w);

/// bf16 bit patterns → fp32 (exact), n of them.
void lr_bf16_widen(const uint16_t *bits, int64_t n, float *out);

/// fp32 → bf16 bit patterns, rounding to nearest even (NaN stays NaN), rows of k written with stride kp ≥ k
/// (the columns past k zero).
void lr_bf16_convert_rows(const float *x, int64_t m, int64_t k, int64_t kp, uint16_t *out);

/// C[:, n0..<n1] = (accumulate ? C : 0) + A · Wᵀ over those columns; n0 a multiple of 32 (so threads can take
/// disjoint column ranges). ldc is C's row stride in floats.
void lr_bf16_gemm_nt(const uint16_t *a, int64_t m, int64_t kp, const uint16_t *packed, int64_t n, int64_t n0,
                     int64_t n1, float *c, int64_t ldc, int accumulate);

/// The input gradient's GEMM on the same packing: C[:, j0..<j1] = (accumulate ? C : 0) + A · W over those columns
/// of W (n×k), with A m×kpn bf16, kpn = lr_bf16_kp(n); j0 a multiple of 32. Each 32 columns of W are laid out
/// again as a panel over n (from the packing, into a buffer of the call's own) before the kernel uses them, so
/// one packing of W serves forward and backward.
void lr_bf16_gemm_nn(const uint16_t *a, int64_t m, int64_t kpn, const uint16_t *packed, int64_t n, int64_t k,
                     int64_t j0, int64_t j1, float *c, int64_t ldc, int accumulate);

// ---- AMX (tile dot products): the same GEMM with A's rows padded to a multiple of 32 and k to a multiple of 32.

/// 1 when the CPU has AMX-BF16 and AMX-TILE and Linux granted this process the tile state (arch_prctl), else 0.
int lr_amx_supported(void);

/// kp for the AMX path: k rounded up to a multiple of 32.
static inline int64_t lr_amx_kp(int64_t k) { return (k + 31) / 32 * 32; }

/// Elements (uint16) of W packed for AMX: ceil(n / 32) panels of 32 × kp.
static inline int64_t lr_amx_packed_count(int64_t n, int64_t k) {
    return (n + LR_BF16_PANEL - 1) / LR_BF16_PANEL * LR_BF16_PANEL * lr_amx_kp(k);
}

/// Where W[r][j] sits in the AMX packing: panel r / 32 (32 × kp), chunk j / 32 of it (1024 elements), tile
/// (r % 32) / 16 of the chunk, row (j % 32) / 2 of the tile, pair r % 16 of the row.
static inline int64_t lr_amx_index(int64_t r, int64_t j, int64_t kp) {
    int64_t tile = (r / 32) * 32 * kp + (j / 32) * 1024 + ((r % 32) / 16) * 512;
    return tile + ((j % 32) / 2) * 32 + (r % 16) * 2 + (j & 1);
}

/// Packs W (n×k bf16 bits) as B tiles: per panel of 32 rows of W and chunk of 32 of k, two 16-column tiles of
/// 16 pairs of k (1 KiB each). Rows past n and k past k are zero.
void lr_amx_pack_w(const uint16_t *w, int64_t n, int64_t k, uint16_t *packed);

/// W (n×k bf16 bits) back out of lr_amx_pack_w's packing.
void lr_amx_unpack_w(const uint16_t *packed, int64_t n, int64_t k, uint16_t *w);

/// As lr_bf16_gemm_nt, for A with row stride kp = lr_amx_kp(k) whose allocation holds m rounded up to 32 rows
/// (the rows past m zero).
void lr_amx_gemm_nt(const uint16_t *a, int64_t m, int64_t kp, const uint16_t *packed, int64_t n, int64_t n0,
                    int64_t n1, float *c, int64_t ldc, int accumulate);

/// As lr_bf16_gemm_nn on the AMX packing, for A with row stride kpn = lr_amx_kp(n) and rows padded to 32.
void lr_amx_gemm_nn(const uint16_t *a, int64_t m, int64_t kpn, const uint16_t *packed, int64_t n, int64_t k,
                    int64_t j0, int64_t j1, float *c, int64_t ldc, int accumulate);

/// The tile ceiling: `iters` rounds of 4 TDPBF16PS (16·16·32·2 FLOP each), 32768 × iters FLOP.
float lr_amx_peak(int64_t iters);

/// The dot-product ceiling: `iters` rounds of 16 independent vdpbf16ps chains (32 FLOP per lane each), so
/// 1024 × iters FLOP. Returns a sum of the accumulators so the work is not optimized away.
float lr_bf16_peak(int64_t iters);
