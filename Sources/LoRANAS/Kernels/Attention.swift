import Foundation

/// Which (query, key) pairs may attend. Byte arrays hold 1 for "yes" (or "invalid" for `.outer`).
public enum AttentionMask: @unchecked Sendable {
    /// Every key is visible.
    case none
    /// Causal, and key k of sample b is visible only if `keyValid[b·Sk + k] != 0` (nil: all valid).
    case causal(keyValid: UnsafePointer<UInt8>?)
    /// Mllama's vision mask: (q, k) is masked only when both q and k are invalid; `invalid` is (B, S).
    case outer(invalid: UnsafePointer<UInt8>)
    /// A full (B, Sq, Sk) table of allowed pairs.
    case dense(allowed: UnsafePointer<UInt8>)

    @inline(__always)
    func allowed(_ b: Int, _ q: Int, _ k: Int, sq: Int, sk: Int) -> Bool {
        switch self {
        case .none: return true
        case .causal(let valid): return k <= q && (valid == nil || valid![b * sk + k] != 0)
        case .outer(let invalid): return invalid[b * sk + q] == 0 || invalid[b * sk + k] == 0
        case .dense(let allowed): return allowed[(b * sq + q) * sk + k] != 0
        }
    }
}

/// Multi-head scaled dot-product attention with grouped-query heads.
///
/// q is (B, Sq, nh·hd), k and v are (B, Sk, nkv·hd): the layouts the projections produce, so no
/// transposes are needed. Query head h reads kv head h / (nh/nkv). out is (B, Sq, nh·hd).
/// A query row with no visible key outputs zeros and passes no gradient (PyTorch SDPA's behaviour).
/// Forward caches the per-row log-sum-exp `lse` (B, nh, Sq), and the probabilities themselves only
/// when they are small (`probsBuffer`); otherwise backward recomputes them from q and k, so memory
/// grows with S, not S².
public enum Attention {
    public struct Dims: Sendable {
        public var b, sq, sk, nh, nkv, hd: Int
        public init(b: Int, sq: Int, sk: Int, nh: Int, nkv: Int, hd: Int) {
            self.b = b
            self.sq = sq
            self.sk = sk
            self.nh = nh
            self.nkv = nkv
            self.hd = hd
        }
        var scale: Float { 1 / Float(hd).squareRoot() }
    }

    /// Probability tables up to this many floats per call are kept for backward (`probsBuffer`);
    /// larger ones are recomputed from q, k and the log-sum-exp, so memory stays O(S) at scale.
    public static let keptProbabilityLimit = 1 << 22

    /// A (B, nh, Sq, Sk) buffer for the probabilities when they are small enough to keep, else nil.
    public static func probsBuffer(_ d: Dims) -> Tensor? {
        d.b * d.nh * d.sq * d.sk <= keptProbabilityLimit ? Tensor(uninitialized: [d.b, d.nh, d.sq, d.sk]) : nil
    }

    /// `probs`, when given, receives the probabilities (B, nh, Sq, Sk) for backward to reuse.
    public static func forward(out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                               q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                               mask: AttentionMask, _ d: Dims, probs: UnsafeMutablePointer<Float>? = nil) {
        let qs = d.nh * d.hd, ks = d.nkv * d.hd, g = d.nh / d.nkv
        // One task per (sample, head), handed out dynamically so uneven rows balance.
        Engine.parallelFor(d.b * d.nh) { task in
            let scratch = probs == nil ? UnsafeMutablePointer<Float>.allocate(capacity: d.sq * d.sk) : nil
            defer { scratch?.deallocate() }
            let p = scratch ?? probs! + task * d.sq * d.sk
            do {
                let b = task / d.nh, h = task % d.nh, kv = h / g
                let mask = mask.forSample(b, sk: d.sk)
                let qh = q + b * d.sq * qs + h * d.hd
                let kh = k + b * d.sk * ks + kv * d.hd, vh = v + b * d.sk * ks + kv * d.hd
                gemm(false, true, m: d.sq, n: d.sk, k: d.hd, scale: d.scale, a: qh, lda: qs, b: kh, ldb: ks,
                     c: p, threaded: false)
                for i in 0..<d.sq {
                    lse[(b * d.nh + h) * d.sq + i] = maskedSoftmaxRow(p + i * d.sk, b: b, q: i, mask: mask, d)
                }
                gemm(false, false, m: d.sq, n: d.hd, k: d.sk, a: p, b: vh, ldb: ks,
                     c: out + b * d.sq * qs + h * d.hd, ldc: qs, threaded: false)
            }
        }
    }

    /// Accumulates dq (B, Sq, nh·hd), dk and dv (B, Sk, nkv·hd) from dout.
    public static func backward(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                                dv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                lse: UnsafePointer<Float>, mask: AttentionMask, _ d: Dims,
                                probs: UnsafePointer<Float>? = nil) {
        let qs = d.nh * d.hd, ks = d.nkv * d.hd, g = d.nh / d.nkv, scale = d.scale
        // One task per (sample, kv head): the g query heads that share a kv head write to the same dk, dv.
        Engine.parallelFor(d.b * d.nkv) { task in
            let scratch = probs == nil ? UnsafeMutablePointer<Float>.allocate(capacity: d.sq * d.sk) : nil
            let dp = UnsafeMutablePointer<Float>.allocate(capacity: d.sq * d.sk)
            defer {
                scratch?.deallocate()
                dp.deallocate()
            }
            do {
                let b = task / d.nkv, kv = task % d.nkv
                let mask = mask.forSample(b, sk: d.sk)
                let kh = k + b * d.sk * ks + kv * d.hd, vh = v + b * d.sk * ks + kv * d.hd
                let dkh = dk + b * d.sk * ks + kv * d.hd, dvh = dv + b * d.sk * ks + kv * d.hd
                for h in (kv * g)..<((kv + 1) * g) {
                    let qh = q + b * d.sq * qs + h * d.hd, dqh = dq + b * d.sq * qs + h * d.hd
                    let doh = dout + b * d.sq * qs + h * d.hd
                    let p: UnsafeMutablePointer<Float>
                    if let probs {
                        p = UnsafeMutablePointer(mutating: probs + (b * d.nh + h) * d.sq * d.sk)
                    } else {
                        p = scratch!
                        gemm(false, true, m: d.sq, n: d.sk, k: d.hd, scale: d.scale, a: qh, lda: qs, b: kh, ldb: ks,
                             c: p, threaded: false)
                        for i in 0..<d.sq {
                            let row = p + i * d.sk
                            mask.apply(row, b: b, q: i, sq: d.sq, sk: d.sk)
                            expShifted(row, d.sk, shift: lse[(b * d.nh + h) * d.sq + i])
                        }
                    }
                    // dv += Pᵀ·do ; dP = do·vᵀ
                    gemm(true, false, m: d.sk, n: d.hd, k: d.sq, a: p, b: doh, ldb: qs, beta: 1, c: dvh, ldc: ks,
                         threaded: false)
                    gemm(false, true, m: d.sq, n: d.sk, k: d.hd, a: doh, lda: qs, b: vh, ldb: ks, c: dp,
                         threaded: false)
                    // dS = P ⊙ (dP − Σ dP⊙P), scaled
                    for i in 0..<d.sq { scoreGradientRow(dp + i * d.sk, p: p + i * d.sk, n: d.sk, scale: scale) }
                    gemm(false, false, m: d.sq, n: d.hd, k: d.sk, a: dp, b: kh, ldb: ks, beta: 1, c: dqh, ldc: qs,
                         threaded: false)
                    gemm(true, false, m: d.sk, n: d.hd, k: d.sq, a: dp, b: qh, ldb: qs, beta: 1, c: dkh, ldc: ks,
                         threaded: false)
                }
            }
        }
    }

    /// dS = P ⊙ (dP − Σ dP⊙P) · scale for one row, in place over dP.
    @inline(__always)
    static func scoreGradientRow(_ dp: UnsafeMutablePointer<Float>, p: UnsafePointer<Float>, n: Int, scale: Float) {
        let s = dot(p, dp, n)
        let sv = F16x(repeating: s), scalev = F16x(repeating: scale)
        forEachChunk(n, simd: { j in store(load(p, j) * (load(dp, j) - sv) * scalev, dp, j) },
                     scalar: { j in dp[j] = p[j] * (dp[j] - s) * scale })
    }

    /// Softmax of one row of scaled scores in place under the mask; returns its log-sum-exp,
    /// or +∞ for a row with no visible key (which becomes all zeros).
    @inline(__always)
    static func maskedSoftmaxRow(_ row: UnsafeMutablePointer<Float>, b: Int, q: Int, mask: AttentionMask,
                                 _ d: Dims) -> Float {
        mask.apply(row, b: b, q: q, sq: d.sq, sk: d.sk)
        let n = mask.keyEnd(q: q, sk: d.sk)
        let m = rowMax(row, n)
        if m == -.infinity {
            row.update(repeating: 0, count: d.sk)
            return .infinity
        }
        let s = expShifted(row, n, shift: m)
        let inv = F16x(repeating: 1 / s)
        forEachChunk(n, simd: { j in store(load(row, j) * inv, row, j) }, scalar: { j in row[j] *= inv[0] })
        (row + n).update(repeating: 0, count: d.sk - n)
        return m + logf(s)
    }

    @inline(__always)
    static func rowMax(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = F16x(repeating: -.infinity)
        var j = 0
        while j + 16 <= n {
            acc = vmax(acc, load(x, j))
            j += 16
        }
        var m = acc.max()
        while j < n {
            m = max(m, x[j])
            j += 1
        }
        return m
    }

    /// x ← exp(x − shift), with −∞ entries (masked keys) exactly 0; returns Σ x.
    @inline(__always) @discardableResult
    static func expShifted(_ x: UnsafeMutablePointer<Float>, _ n: Int, shift: Float) -> Float {
        let sh = F16x(repeating: shift), ninf = F16x(repeating: -.infinity)
        var acc = F16x()
        var j = 0
        while j + 16 <= n {
            let v = load(x, j)
            let e = vexp(v - sh).replacing(with: 0, where: v .== ninf)
            store(e, x, j)
            acc += e
            j += 16
        }
        var s = acc.sum()
        while j < n {
            let e = x[j] == -.infinity ? 0 : sexp(x[j] - shift)
            x[j] = e
            s += e
            j += 1
        }
        return s
    }
}

extension AttentionMask {
    /// This mask for the rows of sample b: a causal mask whose keys of b are all valid drops its table, so its
    /// rows skip the scan of every earlier key.
    func forSample(_ b: Int, sk: Int) -> AttentionMask {
        guard case .causal(let valid?) = self else { return self }
        let keys = UnsafeBufferPointer(start: valid + b * sk, count: sk)
        return keys.contains(0) ? self : .causal(keyValid: nil)
    }

    /// Query q sees no key from this index on (q + 1 under a causal mask), so its softmax stops there.
    @inline(__always)
    func keyEnd(q: Int, sk: Int) -> Int {
        if case .causal = self { return min(q + 1, sk) }
        return sk
    }

    /// Sets the scores of keys that query q of sample b may not see to −∞.
    @inline(__always)
    func apply(_ row: UnsafeMutablePointer<Float>, b: Int, q: Int, sq: Int, sk: Int) {
        switch self {
        case .none: return
        case .causal(let valid):
            if q + 1 < sk { (row + q + 1).update(repeating: -.infinity, count: sk - q - 1) }
            if let valid { for j in 0..<min(q + 1, sk) where valid[b * sk + j] == 0 { row[j] = -.infinity } }
        case .outer(let invalid):
            guard invalid[b * sk + q] != 0 else { return }
            for j in 0..<sk where invalid[b * sk + j] != 0 { row[j] = -.infinity }
        case .dense(let allowed):
            let a = allowed + (b * sq + q) * sk
            for j in 0..<sk where a[j] == 0 { row[j] = -.infinity }
        }
    }
}
