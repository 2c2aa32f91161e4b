/// Causal attention for small heads without GEMM calls.
///
/// Per-head GEMMs compute the whole Sq×Sk square and the mask then throws half of it away; with heads of 16 or 32
/// the products are also too small for a BLAS call to pay off (a 128×128×16 product runs at a third of the core's
/// peak through `cblas_sgemm`). Here a block of four query rows only reads the keys its last row can see. Keys and
/// values are transposed once per head into (hd, Sk) panels, so every inner step is a 16-key SIMD multiply-add
/// shared by four rows, and the softmax runs on rows still in cache. Same layouts, outputs and caches as the GEMM
/// path; the sums run in another order, so the bits differ. Measured (`loranas-bench attention`) 1.5× faster than
/// the GEMM path on tiny's causal heads (hd 16) on one thread, but 1.5× slower on full squares, which keep GEMMs.
extension Attention {
    /// Causal heads up to this size take the direct path.
    static let directHeadDimLimit = 32

    static func takesDirectPath(_ mask: AttentionMask, _ d: Dims) -> Bool {
        mask.isCausal && d.hd <= directHeadDimLimit
    }

    /// Keys query row `q` can see at most: all but the causal mask's future.
    @inline(__always)
    static func visibleKeys(_ q: Int, mask: AttentionMask, _ d: Dims) -> Int {
        mask.isCausal ? min(q + 1, d.sk) : d.sk
    }

    /// Sk rounded up to whole 16-key chunks: the row stride of the panels.
    @inline(__always)
    static func paddedKeys(_ d: Dims) -> Int { (d.sk + 15) / 16 * 16 }

    static func forwardDirect(out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                              q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                              mask: AttentionMask, _ d: Dims, probs: UnsafeMutablePointer<Float>?) {
        let qs = d.nh * d.hd, ks = d.nkv * d.hd, g = d.nh / d.nkv, skp = paddedKeys(d)
        Engine.parallelFor(d.b * d.nh) { task in
            let b = task / d.nh, h = task % d.nh, kv = h / g
            let kt = UnsafeMutablePointer<Float>.allocate(capacity: d.hd * skp)
            let rows = UnsafeMutablePointer<Float>.allocate(capacity: 4 * skp)
            defer {
                kt.deallocate()
                rows.deallocate()
            }
            transposeHead(k + b * d.sk * ks + kv * d.hd, ld: ks, d, into: kt)
            let qh = q + b * d.sq * qs + h * d.hd, oh = out + b * d.sq * qs + h * d.hd
            for i0 in stride(from: 0, to: d.sq, by: 4) {
                let count = min(4, d.sq - i0), keys = visibleKeys(i0 + count - 1, mask: mask, d)
                rowScores(qh + i0 * qs, lda: qs, rows: count, panel: kt, ldp: skp, hd: d.hd, keys: keys,
                          scale: d.scale, out: rows, ldo: skp)
                for r in 0..<count {
                    let row = rows + r * skp, i = i0 + r, n = visibleKeys(i, mask: mask, d)
                    lse[(b * d.nh + h) * d.sq + i] = maskedSoftmaxRow(row, b: b, q: i, mask: mask, d, visible: n)
                    (row + n).update(repeating: 0, count: skp - n)
                    if let probs { (probs + (task * d.sq + i) * d.sk).update(from: row, count: d.sk) }
                }
                rowCombine(rows, ldp: skp, rows: count, x: v + b * d.sk * ks + kv * d.hd, ldx: ks, hd: d.hd,
                           keys: keys, out: oh + i0 * qs, ldo: qs, accumulate: false)
            }
        }
    }

    static func backwardDirect(dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                               dv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                               q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                               lse: UnsafePointer<Float>, mask: AttentionMask, _ d: Dims,
                               probs: UnsafePointer<Float>?) {
        let ks = d.nkv * d.hd, g = d.nh / d.nkv, skp = paddedKeys(d)
        // One task per (sample, kv head): the g query heads that share a kv head write to the same dk, dv.
        Engine.parallelFor(d.b * d.nkv) { task in
            let b = task / d.nkv, kv = task % d.nkv
            let s = DirectScratch(d, skp: skp)
            defer { s.deallocate() }
            let kh = k + b * d.sk * ks + kv * d.hd
            transposeHead(kh, ld: ks, d, into: s.kt)
            transposeHead(v + b * d.sk * ks + kv * d.hd, ld: ks, d, into: s.vt)
            for h in (kv * g)..<((kv + 1) * g) {
                headBackward(h: h, b: b, s, dq: dq, dout: dout, q: q, k: kh, lse: lse, mask: mask, d, probs: probs)
            }
            addTransposed(s.dkt, d, into: dk + b * d.sk * ks + kv * d.hd, ld: ks)
            addTransposed(s.dvt, d, into: dv + b * d.sk * ks + kv * d.hd, ld: ks)
        }
    }

    /// One backward task's panels: K and V transposed, the dK and dV sums, and a head's P and dS rows.
    private struct DirectScratch {
        let kt, vt, dkt, dvt: UnsafeMutablePointer<Float>   // (hd, Skp)
        let p, ds: UnsafeMutablePointer<Float>               // (Sq, Skp)

        init(_ d: Dims, skp: Int) {
            kt = .allocate(capacity: d.hd * skp)
            vt = .allocate(capacity: d.hd * skp)
            dkt = .allocate(capacity: d.hd * skp)
            dvt = .allocate(capacity: d.hd * skp)
            dkt.initialize(repeating: 0, count: d.hd * skp)
            dvt.initialize(repeating: 0, count: d.hd * skp)
            p = .allocate(capacity: d.sq * skp)
            ds = .allocate(capacity: d.sq * skp)
        }

        func deallocate() {
            for buffer in [kt, vt, dkt, dvt, p, ds] { buffer.deallocate() }
        }
    }

    /// Query head h of sample b: P (kept or recomputed), dS = P ⊙ (dP − Σ dP⊙P)·scale, dq += dS·K, and the
    /// head's dKᵀ += Qᵀ·dS and dVᵀ += doᵀ·P into the task's panels.
    private static func headBackward(h: Int, b: Int, _ s: DirectScratch, dq: UnsafeMutablePointer<Float>,
                                     dout: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
                                     lse: UnsafePointer<Float>, mask: AttentionMask, _ d: Dims,
                                     probs: UnsafePointer<Float>?) {
        let qs = d.nh * d.hd, ks = d.nkv * d.hd, skp = paddedKeys(d)
        let qh = q + b * d.sq * qs + h * d.hd, doh = dout + b * d.sq * qs + h * d.hd
        let dqh = dq + b * d.sq * qs + h * d.hd, head = b * d.nh + h
        for i0 in stride(from: 0, to: d.sq, by: 4) {
            let count = min(4, d.sq - i0), keys = visibleKeys(i0 + count - 1, mask: mask, d)
            let p = s.p + i0 * skp, ds = s.ds + i0 * skp
            if probs == nil {
                rowScores(qh + i0 * qs, lda: qs, rows: count, panel: s.kt, ldp: skp, hd: d.hd, keys: keys,
                          scale: d.scale, out: p, ldo: skp)
            }
            rowScores(doh + i0 * qs, lda: qs, rows: count, panel: s.vt, ldp: skp, hd: d.hd, keys: keys, scale: 1,
                      out: ds, ldo: skp)
            for r in 0..<count {
                let i = i0 + r, n = visibleKeys(i, mask: mask, d), pr = p + r * skp, dr = ds + r * skp
                if let probs {
                    pr.update(from: probs + (head * d.sq + i) * d.sk, count: n)
                } else {
                    mask.apply(pr, b: b, q: i, sq: d.sq, sk: d.sk)
                    expShifted(pr, n, shift: lse[head * d.sq + i])
                }
                (pr + n).update(repeating: 0, count: skp - n)
                let t = dot(pr, dr, n)
                for j in 0..<n { dr[j] = pr[j] * (dr[j] - t) * d.scale }
                (dr + n).update(repeating: 0, count: skp - n)
            }
            rowCombine(ds, ldp: skp, rows: count, x: k, ldx: ks, hd: d.hd, keys: keys, out: dqh + i0 * qs, ldo: qs,
                       accumulate: true)
        }
        columnSums(s.p, a: doh, lda: qs, d, causal: mask.isCausal, into: s.dvt)
        columnSums(s.ds, a: qh, lda: qs, d, causal: mask.isCausal, into: s.dkt)
    }

    /// t (hd, Skp) = the head's rows x (Sk, hd, row stride ld) transposed, zero beyond Sk.
    private static func transposeHead(_ x: UnsafePointer<Float>, ld: Int, _ d: Dims,
                                      into t: UnsafeMutablePointer<Float>) {
        let skp = paddedKeys(d)
        for c in 0..<d.hd {
            let row = t + c * skp
            for j in 0..<d.sk { row[j] = x[j * ld + c] }
            (row + d.sk).update(repeating: 0, count: skp - d.sk)
        }
    }

    /// x (Sk, hd, row stride ld) += t (hd, Skp) transposed.
    private static func addTransposed(_ t: UnsafePointer<Float>, _ d: Dims, into x: UnsafeMutablePointer<Float>,
                                      ld: Int) {
        let skp = paddedKeys(d)
        for j in 0..<d.sk {
            for c in 0..<d.hd { x[j * ld + c] += t[c * skp + j] }
        }
    }

    /// out[r][j] = scale · Σ_c a_r[c]·panel[c][j] for `rows` (≤ 4) rows of a and keys j < `keys`, in whole chunks of
    /// 16 (out rows hold at least Skp). Each panel load serves four rows.
    private static func rowScores(_ a: UnsafePointer<Float>, lda: Int, rows: Int, panel: UnsafePointer<Float>,
                                  ldp: Int, hd: Int, keys: Int, scale: Float, out: UnsafeMutablePointer<Float>,
                                  ldo: Int) {
        // Rows past `rows` repeat the last one (computed, not stored).
        let a0 = a, a1 = a + min(1, rows - 1) * lda, a2 = a + min(2, rows - 1) * lda, a3 = a + min(3, rows - 1) * lda
        let sv = F16x(repeating: scale)
        for j in stride(from: 0, to: keys, by: 16) {
            var s0 = F16x(), s1 = F16x(), s2 = F16x(), s3 = F16x()
            for c in 0..<hd {
                let kv = load(panel + c * ldp, j)
                s0.addProduct(F16x(repeating: a0[c]), kv)
                s1.addProduct(F16x(repeating: a1[c]), kv)
                s2.addProduct(F16x(repeating: a2[c]), kv)
                s3.addProduct(F16x(repeating: a3[c]), kv)
            }
            storeBlock((s0 * sv, s1 * sv, s2 * sv, s3 * sv), count: rows, out + j, stride: ldo, accumulate: false)
        }
    }

    /// out_r (+)= Σ_{j < keys} p_r[j]·x_j for `rows` (≤ 4) rows: x rows of width hd and stride ldx. Each x load
    /// serves four rows; a head width that is not a multiple of 16 ends in a scalar tail.
    private static func rowCombine(_ p: UnsafePointer<Float>, ldp: Int, rows: Int, x: UnsafePointer<Float>, ldx: Int,
                                   hd: Int, keys: Int, out: UnsafeMutablePointer<Float>, ldo: Int, accumulate: Bool) {
        let p0 = p, p1 = p + min(1, rows - 1) * ldp, p2 = p + min(2, rows - 1) * ldp, p3 = p + min(3, rows - 1) * ldp
        var c = 0
        while c + 16 <= hd {
            var o0 = F16x(), o1 = F16x(), o2 = F16x(), o3 = F16x()
            for j in 0..<keys {
                let xv = load(x + j * ldx, c)
                o0.addProduct(F16x(repeating: p0[j]), xv)
                o1.addProduct(F16x(repeating: p1[j]), xv)
                o2.addProduct(F16x(repeating: p2[j]), xv)
                o3.addProduct(F16x(repeating: p3[j]), xv)
            }
            storeBlock((o0, o1, o2, o3), count: rows, out + c, stride: ldo, accumulate: accumulate)
            c += 16
        }
        for r in 0..<rows {
            for cc in c..<hd {
                var acc: Float = 0
                for j in 0..<keys { acc += p[r * ldp + j] * x[j * ldx + cc] }
                out[r * ldo + cc] = accumulate ? out[r * ldo + cc] + acc : acc
            }
        }
    }

    /// t[c][j] += Σ_i a_i[c]·m_i[j] over the Sq rows of m (stride Skp) and keys in whole chunks of 16, four
    /// columns of t at a time. With a causal mask, rows above a chunk's first key are zero there and skipped.
    private static func columnSums(_ m: UnsafePointer<Float>, a: UnsafePointer<Float>, lda: Int, _ d: Dims,
                                   causal: Bool, into t: UnsafeMutablePointer<Float>) {
        let skp = paddedKeys(d)
        for j in stride(from: 0, to: d.sk, by: 16) {
            let first = causal ? min(j, d.sq) : 0
            var c = 0
            while c < d.hd {
                let width = min(4, d.hd - c)
                let c1 = c + min(1, width - 1), c2 = c + min(2, width - 1), c3 = c + min(3, width - 1)
                var t0 = F16x(), t1 = F16x(), t2 = F16x(), t3 = F16x()
                for i in first..<d.sq {
                    let mv = load(m + i * skp, j), ai = a + i * lda
                    t0.addProduct(F16x(repeating: ai[c]), mv)
                    t1.addProduct(F16x(repeating: ai[c1]), mv)
                    t2.addProduct(F16x(repeating: ai[c2]), mv)
                    t3.addProduct(F16x(repeating: ai[c3]), mv)
                }
                storeBlock((t0, t1, t2, t3), count: width, t + c * skp + j, stride: skp, accumulate: true)
                c += width
            }
        }
    }

    /// The first `count` of four vectors to rows `stride` apart from `dst`, added to what is there with `accumulate`.
    @inline(__always)
    private static func storeBlock(_ v: (F16x, F16x, F16x, F16x), count: Int, _ dst: UnsafeMutablePointer<Float>,
                                   stride: Int, accumulate: Bool) {
        func put(_ x: F16x, _ r: Int) {
            let p = dst + r * stride
            store(accumulate ? load(p, 0) + x : x, p, 0)
        }
        put(v.0, 0)
        if count > 1 { put(v.1, 1) }
        if count > 2 { put(v.2, 2) }
        if count > 3 { put(v.3, 3) }
    }
}
