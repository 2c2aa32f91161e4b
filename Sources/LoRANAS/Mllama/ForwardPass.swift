extension MllamaModel {
    /// What one forward pass produced and what its backward reads.
    public final class ForwardPass {
        /// (B, S, V)
        public let logits: Tensor
        /// Mean cross-entropy over the targets not ignored (NaN when all are ignored); nil without labels.
        public let loss: Float?
        /// Number of targets not ignored after the shift.
        public let targetCount: Int
        /// Activation gradients filled by backward: "inputs_embeds" (B, S, H) when the base trains, and
        /// with images "cross_attention_states" (B·I·T, L, H) and "vision_output" (B, I, T, L, Dv).
        public internal(set) var activationGradients: [String: Tensor] = [:]

        let batch: MllamaBatch
        /// (B·S) labels shifted left by one, ignoreIndex past each row's end.
        let targets: [Int]
        let dims: TextDims
        /// What backward reads; nil when forward ran without keepForBackward.
        let saved: Saved?

        init(logits: Tensor, loss: Float?, targetCount: Int, batch: MllamaBatch, targets: [Int], dims: TextDims,
             saved: Saved?) {
            self.logits = logits
            self.loss = loss
            self.targetCount = targetCount
            self.batch = batch
            self.targets = targets
            self.dims = dims
            self.saved = saved
        }
    }

    /// What backward reads of a pass kept for it.
    struct Saved {
        let text: TextDecoder.Saved
        let rope: RopeTables
        let keyValid: [UInt8]?              // (B, S) the attention mask; nil = every token real
        /// nil for a text-only batch.
        let image: ImageSaved?
    }

    /// The vision side of a pass kept for backward.
    struct ImageSaved {
        let vision: VisionModel.Saved
        let output: Tensor                  // (BI, T, L, Dv) the vision model's output, the projector's input
        let cross: CrossAttentionInputs
    }

    /// The vision side of a forward pass: what the cross-attention layers read, and with `keep` what
    /// backward reads.
    struct EncodedImages {
        let cross: CrossAttentionInputs
        let saved: ImageSaved?
    }

    // MARK: - forward

    /// Runs the model; with `keepForBackward` the pass keeps what `backward` needs.
    public func forward(_ batch: MllamaBatch, keepForBackward keep: Bool = false) throws -> ForwardPass {
        try batch.validate(for: config)
        let t = config.text, v = config.vision
        let (b, s) = (batch.batchSize, batch.seqLen)
        let images = try encodeImages(batch, keep: keep)
        let d = TextDims(b: b, s: s, h: t.hiddenSize, nh: t.numAttentionHeads, nkv: t.numKeyValueHeads, hd: t.headDim,
                         n: images == nil ? 0 : batch.numImages * v.maxNumTiles * v.tokensPerTile)
        let invFreq = Rope.inverseFrequencies(headDim: t.headDim, theta: t.ropeTheta, llama3: t.ropeScaling)
        let rope = Rope.tables(positions: s, invFreq: invFreq)
        let keyValid: [UInt8]? = batch.attentionMask.map { $0.map { UInt8($0) } }
        let (z, text) = Self.withMasks(keyValid: keyValid, allowed: images?.cross.allowed ?? []) { sm, cm in
            decoder.forward(ids: batch.inputIds, d, rope: rope, selfMask: sm, crossMask: cm, cross: images?.cross,
                            params: params, keep: keep)
        }
        let logits = lmHead.forward(z).reshaped([b, s, t.vocabSize])
        let (targets, loss, count) = shiftedCrossEntropy(logits, batch)
        let saved = text.map { Saved(text: $0, rope: rope, keyValid: keyValid, image: images?.saved) }
        return ForwardPass(logits: logits, loss: loss, targetCount: count, batch: batch, targets: targets, dims: d,
                           saved: saved)
    }

    /// The vision model and projector on the batch's images, and the cross-attention mask; nil
    /// without images.
    func encodeImages(_ batch: MllamaBatch, keep: Bool) throws -> EncodedImages? {
        guard let px = batch.pixelValues else { return nil }
        guard let arIds = batch.aspectRatioIds, let arMask = batch.aspectRatioMask,
              let cam = batch.crossAttentionMask else {
            throw LoRANASError.invalidArgument(
                "pixel_values need aspect_ratio_ids, aspect_ratio_mask and cross_attention_mask")
        }
        let v = config.vision, bi = batch.batchSize * batch.numImages
        let pixels = px.reshaped([bi, v.maxNumTiles, v.numChannels, v.imageSize, v.imageSize])
        let (output, visionSaved) = vision.forward(pixels: pixels, arIds: arIds, arMask: arMask, params: params,
                                                   keep: keep)
        let states = projector.forward(output.reshaped([bi * v.maxNumTiles * v.tokensPerTile, v.visionOutputDim]))
        let (allowed, rowVisible) = crossAttentionMask(cam, batchSize: batch.batchSize, seqLen: batch.seqLen,
                                                       images: batch.numImages)
        let cross = CrossAttentionInputs(states: states, allowed: allowed, rowVisible: rowVisible)
        return EncodedImages(cross: cross,
                             saved: visionSaved.map { ImageSaved(vision: $0, output: output, cross: cross) })
    }

    /// transformers' cross-attention mask from cam (B, S, I, T): token s sees tile t of image i iff
    /// cam == 1, except that a row seeing no tile at all is left unmasked; rowVisible (F) then zeroes
    /// its MLP branch. → allowed (B, S, I·T·L), rowVisible (B·S).
    func crossAttentionMask(_ cam: [Int], batchSize b: Int, seqLen s: Int,
                            images i: Int) -> (allowed: [UInt8], rowVisible: [Float]) {
        let t = config.vision.maxNumTiles, l = config.vision.tokensPerTile
        let n = i * t * l
        var allowed = [UInt8](repeating: 1, count: b * s * n), visible = [Float](repeating: 0, count: b * s)
        for row in 0..<(b * s) {
            let tiles = row * i * t
            guard (0..<(i * t)).contains(where: { cam[tiles + $0] == 1 }) else { continue }
            visible[row] = 1
            for it in 0..<(i * t) where cam[tiles + it] != 1 {
                for ll in 0..<l { allowed[row * n + it * l + ll] = 0 }
            }
        }
        return (allowed, visible)
    }

    /// Causal shift: position s predicts labels[s + 1], the last position has no target. Returns the
    /// targets (B·S), the mean loss over those not ignored (NaN if none; nil without labels), and their count.
    private func shiftedCrossEntropy(_ logits: Tensor, _ batch: MllamaBatch) -> ([Int], Float?, Int) {
        let (b, s, vocab) = (batch.batchSize, batch.seqLen, config.text.vocabSize)
        var targets = [Int](repeating: CrossEntropy.ignoreIndex, count: b * s)
        guard let labels = batch.labels else { return (targets, nil, 0) }
        for i in 0..<b {
            for j in 0..<(s - 1) { targets[i * s + j] = labels[i * s + j + 1] }
        }
        let (sum, count) = CrossEntropy.forward(logits: logits.ptr, targets: targets, n: b * s, v: vocab)
        return (targets, count > 0 ? Float(sum / Double(count)) : .nan, count)
    }

    /// Runs `body` with the text self-attention mask (causal + key padding) and the cross-attention mask
    /// (`.none` for a text-only batch, which runs no cross-attention layer).
    private static func withMasks<R>(keyValid: [UInt8]?, allowed: [UInt8],
                                     _ body: (AttentionMask, AttentionMask) -> R) -> R {
        allowed.withUnsafeBufferPointer { a in
            let cross = a.baseAddress.map { AttentionMask.dense(allowed: $0) } ?? .none
            guard let keyValid else { return body(.causal(keyValid: nil), cross) }
            return keyValid.withUnsafeBufferPointer { k in body(.causal(keyValid: k.baseAddress), cross) }
        }
    }

    // MARK: - backward

    /// Backpropagates `lossScale · loss` through the pass, accumulating into the full-parameter
    /// gradients (if on) and every adapter's gradients. Call once per forward.
    public func backward(_ pass: ForwardPass, lossScale: Float = 1) throws {
        guard let saved = pass.saved else {
            throw LoRANASError.invalidArgument("backward needs a pass from forward(_:keepForBackward: true); "
                                               + "this one was run for inference and kept nothing")
        }
        guard pass.batch.labels != nil else { throw LoRANASError.invalidArgument("backward needs labels") }
        let d = pass.dims
        let dz = lossAndHeadBackward(pass, normed: saved.text.normed, lossScale: lossScale)
        let dcs = saved.image.map { Tensor(zeros: $0.cross.states.shape) }
        let dx = Self.withMasks(keyValid: saved.keyValid, allowed: saved.image?.cross.allowed ?? []) { sm, cm in
            decoder.backward(dz, saved: saved.text, ids: pass.batch.inputIds, d, rope: saved.rope, selfMask: sm,
                             crossMask: cm, dcs: dcs, params: params, grads: grads)
        }
        if grads != nil { pass.activationGradients["inputs_embeds"] = dx.reshaped([d.b, d.s, d.h]) }
        guard let image = saved.image, let dcs else { return }
        imagesBackward(dcs, image, pass)
    }

    /// Cross-entropy and LM head backward: → the gradient of the decoder's normed output (B·S, H).
    private func lossAndHeadBackward(_ pass: ForwardPass, normed: Tensor, lossScale: Float) -> Tensor {
        let rows = pass.dims.rows, vocab = config.text.vocabSize
        // Cross-entropy's backward overwrites every row (ignored rows with zeros).
        let dlogits = pass.targetCount > 0 ? Tensor(uninitialized: [rows, vocab]) : Tensor(zeros: [rows, vocab])
        if pass.targetCount > 0 {
            CrossEntropy.backward(dlogits: dlogits.ptr, logits: pass.logits.ptr, targets: pass.targets, n: rows,
                                  v: vocab, scale: lossScale / Float(pass.targetCount), accumulate: false)
        }
        let dz = Tensor(zeros: [rows, config.text.hiddenSize])
        lmHead.backward(dlogits, x: normed, dx: dz)
        return dz
    }

    /// dcs, the cross-attention states' gradient (B·N, H) → projector and vision model gradients.
    private func imagesBackward(_ dcs: Tensor, _ image: ImageSaved, _ pass: ForwardPass) {
        let v = config.vision, bi = pass.dims.b * pass.batch.numImages
        pass.activationGradients["cross_attention_states"] = dcs.reshaped([bi * v.maxNumTiles, v.tokensPerTile,
                                                                           config.text.hiddenSize])
        let trainable = grads != nil || projector.adapter != nil || vision.linears.contains { $0.adapter != nil }
        guard trainable else { return }
        let dvo = Tensor(zeros: [bi * v.maxNumTiles * v.tokensPerTile, v.visionOutputDim])
        projector.backward(dcs, x: image.output.reshaped(dvo.shape), dx: dvo)
        pass.activationGradients["vision_output"] = dvo.reshaped([pass.dims.b, pass.batch.numImages, v.maxNumTiles,
                                                                  v.tokensPerTile, v.visionOutputDim])
        vision.backward(dvo.reshaped(image.output.shape), saved: image.vision, params: params, grads: grads)
    }
}
