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

/// A frozen weight matrix (n×k, a linear layer's W) stored as bfloat16, packed once for one kernel: the bf16
/// mode keeps only this copy, and the same packing serves y = x·Wᵀ and dx = dy·W.
public final class PackedBF16Matrix: @unchecked Sendable {
    /// n: output features.
    public let rows: Int
    /// k: input features.
    public let cols: Int
    public let kernel: BF16Kernel
    let packed: UnsafeMutablePointer<UInt16>

    /// Packs `w` (rows × cols) rounded to bfloat16 (nearest even, as torch's `.to(torch.bfloat16)`).
    public convenience init(_ w: Tensor, kernel: BF16Kernel) {
        let bits = UnsafeMutablePointer<UInt16>.allocate(capacity: max(1, w.count))
        defer { bits.deallocate() }
        for i in 0..<w.count { bits[i] = bfloat16Bits(w.ptr[i]) }
        self.init(bits: bits, rows: w.shape[0], cols: w.count / max(1, w.shape[0]), kernel: kernel)
    }

    /// Packs `rows × cols` floats (row-major) rounded to bfloat16 as activations are (`lr_bf16_convert_rows`,
    /// vectorized; subnormals become zero): LoRA's factors, packed again at every forward in bf16 mode.
    public convenience init(_ values: UnsafePointer<Float>, rows: Int, cols: Int, kernel: BF16Kernel) {
        let bits = UnsafeMutablePointer<UInt16>.allocate(capacity: max(1, rows * cols))
        defer { bits.deallocate() }
        lr_bf16_convert_rows(values, Int64(rows), Int64(cols), Int64(cols), bits)
        self.init(bits: bits, rows: rows, cols: cols, kernel: kernel)
    }

    /// Packs `rows × cols` bfloat16 bit patterns (row-major) as they are: a bf16 checkpoint is never widened.
    public init(bits: UnsafePointer<UInt16>, rows: Int, cols: Int, kernel: BF16Kernel) {
        self.rows = rows
        self.cols = cols
        self.kernel = kernel
        let n = Int64(rows), k = Int64(cols)
        let count = kernel == .amx ? lr_amx_packed_count(n, k) : lr_bf16_packed_count(n, k)
        let packed = UnsafeMutablePointer<UInt16>.allocate(capacity: max(1, Int(count)))
        self.packed = packed
        // panels of 32 rows pack independently: threads take ranges of them
        let width = Int(LR_BF16_PANEL), kp = kernel.paddedK(cols)
        Engine.parallelRanges((rows + width - 1) / width, grain: max(1, (1 << 16) / max(1, width * kp))) { r in
            let r0 = r.lowerBound * width, r1 = min(rows, r.upperBound * width)
            let src = bits + r0 * cols, dst = packed + r0 * kp, n = Int64(r1 - r0)
            if kernel == .amx { lr_amx_pack_w(src, n, k, dst) } else { lr_bf16_pack_w(src, n, k, dst) }
        }
    }

    deinit { packed.deallocate() }

    /// Bytes the packing holds.
    public var bytes: Int {
        let n = Int64(rows), k = Int64(cols)
        return 2 * Int(kernel == .amx ? lr_amx_packed_count(n, k) : lr_bf16_packed_count(n, k))
    }

    /// W[r][j] as a float (exact: every bfloat16 is a float).
    public subscript(_ r: Int, _ j: Int) -> Float {
        let kp = Int64(kernel.paddedK(cols))
        let i = kernel == .amx ? lr_amx_index(Int64(r), Int64(j), kp) : lr_bf16_index(Int64(r), Int64(j), kp)
        return Float(bitPattern: UInt32(packed[Int(i)]) << 16)
    }

    /// W as a float32 tensor (rows × cols): for exports, which write the weights the model computes with.
    public func unpacked() -> Tensor {
        let bits = UnsafeMutablePointer<UInt16>.allocate(capacity: max(1, rows * cols))
        defer { bits.deallocate() }
        let n = Int64(rows), k = Int64(cols)
        if kernel == .amx { lr_amx_unpack_w(packed, n, k, bits) } else { lr_bf16_unpack_w(packed, n, k, bits) }
        let w = Tensor(uninitialized: [rows, cols])
        for i in 0..<(rows * cols) { w.ptr[i] = Float(bitPattern: UInt32(bits[i]) << 16) }
        return w
    }
}

/// An activation's rows rounded to bfloat16 and padded for a kernel (k to its multiple, rows to its row block, the
/// padding zero): converted once, then read by every GEMM that multiplies them (a layer's weight and its LoRA A;
/// q, k and v of one input; the input gradient and LoRA's dy·B).
public final class BF16Rows {
    public let kernel: BF16Kernel
    /// Rows and columns of the fp32 matrix.
    public let m: Int, k: Int
    /// The row stride, k padded for the kernel.
    let kp: Int
    let bits: UnsafeMutablePointer<UInt16>

    public init(_ x: UnsafePointer<Float>, m: Int, k: Int, kernel: BF16Kernel) {
        self.kernel = kernel
        self.m = m
        self.k = k
        let kp = kernel.paddedK(k), rows = kernel.paddedM(m)
        self.kp = kp
        let bits = UnsafeMutablePointer<UInt16>.allocate(capacity: max(1, rows * kp))
        self.bits = bits
        Engine.parallelRanges(m, grain: 64) { r in
            lr_bf16_convert_rows(x + r.lowerBound * k, Int64(r.count), Int64(k), Int64(kp), bits + r.lowerBound * kp)
        }
        (bits + m * kp).initialize(repeating: 0, count: (rows - m) * kp)
    }

    deinit { bits.deallocate() }
}

public enum BF16 {
    /// y (m×n) = x (m×k) · Wᵀ, or y += it, with x rounded to bfloat16 and sums in fp32; W's columns (or, for a
    /// narrow W, the rows of x) are split across the engine's threads.
    public static func linear(_ x: UnsafePointer<Float>, m: Int, w: PackedBF16Matrix, y: UnsafeMutablePointer<Float>,
                              accumulate: Bool = false) {
        linear(BF16Rows(x, m: m, k: w.cols, kernel: w.kernel), w: w, y: y, accumulate: accumulate)
    }

    /// As `linear`, on rows already converted (for W's kernel, k = W's columns).
    public static func linear(_ x: BF16Rows, w: PackedBF16Matrix, y: UnsafeMutablePointer<Float>,
                              accumulate: Bool = false) {
        precondition(x.k == w.cols && x.kernel == w.kernel, "rows converted for another GEMM")
        multiply(x, w, transposed: false, into: y, accumulate: accumulate)
    }

    /// dx (m×k) += dy (m×n) · W: a linear layer's input gradient, on the forward's packing.
    public static func inputGradient(_ dy: UnsafePointer<Float>, m: Int, w: PackedBF16Matrix,
                                     dx: UnsafeMutablePointer<Float>) {
        inputGradient(BF16Rows(dy, m: m, k: w.rows, kernel: w.kernel), w: w, dx: dx)
    }

    /// As `inputGradient`, on dy already converted (k = W's rows).
    public static func inputGradient(_ dy: BF16Rows, w: PackedBF16Matrix, dx: UnsafeMutablePointer<Float>) {
        precondition(dy.k == w.rows && dy.kernel == w.kernel, "rows converted for another GEMM")
        multiply(dy, w, transposed: true, into: dx, accumulate: true)
    }

    /// c (m × outs) (+)= a · (transposed ? W : Wᵀ).
    private static func multiply(_ a: BF16Rows, _ w: PackedBF16Matrix, transposed: Bool,
                                 into c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        let m = a.m, kp = a.kp, rowsA = w.kernel.paddedM(m), outs = transposed ? w.cols : w.rows
        let width = Int(LR_BF16_PANEL)
        let panels = (outs + width - 1) / width
        let rowBlock = w.kernel == .amx ? 32 : 8
        let split = panels >= 2 * Engine.usableThreads || m < 2 * rowBlock
        let grain = max(1, 4_000_000 / max(1, 2 * rowsA * kp * width))
        let gemm = Kernel(w: w, kp: kp, transposed: transposed, accumulate: accumulate)
        let bits = UnsafePointer(a.bits)
        if split {
            Engine.parallelRanges(panels, grain: grain) { r in
                gemm.run(bits, m, columns: r.lowerBound * width..<min(outs, r.upperBound * width), c, ldc: outs)
            }
        } else {
            Engine.parallelRanges((m + rowBlock - 1) / rowBlock) { r in
                let lo = r.lowerBound * rowBlock, hi = min(m, r.upperBound * rowBlock)
                gemm.run(bits + lo * kp, hi - lo, columns: 0..<outs, c + lo * outs, ldc: outs)
            }
        }
    }

    /// One call of a C kernel over a range of C's columns.
    private struct Kernel {
        let w: PackedBF16Matrix, kp: Int, transposed: Bool, accumulate: Bool

        func run(_ a: UnsafePointer<UInt16>, _ m: Int, columns: Range<Int>, _ c: UnsafeMutablePointer<Float>,
                 ldc: Int) {
            let (mm, kp, n, k) = (Int64(m), Int64(kp), Int64(w.rows), Int64(w.cols))
            let (j0, j1, ld, acc) = (Int64(columns.lowerBound), Int64(columns.upperBound), Int64(ldc),
                                     Int32(accumulate ? 1 : 0))
            switch (w.kernel, transposed) {
            case (.amx, false): lr_amx_gemm_nt(a, mm, kp, w.packed, n, j0, j1, c, ld, acc)
            case (.amx, true): lr_amx_gemm_nn(a, mm, kp, w.packed, n, k, j0, j1, c, ld, acc)
            case (.avx512, false): lr_bf16_gemm_nt(a, mm, kp, w.packed, n, j0, j1, c, ld, acc)
            case (.avx512, true): lr_bf16_gemm_nn(a, mm, kp, w.packed, n, k, j0, j1, c, ld, acc)
            }
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
