// The AMX path of include/lr_bf16.h: tile dot products (TDPBF16PS), 16×16 fp32 results from 16×32 bf16 rows of A
// and 32×16 bf16 of B in pairs. Each call computes 32×32 blocks of C from two A tiles and two B tiles into four
// accumulator tiles.
#include "lr_bf16.h"

#include <cpuid.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LR_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw")))
#define LR_ARCH_REQ_XCOMP_PERM 0x1023
#define LR_XFEATURE_XTILEDATA 18

int lr_amx_supported(void) {
    static int state = -1;  // the request is per process; asking again is harmless
    if (state >= 0) return state;
    unsigned a, b, c, d;
    state = 0;
    if (!lr_bf16_supported()) return state;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return state;
    if (!(d & (1u << 22)) || !(d & (1u << 24))) return state;  // AMX-BF16, AMX-TILE
    if (syscall(SYS_arch_prctl, LR_ARCH_REQ_XCOMP_PERM, LR_XFEATURE_XTILEDATA) != 0) return state;
    state = 1;
    return state;
}

// A 16×16 transpose of 32-bit elements in 16 zmm: unpack pairs, then quads, then 128-bit lanes.
LR_AMX static void lr_transpose_16x16_epi32(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 8; i++) {  // t[2i], t[2i+1]: rows 2i, 2i+1 interleaved, columns (4L, 4L+1) and (4L+2, 4L+3)
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {  // r[4i + c], lane L: column 4L + c of rows 4i..4i+3
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) {  // column 4L + c gathers lane L of r[c], r[4 + c], r[8 + c], r[12 + c]
        __m512i x01 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0x44), y01 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0x44);
        __m512i x23 = _mm512_shuffle_i32x4(r[c], r[4 + c], 0xEE), y23 = _mm512_shuffle_i32x4(r[8 + c], r[12 + c], 0xEE);
        t[c] = _mm512_shuffle_i32x4(x01, y01, 0x88);
        t[4 + c] = _mm512_shuffle_i32x4(x01, y01, 0xDD);
        t[8 + c] = _mm512_shuffle_i32x4(x23, y23, 0x88);
        t[12 + c] = _mm512_shuffle_i32x4(x23, y23, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = t[i];
}

// One 32 × 32 block of W from its forward layout (two B tiles pairing k) to the input gradient's (two B tiles
// pairing n): each forward tile is, in 32-bit pairs, a 16 × 16 transpose of W's rows; the rows are then
// interleaved two by two.
LR_AMX static void lr_amx_transpose_block(const uint16_t *src, uint16_t *dst) {
    static const uint16_t interleave[2][32] = {
        {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39, 8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46,
         15, 47},
        {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55, 24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61,
         30, 62, 31, 63}};
    __m512i rows[32];  // the block's 32 rows of W, 32 elements each
    for (int h = 0; h < 2; h++) {
        __m512i r[16];
        for (int q = 0; q < 16; q++) r[q] = _mm512_loadu_si512(src + h * 512 + q * 32);
        lr_transpose_16x16_epi32(r);
        for (int c = 0; c < 16; c++) rows[h * 16 + c] = r[c];
    }
    for (int g = 0; g < 2; g++) {
        __m512i idx = _mm512_loadu_si512(interleave[g]);
        for (int q = 0; q < 16; q++) {
            __m512i pair = _mm512_permutex2var_epi16(rows[2 * q], idx, rows[2 * q + 1]);
            _mm512_storeu_si512(dst + g * 512 + q * 32, pair);
        }
    }
}

// Columns [j0, j0 + 32) of W as a panel over n, in the layout lr_amx_pack_w gives W's rows: each 32 × 32 block of
// W is one chunk of the packing, re-laid within its 2 KiB. Zero past n and k (the packing holds the zeros).
LR_AMX static void lr_amx_column_panel(const uint16_t *packed, int64_t n, int64_t k, int64_t j0, uint16_t *panel) {
    int64_t kp = lr_amx_kp(k), kpn = lr_amx_kp(n);
    for (int64_t r0 = 0; r0 < kpn; r0 += 32) {
        lr_amx_transpose_block(packed + lr_amx_index(r0, j0, kp), panel + lr_amx_index(0, r0, kpn));
    }
}

typedef struct {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} lr_tile_config;

LR_AMX static void lr_amx_configure(void) {
    lr_tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
}

// One 32×32 block of C from rows [0, 32) of `a` (padded to 32 rows) and one panel of W. `c` (row stride ldc floats)
// is read first when `accumulate`; the four 16×16 results go to `c`.
LR_AMX static void lr_amx_block(const uint16_t *a, int64_t kp, const uint16_t *panel, float *c, int64_t ldc,
                                int accumulate) {
    if (accumulate) {
        _tile_loadd(0, c, ldc * 4);
        _tile_loadd(1, c + 16, ldc * 4);
        _tile_loadd(2, c + 16 * ldc, ldc * 4);
        _tile_loadd(3, c + 16 * ldc + 16, ldc * 4);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int64_t q = 0; q < kp / 32; q++) {
        _tile_loadd(4, a + q * 32, kp * 2);
        _tile_loadd(5, a + 16 * kp + q * 32, kp * 2);
        _tile_loadd(6, panel + q * 1024, 64);
        _tile_loadd(7, panel + q * 1024 + 512, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c, ldc * 4);
    _tile_stored(1, c + 16, ldc * 4);
    _tile_stored(2, c + 16 * ldc, ldc * 4);
    _tile_stored(3, c + 16 * ldc + 16, ldc * 4);
}

// Rows [0, m) of C's `cols` ≤ 32 columns at c from one panel; a block past C's edge goes through a 32×32 buffer,
// of which the valid part is copied.
LR_AMX static void lr_amx_panel_rows(const uint16_t *a, int64_t m, int64_t kp, const uint16_t *panel, int64_t cols,
                                     float *c, int64_t ldc, int accumulate) {
    float edge[32 * 32] __attribute__((aligned(64)));
    for (int64_t row = 0; row < m; row += 32) {
        int64_t rows = m - row < 32 ? m - row : 32;
        float *dst = c + row * ldc;
        if (rows == 32 && cols == 32) {
            lr_amx_block(a + row * kp, kp, panel, dst, ldc, accumulate);
            continue;
        }
        memset(edge, 0, sizeof edge);
        for (int64_t r = 0; accumulate && r < rows; r++) memcpy(edge + r * 32, dst + r * ldc, (size_t)cols * 4);
        lr_amx_block(a + row * kp, kp, panel, edge, 32, accumulate);
        for (int64_t r = 0; r < rows; r++) memcpy(dst + r * ldc, edge + r * 32, (size_t)cols * 4);
    }
}

LR_AMX void lr_amx_gemm_nt(const uint16_t *a, int64_t m, int64_t kp, const uint16_t *packed, int64_t n, int64_t n0,
                           int64_t n1, float *c, int64_t ldc, int accumulate) {
    if (n1 > n) n1 = n;
    lr_amx_configure();
    for (int64_t col = n0; col < n1; col += LR_BF16_PANEL) {
        int64_t cols = n1 - col < 32 ? n1 - col : 32;
        lr_amx_panel_rows(a, m, kp, packed + col * kp, cols, c + col, ldc, accumulate);
    }
    _tile_release();
}

LR_AMX void lr_amx_gemm_nn(const uint16_t *a, int64_t m, int64_t kpn, const uint16_t *packed, int64_t n, int64_t k,
                           int64_t j0, int64_t j1, float *c, int64_t ldc, int accumulate) {
    if (j1 > k) j1 = k;
    uint16_t *panel = aligned_alloc(64, (size_t)kpn * 64);  // kpn × 32 elements
    if (!panel) abort();  // a few hundred KiB: as the engine's own allocations, out of memory is fatal
    lr_amx_configure();
    for (int64_t col = j0; col < j1; col += LR_BF16_PANEL) {
        int64_t cols = j1 - col < 32 ? j1 - col : 32;
        lr_amx_column_panel(packed, n, k, col, panel);
        lr_amx_panel_rows(a, m, kpn, panel, cols, c + col, ldc, accumulate);
    }
    _tile_release();
    free(panel);
}

LR_AMX float lr_amx_peak(int64_t iters) {
    uint16_t a[16 * 32] __attribute__((aligned(64)));  // on the stack: threads run this at once
    uint16_t b[16 * 32] __attribute__((aligned(64)));
    float out[256] __attribute__((aligned(64)));
    for (int i = 0; i < 512; i++) {
        a[i] = 0x3F80;  // 1.0
        b[i] = 0x0001;  // tiny: the sums stay finite
    }
    lr_amx_configure();
    _tile_loadd(4, a, 64);
    _tile_loadd(5, a, 64);
    _tile_loadd(6, b, 64);
    _tile_loadd(7, b, 64);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t i = 0; i < iters; i++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    return out[0];
}
