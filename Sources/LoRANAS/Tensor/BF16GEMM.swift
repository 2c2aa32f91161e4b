import CBF16

/// How this CPU multiplies bfloat16 matrices (`Sources/CBF16`), best first.
public enum BF16Kernel: String, Sendable, CaseIterable {
    /// AMX tile dot products (TDPBF16PS): 16×16 fp32 results per instruction.
    case amx
    /// AVX512-BF16 dot products (VDPBF16PS) on zmm registers.
    case avx512
    /// The best one this CPU (and OS) supports, nil when there is none.
    public static let best: BF16Kernel? = available.first

    /// Every kernel this CPU supports, best first (CPUID, XGETBV, and Linux's permission for the AMX state).
    public static let available: [BF16Kernel] =
        (lr_amx_supported() == 1 ? [.amx] : []) + (lr_bf16_supported() == 1 ? [.avx512] : [])

    /// k as the kernel's rows of A hold it (AMX: a multiple of 32; AVX512-BF16: even).
    func paddedK(_ k: Int) -> Int {
        self == .amx ? Int(lr_amx_kp(Int64(k))) : Int(lr_bf16_kp(Int64(k)))
    }

    /// Rows of A the kernel reads past m (AMX works on 32-row blocks).
    func paddedM(_ m: Int) -> Int {
        self == .amx ? (m + 31) / 32 * 32 : m
    }
}

/// A weight matrix (n×k, a linear layer's W) stored as bfloat16 and packed once for one kernel: the first
/// piece of the bf16 mode (issue 12).
public final class PackedBF16Matrix: @unchecked Sendable {
    /// n: output features.
    public let rows: Int
    /// k: input features.
    public let cols: Int
    public let kernel: BF16Kernel
    let packed: UnsafeMutablePointer<UInt16>

    /// Packs `w` (rows × cols) rounded to bfloat16 (nearest even, as torch's `.to(torch.bfloat16)`).
    public init(_ w: Tensor, kernel: BF16Kernel) {
        rows = w.shape[0]
        cols = w.count / max(1, rows)
        self.kernel = kernel
        let bits = UnsafeMutablePointer<UInt16>.allocate(capacity: max(1, w.count))
        defer { bits.deallocate() }
        for i in 0..<w.count { bits[i] = bfloat16Bits(w.ptr[i]) }
        let n = Int64(rows), k = Int64(cols)
        let count = kernel == .amx ? lr_amx_packed_count(n, k) : lr_bf16_packed_count(n, k)
        packed = .allocate(capacity: max(1, Int(count)))
        if kernel == .amx { lr_amx_pack_w(bits, n, k, packed) } else { lr_bf16_pack_w(bits, n, k, packed) }
    }

    deinit { packed.deallocate() }
}

public enum BF16 {
    /// y (m×n) = x (m×k) · Wᵀ, or y += it, with x rounded to bfloat16 and sums in fp32; W's columns (or, for a
    /// narrow W, the rows of x) are split across the engine's threads.
    public static func linear(_ x: UnsafePointer<Float>, m: Int, w: PackedBF16Matrix, y: UnsafeMutablePointer<Float>,
                              accumulate: Bool = false) {
        let k = w.cols, n = w.rows, kp = w.kernel.paddedK(k), rowsA = w.kernel.paddedM(m)
        let a = UnsafeMutablePointer<UInt16>.allocate(capacity: max(1, rowsA * kp))
        defer { a.deallocate() }
        Engine.parallelRanges(m, grain: 64) { r in
            lr_bf16_convert_rows(x + r.lowerBound * k, Int64(r.count), Int64(k), Int64(kp), a + r.lowerBound * kp)
        }
        (a + m * kp).initialize(repeating: 0, count: (rowsA - m) * kp)
        let width = Int(LR_BF16_PANEL)
        let panels = (n + width - 1) / width
        let rowBlock = w.kernel == .amx ? 32 : 8
        let split = panels >= 2 * Engine.threads || m < 2 * rowBlock
        let grain = max(1, 4_000_000 / max(1, 2 * rowsA * kp * width))
        if split {
            Engine.parallelRanges(panels, grain: grain) { r in
                run(w.kernel, a, m, kp, w, n0: r.lowerBound * width, n1: min(n, r.upperBound * width), y, n,
                    accumulate)
            }
        } else {
            Engine.parallelRanges((m + rowBlock - 1) / rowBlock) { r in
                let lo = r.lowerBound * rowBlock, hi = min(m, r.upperBound * rowBlock)
                run(w.kernel, a + lo * kp, hi - lo, kp, w, n0: 0, n1: n, y + lo * n, n, accumulate)
            }
        }
    }

    private static func run(_ kernel: BF16Kernel, _ a: UnsafePointer<UInt16>, _ m: Int, _ kp: Int,
                            _ w: PackedBF16Matrix, n0: Int, n1: Int, _ y: UnsafeMutablePointer<Float>, _ ldc: Int,
                            _ accumulate: Bool) {
        let args = (Int64(m), Int64(kp), Int64(w.rows), Int64(n0), Int64(n1), Int64(ldc), Int32(accumulate ? 1 : 0))
        switch kernel {
        case .amx: lr_amx_gemm_nt(a, args.0, args.1, w.packed, args.2, args.3, args.4, y, args.5, args.6)
        case .avx512: lr_bf16_gemm_nt(a, args.0, args.1, w.packed, args.2, args.3, args.4, y, args.5, args.6)
        }
    }

    /// One thread's ceiling for `kernel`: the FLOP of `iters` rounds of its peak loop, and a checksum that keeps
    /// the work (benchmarks' MFU).
    public static func peakKernel(_ kernel: BF16Kernel, iters: Int) -> (flop: Double, checksum: Float) {
        switch kernel {
        case .amx: return (32768 * Double(iters), lr_amx_peak(Int64(iters)))
        case .avx512: return (1024 * Double(iters), lr_bf16_peak(Int64(iters)))
        }
    }
}
