import XCTest
@testable import LoRANAS

/// The adapter folded into its layer's weight (`FoldedLowRank`): the layer's outputs and every gradient against
/// finite differences, against the factored form, and the rule that picks it.
final class FoldedLowRankTests: XCTestCase {
    var rng = TestRNG(23)
    // in = out = R = 8 on 16 rows: folded 16·64 + 3·8·64 = 2560 multiply-adds against 3·16·8·16 = 6144.
    let n = 16, width = 8, rank = 8

    func testFoldingPaysOnlyWhenTheRankIsLargeAgainstTheLayer() {
        func pays(_ n: Int, _ inF: Int, _ outF: Int, _ r: Int) -> Bool {
            FoldedLowRank.pays(n: n, FoldedLowRank.Factors(a: Tensor(zeros: [r, inF]), b: Tensor(zeros: [outF, r]),
                                                          scale: [Float](repeating: 1, count: r)))
        }
        XCTAssertTrue(pays(256, 64, 64, 64))      // the tiny benchmark's text layers: 1.8M against 6.3M
        XCTAssertTrue(pays(256, 64, 128, 64))     // its MLP
        XCTAssertFalse(pays(512, 384, 384, 64))   // small's text layers: 103M against 75M
        XCTAssertFalse(pays(512, 4096, 4096, 64))
        XCTAssertFalse(pays(1, 64, 64, 64))       // one decode row: building W' costs more than it saves
        XCTAssertFalse(pays(256, 64, 64, 4))
    }

    func testFoldedLoRALayerMatchesFiniteDifferences() {
        let layer = makeLayer(hasBias: true)
        let lora = makeLoRA()
        layer.adapter = lora
        let x = rng.tensor([n, width]), dx = Tensor(zeros: x.shape)
        checkGradients("folded lora", inputs: [x, lora.a.value, lora.b.value], eps: 2e-3) {
            layer.forward(x)
        } backward: { dy in
            _ = layer.forward(x)
            XCTAssertNotNil(layer.folded)
            lora.a.grad.zero()
            lora.b.grad.zero()
            dx.zero()
            layer.backward(dy, x: x, dx: dx)
            XCTAssertNil(layer.folded, "backward consumes the folded weight")
            return [dx, lora.a.grad.copy(), lora.b.grad.copy()]
        }
    }

    func testFoldedSupernetLayerMatchesFiniteDifferences() {
        let layer = makeLayer(hasBias: false)
        let s = makeSupernet()
        layer.adapter = s
        let x = rng.tensor([n, width]), dx = Tensor(zeros: x.shape)
        checkGradients("folded supernet", inputs: [x, s.a.value, s.b.value, s.logits.value], eps: 2e-3) {
            layer.forward(x)
        } backward: { dy in
            _ = layer.forward(x)
            XCTAssertNotNil(layer.folded)
            for t in s.parameters { t.grad.zero() }
            dx.zero()
            layer.backward(dy, x: x, dx: dx)
            return [dx] + s.parameters.map { $0.grad.copy() }
        }
    }

    /// Folded and factored are the same products summed in another order: equal to rounding, for each
    /// combination of frozen flags the search uses.
    func testFoldedEqualsFactoredForm() {
        for (weights, alpha) in [(true, true), (true, false), (false, true)] {
            let layer = makeLayer(hasBias: true)
            let s = makeSupernet()
            s.train(weights: weights, alpha: alpha)
            layer.adapter = s
            let x = rng.tensor([n, width]), dy = rng.tensor([n, width])
            let dx = Tensor(zeros: x.shape), dxRef = Tensor(zeros: x.shape)
            let y = layer.forward(x)
            XCTAssertNotNil(layer.folded)
            layer.backward(dy, x: x, dx: dx)
            let folded = s.parameters.map { $0.grad.copy() }
            for t in s.parameters { t.grad.zero() }
            let yRef = Tensor(zeros: y.shape)
            Linear.forward(y: yRef.ptr, x: x.ptr, w: layer.weight.ptr, b: layer.bias?.ptr, n: n, c: width, oc: width)
            s.forward(x: x.ptr, y: yRef.ptr, n: n)
            Linear.backward(dx: dxRef.ptr, dw: nil, db: nil, dy: dy.ptr, x: x.ptr, w: layer.weight.ptr, n: n,
                            c: width, oc: width)
            s.backward(dx: dxRef.ptr, dy: dy.ptr, x: x.ptr, n: n)
            assertClose(y, yRef, "y")
            assertClose(dx, dxRef, "dx")
            for (t, g) in zip(s.parameters, folded) {
                assertClose(g, t.grad, t.name)
                XCTAssertEqual(g.norm > 0, t === s.logits ? alpha : weights, "\(t.name) trained: \(weights), \(alpha)")
            }
        }
    }

    /// Dropout, a merged adapter and a trained base keep the factored form.
    func testLayersThatCannotFoldDoNot() throws {
        let layer = makeLayer(hasBias: false)
        let lora = makeLoRA(dropout: 0.5)
        layer.adapter = lora
        let x = rng.tensor([n, width])
        lora.training = true
        _ = layer.forward(x)
        XCTAssertNil(layer.folded, "dropout")
        lora.training = false
        _ = layer.forward(x)
        XCTAssertNotNil(layer.folded)
        try lora.merge(into: layer.weight)
        _ = layer.forward(x)
        XCTAssertNil(layer.folded, "merged")
        lora.unmerge(from: layer.weight)
        let grads = ParameterSet([("l.weight", [width, width])])
        let trained = LinearLayer(name: "l", params: layerParams(hasBias: false), grads: grads, hasBias: false)
        trained.adapter = makeLoRA()
        _ = trained.forward(x)
        XCTAssertNil(trained.folded, "trained base")
    }

    private func layerParams(hasBias: Bool) -> ParameterSet {
        let p = ParameterSet([("l.weight", [width, width])] + (hasBias ? [("l.bias", [width])] : []))
        p["l.weight"].copy(from: rng.tensor([width, width]))
        if hasBias { p["l.bias"].copy(from: rng.tensor([width])) }
        return p
    }

    private func makeLayer(hasBias: Bool) -> LinearLayer {
        LinearLayer(name: "l", params: layerParams(hasBias: hasBias), grads: nil, hasBias: hasBias)
    }

    private func makeLoRA(dropout: Float = 0) -> LoRAAdapter {
        var g = SplitMix64(seed: 5)
        let l = LoRAAdapter(module: "l", inFeatures: width, outFeatures: width, rank: rank, loraAlpha: 16,
                            dropout: dropout, rng: &g)
        l.b.value.copy(from: rng.tensor([width, rank], -0.5, 0.5))
        return l
    }

    private func makeSupernet() -> SupernetAdapter {
        var g = SplitMix64(seed: 6)
        let s = SupernetAdapter(module: "l", inFeatures: width, outFeatures: width, space: [2, 4, 8], loraAlpha: 16,
                                rng: &g)
        s.b.value.copy(from: rng.tensor([width, rank], -0.5, 0.5))
        s.logits.value.copy(from: rng.tensor([3]))
        return s
    }
}
