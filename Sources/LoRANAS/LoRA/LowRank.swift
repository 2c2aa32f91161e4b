/// y += (x·Aᵀ ⊙ σ)·Bᵀ: the one kernel behind LoRA and the supernet.
///
/// A is (R, in), B is (out, R), σ is a per-component scale (R). Plain LoRA has σ = lora_alpha/r
/// everywhere, and the scale rides on a GEMM's alpha. The supernet folds its softmax-weighted mix
/// of rank slices into σ, applied to A's rows (R·in work, not n·R), so it costs the same GEMMs as
/// LoRA at rank R however many rank choices it has.
///
/// In bf16 mode (x converted for a kernel) the four GEMMs on the activations' side (x·Aᵀ, u·Bᵀ, dy·B, g·A)
/// run on the bf16 GEMM with fp32 sums, as torch's autocast runs LoRA's matmuls; A and B are packed once per
/// forward (they stay fp32 parameters), and the two weight-gradient GEMMs (gᵀ·x, dyᵀ·u) stay fp32.
enum LowRank {
    /// A (or diag(σ)·A) and B packed for the bf16 GEMM by forward, for backward.
    struct PackedFactors {
        let a, b: PackedBF16Matrix
    }

    /// Saves u (n, R) for backward: x·Aᵀ when σ is uniform, x·(diag(σ)·A)ᵀ = (x·Aᵀ) ⊙ σ otherwise.
    /// In bf16 mode, returns the packed factors backward needs.
    static func forward(
        y: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
        a: UnsafePointer<Float>, b: UnsafePointer<Float>, scale: UnsafePointer<Float>,
        n: Int, inFeatures: Int, outFeatures: Int, rank: Int, bf16X: BF16Rows? = nil
    ) -> PackedFactors? {
        if let bf16X {
            return forwardBF16(y: y, u: u, x: bf16X, a: a, b: b, scale: scale, n: n, inFeatures: inFeatures,
                               outFeatures: outFeatures, rank: rank)
        }
        if let s = uniform(scale, rank) {
            gemm(false, true, m: n, n: rank, k: inFeatures, a: x, b: a, c: u)
            gemm(false, true, m: n, n: outFeatures, k: rank, scale: s, a: u, b: b, beta: 1, c: y)
            return nil
        }
        let scaledA = scaleRows(a, scale, rows: rank, cols: inFeatures)
        defer { scaledA.deallocate() }
        gemm(false, true, m: n, n: rank, k: inFeatures, a: x, b: scaledA, c: u)
        gemm(false, true, m: n, n: outFeatures, k: rank, a: u, b: b, beta: 1, c: y)
        return nil
    }

    private static func forwardBF16(
        y: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>, x: BF16Rows,
        a: UnsafePointer<Float>, b: UnsafePointer<Float>, scale: UnsafePointer<Float>,
        n: Int, inFeatures: Int, outFeatures: Int, rank: Int
    ) -> PackedFactors {
        let s = uniform(scale, rank), kernel = x.kernel
        let scaledA = s == nil ? scaleRows(a, scale, rows: rank, cols: inFeatures) : nil
        defer { scaledA?.deallocate() }
        let packed = PackedFactors(
            a: PackedBF16Matrix(scaledA.map { UnsafePointer($0) } ?? a, rows: rank, cols: inFeatures, kernel: kernel),
            b: PackedBF16Matrix(b, rows: outFeatures, cols: rank, kernel: kernel))
        BF16.linear(x, w: packed.a, y: u)
        guard let s else {
            BF16.linear(u, m: n, w: packed.b, y: y, accumulate: true)
            return packed
        }
        let su = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n * rank))
        defer { su.deallocate() }
        for i in 0..<(n * rank) { su[i] = s * u[i] }
        BF16.linear(su, m: n, w: packed.b, y: y, accumulate: true)
        return packed
    }

    /// Accumulates dA, dB (when given), dσ (when given: dσ_j = Σ_n (dy·B)[n, j]·(x·Aᵀ)[n, j]) and dx.
    static func backward(
        dx: UnsafeMutablePointer<Float>?, dA: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
        dScale: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
        u: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, scale: UnsafePointer<Float>,
        n: Int, inFeatures: Int, outFeatures: Int, rank: Int, packed: PackedFactors? = nil, bf16DY: BF16Rows? = nil
    ) {
        let g = UnsafeMutablePointer<Float>.allocate(capacity: max(1, n * rank))
        defer { g.deallocate() }
        if let packed {  // g = dy·B (n, R)
            g.initialize(repeating: 0, count: n * rank)
            let dyRows = bf16DY ?? BF16Rows(dy, m: n, k: outFeatures, kernel: packed.b.kernel)
            BF16.inputGradient(dyRows, w: packed.b, dx: g)
        } else {
            gemm(false, false, m: n, n: rank, k: outFeatures, a: dy, b: b, c: g)
        }
        let s = uniform(scale, rank)
        // dB += dyᵀ·(u ⊙ σ)
        if let dB { gemm(true, false, m: outFeatures, n: rank, k: n, scale: s ?? 1, a: dy, b: u, beta: 1, c: dB) }
        if let dScale {
            for j in 0..<rank {
                var acc = 0.0
                for i in 0..<n { acc += Double(g[i * rank + j]) * Double(u[i * rank + j]) }
                // u holds (x·Aᵀ) ⊙ σ unless σ is uniform; a zero σ_j only meets a zero c_j, whose α term vanishes.
                dScale[j] += s != nil ? Float(acc) : (scale[j] == 0 ? 0 : Float(acc / Double(scale[j])))
            }
        }
        if let s {
            // dA += s·gᵀ·x and dx += s·g·A
            if let dA { gemm(true, false, m: rank, n: inFeatures, k: n, scale: s, a: g, b: x, beta: 1, c: dA) }
            guard let dx else { return }
            if let packed {
                for i in 0..<(n * rank) { g[i] *= s }
                BF16.inputGradient(g, m: n, w: packed.a, dx: dx)
            } else {
                gemm(false, false, m: n, n: inFeatures, k: rank, scale: s, a: g, b: a, beta: 1, c: dx)
            }
            return
        }
        if let dx, let packed {  // dx += g·diag(σ)·A, packed by forward
            BF16.inputGradient(g, m: n, w: packed.a, dx: dx)
        } else if let dx {
            let scaledA = scaleRows(a, scale, rows: rank, cols: inFeatures)
            defer { scaledA.deallocate() }
            gemm(false, false, m: n, n: inFeatures, k: rank, a: g, b: scaledA, beta: 1, c: dx)
        }
        if let dA {  // dA += diag(σ)·gᵀ·x
            let t = UnsafeMutablePointer<Float>.allocate(capacity: rank * inFeatures)
            defer { t.deallocate() }
            gemm(true, false, m: rank, n: inFeatures, k: n, a: g, b: x, c: t)
            for j in 0..<rank { axpy(scale[j], t + j * inFeatures, dA + j * inFeatures, inFeatures) }
        }
    }

    /// σ's common value when every component has the same scale (plain LoRA, one-choice supernet).
    @inline(__always)
    static func uniform(_ scale: UnsafePointer<Float>, _ r: Int) -> Float? {
        for j in 1..<max(r, 1) where scale[j] != scale[0] { return nil }
        return scale[0]
    }

    /// diag(σ)·A, a new (rows, cols) buffer the caller deallocates.
    static func scaleRows(_ a: UnsafePointer<Float>, _ s: UnsafePointer<Float>, rows: Int, cols: Int)
        -> UnsafeMutablePointer<Float>
    {
        let out = UnsafeMutablePointer<Float>.allocate(capacity: rows * cols)
        for j in 0..<rows {
            let v = F16x(repeating: s[j]), src = a + j * cols, dst = out + j * cols
            forEachChunk(cols, simd: { i in store(load(src, i) * v, dst, i) }, scalar: { i in dst[i] = src[i] * s[j] })
        }
        return out
    }
}

/// A trainable tensor and its gradient, under a stable name (used by optimizers and checkpoints).
public final class TrainableTensor: @unchecked Sendable {
    public let name: String
    public let value: Tensor
    public let grad: Tensor
    public init(name: String, value: Tensor) {
        self.name = name
        self.value = value
        grad = Tensor(zeros: value.shape)
    }
    /// A parameter whose gradient lives elsewhere (the model's full-parameter gradient set).
    public init(name: String, value: Tensor, grad: Tensor) {
        self.name = name
        self.value = value
        self.grad = grad
    }

    /// The same value tensor (shared, not copied) with a zero gradient of its own: a thread part's copy.
    func sharingValue() -> TrainableTensor {
        TrainableTensor(name: name, value: value)
    }
}
