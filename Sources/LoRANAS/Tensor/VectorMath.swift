import Foundation

/// SIMD building blocks for the elementwise kernels. libm's `exp` and `tanh` do not vectorize,
/// so `vexp` is a Cephes-style polynomial (max relative error ≈ 2 ulp on [-87, 88]).
public typealias F16x = SIMD16<Float>

/// Lane-wise max and min through masks. The standard library's `clamped`, `pointwiseMin` and
/// `pointwiseMax` on SIMD16<Float> end up as out-of-line per-lane calls here (measured 100× slower).
@inline(__always) func vmax(_ a: F16x, _ b: F16x) -> F16x { a.replacing(with: b, where: a .< b) }
@inline(__always) func vmin(_ a: F16x, _ b: F16x) -> F16x { a.replacing(with: b, where: b .< a) }

/// `@inline(always)`: with `__always` the optimizer still outlined it (11 call sites), and an outlined SIMD16
/// crosses the call as four 128-bit halves, so every caller's exp ran at half width.
@inline(always)
func vexp(_ x: F16x) -> F16x {
    let x = vmax(vmin(x, F16x(repeating: 88.3)), F16x(repeating: -87.3))
    // n = round(x / ln2) by the 1.5·2²³ trick: the sum's low mantissa bits hold n as an integer,
    // which keeps every step in SIMD registers (Swift's generic SIMD conversions are scalar).
    let magic = F16x(repeating: 12582912)
    var t = x
    t.addProduct(x, F16x(repeating: 0.4426950408889634))   // x·log2(e) = x + x·0.4427
    t += magic
    let n = t - magic
    var r = x
    r.addProduct(n, F16x(repeating: -0.693359375))
    r.addProduct(n, F16x(repeating: 2.12194440e-4))
    var p = F16x(repeating: 1.9875691500e-4)
    p = horner(p, r, 1.3981999507e-3)
    p = horner(p, r, 8.3334519073e-3)
    p = horner(p, r, 4.1665795894e-2)
    p = horner(p, r, 1.6666665459e-1)
    p = horner(p, r, 5.0000001201e-1)
    var y = r + 1
    y.addProduct(p, r * r)
    // 2^n through the exponent bits.
    let bits = unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B400000
    y *= unsafeBitCast((bits &+ 127) &<< 23, to: F16x.self)
    return y
}

/// p·x + c in one fused multiply-add per lane (Swift does not fuse `p * x + c` by itself).
@inline(always)
func horner(_ p: F16x, _ x: F16x, _ c: Float) -> F16x {
    var out = F16x(repeating: c)
    out.addProduct(p, x)
    return out
}

/// erf to float precision: erf(x) = 1 − t·exp(−x² + P(t)), t = 1/(1 + |x|/2) (Numerical Recipes'
/// erfc, fractional error < 1.2e-7), with the sign restored. `@inline(always)` as `vexp`.
@inline(always)
func verf(_ x: F16x) -> F16x {
    let z = vmax(x, -x)
    let t = 1 / (1 + 0.5 * z)
    var p = F16x(repeating: 0.17087277)
    p = p * t - 0.82215223
    p = p * t + 1.48851587
    p = p * t - 1.13520398
    p = p * t + 0.27886807
    p = p * t - 0.18628806
    p = p * t + 0.09678418
    p = p * t + 0.37409196
    p = p * t + 1.00002368
    p = p * t - 1.26551223
    let erfc = t * vexp(-z * z + p)
    let r = 1 - erfc
    return r.replacing(with: -r, where: x .< 0)
}

@inline(__always)
func vsigmoid(_ x: F16x) -> F16x { 1 / (1 + vexp(-x)) }

/// Scalar versions for the tails of arrays.
@inline(__always) func sexp(_ x: Float) -> Float { Foundation.exp(x) }
@inline(__always) func ssigmoid(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }

/// Applies `simd` to each 16-wide chunk of `n` elements and `scalar` to the tail.
@inline(__always)
func forEachChunk(_ n: Int, simd: (Int) -> Void, scalar: (Int) -> Void) {
    var i = 0
    while i + 16 <= n {
        simd(i)
        i += 16
    }
    while i < n {
        scalar(i)
        i += 1
    }
}

@inline(__always) func load(_ p: UnsafePointer<Float>, _ i: Int) -> F16x {
    UnsafeRawPointer(p + i).loadUnaligned(as: F16x.self)
}
@inline(__always) func store(_ v: F16x, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
    UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: F16x.self)
}

/// Σ a[i]·b[i] with SIMD accumulators (Float), for short inner products.
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = F16x()
    var i = 0
    while i + 16 <= n {
        acc.addProduct(load(a, i), load(b, i))
        i += 16
    }
    var s = acc.sum()
    while i < n {
        s += a[i] * b[i]
        i += 1
    }
    return s
}

/// Σ x[i] with SIMD accumulators.
@inline(__always)
func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = F16x()
    var i = 0
    while i + 16 <= n {
        acc += load(x, i)
        i += 16
    }
    var s = acc.sum()
    while i < n {
        s += x[i]
        i += 1
    }
    return s
}

/// y[i] += scale · x[i]
@inline(__always)
func axpy(_ scale: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let a = F16x(repeating: scale)
    forEachChunk(n, simd: { i in
        var v = load(y, i)
        v.addProduct(a, load(x, i))
        store(v, y, i)
    }, scalar: { i in y[i] += scale * x[i] })
}
