import XCTest
@testable import LoRANAS

/// Adam and AdamW against their closed form (PyTorch's update rule, in Double), and the vectorized update's lanes
/// against its scalar tail.
final class OptimizerTests: XCTestCase {
    /// Three steps on a tensor of 37 elements (two 16-wide chunks and a tail of 5) follow the closed form.
    func testStepsFollowTheClosedForm() {
        for decoupled in [true, false] {
            var rng = TestRNG(7)
            let config = AdamConfig(lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-6, weightDecay: 0.1,
                                    decoupled: decoupled)
            let p = TrainableTensor(name: "p", value: rng.tensor([37]))
            var w = (0..<37).map { Double(p.value.ptr[$0]) }
            var m = [Double](repeating: 0, count: 37), v = m
            let opt = Adam([p], config)
            for t in 1...3 {
                let g = rng.tensor([37])
                p.grad.copy(from: g)
                opt.step()
                for i in 0..<37 {
                    let (lr, b1, b2) = (Double(config.lr), Double(config.beta1), Double(config.beta2))
                    let (decay, eps) = (Double(config.weightDecay), Double(config.eps))
                    var gi = Double(g.ptr[i])
                    if decoupled { w[i] *= 1 - lr * decay } else { gi += decay * w[i] }
                    m[i] = b1 * m[i] + (1 - b1) * gi
                    v[i] = b2 * v[i] + (1 - b2) * gi * gi
                    let mHat = m[i] / (1 - pow(b1, Double(t))), vHat = v[i] / (1 - pow(b2, Double(t)))
                    w[i] -= lr * mHat / (vHat.squareRoot() + eps)
                }
                XCTAssertTrue((0..<37).allSatisfy { p.grad.ptr[$0] == 0 }, "gradients zeroed after the step")
            }
            let expected = Tensor(w.map { Float($0) }, shape: [37])
            assertClose(p.value, expected, rtol: 1e-5, atol: 1e-6, "AdamW decoupled=\(decoupled)")
        }
    }

    /// An element updated in a 16-wide chunk and the same inputs updated in the scalar tail give the same bits.
    func testLanesMatchTheTail() {
        var rng = TestRNG(3)
        let n = 16 + 3
        let p = TrainableTensor(name: "p", value: rng.tensor([n]))
        let opt = Adam([p], AdamConfig(lr: 3e-3, weightDecay: 0.01))
        p.value.ptr[16] = p.value.ptr[5]
        for _ in 0..<4 {
            let g = rng.tensor([n])
            g.ptr[16] = g.ptr[5]
            p.grad.copy(from: g)
            opt.step()
            XCTAssertEqual(p.value.ptr[16].bitPattern, p.value.ptr[5].bitPattern)
        }
    }
}
