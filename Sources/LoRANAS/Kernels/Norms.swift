import Foundation

/// LayerNorm over the last axis: y = (x − μ)·rstd·w + b, biased variance.
/// Forward caches `mean` and `rstd` (N each); backward reads them and x.
public enum LayerNorm {
    /// LayerNorm(x) of (rows, c) again, the forward's bits: backward recomputes it instead of keeping it.
    static func recomputed(_ x: Tensor, w: UnsafePointer<Float>, b: UnsafePointer<Float>, eps: Float) -> Tensor {
        let rows = x.shape[0], c = x.count / max(1, rows)
        let y = Tensor(uninitialized: x.shape)
        let mean = Tensor(uninitialized: [rows]), rstd = Tensor(uninitialized: [rows])
        forward(y: y.ptr, mean: mean.ptr, rstd: rstd.ptr, x: x.ptr, w: w, b: b, n: rows, c: c, eps: eps)
        return y
    }

    public static func forward(y: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                               w: UnsafePointer<Float>, b: UnsafePointer<Float>, n: Int, c: Int, eps: Float) {
        Engine.parallelRanges(n, grain: 64) { rows in
            for i in rows {
                let xi = x + i * c, yi = y + i * c
                let m = sum(xi, c) / Float(c)
                let mv = F16x(repeating: m)
                var acc = F16x()
                var j = 0
                while j + 16 <= c {
                    let d = load(xi, j) - mv
                    acc.addProduct(d, d)
                    j += 16
                }
                var ss = acc.sum()
                while j < c {
                    let d = xi[j] - m
                    ss += d * d
                    j += 1
                }
                let r = 1 / (ss / Float(c) + eps).squareRoot()
                let rv = F16x(repeating: r)
                forEachChunk(c, simd: { j in
                    var o = load(b, j)
                    o.addProduct((load(xi, j) - mv) * rv, load(w, j))
                    store(o, yi, j)
                }, scalar: { j in yi[j] = (xi[j] - m) * r * w[j] + b[j] })
                mean[i] = m
                rstd[i] = r
            }
        }
    }

    public static func backward(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>?,
                                db: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>,
                                x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, n: Int, c: Int) {
        let partials = (dw == nil ? 0 : 1) + (db == nil ? 0 : 1)
        rowParallel(n: n, c: c, partials: partials, into: [dw, db].compactMap { $0 }) { rows, acc in
            let pw = dw == nil ? nil : acc[0], pb = db == nil ? nil : acc[dw == nil ? 0 : 1]
            for i in rows {
                let xi = x + i * c, dyi = dy + i * c, dxi = dx + i * c
                let mv = F16x(repeating: mean[i]), rv = F16x(repeating: rstd[i])
                var sg = F16x(), sgx = F16x()
                var j = 0
                while j + 16 <= c {
                    let xh = (load(xi, j) - mv) * rv, d = load(dyi, j), g = d * load(w, j)
                    sg += g
                    sgx.addProduct(g, xh)
                    if let pw {
                        var a = load(pw, j)
                        a.addProduct(d, xh)
                        store(a, pw, j)
                    }
                    if let pb { store(load(pb, j) + d, pb, j) }
                    j += 16
                }
                var s1 = sg.sum(), s2 = sgx.sum()
                for k in j..<c {
                    let xh = (xi[k] - mean[i]) * rstd[i], g = dyi[k] * w[k]
                    s1 += g
                    s2 += g * xh
                    pw?[k] += dyi[k] * xh
                    pb?[k] += dyi[k]
                }
                let m1 = s1 / Float(c), m2 = s2 / Float(c), r = rstd[i], m = mean[i]
                forEachChunk(c, simd: { j in
                    let xh = (load(xi, j) - mv) * rv
                    store(load(dxi, j)
                              + (load(dyi, j) * load(w, j) - F16x(repeating: m1) - xh * F16x(repeating: m2)) * rv,
                          dxi, j)
                }, scalar: { j in
                    let xh = (xi[j] - m) * r
                    dxi[j] += (dyi[j] * w[j] - m1 - xh * m2) * r
                })
            }
        }
    }
}

/// RMSNorm over the last axis: y = w · x · rstd, rstd = (mean(x²) + eps)^-½, as LLaMA's.
public enum RMSNorm {
    /// RMSNorm(x) of (rows, c) again, the forward's bits: backward recomputes it instead of keeping it.
    static func recomputed(_ x: Tensor, w: UnsafePointer<Float>, eps: Float) -> Tensor {
        let rows = x.shape[0], c = x.count / max(1, rows)
        let y = Tensor(uninitialized: x.shape), rstd = Tensor(uninitialized: [rows])
        forward(y: y.ptr, rstd: rstd.ptr, x: x.ptr, w: w, n: rows, c: c, eps: eps)
        return y
    }

    public static func forward(y: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                               x: UnsafePointer<Float>, w: UnsafePointer<Float>, n: Int, c: Int, eps: Float) {
        Engine.parallelRanges(n, grain: 64) { rows in
            for i in rows {
                let xi = x + i * c, yi = y + i * c
                let r = 1 / (dot(xi, xi, c) / Float(c) + eps).squareRoot()
                let rv = F16x(repeating: r)
                forEachChunk(c, simd: { j in store(load(w, j) * (load(xi, j) * rv), yi, j) },
                             scalar: { j in yi[j] = w[j] * (xi[j] * r) })
                rstd[i] = r
            }
        }
    }

    public static func backward(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>?,
                                dy: UnsafePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                rstd: UnsafePointer<Float>, n: Int, c: Int) {
        rowParallel(n: n, c: c, partials: dw == nil ? 0 : 1, into: [dw].compactMap { $0 }) { rows, acc in
            let pw = dw == nil ? nil : acc[0]
            for i in rows {
                let xi = x + i * c, dyi = dy + i * c, dxi = dx + i * c
                let r = rstd[i], rv = F16x(repeating: r)
                var sgr = F16x()
                var j = 0
                while j + 16 <= c {
                    let xr = load(xi, j) * rv, d = load(dyi, j)
                    sgr.addProduct(d * load(w, j), xr)
                    if let pw {
                        var a = load(pw, j)
                        a.addProduct(d, xr)
                        store(a, pw, j)
                    }
                    j += 16
                }
                var s = sgr.sum()
                for k in j..<c {
                    let xr = xi[k] * r
                    s += dyi[k] * w[k] * xr
                    pw?[k] += dyi[k] * xr
                }
                let m = s / Float(c), mv = F16x(repeating: m)
                forEachChunk(c, simd: { j in
                    let xv = load(xi, j)
                    store(load(dxi, j) + rv * (load(dyi, j) * load(w, j) - xv * rv * mv), dxi, j)
                }, scalar: { j in dxi[j] += r * (dyi[j] * w[j] - xi[j] * r * m) })
            }
        }
    }
}

/// Runs `body` over row ranges on the engine's threads. Each range accumulates its weight
/// gradients into private zeroed buffers (`partials` of them, c floats each), which are then
/// added into `into` in range order, so the result depends only on the thread count.
func rowParallel(n: Int, c: Int, partials: Int, into targets: [UnsafeMutablePointer<Float>],
                 _ body: (Range<Int>, [UnsafeMutablePointer<Float>]) -> Void) {
    let parts = min(Engine.usableThreads, max(1, n / 32))
    let buffers = (0..<(parts * partials)).map { _ -> UnsafeMutablePointer<Float> in
        let p = UnsafeMutablePointer<Float>.allocate(capacity: c)
        p.initialize(repeating: 0, count: c)
        return p
    }
    defer { buffers.forEach { $0.deallocate() } }
    Engine.parallelFor(parts) { t in
        body((n * t / parts)..<(n * (t + 1) / parts), Array(buffers[(t * partials)..<((t + 1) * partials)]))
    }
    for t in 0..<parts { for k in 0..<partials { axpy(1, buffers[t * partials + k], targets[k], c) } }
}
