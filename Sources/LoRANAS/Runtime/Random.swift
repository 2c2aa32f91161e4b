import Foundation

/// A small, fast, seedable generator (SplitMix64). Its whole state is one UInt64, so training
/// checkpoints save and restore it exactly.
public struct SplitMix64: RandomNumberGenerator, Sendable, Equatable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
    }

    /// Standard normal (Box–Muller on two uniforms in (0, 1]; one of the pair is dropped, so each call
    /// draws exactly two numbers).
    public mutating func normal() -> Float {
        let u1 = (Double(next() >> 11) + 1) / 9_007_199_254_740_992.0
        let u2 = Double(next() >> 11) / 9_007_199_254_740_992.0
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// A generator for a named sub-stream, independent of how many numbers this one has drawn.
    public func derived(_ label: String) -> SplitMix64 {
        var h: UInt64 = 0xcbf29ce484222325
        for b in label.utf8 { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        var g = SplitMix64(seed: state ^ h)
        _ = g.next()
        return g
    }

    /// Fisher-Yates shuffle of 0..<n.
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, Int(next() % UInt64(i + 1))) } }
        return p
    }
}
