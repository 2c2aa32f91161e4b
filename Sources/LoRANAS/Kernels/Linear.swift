/// y (N, OC) = x (N, C) · Wᵀ + b, with W stored (OC, C) as PyTorch and the checkpoints do.
///
/// Backward accumulates (`+=`) into `dx`, `dw` and `db`; callers zero them once per step.
public enum Linear {
    public static func forward(y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                               w: UnsafePointer<Float>, b: UnsafePointer<Float>?,
                               n: Int, c: Int, oc: Int) {
        gemm(false, true, m: n, n: oc, k: c, a: x, b: w, beta: 0, c: y)
        if let b { addBias(y, b, n: n, oc: oc) }
    }

    public static func backward(dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>?,
                                db: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>,
                                x: UnsafePointer<Float>, w: UnsafePointer<Float>,
                                n: Int, c: Int, oc: Int) {
        if let dx { gemm(false, false, m: n, n: c, k: oc, a: dy, b: w, beta: 1, c: dx) }   // dx += dy·W
        if let dw { gemm(true, false, m: oc, n: c, k: n, a: dy, b: x, beta: 1, c: dw) }    // dW += dyᵀ·x
        if let db { for i in 0..<n { axpy(1, dy + i * oc, db, oc) } }
    }

    static func addBias(_ y: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, n: Int, oc: Int) {
        for i in 0..<n { axpy(1, b, y + i * oc, oc) }
    }
}

/// Row lookup: out (N, C) = table[ids], with a scatter-add backward.
public enum Embedding {
    public static func forward(out: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int>,
                               table: UnsafePointer<Float>, n: Int, c: Int) {
        for i in 0..<n { (out + i * c).update(from: table + ids[i] * c, count: c) }
    }

    /// `paddingIdx` gets no gradient, as in `nn.Embedding(padding_idx:)`.
    public static func backward(dtable: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                ids: UnsafePointer<Int>, n: Int, c: Int, paddingIdx: Int? = nil) {
        for i in 0..<n where ids[i] != paddingIdx { axpy(1, dout + i * c, dtable + ids[i] * c, c) }
    }
}
