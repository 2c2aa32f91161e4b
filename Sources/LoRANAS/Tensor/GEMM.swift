import COpenBLAS

/// C (M, N) = scale · op(A) · op(B) + beta · C, row-major, through `cblas_sgemm`.
///
/// op(A) is (M, K): A is stored (M, K), or (K, M) when `transA`. op(B) is (K, N): B is stored
/// (K, N), or (N, K) when `transB`. Leading dimensions default to the packed ones; pass them
/// to address a strided sub-matrix (one attention head inside a (S, heads·hd) activation). Large
/// problems are split across the engine's threads along M (or along N when M is small), each part a
/// single-threaded OpenBLAS call.
public func gemm(_ transA: Bool, _ transB: Bool, m: Int, n: Int, k: Int,
                 scale: Float = 1, a: UnsafePointer<Float>, lda: Int? = nil, b: UnsafePointer<Float>, ldb: Int? = nil,
                 beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil, threaded: Bool = true) {
    if m == 0 || n == 0 { return }
    let lda = lda ?? (transA ? m : k), ldb = ldb ?? (transB ? k : n), ldc = ldc ?? n
    if k == 0 {
        for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
        return
    }
    let flops = 2 * m * n * k
    if m <= 4 && !transA {
        gemvRows(transB, m: m, n: n, k: k, scale: scale, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc,
                 threads: (!threaded || flops < 3_000_000) ? 1 : Engine.usableThreads)
        return
    }
    let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
    let threads = (!threaded || flops < 3_000_000) ? 1 : Engine.usableThreads
    if threads == 1 {
        cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(n), Int32(k), scale, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
        return
    }
    if m >= n || m >= 64 * threads {
        Engine.parallelRanges(m) { r in
            let aOff = transA ? r.lowerBound : r.lowerBound * lda
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(r.count), Int32(n), Int32(k), scale, a + aOff, Int32(lda),
                        b, Int32(ldb), beta, c + r.lowerBound * ldc, Int32(ldc))
        }
    } else {
        Engine.parallelRanges(n) { r in
            let bOff = transB ? r.lowerBound * ldb : r.lowerBound
            cblas_sgemm(CblasRowMajor, ta, tb, Int32(m), Int32(r.count), Int32(k), scale, a, Int32(lda),
                        b + bOff, Int32(ldb), beta, c + r.lowerBound, Int32(ldc))
        }
    }
}

/// A GEMM with at most a few rows of A (a decode step's activations) as one `cblas_sgemv` per row: sgemm would
/// pack all of B for each call, which costs as much as the product itself when M is tiny. Columns of C are
/// split across `threads`.
private func gemvRows(_ transB: Bool, m: Int, n: Int, k: Int, scale: Float, a: UnsafePointer<Float>, lda: Int,
                      b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                      threads: Int) {
    func part(_ r: Range<Int>) {
        for i in 0..<m {
            // C may be uninitialized: some OpenBLAS versions scale y by beta = 0 keeping NaNs.
            if beta == 0 { (c + i * ldc + r.lowerBound).update(repeating: 0, count: r.count) }
            if transB {                     // B (N, K): c = B·a
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(r.count), Int32(k), scale, b + r.lowerBound * ldb,
                            Int32(ldb), a + i * lda, 1, beta, c + i * ldc + r.lowerBound, 1)
            } else {                        // B (K, N): c = Bᵀ·a
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(r.count), scale, b + r.lowerBound,
                            Int32(ldb), a + i * lda, 1, beta, c + i * ldc + r.lowerBound, 1)
            }
        }
    }
    if threads == 1 {
        part(0..<n)
    } else {
        Engine.parallelRanges(n) { part($0) }
    }
}
