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

    let vision: VisionModel
    let projector: LinearLayer
    let layers: [TextLayer]
    let lmHead: LinearLayer
    static let textPrefix = "language_model.model."

    enum TextLayer {
        case selfAttention(TextSelfAttentionLayer)
        case crossAttention(TextCrossAttentionLayer)
    }

    /// A model with every parameter zero; `load(from:)` or an initializer fills them.
    public init(config: MllamaConfig) throws {
        try config.validate()
        try ModelFootprint(config).requireFits(available: SystemMemory.availableBytes())
        self.config = config
        let params = ParameterSet(Self.specs(config))
        self.params = params
        vision = VisionModel(config: config.vision, params: params, grads: nil)
        projector = LinearLayer(name: "multi_modal_projector", params: params, grads: nil, hasBias: true)
        layers = (0..<config.text.numHiddenLayers).map { j in
            let prefix = Self.textPrefix + "layers.\(j)."
            return config.text.crossAttentionLayers.contains(j)
                ? .crossAttention(TextCrossAttentionLayer(prefix: prefix, params: params, grads: nil))
                : .selfAttention(TextSelfAttentionLayer(prefix: prefix, params: params, grads: nil))
        }
        lmHead = LinearLayer(name: "language_model.lm_head", params: params, grads: nil, hasBias: false)
    }

    /// The directory the model was loaded from, if any.
    public private(set) var sourcePath: String?

    /// Loads `config.json` and the weights (single file or sharded) from a model directory.
    public convenience init(path: String) throws {
        try self.init(config: MllamaConfig(contentsOf: path))
        try load(from: Checkpoint(path: path))
        sourcePath = path
    }

    /// Writes config.json (copied from the source directory) and model.safetensors with every
    /// LoRA adapter merged into its weight; the model itself is left unmerged.
    public func saveMerged(to dir: String) throws {
        guard let src = sourcePath else { throw LoRANASError.unsupported("saving needs a model loaded from a directory (for its config.json)") }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let byName = Dictionary(uniqueKeysWithValues: targetableLinears.map { ($0.name, $0) })
        let adapters = loraAdapters
        for a in adapters { try a.merge(into: byName[a.module]!.weight) }
        defer { for a in adapters { a.unmerge(from: byName[a.module]!.weight) } }
        try SafeTensorsWriter.write(params.entries.map { ($0.name, .f32(params[$0.name])) }, metadata: ["format": "pt"],
                                    to: dir + "/model.safetensors")
        guard let config = FileManager.default.contents(atPath: src + "/config.json") else { throw LoRANASError.io("cannot read \(src)/config.json") }
        try AtomicFile.write(config, to: dir + "/config.json")
    }

    /// Every parameter's checkpoint name and shape.
    public static func specs(_ c: MllamaConfig) -> [(String, [Int])] {
        let t = c.text, h = t.hiddenSize, hd = t.headDim, p = textPrefix
        var s = VisionModel.specs(c.vision)
        s += [("multi_modal_projector.weight", [h, c.vision.visionOutputDim]), ("multi_modal_projector.bias", [h]),
              (p + "embed_tokens.weight", [t.embeddingRows, h])]
        for j in 0..<t.numHiddenLayers {
            let lp = p + "layers.\(j).", cross = t.crossAttentionLayers.contains(j)
            let a = lp + (cross ? "cross_attn." : "self_attn.")
            s += [(a + "q_proj.weight", [t.numAttentionHeads * hd, h]), (a + "k_proj.weight", [t.numKeyValueHeads * hd, h]),
                  (a + "v_proj.weight", [t.numKeyValueHeads * hd, h]), (a + "o_proj.weight", [h, t.numAttentionHeads * hd])]
            if cross {
                s += [(a + "q_norm.weight", [hd]), (a + "k_norm.weight", [hd]),
                      (lp + "cross_attn_attn_gate", [1]), (lp + "cross_attn_mlp_gate", [1])]
            }
            s += [(lp + "mlp.gate_proj.weight", [t.intermediateSize, h]), (lp + "mlp.up_proj.weight", [t.intermediateSize, h]),
                  (lp + "mlp.down_proj.weight", [h, t.intermediateSize]),
                  (lp + "input_layernorm.weight", [h]), (lp + "post_attention_layernorm.weight", [h])]
        }
        s += [(p + "norm.weight", [h]), ("language_model.lm_head.weight", [t.vocabSize, h])]
        return s
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
        for e in params.entries {
            guard ckpt.contains(e.name) else { throw LoRANASError.format("checkpoint \(ckpt.path) has no tensor \(e.name)") }
            let info = try ckpt.info(e.name)
            // Scalars may be stored as shape [] or [1].
            let ok = info.shape == e.shape || (e.shape == [1] && info.shape.isEmpty)
            guard ok else {
                throw LoRANASError.format("tensor \(e.name) has shape \(info.shape) in \(ckpt.path), expected \(e.shape) from config.json")
            }
            try ckpt.read(e.name, into: params[e.name].ptr, count: e.shape.reduce(1, *))
        }
        if !params.storage.isFinite { throw LoRANASError.numeric("checkpoint \(ckpt.path) contains NaN or infinite weights") }
    }

    /// Linear layers that LoRA may target (everything but the projector and the LM head).
    public var targetableLinears: [LinearLayer] {
        vision.linears + layers.flatMap { l -> [LinearLayer] in
            switch l { case .selfAttention(let s): return s.linears; case .crossAttention(let c): return c.linears }
        }
    }

    var allLinears: [LinearLayer] { targetableLinears + [projector, lmHead] }

    /// Turns full-parameter gradients on (allocating them, zeroed) or off.
    public func setBaseTrainable(_ on: Bool) {
        grads = on ? ParameterSet(Self.specs(config)) : nil
        for l in allLinears {
            l.weightGrad = grads?[l.name + ".weight"]
            l.biasGrad = l.bias == nil ? nil : grads?[l.name + ".bias"]
        }
    }

    public var parameterCount: Int { params.parameterCount }

    // MARK: - forward and backward

    /// What one forward pass produced and what its backward reads.
    public final class ForwardPass {
        /// (B, S, V)
        public let logits: Tensor
        /// Mean cross-entropy over the targets not ignored (NaN when all are ignored); nil without labels.
        public let loss: Float?
        /// Number of targets not ignored after the shift.
        public let targetCount: Int
        /// Activation gradients filled by backward: "inputs_embeds" (B, S, H) when the base trains, and with images
        /// "cross_attention_states" (B·I·T, L, H) and "vision_output" (B, I, T, L, Dv).
        public internal(set) var activationGradients: [String: Tensor] = [:]

        let batch: MllamaBatch
        let targets: [Int]
        var textCaches: [AnyObject] = []
        var finalX: Tensor?, finalNorm: Tensor?, finalRstd: Tensor?
        var visionCache: VisionModel.Cache?
        var visionOut: Tensor?, crossStates: Tensor?
        var crossAllowed: [UInt8] = [], rowVisible: [Float] = [], keyValid: [UInt8]? = nil
        var rope: (cos: [Float], sin: [Float]) = ([], [])
        var dims: TextDims

        init(logits: Tensor, loss: Float?, targetCount: Int, batch: MllamaBatch, targets: [Int], dims: TextDims) {
            self.logits = logits; self.loss = loss; self.targetCount = targetCount
            self.batch = batch; self.targets = targets; self.dims = dims
        }
    }

    /// Runs the model; with `keepForBackward` the pass keeps what `backward` needs.
    public func forward(_ batch: MllamaBatch, keepForBackward: Bool = false) throws -> ForwardPass {
        try batch.validate(for: config)
        let t = config.text, v = config.vision
        let (b, s) = (batch.batchSize, batch.seqLen)
        let nVision = batch.hasImages ? batch.numImages * v.maxNumTiles * v.tokensPerTile : 0
        var d = TextDims(b: b, s: s, h: t.hiddenSize, nh: t.numAttentionHeads, nkv: t.numKeyValueHeads, hd: t.headDim, n: nVision)

        var visionCache: VisionModel.Cache? = keepForBackward ? VisionModel.Cache() : nil
        var visionOut: Tensor?, cs: Tensor?
        var allowed: [UInt8] = [], rowVisible = [Float](repeating: 1, count: b * s)
        if let px = batch.pixelValues {
            let bi = b * batch.numImages
            let pixels = px.reshaped([bi, v.maxNumTiles, v.numChannels, v.imageSize, v.imageSize])
            visionOut = vision.forward(pixels: pixels, arIds: batch.aspectRatioIds!, arMask: batch.aspectRatioMask!,
                                       params: params, cache: visionCache)
            cs = projector.forward(visionOut!.reshaped([bi * v.maxNumTiles * v.tokensPerTile, v.visionOutputDim]))
            (allowed, rowVisible) = crossAttentionMask(batch)
        } else {
            visionCache = nil
        }
        d.n = nVision

        let x0 = Tensor(zeros: [b * s, t.hiddenSize])
        Embedding.forward(out: x0.ptr, ids: batch.inputIds, table: params[Self.textPrefix + "embed_tokens.weight"].ptr, n: b * s, c: t.hiddenSize)
        let inv = Rope.inverseFrequencies(headDim: t.headDim, theta: t.ropeTheta, llama3: t.ropeScaling)
        let rope = Rope.tables(positions: s, invFreq: inv)
        let keyValid: [UInt8]? = batch.attentionMask.map { $0.map { UInt8($0) } }

        var x = x0
        var caches: [AnyObject] = []
        withMasks(keyValid: keyValid, allowed: allowed) { selfMask, crossMask in
            for layer in layers {
                switch layer {
                case .selfAttention(let l):
                    let c = keepForBackward ? TextSelfAttentionLayer.Cache() : nil
                    x = l.forward(x, d, eps: t.rmsNormEps, rope: rope, mask: selfMask, params: params, cache: c)
                    if let c { caches.append(c) }
                case .crossAttention(let l):
                    // Without images, transformers skips cross-attention layers entirely.
                    guard let cs else { if keepForBackward { caches.append(NSNull()) }; continue }
                    let c = keepForBackward ? TextCrossAttentionLayer.Cache() : nil
                    x = l.forward(x, d, cs: cs, rowVisible: rowVisible, eps: t.rmsNormEps, mask: crossMask, params: params, cache: c)
                    if let c { caches.append(c) }
                }
            }
        }
        let z = Tensor(zeros: x.shape), rstd = Tensor(zeros: [b * s])
        RMSNorm.forward(y: z.ptr, rstd: rstd.ptr, x: x.ptr, w: params[Self.textPrefix + "norm.weight"].ptr, n: b * s, c: t.hiddenSize, eps: t.rmsNormEps)
        let logits = lmHead.forward(z).reshaped([b, s, t.vocabSize])

        // Causal shift: position s predicts labels[s + 1]; the last position has no target.
        var targets = [Int](repeating: CrossEntropy.ignoreIndex, count: b * s)
        var loss: Float? = nil, count = 0
        if let labels = batch.labels {
            for i in 0..<b { for j in 0..<(s - 1) { targets[i * s + j] = labels[i * s + j + 1] } }
            let (sum, c) = CrossEntropy.forward(logits: logits.ptr, targets: targets, n: b * s, v: t.vocabSize)
            count = c
            loss = c > 0 ? Float(sum / Double(c)) : .nan
        }
        let pass = ForwardPass(logits: logits, loss: loss, targetCount: count, batch: batch, targets: targets, dims: d)
        if keepForBackward {
            pass.textCaches = caches; pass.finalX = x; pass.finalNorm = z; pass.finalRstd = rstd
            pass.visionCache = visionCache; pass.visionOut = visionOut; pass.crossStates = cs
            pass.crossAllowed = allowed; pass.rowVisible = rowVisible; pass.keyValid = keyValid; pass.rope = rope
        }
        return pass
    }

    /// Backpropagates `lossScale · loss` through the pass, accumulating into the full-parameter
    /// gradients (if on) and every adapter's gradients. Call once per forward.
    public func backward(_ pass: ForwardPass, lossScale: Float = 1) throws {
        guard let x = pass.finalX else { throw LoRANASError.invalidArgument("forward was run without keepForBackward") }
        guard pass.batch.labels != nil else { throw LoRANASError.invalidArgument("backward needs labels") }
        let t = config.text, d = pass.dims, rows = d.rows
        // Cross-entropy's backward overwrites every row (ignored rows with zeros).
        let dlogits = pass.targetCount > 0 ? Tensor(uninitialized: [rows, t.vocabSize]) : Tensor(zeros: [rows, t.vocabSize])
        if pass.targetCount > 0 {
            CrossEntropy.backward(dlogits: dlogits.ptr, logits: pass.logits.ptr, targets: pass.targets, n: rows, v: t.vocabSize,
                                  scale: lossScale / Float(pass.targetCount), accumulate: false)
        }
        let dz = Tensor(zeros: [rows, t.hiddenSize])
        lmHead.backward(dlogits, x: pass.finalNorm!, dx: dz)
        var dx = Tensor(zeros: [rows, t.hiddenSize])
        RMSNorm.backward(dx: dx.ptr, dw: grads?[Self.textPrefix + "norm.weight"].ptr, dy: dz.ptr, x: x.ptr,
                         w: params[Self.textPrefix + "norm.weight"].ptr, rstd: pass.finalRstd!.ptr, n: rows, c: t.hiddenSize)

        let visionTrainable = grads != nil || projector.adapter != nil || vision.linears.contains { $0.adapter != nil }
        let dcs: Tensor? = pass.crossStates.map { Tensor(zeros: $0.shape) }
        withMasks(keyValid: pass.keyValid, allowed: pass.crossAllowed) { selfMask, crossMask in
            for (j, (layer, cache)) in zip(layers, pass.textCaches).enumerated().reversed() {
                // The embeddings' gradient is wanted only for full training (and the activation report that comes with it).
                let needInput = j > 0 || grads != nil
                switch layer {
                case .selfAttention(let l):
                    dx = l.backward(dx, d, rope: pass.rope, mask: selfMask, cache: cache as! TextSelfAttentionLayer.Cache, params: params,
                                    grads: grads, needInput: needInput)
                case .crossAttention(let l):
                    guard let cache = cache as? TextCrossAttentionLayer.Cache else { continue }
                    dx = l.backward(dx, d, cs: pass.crossStates!, dcs: dcs, rowVisible: pass.rowVisible, mask: crossMask,
                                    cache: cache, params: params, grads: grads, needInput: needInput)
                }
            }
        }
        if let g = grads {
            pass.activationGradients["inputs_embeds"] = dx.reshaped([d.b, d.s, d.h])
            Embedding.backward(dtable: g[Self.textPrefix + "embed_tokens.weight"].ptr, dout: dx.ptr, ids: pass.batch.inputIds,
                               n: rows, c: t.hiddenSize, paddingIdx: t.padTokenId)
        }
        guard let dcs, let vOut = pass.visionOut else { return }
        let v = config.vision, bi = d.b * pass.batch.numImages
        pass.activationGradients["cross_attention_states"] = dcs.reshaped([bi * v.maxNumTiles, v.tokensPerTile, t.hiddenSize])
        guard visionTrainable else { return }
        let dvo = Tensor(zeros: [bi * v.maxNumTiles * v.tokensPerTile, v.visionOutputDim])
        projector.backward(dcs, x: vOut.reshaped(dvo.shape), dx: dvo)
        pass.activationGradients["vision_output"] = dvo.reshaped([d.b, pass.batch.numImages, v.maxNumTiles, v.tokensPerTile, v.visionOutputDim])
        vision.backward(dvo.reshaped(vOut.shape), cache: pass.visionCache!, params: params, grads: grads)
    }

    /// transformers' cross-attention mask: token s sees tile t of image i iff CAM == 1, except
    /// that a row seeing no tile at all is left unmasked; F (row visible) then zeroes its MLP branch.
    func crossAttentionMask(_ batch: MllamaBatch) -> (allowed: [UInt8], rowVisible: [Float]) {
        let (b, s, i, t, l) = (batch.batchSize, batch.seqLen, batch.numImages, config.vision.maxNumTiles, config.vision.tokensPerTile)
        let n = i * t * l
        let cam = batch.crossAttentionMask!
        var allowed = [UInt8](repeating: 1, count: b * s * n), visible = [Float](repeating: 0, count: b * s)
        for bb in 0..<b { for ss in 0..<s {
            let row = (bb * s + ss) * i * t
            guard (0..<(i * t)).contains(where: { cam[row + $0] == 1 }) else { continue }
            visible[bb * s + ss] = 1
            for it in 0..<(i * t) where cam[row + it] != 1 {
                for ll in 0..<l { allowed[(bb * s + ss) * n + it * l + ll] = 0 }
            }
        } }
        return (allowed, visible)
    }

    private func withMasks(keyValid: [UInt8]?, allowed: [UInt8], _ body: (AttentionMask, AttentionMask) -> Void) {
        allowed.withUnsafeBufferPointer { a in
            let cross = AttentionMask.dense(allowed: a.baseAddress ?? UnsafePointer(bitPattern: 1)!)
            if let keyValid {
                keyValid.withUnsafeBufferPointer { k in body(.causal(keyValid: k.baseAddress!), cross) }
            } else {
                body(.causal(keyValid: nil), cross)
            }
        }
    }
}

extension MllamaModel {
    /// Fills every parameter from a seeded generator: matrices uniform in ±1/√fan-in, norm weights
    /// 1, biases 0, embeddings and positional tables ±0.5, gates 0.5 (so every path is active).
    /// For benchmarks and synthetic experiments; real work loads a checkpoint.
    public func initializeRandomly(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for e in params.entries {
            let t = params[e.name], n = e.name
            if n.hasSuffix("gate") || n.hasSuffix("gate_attn") || n.hasSuffix("gate_ffn") { t.ptr[0] = 0.5; continue }
            if n.contains("norm") && n.hasSuffix(".weight") && e.shape.count == 1 { for i in 0..<t.count { t.ptr[i] = 1 }; continue }
            if n.hasSuffix(".bias") { t.zero(); continue }
            let fanIn = e.shape.count >= 2 ? e.shape.dropFirst().reduce(1, *) : 4
            let bound: Float = n.contains("embed") || n.contains("embedding") ? 0.5 : 1 / Float(fanIn).squareRoot()
            for i in 0..<t.count { t.ptr[i] = rng.uniform(-bound, bound) }
        }
    }
}
