import XCTest
@testable import LoRANAS

/// Every kernel's backward against central finite differences of its forward.
final class KernelGradientTests: XCTestCase {
    var rng = TestRNG(42)

    func testLinearWithAndWithoutBias() {
        let (n, c, oc) = (5, 7, 6)
        let x = rng.tensor([n, c]), w = rng.tensor([oc, c]), b = rng.tensor([oc])
        for useBias in [true, false] {
            checkGradients("linear bias=\(useBias)", inputs: useBias ? [x, w, b] : [x, w]) {
                let y = Tensor(zeros: [n, oc])
                Linear.forward(y: y.ptr, x: x.ptr, w: w.ptr, b: useBias ? b.ptr : nil, n: n, c: c, oc: oc)
                return y
            } backward: { dy in
                let dx = Tensor(zeros: x.shape), dw = Tensor(zeros: w.shape), db = Tensor(zeros: b.shape)
                Linear.backward(
                    dx: dx.ptr, dw: dw.ptr, db: useBias ? db.ptr : nil, dy: dy.ptr, x: x.ptr, w: w.ptr, n: n, c: c,
                    oc: oc)
                return useBias ? [dx, dw, db] : [dx, dw]
            }
        }
    }

    /// Backward accumulates: two calls after one zeroing give twice the gradient.
    func testBackwardAccumulates() {
        let (n, c, oc) = (4, 3, 5)
        let x = rng.tensor([n, c]), w = rng.tensor([oc, c]), dy = rng.tensor([n, oc])
        let dx = Tensor(zeros: x.shape), dw = Tensor(zeros: w.shape), db = Tensor(zeros: [oc])
        Linear.backward(dx: dx.ptr, dw: dw.ptr, db: db.ptr, dy: dy.ptr, x: x.ptr, w: w.ptr, n: n, c: c, oc: oc)
        let once = [dx.copy(), dw.copy(), db.copy()]
        Linear.backward(dx: dx.ptr, dw: dw.ptr, db: db.ptr, dy: dy.ptr, x: x.ptr, w: w.ptr, n: n, c: c, oc: oc)
        for (twice, one) in zip([dx, dw, db], once) {
            let doubled = one.copy()
            for i in 0..<doubled.count { doubled.ptr[i] *= 2 }
            assertClose(twice, doubled, rtol: 1e-6)
        }
    }

    func testEmbeddingScatterAddAndPaddingRow() {
        let (vocab, c) = (6, 4)
        let table = rng.tensor([vocab, c])
        let ids = [1, 3, 1, 5, 0]
        checkGradients("embedding", inputs: [table]) {
            let out = Tensor(zeros: [ids.count, c])
            Embedding.forward(out: out.ptr, ids: ids, table: table.ptr, n: ids.count, c: c)
            return out
        } backward: { dy in
            let dt = Tensor(zeros: table.shape)
            Embedding.backward(dtable: dt.ptr, dout: dy.ptr, ids: ids, n: ids.count, c: c)
            return [dt]
        }
        let dy = rng.tensor([ids.count, c]), dt = Tensor(zeros: table.shape)
        Embedding.backward(dtable: dt.ptr, dout: dy.ptr, ids: ids, n: ids.count, c: c, paddingIdx: 1)
        XCTAssertEqual(dt[row: 1].array, [Float](repeating: 0, count: c), "the padding row gets no gradient")
        XCTAssertEqual(dt[row: 3].array, dy[row: 1].array)
    }

    func testLayerNorm() {
        let (n, c) = (4, 9)
        let x = rng.tensor([n, c], -2, 2), w = rng.tensor([c], 0.5, 1.5), b = rng.tensor([c])
        let mean = Tensor(zeros: [n]), rstd = Tensor(zeros: [n])
        checkGradients("layernorm", inputs: [x, w, b], eps: 5e-3) {
            let y = Tensor(zeros: [n, c])
            LayerNorm.forward(
                y: y.ptr, mean: mean.ptr, rstd: rstd.ptr, x: x.ptr, w: w.ptr, b: b.ptr, n: n, c: c, eps: 1e-5)
            return y
        } backward: { dy in
            let y = Tensor(zeros: [n, c])
            LayerNorm.forward(
                y: y.ptr, mean: mean.ptr, rstd: rstd.ptr, x: x.ptr, w: w.ptr, b: b.ptr, n: n, c: c, eps: 1e-5)
            let dx = Tensor(zeros: x.shape), dw = Tensor(zeros: w.shape), db = Tensor(zeros: b.shape)
            LayerNorm.backward(
                dx: dx.ptr, dw: dw.ptr, db: db.ptr, dy: dy.ptr, x: x.ptr, w: w.ptr, mean: mean.ptr, rstd: rstd.ptr,
                n: n, c: c)
            return [dx, dw, db]
        }
    }

    func testLayerNormClosedForm() {
        // x = [1, 2, 3]: mean 2, biased var 2/3 → y = (x − 2)/√(2/3 + eps).
        let x = Tensor([1, 2, 3], shape: [1, 3]), w = Tensor([1, 1, 1], shape: [3]), b = Tensor([0, 0, 0], shape: [3])
        let y = Tensor(zeros: [1, 3]), m = Tensor(zeros: [1]), r = Tensor(zeros: [1])
        LayerNorm.forward(y: y.ptr, mean: m.ptr, rstd: r.ptr, x: x.ptr, w: w.ptr, b: b.ptr, n: 1, c: 3, eps: 1e-5)
        let s = Float(1 / (2.0 / 3.0 + 1e-5).squareRoot())
        assertClose(y, Tensor([-s, 0, s], shape: [1, 3]), rtol: 1e-6)
    }

    func testRMSNorm() {
        let (n, c) = (3, 8)
        let x = rng.tensor([n, c], -2, 2), w = rng.tensor([c], 0.5, 1.5)
        let rstd = Tensor(zeros: [n])
        func fwd() -> Tensor {
            let y = Tensor(zeros: [n, c])
            RMSNorm.forward(y: y.ptr, rstd: rstd.ptr, x: x.ptr, w: w.ptr, n: n, c: c, eps: 1e-5)
            return y
        }
        checkGradients("rmsnorm", inputs: [x, w], eps: 5e-3, forward: fwd) { dy in
            _ = fwd()
            let dx = Tensor(zeros: x.shape), dw = Tensor(zeros: w.shape)
            RMSNorm.backward(dx: dx.ptr, dw: dw.ptr, dy: dy.ptr, x: x.ptr, w: w.ptr, rstd: rstd.ptr, n: n, c: c)
            return [dx, dw]
        }
    }

    func testGELUExactErfForm() {
        // Closed form: GELU(1) = Φ(1) = 0.8413447460685429, GELU(−1) = −(1 − Φ(1)).
        let x = Tensor([1, -1, 0, 3], shape: [4]), y = Tensor(zeros: [4])
        GELU.forward(y: y.ptr, x: x.ptr, n: 4)
        assertClose(y, Tensor([0.8413447460685429, -0.15865525393145707, 0, 2.9959502], shape: [4]), rtol: 1e-6)
        // The SIMD body against erf in Double over a wide range.
        let wide = Tensor((0..<4096).map { Float($0 - 2048) / 256 }, shape: [4096]), wy = Tensor(zeros: [4096])
        GELU.forward(y: wy.ptr, x: wide.ptr, n: 4096)
        for i in 0..<4096 {
            let v = Double(wide.ptr[i]), ref = 0.5 * v * (1 + erf(v / 2.0.squareRoot()))
            XCTAssertEqual(Double(wy.ptr[i]), ref, accuracy: 1e-6 * max(1, abs(ref)), "GELU(\(v))")
        }
        // Backward's recomputation has the forward's bits.
        let again = Tensor(zeros: [4096]), slope = Tensor(zeros: [4096])
        GELU.forwardWithSlope(y: again.ptr, slope: slope.ptr, x: wide.ptr, n: 4096)
        XCTAssertEqual(again.array, wy.array)
        let z = rng.tensor([37], -3, 3)
        checkGradients("gelu", inputs: [z], eps: 1e-3) {
            let y = Tensor(zeros: z.shape)
            GELU.forward(y: y.ptr, x: z.ptr, n: z.count)
            return y
        } backward: { dy in
            let y = Tensor(zeros: z.shape), slope = Tensor(zeros: z.shape), dx = Tensor(zeros: z.shape)
            GELU.forwardWithSlope(y: y.ptr, slope: slope.ptr, x: z.ptr, n: z.count)
            GELU.backward(dx: dx.ptr, dy: dy.ptr, slope: slope.ptr, n: z.count)
            return [dx]
        }
    }

    func testSiLU() {
        let x = rng.tensor([41], -4, 4)  // 41: exercises the SIMD body and the scalar tail
        let y = Tensor(zeros: x.shape)
        SiLU.forward(y: y.ptr, x: x.ptr, n: x.count)
        for i in 0..<x.count {
            let v = Double(x.ptr[i])
            XCTAssertEqual(Double(y.ptr[i]), v / (1 + exp(-v)), accuracy: 2e-6 * max(1, abs(v)))
        }
        checkGradients("silu", inputs: [x], eps: 1e-3) {
            let y = Tensor(zeros: x.shape)
            SiLU.forward(y: y.ptr, x: x.ptr, n: x.count)
            return y
        } backward: { dy in
            let dx = Tensor(zeros: x.shape)
            SiLU.backward(dx: dx.ptr, dy: dy.ptr, x: x.ptr, n: x.count)
            return [dx]
        }
    }

    func testSwiGLU() {
        let g = rng.tensor([35], -4, 4), u = rng.tensor([35], -2, 2)
        checkGradients("swiglu", inputs: [g, u], eps: 1e-3) {
            let m = Tensor(zeros: g.shape)
            SwiGLU.forward(m: m.ptr, gate: g.ptr, up: u.ptr, n: g.count)
            return m
        } backward: { dm in
            let dg = Tensor(zeros: g.shape), du = Tensor(zeros: u.shape)
            SwiGLU.backward(dgate: dg.ptr, dup: du.ptr, dm: dm.ptr, gate: g.ptr, up: u.ptr, n: g.count)
            return [dg, du]
        }
    }

    func testTanhGate() {
        let a = rng.tensor([13]), base = rng.tensor([13]), gate = Tensor([0.7], shape: [1])
        checkGradients("tanh gate", inputs: [a, gate], eps: 1e-3) {
            let y = base.copy()
            TanhGate.forward(y: y.ptr, a: a.ptr, gate: gate.ptr[0], n: a.count)
            return y
        } backward: { dy in
            let da = Tensor(zeros: a.shape)
            let dg = TanhGate.backward(da: da.ptr, dy: dy.ptr, a: a.ptr, gate: gate.ptr[0], n: a.count)
            return [da, Tensor([dg], shape: [1])]
        }
    }

    func testSoftmax() {
        let (n, c) = (3, 21)
        let x = rng.tensor([n, c], -3, 3)
        checkGradients("softmax", inputs: [x], eps: 1e-3) {
            let y = Tensor(zeros: x.shape)
            Softmax.forward(y: y.ptr, x: x.ptr, n: n, c: c)
            return y
        } backward: { dy in
            let y = Tensor(zeros: x.shape)
            Softmax.forward(y: y.ptr, x: x.ptr, n: n, c: c)
            let dx = Tensor(zeros: x.shape)
            Softmax.backward(dx: dx.ptr, dy: dy.ptr, y: y.ptr, n: n, c: c)
            return [dx]
        }
        let y = Tensor(zeros: x.shape)
        Softmax.forward(y: y.ptr, x: x.ptr, n: n, c: c)
        for i in 0..<n { XCTAssertEqual(y[row: i].array.reduce(0, +), 1, accuracy: 1e-6) }
    }

    func testRopeLlama3FrequenciesClosedForm() {
        // hd = 8, θ = 1e4: inv = [1, 0.1, 0.01, 0.001]; wavelengths 2π/inv = [6.28, 62.8, 628, 6283].
        // With orig = 64, low = 1, high = 4: lowW = 64, highW = 16 → high band [1], medium [0.1], low [0.01, 0.001].
        let s = Llama3RopeScaling(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64)
        let inv = Rope.inverseFrequencies(headDim: 8, theta: 1e4, llama3: s)
        let smooth = (64 / (2 * Double.pi / 0.1) - 1) / 3
        let expected: [Double] = [1, (1 - smooth) * 0.1 / 8 + smooth * 0.1, 0.01 / 8, 0.001 / 8]
        for (a, b) in zip(inv, expected) { XCTAssertEqual(Double(a), b, accuracy: 1e-6 * b) }
    }

    func testRope() {
        let (b, s, h, hd) = (2, 5, 3, 8)
        let inv = Rope.inverseFrequencies(
            headDim: hd, theta: 1e4,
            llama3: Llama3RopeScaling(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16)
        )
        let (cos, sin) = Rope.tables(positions: s, invFreq: inv)
        let x = rng.tensor([b * s, h, hd])
        checkGradients("rope", inputs: [x], eps: 1e-3) {
            let y = x.copy()
            Rope.forward(y.ptr, cos: cos, sin: sin, rows: b * s, seq: s, heads: h, headDim: hd)
            return y
        } backward: { dy in
            let dx = dy.copy()
            Rope.backward(dx.ptr, cos: cos, sin: sin, rows: b * s, seq: s, heads: h, headDim: hd)
            return [dx]
        }
        // Position 0 is the identity; a rotation keeps each pair's norm.
        let y = x.copy()
        Rope.forward(y.ptr, cos: cos, sin: sin, rows: b * s, seq: s, heads: h, headDim: hd)
        assertClose(y[row: 0], x[row: 0], rtol: 0, atol: 0)
        XCTAssertEqual(y.norm, x.norm, accuracy: 1e-5 * x.norm)
    }

    func testCrossEntropyWithIgnoreIndex() {
        let (n, v) = (5, 19)
        let logits = rng.tensor([n, v], -3, 3)
        let targets = [3, -100, 0, 18, -100]
        let (sum, count) = CrossEntropy.forward(logits: logits.ptr, targets: targets, n: n, v: v)
        XCTAssertEqual(count, 3)
        // Reference: −log softmax in Double.
        var ref = 0.0
        for i in 0..<n where targets[i] != -100 {
            let row = (0..<v).map { Double(logits.ptr[i * v + $0]) }
            let m = row.max()!, lse = m + log(row.map { exp($0 - m) }.reduce(0, +))
            ref += lse - row[targets[i]]
        }
        XCTAssertEqual(sum, ref, accuracy: 1e-5 * ref)
        checkGradients("cross-entropy", inputs: [logits], eps: 1e-3, samples: n * v) {
            let (s, c) = CrossEntropy.forward(logits: logits.ptr, targets: targets, n: n, v: v)
            return Tensor([Float(s / Double(c))], shape: [1])
        } backward: { dy in
            let d = Tensor(zeros: logits.shape)
            CrossEntropy.backward(
                dlogits: d.ptr, logits: logits.ptr, targets: targets, n: n, v: v, scale: dy.ptr[0] / Float(count))
            return [d]
        }
    }

    // MARK: attention

    private func attentionCheck(
        _ name: String, _ d: Attention.Dims, mask: AttentionMask, maskedRowsZero: [(b: Int, q: Int)] = []
    ) {
        let q = rng.tensor([d.b, d.sq, d.nh * d.hd]), k = rng.tensor([d.b, d.sk, d.nkv * d.hd]),
            v = rng.tensor([d.b, d.sk, d.nkv * d.hd])
        let lse = Tensor(zeros: [d.b, d.nh, d.sq])
        func fwd() -> Tensor {
            let o = Tensor(zeros: q.shape)
            Attention.forward(out: o.ptr, lse: lse.ptr, q: q.ptr, k: k.ptr, v: v.ptr, mask: mask, d)
            return o
        }
        checkGradients(name, inputs: [q, k, v], eps: 3e-3, forward: fwd) { dout in
            _ = fwd()
            let dq = Tensor(zeros: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
            Attention.backward(
                dq: dq.ptr, dk: dk.ptr, dv: dv.ptr, dout: dout.ptr, q: q.ptr, k: k.ptr, v: v.ptr, lse: lse.ptr,
                mask: mask, d)
            return [dq, dk, dv]
        }
        // Independent reference: explicit per-head softmax(q kᵀ/√hd) v in Double.
        let o = fwd()
        for b in 0..<d.b {
            for h in 0..<d.nh {
                for i in 0..<d.sq {
                    let kv = h / (d.nh / d.nkv)
                    let keys = (0..<d.sk).filter { mask.allowed(b, i, $0, sq: d.sq, sk: d.sk) }
                    var ref = [Double](repeating: 0, count: d.hd)
                    if !keys.isEmpty {
                        let scores = keys.map { j -> Double in
                            (0..<d.hd).reduce(0.0) {
                                $0 + Double(q.ptr[(b * d.sq + i) * d.nh * d.hd + h * d.hd + $1])
                                    * Double(k.ptr[(b * d.sk + j) * d.nkv * d.hd + kv * d.hd + $1])
                            } / Double(d.hd).squareRoot()
                        }
                        let m = scores.max()!, e = scores.map { exp($0 - m) }, z = e.reduce(0, +)
                        for (jj, j) in keys.enumerated() {
                            for c in 0..<d.hd {
                                ref[c] += e[jj] / z * Double(v.ptr[(b * d.sk + j) * d.nkv * d.hd + kv * d.hd + c])
                            }
                        }
                    }
                    for c in 0..<d.hd {
                        XCTAssertEqual(
                            Double(o.ptr[(b * d.sq + i) * d.nh * d.hd + h * d.hd + c]), ref[c], accuracy: 1e-5,
                            "\(name) b\(b) h\(h) q\(i)")
                    }
                }
            }
        }
        for (b, i) in maskedRowsZero {
            for c in 0..<(d.nh * d.hd) {
                XCTAssertEqual(o.ptr[(b * d.sq + i) * d.nh * d.hd + c], 0, "\(name): fully masked row is zero")
            }
        }
    }

    func testAttentionCausalPaddedGQA() {
        let d = Attention.Dims(b: 2, sq: 6, sk: 6, nh: 4, nkv: 2, hd: 4)
        // Sample 1 is left-padded by 2: its first two query rows see no key (zeros, like SDPA).
        let valid: [UInt8] = [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1]
        valid.withUnsafeBufferPointer { p in
            attentionCheck(
                "self-attention causal+pad+GQA", d, mask: .causal(keyValid: p.baseAddress!),
                maskedRowsZero: [(1, 0), (1, 1)])
        }
    }

    func testAttentionCausalMQA() {
        attentionCheck(
            "self-attention causal MQA", Attention.Dims(b: 1, sq: 5, sk: 5, nh: 3, nkv: 1, hd: 6),
            mask: .causal(keyValid: nil))
    }

    func testCrossAttentionWithDenseMaskAndFullyMaskedRow() {
        let d = Attention.Dims(b: 2, sq: 4, sk: 7, nh: 2, nkv: 1, hd: 4)
        var allowed = [UInt8](repeating: 0, count: d.b * d.sq * d.sk)
        for b in 0..<d.b {
            for q in 0..<d.sq {
                for k in 0..<d.sk { allowed[(b * d.sq + q) * d.sk + k] = (k + q + b) % 3 == 0 ? 0 : 1 }
            }
        }
        for k in 0..<d.sk { allowed[(1 * d.sq + 2) * d.sk + k] = 0 }  // sample 1, query 2 sees nothing
        allowed.withUnsafeBufferPointer { p in
            attentionCheck(
                "cross-attention dense mask", d, mask: .dense(allowed: p.baseAddress!), maskedRowsZero: [(1, 2)])
        }
    }

    func testVisionOuterMask() {
        let d = Attention.Dims(b: 1, sq: 6, sk: 6, nh: 2, nkv: 2, hd: 4)
        let invalid: [UInt8] = [0, 0, 1, 0, 1, 1]
        invalid.withUnsafeBufferPointer { p in
            attentionCheck("vision outer mask", d, mask: .outer(invalid: p.baseAddress!))
        }
    }

    /// Backward from kept probabilities equals backward that recomputes them.
    func testKeptProbabilitiesGiveTheRecomputedGradients() {
        let d = Attention.Dims(b: 2, sq: 5, sk: 7, nh: 4, nkv: 2, hd: 4)
        let q = rng.tensor([d.b, d.sq, d.nh * d.hd]), k = rng.tensor([d.b, d.sk, d.nkv * d.hd]),
            v = rng.tensor([d.b, d.sk, d.nkv * d.hd])
        let dout = rng.tensor(q.shape), lse = Tensor(zeros: [d.b, d.nh, d.sq]), probs = Attention.probsBuffer(d)!
        var grads: [[Tensor]] = []
        for keep in [false, true] {
            let o = Tensor(zeros: q.shape)
            Attention.forward(
                out: o.ptr, lse: lse.ptr, q: q.ptr, k: k.ptr, v: v.ptr, mask: .causal(keyValid: nil), d,
                probs: keep ? probs.ptr : nil)
            let g = [Tensor(zeros: q.shape), Tensor(zeros: k.shape), Tensor(zeros: v.shape)]
            Attention.backward(
                dq: g[0].ptr, dk: g[1].ptr, dv: g[2].ptr, dout: dout.ptr, q: q.ptr, k: k.ptr, v: v.ptr, lse: lse.ptr,
                mask: .causal(keyValid: nil), d, probs: keep ? UnsafePointer(probs.ptr) : nil)
            grads.append(g)
        }
        for (a, b) in zip(grads[0], grads[1]) { assertClose(b, a, rtol: 1e-5, atol: 1e-6) }
        XCTAssertGreaterThan(grads[0][1].norm, 0)
    }

    func testAttentionUnmasked() {
        attentionCheck("attention no mask", Attention.Dims(b: 2, sq: 3, sk: 20, nh: 2, nkv: 2, hd: 8), mask: .none)
    }
}
