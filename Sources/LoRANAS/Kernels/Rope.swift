import Foundation

/// LLaMA-3's frequency scaling ("rope_type": "llama3").
public struct Llama3RopeScaling: Sendable, Equatable, Codable {
    public var factor: Double
    public var lowFreqFactor: Double
    public var highFreqFactor: Double
    public var originalMaxPositionEmbeddings: Double
    public init(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositionEmbeddings: Double) {
        self.factor = factor
        self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor
        self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
    }
}

/// Rotary position embedding in the half-split (NeoX / Hugging Face) layout: dimension j pairs
/// with j + hd/2, both at frequency inv[j]. Applied in place to (N, heads, hd) rows.
public enum Rope {
    /// inv[k] = θ^(−2k/hd), then LLaMA-3's band-wise scaling; float32 as transformers computes it.
    public static func inverseFrequencies(headDim hd: Int, theta: Double, llama3: Llama3RopeScaling?) -> [Float] {
        var inv = (0..<(hd / 2)).map { k -> Float in
            1 / Float(pow(theta, Double(Float(2 * k) / Float(hd))))
        }
        guard let s = llama3 else { return inv }
        let lowW = s.originalMaxPositionEmbeddings / s.lowFreqFactor
        let highW = s.originalMaxPositionEmbeddings / s.highFreqFactor
        inv = inv.map { f in
            let wl = 2 * Double.pi / Double(f)
            let a = wl > lowW ? Double(f) / s.factor : Double(f)
            if wl >= highW && wl <= lowW {
                let smooth = (s.originalMaxPositionEmbeddings / wl - s.lowFreqFactor)
                    / (s.highFreqFactor - s.lowFreqFactor)
                return Float((1 - smooth) * a / s.factor + smooth * a)
            }
            return Float(a)
        }
        return inv
    }

    /// cos and sin tables (S, hd/2) for positions 0..<S.
    public static func tables(positions: Int, invFreq: [Float]) -> (cos: [Float], sin: [Float]) {
        let half = invFreq.count
        var c = [Float](repeating: 0, count: positions * half), s = c
        for p in 0..<positions {
            for k in 0..<half {
                let angle = Float(p) * invFreq[k]
                c[p * half + k] = cosf(angle)
                s[p * half + k] = sinf(angle)
            }
        }
        return (c, s)
    }

    /// x' = x·cos + rot(x)·sin on x (B·S, heads, hd); row n has position n mod S.
    public static func forward(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                               rows: Int, seq: Int, heads: Int, headDim hd: Int) {
        apply(x, cos: cos, sin: sin, rows: rows, seq: seq, heads: heads, headDim: hd, sign: 1)
    }

    /// The transpose: dx = ḡ·cos − rot(ḡ·sin), in place on the gradient.
    public static func backward(_ dx: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                                rows: Int, seq: Int, heads: Int, headDim hd: Int) {
        apply(dx, cos: cos, sin: sin, rows: rows, seq: seq, heads: heads, headDim: hd, sign: -1)
    }

    private static func apply(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                              rows: Int, seq: Int, heads: Int, headDim hd: Int, sign: Float) {
        let half = hd / 2
        for n in 0..<rows {
            let c = cos + (n % seq) * half, s = sin + (n % seq) * half
            for h in 0..<heads {
                let v = x + (n * heads + h) * hd
                for k in 0..<half {
                    let x1 = v[k], x2 = v[k + half], sk = sign * s[k]
                    v[k] = x1 * c[k] - x2 * sk
                    v[k + half] = x2 * c[k] + x1 * sk
                }
            }
        }
    }
}
