import Foundation

/// A description of a loaded model: architecture, parameters per part, and the linear modules
/// LoRA can target, grouped by type. Shared by `loranas inspect` and the C ABI.
public struct ModelSummary {
    /// A top-level part of the model and its parameter count.
    public struct Part {
        public let name: String
        public let parameters: Int
    }

    /// Linear modules of one type at one location with one shape.
    public struct ModuleGroup {
        public let type: String
        public let location: String
        public let count: Int
        public let inFeatures: Int
        public let outFeatures: Int
    }

    public let config: MllamaConfig
    public let parts: [Part]
    public let groups: [ModuleGroup]
    public let totalParameters: Int

    /// Derived from the config alone, so a summary of an 11B checkpoint allocates nothing.
    public init(config: MllamaConfig) {
        self.config = config
        let specs = MllamaModel.specs(config)
        var parts: [String: Int] = [:]
        for (name, shape) in specs { parts[Self.part(of: name), default: 0] += shape.reduce(1, *) }
        self.parts = ["vision_model", "multi_modal_projector", "embed_tokens", "text_decoder", "lm_head"].map {
            Part(name: $0, parameters: parts[$0] ?? 0)
        }
        totalParameters = specs.reduce(0) { $0 + $1.1.reduce(1, *) }
        var groups: [ModuleGroup] = []
        var index: [String: Int] = [:]
        for (name, shape) in MllamaModel.targetableSpecs(config) {
            let type = String(name.split(separator: ".").last ?? ""), location = Self.location(of: name)
            let key = "\(location)|\(type)|\(shape[1])|\(shape[0])"
            let count = index[key].map { groups[$0].count + 1 } ?? 1
            let group = ModuleGroup(type: type, location: location, count: count, inFeatures: shape[1],
                                    outFeatures: shape[0])
            if let i = index[key] {
                groups[i] = group
            } else {
                index[key] = groups.count
                groups.append(group)
            }
        }
        self.groups = groups
    }

    /// The top-level part a parameter belongs to.
    static func part(of name: String) -> String {
        if name.hasPrefix("vision_model.") { return "vision_model" }
        if name.hasPrefix("multi_modal_projector.") { return "multi_modal_projector" }
        if name.hasPrefix("language_model.lm_head") { return "lm_head" }
        if name.hasSuffix("embed_tokens.weight") { return "embed_tokens" }
        return "text_decoder"
    }

    /// Where a linear module sits: vision local/global encoder, text self/cross-attention or MLP.
    public static func location(of name: String) -> String {
        if name.hasPrefix("vision_model.transformer.") { return "vision.local" }
        if name.hasPrefix("vision_model.global_transformer.") { return "vision.global" }
        if name.contains(".self_attn.") { return "text.self_attn" }
        if name.contains(".cross_attn.") { return "text.cross_attn" }
        if name.contains(".mlp.") { return "text.mlp" }
        return "other"
    }

    /// The summary as a JSON object (for the C ABI and `loranas inspect --json`).
    public var json: JSON {
        let v = config.vision, t = config.text
        func n(_ x: Int) -> JSON { .number(Double(x)) }
        return .object([
            ("architecture", .string("MllamaForConditionalGeneration")),
            ("vision", .object([
                ("hidden_size", n(v.hiddenSize)), ("num_hidden_layers", n(v.numHiddenLayers)),
                ("num_global_layers", n(v.numGlobalLayers)), ("attention_heads", n(v.attentionHeads)),
                ("image_size", n(v.imageSize)), ("patch_size", n(v.patchSize)), ("max_num_tiles", n(v.maxNumTiles)),
                ("num_channels", n(v.numChannels)), ("tokens_per_tile", n(v.tokensPerTile)),
                ("vision_output_dim", n(v.visionOutputDim)),
            ])),
            ("text", .object([
                ("vocab_size", n(t.vocabSize)), ("hidden_size", n(t.hiddenSize)),
                ("num_hidden_layers", n(t.numHiddenLayers)), ("num_attention_heads", n(t.numAttentionHeads)),
                ("num_key_value_heads", n(t.numKeyValueHeads)),
                ("cross_attention_layers", .array(t.crossAttentionLayers.map(n))),
                ("pad_token_id", t.padTokenId.map(n) ?? .null),
            ])),
            ("image_token_index", n(config.imageTokenIndex)),
            ("total_parameters", n(totalParameters)),
            ("parameters", .object(parts.map { ($0.name, n($0.parameters)) })),
            ("targetable_modules", .array(groups.map { g in
                .object([("type", .string(g.type)), ("location", .string(g.location)), ("count", n(g.count)),
                         ("in_features", n(g.inFeatures)), ("out_features", n(g.outFeatures))])
            })),
        ])
    }

    /// A human-readable report.
    public var text: String {
        var lines = ["MllamaForConditionalGeneration: \(totalParameters.formatted()) parameters"]
        let v = config.vision, t = config.text
        lines.append("  vision: \(v.numHiddenLayers) local + \(v.numGlobalLayers) global layers, "
                     + "hidden \(v.hiddenSize), \(v.attentionHeads) heads, "
                     + "\(v.imageSize)px tiles of \(v.patchSize)px patches, up to \(v.maxNumTiles) tiles")
        lines.append("  text:   \(t.numHiddenLayers) layers (cross-attention at \(t.crossAttentionLayers)), "
                     + "hidden \(t.hiddenSize), \(t.numAttentionHeads) heads / \(t.numKeyValueHeads) kv heads, "
                     + "vocab \(t.vocabSize)")
        lines.append("parameters by part:")
        for p in parts { lines.append("  " + pad(p.name, 24) + p.parameters.formatted()) }
        lines.append("LoRA-targetable linear modules (\(groups.reduce(0) { $0 + $1.count }) in all):")
        lines.append("  TYPE       LOCATION          COUNT  IN -> OUT")
        for g in groups {
            lines.append("  " + pad(g.type, 11) + pad(g.location, 18) + pad(String(g.count), 7)
                         + "\(g.inFeatures) -> \(g.outFeatures)")
        }
        return lines.joined(separator: "\n")
    }

    private func pad(_ s: String, _ width: Int) -> String { s.padding(toLength: width, withPad: " ", startingAt: 0) }
}

extension Int {
    /// 1234567 → "1,234,567"
    func formatted() -> String {
        let s = String(abs(self))
        var out = ""
        for (i, c) in s.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (self < 0 ? "-" : "") + String(out.reversed())
    }
}
