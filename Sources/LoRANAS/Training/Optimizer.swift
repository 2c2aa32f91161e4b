import Foundation

/// Adam hyper-parameters. `decoupled` gives AdamW (PyTorch's `torch.optim.AdamW`): the weight decay
/// shrinks the parameters directly instead of entering the gradient as with `torch.optim.Adam`.
public struct AdamConfig: Sendable, Equatable {
    public var lr: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var eps: Float = 1e-8
    public var weightDecay: Float = 0
    public var decoupled = true

    public init(
        lr: Float, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0,
        decoupled: Bool = true
    ) {
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        self.decoupled = decoupled
    }
}

/// Adam / AdamW over a fixed list of tensors, with the first and second moments kept per tensor.
public final class Adam {
    public let parameters: [TrainableTensor]
    public var config: AdamConfig
    public private(set) var steps = 0
    let m: [Tensor], v: [Tensor]

    public init(_ parameters: [TrainableTensor], _ config: AdamConfig) {
        self.parameters = parameters
        self.config = config
        m = parameters.map { Tensor(zeros: $0.value.shape) }
        v = parameters.map { Tensor(zeros: $0.value.shape) }
    }

    /// One update from the accumulated gradients; gradients are then zeroed.
    public func step() {
        steps += 1
        let c = config
        let bc1 = 1 - pow(Double(c.beta1), Double(steps))
        let bc2 = 1 - pow(Double(c.beta2), Double(steps))
        let stepSize = Float(Double(c.lr) / bc1)
        let bc2Sqrt = Float(bc2.squareRoot())
        Engine.parallelFor(parameters.count) { k in
            let p = parameters[k]
            Adam.update(w: p.value.ptr, g: p.grad.ptr, m: m[k].ptr, v: v[k].ptr, n: p.value.count, c,
                        stepSize: stepSize, bc2Sqrt: bc2Sqrt)
            p.grad.zero()
        }
    }

    /// One tensor's update, 16 lanes at a time; each lane computes what the scalar tail computes, in the same
    /// order, so the bits do not depend on where the tail starts.
    private static func update(w: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
                               v: UnsafeMutablePointer<Float>, n: Int, _ c: AdamConfig, stepSize: Float,
                               bc2Sqrt: Float) {
        let decay = 1 - c.lr * c.weightDecay, b1 = 1 - c.beta1, b2 = 1 - c.beta2
        let decoupled = c.weightDecay != 0 && c.decoupled, coupled = c.weightDecay != 0 && !c.decoupled
        forEachChunk(n, simd: { i in
            var wi = load(w, i), gi = load(g, i)
            if decoupled { wi *= decay }
            if coupled { gi += c.weightDecay * wi }
            let mi = c.beta1 * load(m, i) + b1 * gi, vi = c.beta2 * load(v, i) + b2 * gi * gi
            store(mi, m, i)
            store(vi, v, i)
            store(wi - stepSize * mi / (vi.squareRoot() / bc2Sqrt + c.eps), w, i)
        }, scalar: { i in
            var gi = g[i]
            if decoupled { w[i] *= decay }
            if coupled { gi += c.weightDecay * w[i] }
            m[i] = c.beta1 * m[i] + b1 * gi
            v[i] = c.beta2 * v[i] + b2 * gi * gi
            w[i] -= stepSize * m[i] / (v[i].squareRoot() / bc2Sqrt + c.eps)
        })
    }

    /// Moments, for run states: tensors named "<prefix><param>.exp_avg" / ".exp_avg_sq".
    func state(prefix: String) -> [(String, Tensor)] {
        parameters.enumerated().flatMap { k, p in
            [(prefix + p.name + ".exp_avg", m[k]), (prefix + p.name + ".exp_avg_sq", v[k])]
        }
    }

    /// Restores the moments and the step count saved by `state(prefix:)`.
    func restore(prefix: String, from saved: RunState.Saved, steps: Int) throws {
        for (k, p) in parameters.enumerated() {
            try saved.restore(prefix + p.name + ".exp_avg", into: m[k])
            try saved.restore(prefix + p.name + ".exp_avg_sq", into: v[k])
        }
        self.steps = steps
    }
}
