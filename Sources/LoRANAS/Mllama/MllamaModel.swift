import Foundation

/// Hugging Face's `MllamaForConditionalGeneration` (LLaMA-3.2-Vision): vision model, projector,
/// text decoder with gated cross-attention layers, and the LM head, with hand-written backward.
///
/// Parameters carry their checkpoint names (`vision_model.…`, `multi_modal_projector.…`,
/// `language_model.model.…`, `language_model.lm_head.weight`), so any checkpoint of the
/// architecture loads unchanged.
public final class MllamaModel: @unchecked Sendable {
    public let config: MllamaConfig
    public let params: ParameterSet
    /// Full-parameter gradients, present after `setBaseTrainable(true)`.
    public private(set) var grads: ParameterSet?
    /// How the frozen linear weights are computed: float32, or bfloat16 after `useBFloat16()`.
    public internal(set) var computeDType = WeightDType.float32
    /// How the frozen linear weights are computed, in words ("float32", or which bf16 kernel).
    public internal(set) var bf16Summary = "float32"

    let vision: VisionModel
    let projector: LinearLayer
    let decoder: TextDecoder
    let lmHead: LinearLayer

    /// A model with every parameter zero; `load(from:)` or an initializer fills them.
    /// Throws before allocating when the config is invalid or its parameters do not fit in the
    /// memory available to the process.
    public init(config: MllamaConfig) throws {
        try config.validate()
        try ModelFootprint(config).requireFits(available: Memory.availableBytes)
        self.config = config
        let params = ParameterSet(Self.specs(config))
        self.params = params
        vision = VisionModel(config: config.vision, params: params, grads: nil)
        projector = LinearLayer(name: "multi_modal_projector", params: params, grads: nil, hasBias: true)
        decoder = TextDecoder(config: config.text, params: params)
        lmHead = LinearLayer(name: "language_model.lm_head", params: params, grads: nil, hasBias: false)
    }

    /// A model on the same parameters and bf16 packings, without adapters or base gradients: a thread shard of a
    /// training step runs on it (`ShardReplicas`).
    init(sharingWeightsOf model: MllamaModel) {
        config = model.config
        params = model.params
        vision = VisionModel(config: config.vision, params: params, grads: nil)
        projector = LinearLayer(name: "multi_modal_projector", params: params, grads: nil, hasBias: true)
        decoder = TextDecoder(config: config.text, params: params)
        lmHead = LinearLayer(name: "language_model.lm_head", params: params, grads: nil, hasBias: false)
        computeDType = model.computeDType
        bf16Summary = model.bf16Summary
        for (mine, theirs) in zip(allLinears, model.allLinears) { mine.bf16 = theirs.bf16 }
    }

    /// Copies of the model for a training step's thread shards, kept between steps (`ShardReplicas`).
    var shardReplicas: ShardReplicas?

    /// The directory the model was loaded from, if any.
    public internal(set) var sourcePath: String?

    /// Loads `config.json` and the weights (single file or sharded) from a model directory.
    public convenience init(path: String) throws {
        try self.init(config: MllamaConfig(contentsOf: path))
        try load(from: Checkpoint(path: path))
        sourcePath = path
    }

    /// A model with `config.json` from a directory and fresh weights (`initializeForTraining(seed:)`), for
    /// training from scratch; the directory needs no weights.
    public static func untrained(path: String, seed: UInt64) throws -> MllamaModel {
        let model = try MllamaModel(config: MllamaConfig(contentsOf: path))
        model.initializeForTraining(seed: seed)
        model.sourcePath = path
        return model
    }

    /// Writes config.json (copied from the source directory) and model.safetensors (`dtype` float32 or
    /// bfloat16) with every LoRA adapter merged into its weight; the model itself is left unmerged.
    public func saveMerged(to dir: String, dtype: WeightDType = .float32) throws {
        try World.current().onRankZero { try writeMerged(to: dir, dtype: dtype) }
    }

    private func writeMerged(to dir: String, dtype: WeightDType) throws {
        guard let src = sourcePath else {
            throw LoRANASError.unsupported("saving needs a model loaded from a directory (for its config.json)")
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // bf16 mode: the weights the layers compute with, unpacked (their float32 storage is given back)
        var unpacked: [String: Tensor] = [:]
        for layer in allLinears where layer.bf16 != nil { unpacked[layer.name + ".weight"] = layer.weightValues() }
        let byName = Dictionary(uniqueKeysWithValues: targetableLinears.map { ($0.name, $0) })
        let merged = try loraAdapters.map { adapter -> (LoRAAdapter, Tensor) in
            guard let layer = byName[adapter.module] else {
                throw LoRANASError.notFound("adapter module \(adapter.module) is not a linear layer of the model")
            }
            return (adapter, unpacked[layer.name + ".weight"] ?? layer.weight)
        }
        var done: [(LoRAAdapter, Tensor)] = []
        defer { for (a, w) in done { a.unmerge(from: w) } }
        for (a, w) in merged {
            try a.merge(into: w)
            done.append((a, w))
        }
        let tensors = params.entries.map { e -> (String, SafeTensorsWriter.Payload) in
            let t = unpacked[e.name] ?? params[e.name]
            return dtype == .float32 ? (e.name, .f32(t)) : (e.name, .bf16(t))
        }
        try SafeTensorsWriter.write(tensors, metadata: ["format": "pt"], to: dir + "/model.safetensors")
        guard let config = FileManager.default.contents(atPath: src + "/config.json") else {
            throw LoRANASError.io("cannot read \(src)/config.json")
        }
        try AtomicFile.write(config, to: dir + "/config.json")
    }

    /// Every parameter's checkpoint name and shape.
    public static func specs(_ c: MllamaConfig) -> [(String, [Int])] {
        VisionModel.specs(c.vision)
            + [("multi_modal_projector.weight", [c.text.hiddenSize, c.vision.visionOutputDim]),
               ("multi_modal_projector.bias", [c.text.hiddenSize])]
            + TextDecoder.specs(c.text)
            + [("language_model.lm_head.weight", [c.text.vocabSize, c.text.hiddenSize])]
    }

    /// Names (without ".weight") and (out, in) shapes of the linear modules LoRA may target, in model order.
    public static func targetableSpecs(_ c: MllamaConfig) -> [(String, [Int])] {
        let types = Set(ModuleType.allCases.map(\.rawValue))
        return specs(c).compactMap { name, shape in
            guard name.hasSuffix(".weight"), shape.count == 2 else { return nil }
            let module = String(name.dropLast(".weight".count))
            guard let last = module.split(separator: ".").last, types.contains(String(last)) else { return nil }
            return (module, shape)
        }
    }

    /// Copies every parameter from `ckpt`, converting F16/BF16 to F32. A missing or mis-shaped
    /// tensor is an error naming it; tensors the architecture does not use are ignored.
    public func load(from ckpt: Checkpoint) throws {
        try load(from: ckpt, packing: nil)
    }

    /// Loads every parameter; with a kernel, the linear layers' weights go straight from the checkpoint into
    /// their bf16 packing (`BFloat16Mode.swift`) and their float32 storage is never written.
    func load(from ckpt: Checkpoint, packing kernel: BF16Kernel?) throws {
        try require(computeDType == .float32, "this model computes in bfloat16 from packed weights: load a new model")
        let linears = kernel == nil ? [] : allLinears
        let packed = Dictionary(uniqueKeysWithValues: linears.map { ($0.name + ".weight", $0) })
        for e in params.entries {
            guard ckpt.contains(e.name) else {
                throw LoRANASError.format("checkpoint \(ckpt.path) has no tensor \(e.name)")
            }
            let info = try ckpt.info(e.name)
            // Scalars may be stored as shape [] or [1].
            let ok = info.shape == e.shape || (e.shape == [1] && info.shape.isEmpty)
            guard ok else {
                throw LoRANASError.format(
                    "tensor \(e.name) has shape \(info.shape) in \(ckpt.path), expected \(e.shape) from config.json")
            }
            if let layer = packed[e.name], let kernel {
                layer.bf16 = try PackedBF16Matrix(reading: e.name, from: ckpt, shape: e.shape, kernel: kernel)
            } else {
                try ckpt.read(e.name, into: params[e.name].ptr, count: e.shape.reduce(1, *))
            }
        }
        if !params.storage.isFinite {
            throw LoRANASError.numeric("checkpoint \(ckpt.path) contains NaN or infinite weights")
        }
    }

    /// Linear layers that LoRA may target (everything but the projector and the LM head).
    public var targetableLinears: [LinearLayer] { vision.linears + decoder.linears }

    var allLinears: [LinearLayer] { targetableLinears + [projector, lmHead] }

    /// Turns full-parameter gradients on (allocating them, zeroed) or off.
    public func setBaseTrainable(_ on: Bool) {
        if on {
            _ = trainBase()
        } else {
            attachBaseGradients(nil)
        }
    }

    /// Turns full-parameter gradients on and returns them (allocated, zeroed).
    func trainBase() -> ParameterSet {
        let set = ParameterSet(Self.specs(config))
        attachBaseGradients(set)
        return set
    }

    private func attachBaseGradients(_ set: ParameterSet?) {
        grads = set
        for l in allLinears {
            l.weightGrad = set?[l.name + ".weight"]
            l.biasGrad = l.bias == nil ? nil : set?[l.name + ".bias"]
        }
    }

    public var parameterCount: Int { params.parameterCount }
}

/// How saved weights are stored.
public enum WeightDType: String, Sendable {
    case float32, bfloat16
}
