/// A set of named tensors living in one contiguous buffer (llm.c style), each a view.
/// The model's weights are one `ParameterSet`; their gradients, when wanted, are another with
/// the same layout, so optimizers and checkpoints walk both in step.
public final class ParameterSet: @unchecked Sendable {
    public struct Entry: Sendable { public let name: String; public let shape: [Int]; public let offset: Int }
    public let entries: [Entry]
    public let storage: Tensor
    private let index: [String: Int]
    private let views: [Tensor]

    public init(_ specs: [(String, [Int])]) {
        var offset = 0
        var entries: [Entry] = []
        for (name, shape) in specs {
            entries.append(Entry(name: name, shape: shape, offset: offset))
            // Keep each tensor 16-float aligned for SIMD loads.
            offset += (shape.reduce(1, *) + 15) / 16 * 16
        }
        self.entries = entries
        let storage = Tensor(zeros: [offset])
        self.storage = storage
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
        views = entries.map { storage.view(offset: $0.offset, shape: $0.shape) }
    }

    public var names: [String] { entries.map(\.name) }
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.shape.reduce(1, *) } }
    public func contains(_ name: String) -> Bool { index[name] != nil }

    public subscript(_ name: String) -> Tensor {
        guard let i = index[name] else { preconditionFailure("no parameter \(name)") }
        return views[i]
    }
    public func tensor(_ name: String) -> Tensor? { index[name].map { views[$0] } }
}

/// Something added to a linear layer's output: a LoRA adapter or a supernet.
/// It sees the layer's input and accumulates into the output and the input gradient.
public protocol LinearAdapter: AnyObject {
    /// y (n, out) += adapter(x (n, in))
    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, n: Int)
    /// dx (n, in) += ∂/∂x, and the adapter's own parameter gradients +=.
    func backward(dx: UnsafeMutablePointer<Float>?, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, n: Int)
}

/// A linear layer of the model: y = x·Wᵀ (+ b) (+ adapter(x)).
public final class LinearLayer {
    /// The module's name in the checkpoint, without ".weight" (e.g. "vision_model.transformer.layers.0.self_attn.q_proj").
    public let name: String
    public let inFeatures: Int, outFeatures: Int
    public let weight: Tensor
    public let bias: Tensor?
    /// Gradient views, present when the base weights are being trained.
    public var weightGrad: Tensor?, biasGrad: Tensor?
    public var adapter: LinearAdapter?

    init(name: String, params: ParameterSet, grads: ParameterSet?, hasBias: Bool) {
        self.name = name
        weight = params[name + ".weight"]
        bias = hasBias ? params[name + ".bias"] : nil
        outFeatures = weight.shape[0]; inFeatures = weight.shape[1]
        weightGrad = grads?[name + ".weight"]
        biasGrad = hasBias ? grads?[name + ".bias"] : nil
    }

    /// x (n, in) → y (n, out).
    public func forward(_ x: Tensor) -> Tensor {
        let n = x.count / inFeatures
        let y = Tensor(uninitialized: [n, outFeatures])   // the GEMM writes every element (beta = 0)
        Linear.forward(y: y.ptr, x: x.ptr, w: weight.ptr, b: bias?.ptr, n: n, c: inFeatures, oc: outFeatures)
        adapter?.forward(x: x.ptr, y: y.ptr, n: n)
        return y
    }

    /// Accumulates dx (if given), the weight gradients (if trained) and the adapter's gradients.
    public func backward(_ dy: Tensor, x: Tensor, dx: Tensor?) {
        let n = x.count / inFeatures
        Linear.backward(dx: dx?.ptr, dw: weightGrad?.ptr, db: biasGrad?.ptr, dy: dy.ptr, x: x.ptr, w: weight.ptr,
                        n: n, c: inFeatures, oc: outFeatures)
        adapter?.backward(dx: dx?.ptr, dy: dy.ptr, x: x.ptr, n: n)
    }
}

/// The LoRA-targetable module types of Mllama, named as PEFT's target_modules name them.
public enum ModuleType: String, CaseIterable, Sendable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"
    case fc1, fc2
}
