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
            let w = p.value.ptr, g = p.grad.ptr, mk = m[k].ptr, vk = v[k].ptr
            for i in 0..<p.value.count {
                var gi = g[i]
                if c.weightDecay != 0 {
                    if c.decoupled { w[i] *= 1 - c.lr * c.weightDecay } else { gi += c.weightDecay * w[i] }
                }
                mk[i] = c.beta1 * mk[i] + (1 - c.beta1) * gi
                vk[i] = c.beta2 * vk[i] + (1 - c.beta2) * gi * gi
                w[i] -= stepSize * mk[i] / (vk[i].squareRoot() / bc2Sqrt + c.eps)
            }
            p.grad.zero()
        }
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
