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

    public init(vision: MllamaVisionConfig = .init(), text: MllamaTextConfig = .init(),
                imageTokenIndex: Int = 128256) {
        self.vision = vision
        self.text = text
        self.imageTokenIndex = imageTokenIndex
    }

    /// Reads `config.json` from a model directory, or a config file's path.
    public init(contentsOf path: String) throws {
        var file = path
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            file = URL(fileURLWithPath: path).appendingPathComponent("config.json").path
        }
        guard FileManager.default.fileExists(atPath: file) else {
            throw LoRANASError.notFound("no config.json at \(file)")
        }
        let data = try Files.read(file)
        // Duplicated keys are allowed, and the last one wins, as in Python's json (and so transformers).
        let json: JSON
        do {
            json = try JSON.parse(data, rejectDuplicateKeys: false)
        } catch {
            throw LoRANASError.format("\(file): \(error)")
        }
        do {
            try self.init(json: json)
        } catch LoRANASError.format(let message) {
            throw LoRANASError.format("\(file): \(message)")
        } catch let e as LoRANASError {
            throw LoRANASError.format("\(file): \(e.description)")
        }
    }

    public init(json: JSON) throws {
        guard json.object != nil else { throw LoRANASError.format("config is not a JSON object") }
        if let t = json["model_type"]?.string, t != "mllama" {
            throw LoRANASError.unsupported("model_type \"\(t)\"; loranas implements \"mllama\" (LLaMA-3.2-Vision)")
        }
        guard let v = json["vision_config"], v.object != nil else {
            throw LoRANASError.format("config has no vision_config object")
        }
        guard let t = json["text_config"], t.object != nil else {
            throw LoRANASError.format("config has no text_config object")
        }
        try readVision(ConfigReader(json: v, section: "vision_config"))
        try readText(ConfigReader(json: t, section: "text_config"))
        imageTokenIndex = try ConfigReader(json: json, section: "config").int("image_token_index") ?? text.vocabSize
        try validate()
    }

    private mutating func readVision(_ r: ConfigReader) throws {
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
        if let ratios = r.value("supported_aspect_ratios") {
            guard let a = ratios.array, a.allSatisfy({ $0.array?.count == 2 }) else {
                throw LoRANASError.format("vision_config.supported_aspect_ratios must be a list of [h, w] pairs")
            }
            vision.numAspectRatios = a.count
        }
    }

    private mutating func readText(_ r: ConfigReader) throws {
        if let act = try r.string("hidden_act"), act != "silu" {
            throw LoRANASError.unsupported("text_config.hidden_act \"\(act)\" (only \"silu\")")
        }
        if let tie = r.value("tie_word_embeddings")?.bool, tie {
            throw LoRANASError.unsupported("text_config.tie_word_embeddings = true")
        }
        text.vocabSize = try r.int("vocab_size") ?? text.vocabSize
        text.hiddenSize = try r.int("hidden_size") ?? text.hiddenSize
        text.numHiddenLayers = try r.int("num_hidden_layers") ?? text.numHiddenLayers
        text.numAttentionHeads = try r.int("num_attention_heads") ?? text.numAttentionHeads
        text.numKeyValueHeads = try r.int("num_key_value_heads") ?? text.numKeyValueHeads
        text.intermediateSize = try r.int("intermediate_size") ?? text.intermediateSize
        text.rmsNormEps = try r.float("rms_norm_eps") ?? text.rmsNormEps
        text.crossAttentionLayers = try r.ints("cross_attention_layers") ?? text.crossAttentionLayers
        text.maxPositionEmbeddings = try r.int("max_position_embeddings") ?? text.maxPositionEmbeddings
        if let pad = r.json["pad_token_id"] { text.padTokenId = pad.isNull ? nil : try r.int("pad_token_id") }
        text.ropeTheta = try r.double("rope_theta") ?? text.ropeTheta
        // transformers 5 writes rope_parameters; older files have rope_theta + rope_scaling.
        if let rope = r.value("rope_parameters") ?? r.value("rope_scaling"), rope.object != nil {
            try readRope(ConfigReader(json: rope, section: "text_config.rope_parameters"))
        }
    }

    private mutating func readRope(_ r: ConfigReader) throws {
        text.ropeTheta = try r.double("rope_theta") ?? text.ropeTheta
        let kind = try r.string("rope_type") ?? r.string("type") ?? "default"
        switch kind {
        case "default":
            text.ropeScaling = nil
        case "llama3":
            guard let f = try r.double("factor"), let lo = try r.double("low_freq_factor"),
                  let hi = try r.double("high_freq_factor") else {
                throw LoRANASError.format(
                    "text_config.rope_parameters: llama3 needs factor, low_freq_factor and high_freq_factor")
            }
            let orig = try r.double("original_max_position_embeddings") ?? Double(text.maxPositionEmbeddings)
            text.ropeScaling = Llama3RopeScaling(factor: f, lowFreqFactor: lo, highFreqFactor: hi,
                                                 originalMaxPositionEmbeddings: orig)
        default:
            throw LoRANASError.unsupported("rope type \"\(kind)\" (loranas supports \"default\" and \"llama3\")")
        }
    }
}
