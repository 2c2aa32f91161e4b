/// The low-rank adapter folded into its layer's weight: y = x·(W + B·diag(σ)·A)ᵀ.
///
/// The factored form (`LowRank`) costs the base's two products (forward, input gradient) plus six thin ones
/// through the rank: 2·n·in·out + 3·n·R·(in + out) multiply-adds for n rows. Folded, forward builds
/// W' = W + ΔW once (R·in·out) and backward reads every parameter gradient off the weight's gradient
/// G = dyᵀ·x: dA = diag(σ)·Bᵀ·G, dB = G·Aᵀ·diag(σ), dσ_j = Σ_i (Bᵀ·G)[j, i]·A[j, i],
/// for 3·n·in·out + 3·R·in·out in all. When the rank is large against the layer (R = 64 on a 64-wide model)
/// that is about half the work in two fewer GEMM calls; at real widths the factored form is cheaper, and `pays`
/// keeps it.
/// The same products, summed in another order: the two forms agree to rounding.
public enum FoldedLowRank {
    /// An adapter as a change of its layer's weight: ΔW = B·diag(σ)·A, A (R, in), B (out, R).
    public struct Factors {
        public let a: Tensor, b: Tensor
        public let scale: [Float]

        var rank: Int { a.shape[0] }
        var inFeatures: Int { a.shape[1] }
        var outFeatures: Int { b.shape[0] }
    }

    /// A forward that folded the adapter in, kept for its backward.
    struct Saved {
        let n: Int
        /// W + ΔW
        let weight: Tensor
        let factors: Factors
    }

    /// Whether folding costs fewer multiply-adds than the factored form, for a forward and backward on n rows.
    static func pays(n: Int, _ f: Factors) -> Bool {
        let area = f.inFeatures * f.outFeatures
        return n * area + 3 * f.rank * area < 3 * n * f.rank * (f.inFeatures + f.outFeatures)
    }

    /// W + B·diag(σ)·A, a new (out, in) tensor.
    static func weight(_ w: Tensor, _ f: Factors) -> Tensor {
        let folded = w.copy()
        let uniform = LowRank.uniform(f.scale, f.rank)
        let scaledA = uniform == nil ? LowRank.scaleRows(f.a.ptr, f.scale, rows: f.rank, cols: f.inFeatures) : nil
        defer { scaledA?.deallocate() }
        gemm(false, false, m: f.outFeatures, n: f.inFeatures, k: f.rank, scale: uniform ?? 1, a: f.b.ptr,
             b: scaledA ?? f.a.ptr, beta: 1, c: folded.ptr)
        return folded
    }

    /// Accumulates dA, dB and dσ (each when given) from dy (n, out) and x (n, in), through G = dyᵀ·x.
    static func backward(_ f: Factors, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, n: Int,
                         dA: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
                         dScale: UnsafeMutablePointer<Float>?) {
        guard dA != nil || dB != nil || dScale != nil else { return }
        let rank = f.rank, inF = f.inFeatures, outF = f.outFeatures
        let g = Tensor(uninitialized: [outF, inF])
        gemm(true, false, m: outF, n: inF, k: n, a: dy, b: x, c: g.ptr)
        let uniform = LowRank.uniform(f.scale, rank)
        if let dB {  // dB += G·(diag(σ)·A)ᵀ
            let scaledA = uniform == nil ? LowRank.scaleRows(f.a.ptr, f.scale, rows: rank, cols: inF) : nil
            defer { scaledA?.deallocate() }
            gemm(false, true, m: outF, n: rank, k: inF, scale: uniform ?? 1, a: g.ptr,
                 b: scaledA ?? f.a.ptr, beta: 1, c: dB)
        }
        guard dA != nil || dScale != nil else { return }
        if let dA, dScale == nil, let s = uniform {  // dA += s·Bᵀ·G
            gemm(true, false, m: rank, n: inF, k: outF, scale: s, a: f.b.ptr, b: g.ptr, beta: 1, c: dA)
            return
        }
        let t = Tensor(uninitialized: [rank, inF])  // Bᵀ·G
        gemm(true, false, m: rank, n: inF, k: outF, a: f.b.ptr, b: g.ptr, c: t.ptr)
        for j in 0..<rank {
            let row = t.ptr + j * inF
            if let dA { axpy(f.scale[j], row, dA + j * inF, inF) }
            if let dScale { dScale[j] += dot(row, f.a.ptr + j * inF, inF) }
        }
    }
}
