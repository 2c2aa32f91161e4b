import Foundation

/// Cross-entropy over rows of logits (N, V) with integer targets; target −100 is ignored.
/// The loss is the mean over the rows not ignored, as `F.cross_entropy(ignore_index=-100)`.
public enum CrossEntropy {
    public static let ignoreIndex = -100

    /// Returns Σ −log softmax(row)[target] over the rows not ignored (in Double) and their count.
    public static func forward(logits: UnsafePointer<Float>, targets: UnsafePointer<Int>, n: Int,
                               v: Int) -> (sum: Double, count: Int) {
        var parts = [(Double, Int)](repeating: (0, 0), count: Engine.usableThreads)
        parts.withUnsafeMutableBufferPointer { parts in
            Engine.parallelFor(parts.count) { t in
                var s = 0.0, c = 0
                for i in (n * t / parts.count)..<(n * (t + 1) / parts.count) where targets[i] != ignoreIndex {
                    let row = logits + i * v
                    s += Double(logSumExp(row, v) - row[targets[i]])
                    c += 1
                }
                parts[t] = (s, c)
            }
        }
        return parts.reduce((0.0, 0)) { ($0.0 + $1.0, $0.1 + $1.1) }
    }

    /// dlogits += scale · (softmax(row) − onehot(target)) on rows not ignored; pass scale = dL/dloss / count.
    /// With `accumulate: false` the rows are overwritten, and `dlogits` may alias `logits`.
    public static func backward(dlogits: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
                                targets: UnsafePointer<Int>, n: Int, v: Int, scale: Float, accumulate: Bool = true) {
        Engine.parallelRanges(n) { rows in
            for i in rows {
                let row = logits + i * v, d = dlogits + i * v
                guard targets[i] != ignoreIndex else {
                    if !accumulate { d.update(repeating: 0, count: v) }
                    continue
                }
                let lse = logSumExp(row, v)
                let lv = F16x(repeating: lse), sv = F16x(repeating: scale)
                forEachChunk(v, simd: { j in
                    let g = sv * vexp(load(row, j) - lv)
                    store(accumulate ? load(d, j) + g : g, d, j)
                }, scalar: { j in
                    let g = scale * sexp(row[j] - lse)
                    d[j] = accumulate ? d[j] + g : g
                })
                d[targets[i]] -= scale
            }
        }
    }

    @inline(__always)
    static func logSumExp(_ x: UnsafePointer<Float>, _ c: Int) -> Float {
        let m = Attention.rowMax(x, c)
        let mv = F16x(repeating: m)
        var acc = F16x()
        var j = 0
        while j + 16 <= c {
            acc += vexp(load(x, j) - mv)
            j += 16
        }
        var s = acc.sum()
        while j < c {
            s += sexp(x[j] - m)
            j += 1
        }
        return m + logf(s)
    }
}
