import Foundation

/// LayerNorm over the last axis: y = (x − μ)·rstd·w + b, biased variance.
/// Forward caches `mean` and `rstd` (N each); backward reads them and x.
public enum LayerNorm {
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
                while j + 16 <= c { let d = load(xi, j) - mv; acc.addProduct(d, d); j += 16 }
                var ss = acc.sum()
                while j < c { let d = xi[j] - m; ss += d * d; j += 1 }
                let r = 1 / (ss / Float(c) + eps).squareRoot()
                let rv = F16x(repeating: r)
                forEachChunk(c, simd: { j in
                    var o = load(b, j); o.addProduct((load(xi, j) - mv) * rv, load(w, j)); store(o, yi, j)
                }, scalar: { j in yi[j] = (xi[j] - m) * r * w[j] + b[j] })
                mean[i] = m; rstd[i] = r
            }
        }
    }

    public static func backward(dx: UnsafeMutablePointer<Float>, dw: UnsafeMutablePointer<Float>?,
                                db: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>,
                                x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, n: Int, c: Int) {
        for i in 0..<n {
            let xi = x + i * c, dyi = dy + i * c, dxi = dx + i * c
            let m = mean[i], r = rstd[i]
            var sg = Float(0), sgx = Float(0)
            for j in 0..<c {
                let xh = (xi[j] - m) * r, g = dyi[j] * w[j]
                sg += g; sgx += g * xh
                dw?[j] += dyi[j] * xh
                db?[j] += dyi[j]
            }
            sg /= Float(c); sgx /= Float(c)
            for j in 0..<c {
                let xh = (xi[j] - m) * r
                dxi[j] += (dyi[j] * w[j] - sg - xh * sgx) * r
            }
        }
    }
}

/// RMSNorm over the last axis: y = w · x · rstd, rstd = (mean(x²) + eps)^-½, as LLaMA's.
public enum RMSNorm {
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
        for i in 0..<n {
            let xi = x + i * c, dyi = dy + i * c, dxi = dx + i * c
            let r = rstd[i]
            var sgr = Float(0)
            for j in 0..<c {
                let xr = xi[j] * r
                sgr += dyi[j] * w[j] * xr
                dw?[j] += dyi[j] * xr
            }
            sgr /= Float(c)
            for j in 0..<c { dxi[j] += r * (dyi[j] * w[j] - xi[j] * r * sgr) }
        }
    }
}
