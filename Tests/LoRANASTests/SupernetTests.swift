import XCTest
@testable import LoRANAS

final class SupernetTests: XCTestCase {
    var rng = TestRNG(11)

    func makeSupernet(space: [Int] = [2, 4, 6, 8], slices: SliceMode = .centered, inF: Int = 10, outF: Int = 7)
        -> SupernetAdapter
    {
        var g = SplitMix64(seed: 3)
        let s = SupernetAdapter(
            module: "m", inFeatures: inF, outFeatures: outF, space: space, loraAlpha: 16, slices: slices, rng: &g)
        for i in 0..<s.b.value.count { s.b.value.ptr[i] = rng.uniform(-0.5, 0.5) }
        for i in 0..<s.logits.value.count { s.logits.value.ptr[i] = rng.uniform(-1, 1) }
        return s
    }

    func testSlices() {
        XCTAssertEqual(SliceMode.centered.range(rank: 4, maxRank: 64), 30..<34)
        XCTAssertEqual(SliceMode.centered.range(rank: 64, maxRank: 64), 0..<64)
        XCTAssertEqual(SliceMode.prefix.range(rank: 8, maxRank: 64), 0..<8)
    }

    func testOneGEMMPairEqualsNaivePerChoiceMix() {
        for mode in [SliceMode.centered, .prefix] {
            let s = makeSupernet(slices: mode)
            let x = rng.tensor([5, 10])
            let fast = Tensor(zeros: [5, 7]), naive = Tensor(zeros: [5, 7])
            s.forward(x: x.ptr, y: fast.ptr, n: 5)
            s.naiveForward(x: x, y: naive)
            XCTAssertLessThan(relativeError(fast, naive), 1e-5, "\(mode)")
            XCTAssertGreaterThan(fast.norm, 0.1)
        }
    }

    func testGradientsOfAandBandAlphaMatchFiniteDifferences() {
        let s = makeSupernet()
        let x = rng.tensor([4, 10])
        let dx = Tensor(zeros: x.shape)
        checkGradients("supernet", inputs: [x, s.a.value, s.b.value, s.logits.value], eps: 2e-3) {
            let y = Tensor(zeros: [4, 7])
            s.forward(x: x.ptr, y: y.ptr, n: 4)
            return y
        } backward: { dy in
            let y = Tensor(zeros: [4, 7])
            s.forward(x: x.ptr, y: y.ptr, n: 4)
            s.a.grad.zero()
            s.b.grad.zero()
            s.logits.grad.zero()
            dx.zero()
            s.backward(dx: dx.ptr, dy: dy.ptr, x: x.ptr, n: 4)
            return [dx, s.a.grad.copy(), s.b.grad.copy(), s.logits.grad.copy()]
        }
    }

    func testFrozenFlagsLeaveGradientsAlone() {
        let s = makeSupernet()
        let x = rng.tensor([3, 10]), dy = rng.tensor([3, 7]), y = Tensor(zeros: [3, 7])
        s.trainWeights = false
        s.forward(x: x.ptr, y: y.ptr, n: 3)
        s.backward(dx: nil, dy: dy.ptr, x: x.ptr, n: 3)
        XCTAssertEqual(s.a.grad.norm, 0)
        XCTAssertEqual(s.b.grad.norm, 0)
        XCTAssertGreaterThan(s.logits.grad.norm, 0)
        s.trainWeights = true
        s.trainAlpha = false
        s.logits.grad.zero()
        s.forward(x: x.ptr, y: y.ptr, n: 3)
        s.backward(dx: nil, dy: dy.ptr, x: x.ptr, n: 3)
        XCTAssertEqual(s.logits.grad.norm, 0)
        XCTAssertGreaterThan(s.a.grad.norm, 0)
    }

    /// A one-choice space is exactly plain LoRA at that rank: same outputs and gradients, bit for bit.
    func testOneChoiceSpaceIsExactlyPlainLoRA() {
        var g1 = SplitMix64(seed: 9), g2 = SplitMix64(seed: 9)
        let s = SupernetAdapter(module: "m", inFeatures: 10, outFeatures: 7, space: [8], loraAlpha: 16, rng: &g1)
        let l = LoRAAdapter(module: "m", inFeatures: 10, outFeatures: 7, rank: 8, loraAlpha: 16, rng: &g2)
        XCTAssertEqual(s.a.value.array, l.a.value.array)
        for i in 0..<s.b.value.count {
            let v = rng.uniform()
            s.b.value.ptr[i] = v
            l.b.value.ptr[i] = v
        }
        let x = rng.tensor([5, 10]), dy = rng.tensor([5, 7])
        let ys = Tensor(zeros: [5, 7]), yl = Tensor(zeros: [5, 7]), dxs = Tensor(zeros: [5, 10]),
            dxl = Tensor(zeros: [5, 10])
        s.forward(x: x.ptr, y: ys.ptr, n: 5)
        l.forward(x: x.ptr, y: yl.ptr, n: 5)
        XCTAssertEqual(ys.array, yl.array)
        s.backward(dx: dxs.ptr, dy: dy.ptr, x: x.ptr, n: 5)
        l.backward(dx: dxl.ptr, dy: dy.ptr, x: x.ptr, n: 5)
        XCTAssertEqual(dxs.array, dxl.array)
        XCTAssertEqual(s.a.grad.array, l.a.grad.array)
        XCTAssertEqual(s.b.grad.array, l.b.grad.array)
        XCTAssertEqual(s.logits.grad.array, [0], "softmax of one logit has zero gradient")
    }

    func testLoRAGradientsMatchFiniteDifferencesWithDropoutOff() {
        var g = SplitMix64(seed: 1)
        let l = LoRAAdapter(module: "m", inFeatures: 6, outFeatures: 5, rank: 3, loraAlpha: 6, rng: &g)
        for i in 0..<l.b.value.count { l.b.value.ptr[i] = rng.uniform() }
        let x = rng.tensor([4, 6]), dx = Tensor(zeros: x.shape)
        checkGradients("lora", inputs: [x, l.a.value, l.b.value], eps: 2e-3) {
            let y = Tensor(zeros: [4, 5])
            l.forward(x: x.ptr, y: y.ptr, n: 4)
            return y
        } backward: { dy in
            let y = Tensor(zeros: [4, 5])
            l.forward(x: x.ptr, y: y.ptr, n: 4)
            l.a.grad.zero()
            l.b.grad.zero()
            dx.zero()
            l.backward(dx: dx.ptr, dy: dy.ptr, x: x.ptr, n: 4)
            return [dx, l.a.grad.copy(), l.b.grad.copy()]
        }
    }

    func testExpectedParametersGradient() {
        let s = makeSupernet()
        let (_, grad) = s.expectedParameters()
        for k in 0..<s.space.count {
            let keep = s.logits.value.ptr[k]
            s.logits.value.ptr[k] = keep + 1e-3
            let p = s.expectedParameters().value
            s.logits.value.ptr[k] = keep - 1e-3
            let m = s.expectedParameters().value
            s.logits.value.ptr[k] = keep
            XCTAssertEqual((p - m) / 2e-3, grad[k], accuracy: 1e-2 * max(1, abs(grad[k])))
        }
    }
}
