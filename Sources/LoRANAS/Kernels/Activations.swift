import Foundation

/// Exact GELU, x·Φ(x) with Φ(x) = ½(1 + erf(x/√2)): Hugging Face's "gelu" (not the tanh form).
/// erf is evaluated in SIMD to float precision (`verf`), not approximated by tanh.
public enum GELU {
    public static func forward(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, n: Int) {
        Engine.parallelRanges(n, grain: 1 << 14) { r in
            let o = r.lowerBound
            forEachChunk(r.count, simd: { i in
                let v = load(x + o, i)
                store(0.5 * v * (1 + verf(v * 0.70710678118654752)), y + o, i)
            }, scalar: { i in y[o + i] = 0.5 * x[o + i] * (1 + erff(x[o + i] * 0.70710678118654752)) })
        }
    }

    /// y = GELU(x) and slope = GELU'(x) = Φ(x) + x·φ(x) in one pass: backward recomputes y (which it did not
    /// keep) and needs the slope, sharing the erf between them. y has the forward's bits.
    public static func forwardWithSlope(y: UnsafeMutablePointer<Float>, slope: UnsafeMutablePointer<Float>,
                                        x: UnsafePointer<Float>, n: Int) {
        Engine.parallelRanges(n, grain: 1 << 14) { r in
            let o = r.lowerBound
            forEachChunk(r.count, simd: { i in
                let v = load(x + o, i)
                let cdf = 0.5 * (1 + verf(v * 0.70710678118654752))
                store(v * cdf, y + o, i)  // = 0.5·v·(1 + erf): halving is exact, so the same bits
                store(cdf + v * (vexp(-0.5 * v * v) * 0.3989422804014327), slope + o, i)
            }, scalar: { i in
                let v = x[o + i], cdf = 0.5 * (1 + erff(v * 0.70710678118654752))
                y[o + i] = v * cdf
                slope[o + i] = cdf + v * (expf(-0.5 * v * v) * 0.3989422804014327)
            })
        }
    }

    /// dx = dy ⊙ slope (the slope from `forwardWithSlope`).
    public static func backward(dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                                slope: UnsafePointer<Float>, n: Int) {
        Engine.parallelRanges(n, grain: 1 << 14) { r in
            let o = r.lowerBound
            forEachChunk(r.count, simd: { i in store(load(dy + o, i) * load(slope + o, i), dx + o, i) },
                         scalar: { i in dx[o + i] = dy[o + i] * slope[o + i] })
        }
    }
}

/// SiLU, x·σ(x).
public enum SiLU {
    public static func forward(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, n: Int) {
        forEachChunk(n, simd: { i in
            let v = load(x, i)
            store(v * vsigmoid(v), y, i)
        }, scalar: { i in y[i] = x[i] * ssigmoid(x[i]) })
    }

    /// dx += dy · σ(x)(1 + x(1 − σ(x)))
    public static func backward(dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                                x: UnsafePointer<Float>, n: Int) {
        for i in 0..<n {
            let s = ssigmoid(x[i])
            dx[i] += dy[i] * s * (1 + x[i] * (1 - s))
        }
    }
}

/// SwiGLU, m = silu(gate) ⊙ up, the LLaMA MLP's middle.
public enum SwiGLU {
    public static func forward(m: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                               up: UnsafePointer<Float>, n: Int) {
        Engine.parallelRanges(n, grain: 1 << 14) { r in
            let o = r.lowerBound
            forEachChunk(r.count, simd: { i in
                let g = load(gate + o, i)
                store(g * vsigmoid(g) * load(up + o, i), m + o, i)
            }, scalar: { i in m[o + i] = gate[o + i] * ssigmoid(gate[o + i]) * up[o + i] })
        }
    }

    /// dgate += dm ⊙ up ⊙ silu'(gate);  dup += dm ⊙ silu(gate)
    public static func backward(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>,
                                dm: UnsafePointer<Float>, gate: UnsafePointer<Float>,
                                up: UnsafePointer<Float>, n: Int) {
        Engine.parallelRanges(n, grain: 1 << 14) { r in
            let o = r.lowerBound
            forEachChunk(r.count, simd: { i in
                let g = load(gate + o, i), s = vsigmoid(g), d = load(dm + o, i)
                store(load(dgate + o, i) + d * load(up + o, i) * s * (1 + g * (1 - s)), dgate + o, i)
                store(load(dup + o, i) + d * g * s, dup + o, i)
            }, scalar: { i in
                let g = gate[o + i], s = ssigmoid(g), d = dm[o + i]
                dgate[o + i] += d * up[o + i] * s * (1 + g * (1 - s))
                dup[o + i] += d * g * s
            })
        }
    }
}

/// Tanh gating on a residual branch: y += tanh(g)·a, for Mllama's gated layers and embeddings.
public enum TanhGate {
    public static func forward(y: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, gate: Float, n: Int) {
        axpy(tanhf(gate), a, y, n)
    }

    /// da += tanh(g)·dy;  returns dL/dg = (1 − tanh²g)·Σ dy⊙a (accumulated in Double).
    @discardableResult
    public static func backward(da: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>,
                                a: UnsafePointer<Float>, gate: Float, n: Int) -> Float {
        let t = tanhf(gate)
        if let da { axpy(t, dy, da, n) }
        var s = 0.0
        for i in 0..<n { s += Double(dy[i]) * Double(a[i]) }
        return Float((1 - Double(t) * Double(t)) * s)
    }
}

/// Row softmax over the last axis of (N, C).
public enum Softmax {
    public static func forward(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, n: Int, c: Int) {
        Engine.parallelRanges(n, grain: max(1, (1 << 14) / max(c, 1))) { rows in
            for i in rows { softmaxRow(y + i * c, x + i * c, c) }
        }
    }

    /// dx += y ⊙ (dy − Σ dy⊙y)
    public static func backward(dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                                y: UnsafePointer<Float>, n: Int, c: Int) {
        for i in 0..<n {
            let yi = y + i * c, dyi = dy + i * c, dxi = dx + i * c
            let s = dot(dyi, yi, c)
            for j in 0..<c { dxi[j] += yi[j] * (dyi[j] - s) }
        }
    }

    /// y = softmax(x) for one row; returns log Σ exp(x) (the row's log-sum-exp).
    @discardableResult @inline(__always)
    static func softmaxRow(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ c: Int) -> Float {
        let m = Attention.rowMax(x, c)
        var s = Float(0)
        let mv = F16x(repeating: m)
        var acc = F16x()
        var j = 0
        while j + 16 <= c {
            let e = vexp(load(x, j) - mv)
            store(e, y, j)
            acc += e
            j += 16
        }
        s = acc.sum()
        while j < c {
            let e = sexp(x[j] - m)
            y[j] = e
            s += e
            j += 1
        }
        let inv = 1 / s, iv = F16x(repeating: inv)
        forEachChunk(c, simd: { j in store(load(y, j) * iv, y, j) }, scalar: { j in y[j] *= inv })
        return m + logf(s)
    }
}
