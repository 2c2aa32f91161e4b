import Foundation

/// `vision_config` of a Hugging Face Mllama config.json, with transformers' defaults.
public struct MllamaVisionConfig: Sendable, Equatable {
    public var hiddenSize = 1280
    public var numHiddenLayers = 32
    public var numGlobalLayers = 8
    public var attentionHeads = 16
    public var numChannels = 3
    public var intermediateSize = 5120
    public var visionOutputDim = 7680
    public var imageSize = 448
    public var patchSize = 14
    public var normEps: Float = 1e-5
    public var maxNumTiles = 4
    public var intermediateLayersIndices = [3, 7, 15, 23, 30]
    /// Number of supported aspect ratios A; the aspect-ratio tables have A + 1 rows.
    public var numAspectRatios = 8

    public init() {}

    public var headDim: Int { hiddenSize / attentionHeads }
    /// Patches per side G, patches per tile P = G², tokens per tile L = P + 1, padded Lp = 8·⌈L/8⌉.
    public var gridSize: Int { imageSize / patchSize }
    public var numPatches: Int { gridSize * gridSize }
    public var tokensPerTile: Int { numPatches + 1 }
    public var paddedTokensPerTile: Int { (tokensPerTile + 7) / 8 * 8 }
}

/// `text_config` of a Hugging Face Mllama config.json, with transformers' defaults.
public struct MllamaTextConfig: Sendable, Equatable {
    public var vocabSize = 128256
    public var hiddenSize = 4096
    public var numHiddenLayers = 40
    public var numAttentionHeads = 32
    public var numKeyValueHeads = 8
    public var intermediateSize = 14336
    public var rmsNormEps: Float = 1e-5
    public var crossAttentionLayers = [3, 8, 13, 18, 23, 28, 33, 38]
    public var padTokenId: Int? = 128004
    public var ropeTheta = 500000.0
    public var ropeScaling: Llama3RopeScaling? = nil
    public var maxPositionEmbeddings = 131072

    public init() {}

    public var headDim: Int { hiddenSize / numAttentionHeads }
    /// The embedding table has 8 extra rows past the vocabulary (the image token lives there).
    public var embeddingRows: Int { vocabSize + 8 }
}

/// A Hugging Face `MllamaConfig` (model_type "mllama").
public struct MllamaConfig: Sendable, Equatable {
    public var vision = MllamaVisionConfig()
    public var text = MllamaTextConfig()
    public var imageTokenIndex = 128256

    public init(vision: MllamaVisionConfig = .init(), text: MllamaTextConfig = .init(), imageTokenIndex: Int = 128256) {
        self.vision = vision; self.text = text; self.imageTokenIndex = imageTokenIndex
    }

    /// Reads `config.json` from a model directory, or a config file's path.
    public init(contentsOf path: String) throws {
        var file = path
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            file = URL(fileURLWithPath: path).appendingPathComponent("config.json").path
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            throw LoRANASError.notFound("no config.json at \(file)")
        }
        let json: JSON
        do { json = try JSON.parse(data, rejectDuplicateKeys: false) } catch { throw LoRANASError.format("\(file): \(error)") }
        do { try self.init(json: json) } catch let e as LoRANASError { throw LoRANASError.format("\(file): \(e.description)") }
    }

    public init(json: JSON) throws {
        guard json.object != nil else { throw LoRANASError.format("config is not a JSON object") }
        if let t = json["model_type"]?.string, t != "mllama" {
            throw LoRANASError.unsupported("model_type \"\(t)\"; loranas implements \"mllama\" (LLaMA-3.2-Vision)")
        }
        guard let v = json["vision_config"], v.object != nil else { throw LoRANASError.format("config has no vision_config object") }
        guard let t = json["text_config"], t.object != nil else { throw LoRANASError.format("config has no text_config object") }
        var r = ConfigReader(json: v, section: "vision_config")
        if let act = try r.string("hidden_act"), act != "gelu" {
            throw LoRANASError.unsupported("vision_config.hidden_act \"\(act)\" (only \"gelu\")")
        }
        vision.hiddenSize = try r.int("hidden_size") ?? vision.hiddenSize
        vision.numHiddenLayers = try r.int("num_hidden_layers") ?? vision.numHiddenLayers
        vision.numGlobalLayers = try r.int("num_global_layers") ?? vision.numGlobalLayers
        vision.attentionHeads = try r.int("attention_heads") ?? r.int("num_attention_heads") ?? vision.attentionHeads
        vision.numChannels = try r.int("num_channels") ?? vision.numChannels
        vision.intermediateSize = try r.int("intermediate_size") ?? vision.intermediateSize
        vision.visionOutputDim = try r.int("vision_output_dim") ?? vision.visionOutputDim
        vision.imageSize = try r.int("image_size") ?? vision.imageSize
        vision.patchSize = try r.int("patch_size") ?? vision.patchSize
        vision.normEps = try r.float("norm_eps") ?? vision.normEps
        vision.maxNumTiles = try r.int("max_num_tiles") ?? vision.maxNumTiles
        vision.intermediateLayersIndices = try r.ints("intermediate_layers_indices") ?? vision.intermediateLayersIndices
        if let ratios = v["supported_aspect_ratios"] {
            guard let a = ratios.array, a.allSatisfy({ $0.array?.count == 2 }) else {
                throw LoRANASError.format("vision_config.supported_aspect_ratios must be a list of [h, w] pairs")
            }
            vision.numAspectRatios = a.count
        }

        r = ConfigReader(json: t, section: "text_config")
        if let act = try r.string("hidden_act"), act != "silu" {
            throw LoRANASError.unsupported("text_config.hidden_act \"\(act)\" (only \"silu\")")
        }
        if let tie = t["tie_word_embeddings"]?.bool, tie { throw LoRANASError.unsupported("text_config.tie_word_embeddings = true") }
        text.vocabSize = try r.int("vocab_size") ?? text.vocabSize
        text.hiddenSize = try r.int("hidden_size") ?? text.hiddenSize
        text.numHiddenLayers = try r.int("num_hidden_layers") ?? text.numHiddenLayers
        text.numAttentionHeads = try r.int("num_attention_heads") ?? text.numAttentionHeads
        text.numKeyValueHeads = try r.int("num_key_value_heads") ?? text.numKeyValueHeads
        text.intermediateSize = try r.int("intermediate_size") ?? text.intermediateSize
        text.rmsNormEps = try r.float("rms_norm_eps") ?? text.rmsNormEps
        text.crossAttentionLayers = try r.ints("cross_attention_layers") ?? text.crossAttentionLayers
        text.maxPositionEmbeddings = try r.int("max_position_embeddings") ?? text.maxPositionEmbeddings
        if t["pad_token_id"] != nil { text.padTokenId = t["pad_token_id"]!.isNull ? nil : try r.int("pad_token_id") }
        // RoPE: transformers 5 writes rope_parameters; older files have rope_theta + rope_scaling.
        var rope = t["rope_parameters"]
        if rope == nil || rope!.isNull { rope = t["rope_scaling"] }
        text.ropeTheta = try r.double("rope_theta") ?? text.ropeTheta
        if let rope, rope.object != nil {
            let rr = ConfigReader(json: rope, section: "text_config.rope_parameters")
            text.ropeTheta = try rr.double("rope_theta") ?? text.ropeTheta
            let kind = try rr.string("rope_type") ?? rr.string("type") ?? "default"
            switch kind {
            case "default": text.ropeScaling = nil
            case "llama3":
                guard let f = try rr.double("factor"), let lo = try rr.double("low_freq_factor"), let hi = try rr.double("high_freq_factor") else {
                    throw LoRANASError.format("text_config.rope_parameters: llama3 needs factor, low_freq_factor and high_freq_factor")
                }
                let orig = try rr.double("original_max_position_embeddings") ?? Double(text.maxPositionEmbeddings)
                text.ropeScaling = Llama3RopeScaling(factor: f, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositionEmbeddings: orig)
            default: throw LoRANASError.unsupported("rope type \"\(kind)\" (loranas supports \"default\" and \"llama3\")")
            }
        }
        imageTokenIndex = try ConfigReader(json: json, section: "config").int("image_token_index") ?? text.vocabSize
        try validate()
    }

    /// Cross-field checks that transformers would otherwise hit as shape errors deep in the forward.
    public func validate() throws {
        let v = vision, t = text
        func check(_ ok: Bool, _ m: String) throws { if !ok { throw LoRANASError.format(m) } }
        try check([v.hiddenSize, v.numHiddenLayers, v.attentionHeads, v.intermediateSize, v.imageSize, v.patchSize, v.maxNumTiles, v.numChannels].allSatisfy { $0 > 0 } && v.numGlobalLayers >= 0,
                  "vision_config sizes must be positive")
        try check(v.hiddenSize % v.attentionHeads == 0, "vision hidden_size \(v.hiddenSize) is not a multiple of attention_heads \(v.attentionHeads)")
        try check(v.imageSize % v.patchSize == 0, "vision image_size \(v.imageSize) is not a multiple of patch_size \(v.patchSize)")
        try check(v.intermediateLayersIndices.allSatisfy { $0 >= 0 && $0 < v.numHiddenLayers },
                  "intermediate_layers_indices \(v.intermediateLayersIndices) must lie in 0..<\(v.numHiddenLayers)")
        try check(v.visionOutputDim == v.hiddenSize * (v.intermediateLayersIndices.count + 1),
                  "vision_output_dim \(v.visionOutputDim) must equal hidden_size × (len(intermediate_layers_indices) + 1) = \(v.hiddenSize * (v.intermediateLayersIndices.count + 1))")
        try check(v.numAspectRatios >= 1, "supported_aspect_ratios is empty")
        try check([t.vocabSize, t.hiddenSize, t.numHiddenLayers, t.numAttentionHeads, t.numKeyValueHeads, t.intermediateSize].allSatisfy { $0 > 0 },
                  "text_config sizes must be positive")
        try check(t.hiddenSize % t.numAttentionHeads == 0, "text hidden_size \(t.hiddenSize) is not a multiple of num_attention_heads \(t.numAttentionHeads)")
        try check(t.headDim % 2 == 0, "text head_dim \(t.headDim) must be even for RoPE")
        try check(t.numAttentionHeads % t.numKeyValueHeads == 0,
                  "num_attention_heads \(t.numAttentionHeads) is not a multiple of num_key_value_heads \(t.numKeyValueHeads)")
        try check(t.crossAttentionLayers.allSatisfy { $0 >= 0 && $0 < t.numHiddenLayers },
                  "cross_attention_layers \(t.crossAttentionLayers) must lie in 0..<\(t.numHiddenLayers)")
        if let p = t.padTokenId { try check(p >= 0 && p < t.embeddingRows, "pad_token_id \(p) is outside the embedding table") }
        try check(t.rmsNormEps > 0 && v.normEps > 0, "norm eps must be positive")
    }
}

/// Typed access to one section of a config, with errors naming the field.
struct ConfigReader {
    let json: JSON
    let section: String

    func value(_ key: String) -> JSON? {
        guard let v = json[key], !v.isNull else { return nil }
        return v
    }
    func int(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v.int else { throw LoRANASError.format("\(section).\(key) must be an integer, got \(v.serialized)") }
        return i
    }
    func double(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard let d = v.double else { throw LoRANASError.format("\(section).\(key) must be a number, got \(v.serialized)") }
        return d
    }
    func float(_ key: String) throws -> Float? { try double(key).map(Float.init) }
    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.string else { throw LoRANASError.format("\(section).\(key) must be a string, got \(v.serialized)") }
        return s
    }
    func ints(_ key: String) throws -> [Int]? {
        guard let v = value(key) else { return nil }
        guard let a = v.array, let ints = Optional(a.compactMap(\.int)), ints.count == a.count else {
            throw LoRANASError.format("\(section).\(key) must be a list of integers, got \(v.serialized)")
        }
        return ints
    }
}
