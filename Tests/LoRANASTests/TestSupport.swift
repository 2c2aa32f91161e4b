import Foundation
import XCTest
@testable import LoRANAS

/// A seeded generator (SplitMix64) so every test sees the same numbers.
struct TestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    mutating func uniform(_ lo: Float = -1, _ hi: Float = 1) -> Float {
        lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
    }
    mutating func tensor(_ shape: [Int], _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
        let t = Tensor(zeros: shape)
        for i in 0..<t.count { t.ptr[i] = uniform(lo, hi) }
        return t
    }
}

/// Checks shape first, then max |a − b| ≤ atol + rtol·max|b|; reports the worst element and where.
func assertClose(
    _ a: Tensor, _ b: Tensor, rtol: Float = 1e-5, atol: Float = 1e-6, _ what: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    XCTAssertEqual(a.count, b.count, "\(what): \(a.shape) vs \(b.shape)", file: file, line: line)
    guard a.count == b.count else { return }
    var worst: Float = 0, at = 0, scale: Float = 0
    for i in 0..<a.count {
        scale = max(scale, abs(b.ptr[i]))
        let d = abs(a.ptr[i] - b.ptr[i])
        if !(d <= worst) {
            worst = d
            at = i
        }
    }
    XCTAssert(
        worst <= atol + rtol * scale,
        "\(what): max |Δ| = \(worst) at \(at) (\(a.ptr[at]) vs \(b.ptr[at])), max|ref| = \(scale)", file: file,
        line: line)
}

/// ‖a − b‖ / ‖b‖, accumulated in Double.
func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.count == b.count)
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        let d = Double(a.ptr[i]) - Double(b.ptr[i])
        num += d * d
        den += Double(b.ptr[i]) * Double(b.ptr[i])
    }
    return (num / max(den, 1e-300)).squareRoot()
}

/// Central finite differences of L = Σ r ⊙ f(inputs) (accumulated in Double), compared with the
/// analytic gradients `backward(r)`. Up to `samples` elements of each input are probed.
/// The forward runs in Float32, so a difference quotient carries ~1e-7·|L|/eps of rounding plus
/// O(eps²) truncation: the defaults (eps 1e-2, rtol 2e-2, atol 1e-3) sit well above both and far
/// below what a wrong term produces (a broken attention backward fails by 15% or more).
func checkGradients(
    _ name: String, inputs: [Tensor], eps: Float = 1e-2, rtol: Double = 2e-2, atol: Double = 1e-3,
    samples: Int = 64, seed: UInt64 = 7,
    forward: () -> Tensor, backward: (Tensor) -> [Tensor],
    file: StaticString = #filePath, line: UInt = #line
) {
    var rng = TestRNG(seed)
    let y0 = forward()
    let r = rng.tensor(y0.shape)
    let analytic = backward(r)
    XCTAssertEqual(analytic.count, inputs.count, file: file, line: line)
    func loss() -> Double {
        let y = forward()
        var s = 0.0
        for i in 0..<y.count { s += Double(r.ptr[i]) * Double(y.ptr[i]) }
        return s
    }
    for (k, x) in inputs.enumerated() {
        let g = analytic[k]
        XCTAssertEqual(g.count, x.count, "\(name) input \(k)", file: file, line: line)
        let idx = x.count <= samples ? Array(0..<x.count) : (0..<samples).map { _ in Int(rng.next() % UInt64(x.count)) }
        var worst = 0.0, scale = 0.0
        for i in 0..<g.count { scale = max(scale, Double(abs(g.ptr[i]))) }
        for i in idx {
            let keep = x.ptr[i]
            x.ptr[i] = keep + eps
            let lp = loss()
            x.ptr[i] = keep - eps
            let lm = loss()
            x.ptr[i] = keep
            let fd = (lp - lm) / (2 * Double(eps))
            let err = abs(fd - Double(g.ptr[i]))
            if err > atol + rtol * max(scale, abs(fd)) {
                XCTFail(
                    "\(name): d/d input\(k)[\(i)]: finite difference \(fd) vs analytic \(g.ptr[i])", file: file,
                    line: line)
                return
            }
            worst = max(worst, err)
        }
        // A gradient that is identically zero would pass every probe trivially: insist it is not.
        XCTAssert(scale > 0, "\(name): gradient of input \(k) is all zeros", file: file, line: line)
    }
}
