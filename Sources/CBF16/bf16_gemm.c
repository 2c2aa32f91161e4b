// See include/lr_bf16.h. The kernels carry their own target attribute, so this file builds for any x86-64 and
// the engine dispatches at run time (lr_bf16_supported).
#include "lr_bf16.h"

#include <cpuid.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#define LR_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

static uint64_t lr_xgetbv(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

int lr_bf16_supported(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // OSXSAVE
    if ((lr_xgetbv() & 0xE6) != 0xE6) return 0;  // the OS saves xmm, ymm, opmask and zmm state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(b & (1u << 16)) || !(b & (1u << 30))) return 0;  // AVX512F, AVX512BW
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1;  // AVX512_BF16
}

const char *lr_openblas_preferred_core(void) {
    unsigned a, b, c, d;
    if (lr_bf16_supported()) return "Cooperlake";
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return NULL;  // OSXSAVE
    int fma = (c >> 12) & 1;
    uint64_t xcr0 = lr_xgetbv();
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return NULL;
    int avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) && (b & (1u << 31));  // F, DQ, BW, VL
    if (avx512 && (xcr0 & 0xE6) == 0xE6) return "SkylakeX";
    if ((b & (1u << 5)) && fma && (xcr0 & 0x6) == 0x6) return "Haswell";  // AVX2
    return NULL;
}

static uint16_t lr_bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// 32 floats at a time with VCVTNE2PS2BF16 (round to nearest even; it reads subnormal inputs as zero).
LR_AVX512BF16 static void lr_bf16_convert_row_avx512(const float *x, int64_t k, uint16_t *out) {
    int64_t j = 0;
    for (; j + 32 <= k; j += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + j + 16), _mm512_loadu_ps(x + j));
        _mm512_storeu_si512(out + j, (__m512i)v);
    }
    for (; j < k; j++) out[j] = lr_bf16_round(x[j]);
}

LR_AVX512BF16 static void lr_bf16_widen_avx512(const uint16_t *bits, int64_t n, float *out) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(bits + i)));
        _mm512_storeu_si512(out + i, _mm512_slli_epi32(wide, 16));
    }
    for (; i < n; i++) {
        uint32_t u = (uint32_t)bits[i] << 16;
        memcpy(out + i, &u, 4);
    }
}

// lr_bf16_supported(), asked once: CPUID traps to the hypervisor in a VM (a race only writes the same value).
static int lr_bf16_vector(void) {
    static int known = -1;
    int vector = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (vector < 0) {
        vector = lr_bf16_supported();
        __atomic_store_n(&known, vector, __ATOMIC_RELAXED);
    }
    return vector;
}

void lr_bf16_widen(const uint16_t *bits, int64_t n, float *out) {
    if (lr_bf16_vector()) {
        lr_bf16_widen_avx512(bits, n, out);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)bits[i] << 16;
        memcpy(out + i, &u, 4);
    }
}

void lr_bf16_convert_rows(const float *x, int64_t m, int64_t k, int64_t kp, uint16_t *out) {
    int vector = lr_bf16_vector();
    for (int64_t i = 0; i < m; i++) {
        if (vector) {
            lr_bf16_convert_row_avx512(x + i * k, k, out + i * kp);
        } else {
            for (int64_t j = 0; j < k; j++) out[i * kp + j] = lr_bf16_round(x[i * k + j]);
        }
        for (int64_t j = k; j < kp; j++) out[i * kp + j] = 0;
    }
}

// Packing and unpacking for both kernels: each layout is an index function (include/lr_bf16.h), inlined here.
typedef int64_t (*lr_layout)(int64_t r, int64_t j, int64_t kp);

static inline void lr_pack(const uint16_t *w, int64_t n, int64_t k, int64_t kp, int64_t count, lr_layout at,
                           uint16_t *packed) {
    memset(packed, 0, (size_t)count * 2);
    for (int64_t r = 0; r < n; r++) {
        for (int64_t j = 0; j < k; j++) packed[at(r, j, kp)] = w[r * k + j];
    }
}

static inline void lr_unpack(const uint16_t *packed, int64_t n, int64_t k, int64_t kp, lr_layout at, uint16_t *w) {
    for (int64_t r = 0; r < n; r++) {
        for (int64_t j = 0; j < k; j++) w[r * k + j] = packed[at(r, j, kp)];
    }
}

void lr_bf16_pack_w(const uint16_t *w, int64_t n, int64_t k, uint16_t *packed) {
    lr_pack(w, n, k, lr_bf16_kp(k), lr_bf16_packed_count(n, k), lr_bf16_index, packed);
}

void lr_bf16_unpack_w(const uint16_t *packed, int64_t n, int64_t k, uint16_t *w) {
    lr_unpack(packed, n, k, lr_bf16_kp(k), lr_bf16_index, w);
}

void lr_amx_pack_w(const uint16_t *w, int64_t n, int64_t k, uint16_t *packed) {
    lr_pack(w, n, k, lr_amx_kp(k), lr_amx_packed_count(n, k), lr_amx_index, packed);
}

void lr_amx_unpack_w(const uint16_t *packed, int64_t n, int64_t k, uint16_t *w) {
    lr_unpack(packed, n, k, lr_amx_kp(k), lr_amx_index, w);
}

// Columns [j0, j0 + 32) of W as a panel over n: pair q of it holds (W[2q][j], W[2q + 1][j]) for the 32 j side by
// side, the layout lr_bf16_pack_w gives W's rows. Past n or k: zero.
static void lr_bf16_column_panel(const uint16_t *packed, int64_t n, int64_t k, int64_t j0, uint16_t *panel) {
    int64_t kp = lr_bf16_kp(k), kpn = lr_bf16_kp(n);
    for (int64_t r = 0; r < kpn; r++) {
        for (int64_t m = 0; m < LR_BF16_PANEL; m++) {
            int64_t j = j0 + m;
            panel[lr_bf16_index(m, r, kpn)] = (r < n && j < k) ? packed[lr_bf16_index(r, j, kp)] : 0;
        }
    }
}

// An MR × 32 tile over the whole of kp: 2·MR accumulators, two panel loads and MR broadcasts per pair of k.
#define LR_TILE(MR)                                                                                              \
    LR_AVX512BF16 static void lr_tile_##MR(const uint16_t *a, int64_t kp, const uint16_t *panel, float *c,        \
                                           int64_t ldc, __mmask16 m0, __mmask16 m1, int accumulate) {             \
        __m512 acc[MR][2];                                                                                       \
        for (int r = 0; r < MR; r++) {                                                                           \
            acc[r][0] = accumulate ? _mm512_maskz_loadu_ps(m0, c + r * ldc) : _mm512_setzero_ps();               \
            acc[r][1] = accumulate ? _mm512_maskz_loadu_ps(m1, c + r * ldc + 16) : _mm512_setzero_ps();          \
        }                                                                                                        \
        for (int64_t q = 0; q < kp / 2; q++) {                                                                   \
            __m512bh b0 = (__m512bh)_mm512_loadu_si512(panel + q * 64);                                          \
            __m512bh b1 = (__m512bh)_mm512_loadu_si512(panel + q * 64 + 32);                                     \
            for (int r = 0; r < MR; r++) {                                                                       \
                uint32_t pair;                                                                                   \
                memcpy(&pair, a + r * kp + 2 * q, 4);                                                            \
                __m512bh x = (__m512bh)_mm512_set1_epi32((int)pair);                                             \
                acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);                                                  \
                acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);                                                  \
            }                                                                                                    \
        }                                                                                                        \
        for (int r = 0; r < MR; r++) {                                                                           \
            _mm512_mask_storeu_ps(c + r * ldc, m0, acc[r][0]);                                                   \
            _mm512_mask_storeu_ps(c + r * ldc + 16, m1, acc[r][1]);                                              \
        }                                                                                                        \
    }

LR_TILE(8)
LR_TILE(4)
LR_TILE(2)
LR_TILE(1)

// Rows [0, m) of C's `width` ≤ 32 columns at c from one panel.
LR_AVX512BF16 static void lr_bf16_panel_rows(const uint16_t *a, int64_t m, int64_t kp, const uint16_t *panel,
                                             int64_t width, float *c, int64_t ldc, int accumulate) {
    __mmask16 m0 = width >= 16 ? 0xFFFF : (__mmask16)((1u << width) - 1);
    __mmask16 m1 = width >= 32 ? 0xFFFF : width <= 16 ? 0 : (__mmask16)((1u << (width - 16)) - 1);
    int64_t row = 0;
    for (; row + 8 <= m; row += 8) lr_tile_8(a + row * kp, kp, panel, c + row * ldc, ldc, m0, m1, accumulate);
    if (row + 4 <= m) {
        lr_tile_4(a + row * kp, kp, panel, c + row * ldc, ldc, m0, m1, accumulate);
        row += 4;
    }
    if (row + 2 <= m) {
        lr_tile_2(a + row * kp, kp, panel, c + row * ldc, ldc, m0, m1, accumulate);
        row += 2;
    }
    if (row < m) lr_tile_1(a + row * kp, kp, panel, c + row * ldc, ldc, m0, m1, accumulate);
}

void lr_bf16_gemm_nt(const uint16_t *a, int64_t m, int64_t kp, const uint16_t *packed, int64_t n, int64_t n0,
                     int64_t n1, float *c, int64_t ldc, int accumulate) {
    if (n1 > n) n1 = n;
    for (int64_t col = n0; col < n1; col += LR_BF16_PANEL) {
        int64_t width = n1 - col < LR_BF16_PANEL ? n1 - col : LR_BF16_PANEL;
        lr_bf16_panel_rows(a, m, kp, packed + col * kp, width, c + col, ldc, accumulate);  // panel col / 32
    }
}

void lr_bf16_gemm_nn(const uint16_t *a, int64_t m, int64_t kpn, const uint16_t *packed, int64_t n, int64_t k,
                     int64_t j0, int64_t j1, float *c, int64_t ldc, int accumulate) {
    if (j1 > k) j1 = k;
    uint16_t *panel = malloc((size_t)kpn * LR_BF16_PANEL * 2);
    if (!panel) abort();  // a few hundred KiB: as the engine's own allocations, out of memory is fatal
    for (int64_t col = j0; col < j1; col += LR_BF16_PANEL) {
        int64_t width = j1 - col < LR_BF16_PANEL ? j1 - col : LR_BF16_PANEL;
        lr_bf16_column_panel(packed, n, k, col, panel);
        lr_bf16_panel_rows(a, m, kpn, panel, width, c + col, ldc, accumulate);
    }
    free(panel);
}

LR_AVX512BF16 float lr_bf16_peak(int64_t iters) {
    __m512 acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps((float)i);
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3F803F80);  // (1.0, 1.0)
    __m512bh y = (__m512bh)_mm512_set1_epi32(0x00010001);  // tiny: the sums stay finite
    for (int64_t it = 0; it < iters; it++) {
        for (int i = 0; i < 16; i++) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
    }
    __m512 s = acc[0];
    for (int i = 1; i < 16; i++) s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}
