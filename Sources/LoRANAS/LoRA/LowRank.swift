/// y += (x·Aᵀ ⊙ σ)·Bᵀ: the one kernel behind LoRA and the supernet.
///
/// A is (R, in), B is (out, R), σ is a per-component scale (R). Plain LoRA has σ = lora_alpha/r
/// everywhere; the supernet folds its softmax-weighted mix of rank slices into σ, so it costs the
/// same two GEMMs however many rank choices it has.
enum LowRank {
    /// u (n, R) = x·Aᵀ, unscaled (backward reads it); y += (u ⊙ σ)·Bᵀ.
    static func forward(y: UnsafeMutablePointer<Float>, u: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                        a: UnsafePointer<Float>, b: UnsafePointer<Float>, scale: UnsafePointer<Float>,
                        n: Int, inFeatures: Int, outFeatures: Int, rank: Int) {
        gemm(false, true, m: n, n: rank, k: inFeatures, a: x, b: a, c: u)
        if let s = uniform(scale, rank) {   // plain LoRA: the scale rides on the GEMM
            gemm(false, true, m: n, n: outFeatures, k: rank, alpha: s, a: u, b: b, beta: 1, c: y)
            return
        }
        let t = UnsafeMutablePointer<Float>.allocate(capacity: n * rank)
        defer { t.deallocate() }
        scaleColumns(t, u, scale, n: n, r: rank)
        gemm(false, true, m: n, n: outFeatures, k: rank, a: t, b: b, beta: 1, c: y)
    }

    /// Accumulates dA, dB (when given), dσ (when given: dσ_j = Σ_n (dy·B)[n, j]·u[n, j]) and dx.
    static func backward(dx: UnsafeMutablePointer<Float>?, dA: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
                         dScale: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                         u: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>, scale: UnsafePointer<Float>,
                         n: Int, inFeatures: Int, outFeatures: Int, rank: Int) {
        let g = UnsafeMutablePointer<Float>.allocate(capacity: n * rank)
        defer { g.deallocate() }
        gemm(false, false, m: n, n: rank, k: outFeatures, a: dy, b: b, c: g)       // g = dy·B (n, R)
        let s = uniform(scale, rank)
        if let dB, let s {
            gemm(true, false, m: outFeatures, n: rank, k: n, alpha: s, a: dy, b: u, beta: 1, c: dB)   // dB += s·dyᵀ·u
        } else if let dB {
            let t = UnsafeMutablePointer<Float>.allocate(capacity: n * rank)
            defer { t.deallocate() }
            scaleColumns(t, u, scale, n: n, r: rank)
            gemm(true, false, m: outFeatures, n: rank, k: n, a: dy, b: t, beta: 1, c: dB)   // dB += dyᵀ·(u ⊙ σ)
        }
        if let dScale {
            for j in 0..<rank {
                var s = 0.0
                for i in 0..<n { s += Double(g[i * rank + j]) * Double(u[i * rank + j]) }
                dScale[j] += Float(s)
            }
        }
        if s == nil { scaleColumns(g, g, scale, n: n, r: rank) }                    // du = g ⊙ σ (or s·g below)
        if let dA { gemm(true, false, m: rank, n: inFeatures, k: n, alpha: s ?? 1, a: g, b: x, beta: 1, c: dA) }     // dA += duᵀ·x
        if let dx { gemm(false, false, m: n, n: inFeatures, k: rank, alpha: s ?? 1, a: g, b: a, beta: 1, c: dx) }    // dx += du·A
    }

    /// σ's common value when every component has the same scale (plain LoRA, one-choice supernet).
    @inline(__always)
    static func uniform(_ scale: UnsafePointer<Float>, _ r: Int) -> Float? {
        for j in 1..<max(r, 1) where scale[j] != scale[0] { return nil }
        return scale[0]
    }

    @inline(__always)
    static func scaleColumns(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ s: UnsafePointer<Float>, n: Int, r: Int) {
        for i in 0..<n { for j in 0..<r { out[i * r + j] = x[i * r + j] * s[j] } }
    }
}

/// A trainable tensor and its gradient, under a stable name (used by optimizers and checkpoints).
public final class TrainableTensor: @unchecked Sendable {
    public let name: String
    public let value: Tensor
    public let grad: Tensor
    public init(name: String, value: Tensor) {
        self.name = name; self.value = value; grad = Tensor(zeros: value.shape)
    }
}
