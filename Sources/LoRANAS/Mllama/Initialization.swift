import Foundation

/// Fresh weights for a model built from a config: for benchmarks, synthetic runs and pretraining.
extension MllamaModel {
    /// Fills every parameter from a seeded generator: matrices uniform in ±1/√fan-in, norm weights
    /// 1, biases 0, embeddings and positional tables ±0.5, gates 0.5 (so every path is active).
    /// For benchmarks and synthetic experiments; real work loads a checkpoint.
    public func initializeRandomly(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for e in params.entries {
            let t = params[e.name], n = e.name
            if Self.isGate(n) {
                t.ptr[0] = 0.5
            } else if Self.isNormWeight(e) {
                t.ptr.update(repeating: 1, count: t.count)
            } else if n.hasSuffix(".bias") {
                t.zero()
            } else {
                let fanIn = e.shape.count >= 2 ? e.shape.dropFirst().reduce(1, *) : 4
                let bound: Float = n.contains("embed") || n.contains("embedding") ? 0.5 : 1 / Float(fanIn).squareRoot()
                for i in 0..<t.count { t.ptr[i] = rng.uniform(-bound, bound) }
            }
        }
    }

    /// The weights transformers' `MllamaPreTrainedModel._init_weights` draws, for training from scratch:
    /// linear, convolution and embedding weights, the class embedding, positional tables and the vision
    /// encoder's gate_attn / gate_ffn from N(0, std²); norm weights 1; biases 0; the cross-attention gates
    /// and the positional-embedding gates 0 (tanh(0) = 0: the text model starts blind and learns to look).
    public func initializeForTraining(seed: UInt64, std: Float = 0.02) {
        var rng = SplitMix64(seed: seed)
        for e in params.entries {
            let t = params[e.name], n = e.name
            if Self.isNormWeight(e) {
                t.ptr.update(repeating: 1, count: t.count)
            } else if n.hasSuffix(".bias") || n.hasSuffix("gate") {  // not the vision layers' gate_attn, gate_ffn
                t.zero()
            } else {
                for i in 0..<t.count { t.ptr[i] = std * rng.normal() }
            }
        }
    }

    private static func isGate(_ name: String) -> Bool {
        name.hasSuffix("gate") || name.hasSuffix("gate_attn") || name.hasSuffix("gate_ffn")
    }

    private static func isNormWeight(_ e: ParameterSet.Entry) -> Bool {
        e.name.contains("norm") && e.name.hasSuffix(".weight") && e.shape.count == 1
    }
}
