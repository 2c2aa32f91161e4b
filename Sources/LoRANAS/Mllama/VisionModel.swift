import Foundation

/// The Mllama vision model: patch embedding, tile and position embeddings, the local encoder
/// (whose chosen layer outputs are exported), the gated global encoder, and the concatenated output.
///
/// BI images of T tiles; a tile has P = G² patches and L = P + 1 tokens (CLS first), padded to Lp
/// inside the encoders; D is the width, K the number of exported layers, Dv = D·(K + 1).
final class VisionModel {
    let config: MllamaVisionConfig
    let local: [VisionLayer]
    let global: [VisionLayer]
    static let prefix = "vision_model."

    init(config: MllamaVisionConfig, params: ParameterSet, grads: ParameterSet?) {
        self.config = config
        local = (0..<config.numHiddenLayers).map {
            VisionLayer(prefix: Self.prefix + "transformer.layers.\($0).", gated: false, config: config,
                        params: params, grads: grads)
        }
        global = (0..<config.numGlobalLayers).map {
            VisionLayer(prefix: Self.prefix + "global_transformer.layers.\($0).", gated: true, config: config,
                        params: params, grads: grads)
        }
    }

    static func specs(_ c: MllamaVisionConfig) -> [(String, [Int])] {
        let d = c.hiddenSize, t = c.maxNumTiles, l = c.tokensPerTile, a = c.numAspectRatios + 1, p = prefix
        var s: [(String, [Int])] = [
            (p + "patch_embedding.weight", [d, c.numChannels, c.patchSize, c.patchSize]),
            (p + "class_embedding", [d]),
            (p + "gated_positional_embedding.embedding", [l, d]),
            (p + "gated_positional_embedding.gate", [1]),
            (p + "gated_positional_embedding.tile_embedding.weight", [a, t * l * d]),
            (p + "pre_tile_positional_embedding.embedding.weight", [a, t * d]),
            (p + "pre_tile_positional_embedding.gate", [1]),
            (p + "post_tile_positional_embedding.embedding.weight", [a, t * d]),
            (p + "post_tile_positional_embedding.gate", [1]),
            (p + "layernorm_pre.weight", [d]), (p + "layernorm_pre.bias", [d]),
            (p + "layernorm_post.weight", [d]), (p + "layernorm_post.bias", [d]),
        ]
        for j in 0..<c.numHiddenLayers {
            s += VisionLayer.specs(prefix: p + "transformer.layers.\(j).", gated: false, c)
        }
        for j in 0..<c.numGlobalLayers {
            s += VisionLayer.specs(prefix: p + "global_transformer.layers.\(j).", gated: true, c)
        }
        return s
    }

    var linears: [LinearLayer] { (local + global).flatMap(\.linears) }

    /// Encoder tokens per image, T·Lp.
    var tokensPerImage: Int { config.maxNumTiles * config.paddedTokensPerTile }

    /// What backward reads.
    struct Saved {
        let arIds: [Int]                    // (BI) aspect-ratio ids
        let invalid: [UInt8]                // (BI, T·Lp) 1 = padding tile or pad position
        let patches: Tensor                 // (BI·T·P, C·p·p) unfolded pixels, for the patch-embedding gradient
        let x0: Tensor                      // (BI·T·L, D) input of layernorm_pre
        let meanPre, rstdPre: Tensor        // (BI·T·L)
        let local: [VisionLayer.Saved]
        let localOut: Tensor                // (BI·T·Lp, D) input of layernorm_post
        let meanPost, rstdPost: Tensor      // (BI·T·Lp)
        let global: [VisionLayer.Saved]

        var images: Int { arIds.count }
    }

    /// pixels (BI, T, C, H, W), aspect-ratio ids (BI), aspect-ratio mask (BI·T) → (BI, T, L, Dv);
    /// with `keep`, also what backward reads.
    func forward(pixels: Tensor, arIds: [Int], arMask: [Int], params p: ParameterSet,
                 keep: Bool) -> (Tensor, Saved?) {
        let bi = arIds.count
        let patches = unfold(pixels, tiles: bi * config.maxNumTiles)
        let x0 = embedTiles(patchEmbedding(patches, images: bi, params: p), arIds: arIds, params: p)
        let (h, meanPre, rstdPre) = layerNormPreAndPad(x0, images: bi, params: p)
        let invalid = invalidTokens(arMask: arMask, images: bi)
        return invalid.withUnsafeBufferPointer { inv in
            let mask = inv.baseAddress.map { AttentionMask.outer(invalid: $0) } ?? .none
            let (localOut, localSaved, exported) = encode(h, layers: local, images: bi, mask: mask, params: p,
                                                          keep: keep, exporting: config.intermediateLayersIndices)
            let (post, meanPost, rstdPost) = layerNormPostAndTileEmbedding(localOut, arIds: arIds, params: p)
            let (globalOut, globalSaved, _) = encode(post, layers: global, images: bi, mask: mask, params: p,
                                                     keep: keep, exporting: [])
            let out = concatenate(globalOut, exported: exported, images: bi)
            let saved = keep ? Saved(arIds: arIds, invalid: invalid, patches: patches, x0: x0, meanPre: meanPre,
                                     rstdPre: rstdPre, local: localSaved, localOut: localOut, meanPost: meanPost,
                                     rstdPost: rstdPost, global: globalSaved) : nil
            return (out, saved)
        }
    }

    /// dOut (BI, T, L, Dv) → parameter gradients (into `grads` when training the base, and the adapters).
    func backward(_ dOut: Tensor, saved s: Saved, params p: ParameterSet, grads: ParameterSet?) {
        let bi = s.images, tokens = tokensPerImage, indices = config.intermediateLayersIndices
        let (dGlobal, dExported) = splitOutputGradient(dOut, images: bi)
        let dEmbedded = s.invalid.withUnsafeBufferPointer { inv in
            let mask = inv.baseAddress.map { AttentionMask.outer(invalid: $0) } ?? .none
            var dh = dGlobal
            for (layer, saved) in zip(global, s.global).reversed() {
                dh = layer.backward(dh, images: bi, tokens: tokens, mask: mask, saved: saved, params: p, grads: grads)
            }
            if let grads { postTileEmbeddingBackward(dh, arIds: s.arIds, params: p, grads: grads) }
            dh = layerNormPostBackward(dh, saved: s, params: p, grads: grads)
            for (j, (layer, saved)) in zip(local, s.local).enumerated().reversed() {
                // An exported layer output also receives its slice of the output gradient.
                for (slot, idx) in indices.enumerated() where idx == j {
                    axpy(1, dExported[slot].ptr, dh.ptr, dh.count)
                }
                // Below layer 0 only the embeddings are left: their input gradient is needed only when
                // the base trains.
                dh = layer.backward(dh, images: bi, tokens: tokens, mask: mask, saved: saved, params: p, grads: grads,
                                    needInput: j > 0 || grads != nil)
            }
            return dh
        }
        guard let grads else { return }
        embeddingsBackward(dEmbedded, saved: s, params: p, grads: grads)
    }

    // MARK: - forward steps

    /// (tiles, C, H, W) → (tiles·P, C·p·p): patch (r, c) of a tile becomes row r·G + c, ordered
    /// channel, row, column.
    func unfold(_ px: Tensor, tiles: Int) -> Tensor {
        let c = config, ch = c.numChannels, ps = c.patchSize, g = c.gridSize, side = c.imageSize
        let u = Tensor(zeros: [tiles * g * g, ch * ps * ps])
        for tile in 0..<tiles {
            let src = px.ptr + tile * ch * side * side
            for r in 0..<g {
                for col in 0..<g {
                    let row = u.ptr + ((tile * g + r) * g + col) * ch * ps * ps
                    for k in 0..<ch {
                        for i in 0..<ps {
                            (row + (k * ps + i) * ps).update(from: src + (k * side + r * ps + i) * side + col * ps,
                                                             count: ps)
                        }
                    }
                }
            }
        }
        return u
    }

    /// The patch embedding (a convolution with stride = kernel) as a matmul over unfolded patches:
    /// (BI·T·P, C·p·p) → (BI·T·P, D).
    private func patchEmbedding(_ patches: Tensor, images bi: Int, params p: ParameterSet) -> Tensor {
        let c = config, n = bi * c.maxNumTiles * c.numPatches, pp = c.numChannels * c.patchSize * c.patchSize
        let e = Tensor(zeros: [n, c.hiddenSize])
        Linear.forward(y: e.ptr, x: patches.ptr, w: p[Self.prefix + "patch_embedding.weight"].ptr, b: nil,
                       n: n, c: pp, oc: c.hiddenSize)
        return e
    }

    /// CLS in front of each tile's patches, the pre-tile embedding on the patches, and the gated
    /// positional + tile embedding on every token: (BI·T·P, D) → x0 (BI·T·L, D).
    private func embedTiles(_ e: Tensor, arIds: [Int], params p: ParameterSet) -> Tensor {
        let c = config, bi = arIds.count, t = c.maxNumTiles, d = c.hiddenSize, l = c.tokensPerTile
        let np = c.numPatches, P = Self.prefix
        let x0 = Tensor(zeros: [bi * t * l, d])
        let tPre = tanhf(p[P + "pre_tile_positional_embedding.gate"].ptr[0])
        let tPos = tanhf(p[P + "gated_positional_embedding.gate"].ptr[0])
        let cls = p[P + "class_embedding"], pe = p[P + "gated_positional_embedding.embedding"]
        let tpe = p[P + "gated_positional_embedding.tile_embedding.weight"]
        let epre = p[P + "pre_tile_positional_embedding.embedding.weight"]
        for img in 0..<bi {
            let ar = arIds[img]
            for tile in 0..<t {
                let pre = epre.ptr + ar * t * d + tile * d
                for pos in 0..<l {
                    let row = x0.ptr + ((img * t + tile) * l + pos) * d
                    if pos == 0 {
                        row.update(from: cls.ptr, count: d)
                    } else {
                        row.update(from: e.ptr + ((img * t + tile) * np + pos - 1) * d, count: d)
                        axpy(tPre, pre, row, d)
                    }
                    axpy(1 - tPos, pe.ptr + pos * d, row, d)
                    axpy(tPos, tpe.ptr + ar * t * l * d + (tile * l + pos) * d, row, d)
                }
            }
        }
        return x0
    }

    /// layernorm_pre (eps 1e-5, whatever norm_eps is), then each tile zero-padded from L to Lp tokens:
    /// x0 (BI·T·L, D) → (BI·T·Lp, D), with the norm's mean and rstd (BI·T·L).
    private func layerNormPreAndPad(_ x0: Tensor, images bi: Int,
                                    params p: ParameterSet) -> (Tensor, mean: Tensor, rstd: Tensor) {
        let c = config, t = c.maxNumTiles, d = c.hiddenSize, l = c.tokensPerTile, lp = c.paddedTokensPerTile
        let rows = bi * t * l
        let ln = Tensor(zeros: [rows, d]), mean = Tensor(zeros: [rows]), rstd = Tensor(zeros: [rows])
        LayerNorm.forward(y: ln.ptr, mean: mean.ptr, rstd: rstd.ptr, x: x0.ptr,
                          w: p[Self.prefix + "layernorm_pre.weight"].ptr, b: p[Self.prefix + "layernorm_pre.bias"].ptr,
                          n: rows, c: d, eps: 1e-5)
        let h = Tensor(zeros: [bi * tokensPerImage, d])
        for tileRow in 0..<(bi * t) {
            (h.ptr + tileRow * lp * d).update(from: ln.ptr + tileRow * l * d, count: l * d)
        }
        return (h, mean, rstd)
    }

    /// A token is invalid if its tile is padding or it is a pad position; the vision mask hides only
    /// (invalid, invalid) pairs. arMask (BI·T) → (BI, T·Lp).
    private func invalidTokens(arMask: [Int], images bi: Int) -> [UInt8] {
        let t = config.maxNumTiles, l = config.tokensPerTile, lp = config.paddedTokensPerTile, tokens = t * lp
        var invalid = [UInt8](repeating: 0, count: bi * tokens)
        for img in 0..<bi {
            for tile in 0..<t {
                for pos in 0..<lp where arMask[img * t + tile] == 0 || pos >= l {
                    invalid[img * tokens + tile * lp + pos] = 1
                }
            }
        }
        return invalid
    }

    /// Runs `layers` over h (BI·T·Lp, D); returns the output, what each layer keeps for backward
    /// (with `keep`), and the outputs of the layers listed in `exporting`, in that order.
    private func encode(_ h: Tensor, layers: [VisionLayer], images bi: Int, mask: AttentionMask,
                        params p: ParameterSet, keep: Bool,
                        exporting: [Int]) -> (Tensor, [VisionLayer.Saved], exported: [Tensor]) {
        var h = h, saved: [VisionLayer.Saved] = [], outputs: [Int: Tensor] = [:]
        let wanted = Set(exporting)
        for (j, layer) in layers.enumerated() {
            let (y, s) = layer.forward(h, images: bi, tokens: tokensPerImage, mask: mask, params: p, keep: keep)
            h = y
            if let s { saved.append(s) }
            if wanted.contains(j) { outputs[j] = y }
        }
        // Validation keeps every exported index below the layer count.
        return (h, saved, exporting.compactMap { outputs[$0] })
    }

    /// layernorm_post, then the post-tile embedding on every position (CLS and pads included):
    /// (BI·T·Lp, D) → (BI·T·Lp, D), with the norm's mean and rstd (BI·T·Lp).
    private func layerNormPostAndTileEmbedding(_ x: Tensor, arIds: [Int],
                                               params p: ParameterSet) -> (Tensor, mean: Tensor, rstd: Tensor) {
        let c = config, bi = arIds.count, t = c.maxNumTiles, d = c.hiddenSize, lp = c.paddedTokensPerTile
        let tokens = tokensPerImage, P = Self.prefix
        let h = Tensor(zeros: [bi * tokens, d])
        let mean = Tensor(zeros: [bi * tokens]), rstd = Tensor(zeros: [bi * tokens])
        LayerNorm.forward(y: h.ptr, mean: mean.ptr, rstd: rstd.ptr, x: x.ptr, w: p[P + "layernorm_post.weight"].ptr,
                          b: p[P + "layernorm_post.bias"].ptr, n: bi * tokens, c: d, eps: 1e-5)
        let tPost = tanhf(p[P + "post_tile_positional_embedding.gate"].ptr[0])
        let epost = p[P + "post_tile_positional_embedding.embedding.weight"]
        for img in 0..<bi {
            for tile in 0..<t {
                for pos in 0..<lp {
                    let row = h.ptr + (img * tokens + tile * lp + pos) * d
                    axpy(tPost, epost.ptr + arIds[img] * t * d + tile * d, row, d)
                }
            }
        }
        return (h, mean, rstd)
    }

    /// Unpads and concatenates [global (D), exported layers interleaved (D·K + k)] → (BI, T, L, Dv).
    private func concatenate(_ h: Tensor, exported: [Tensor], images bi: Int) -> Tensor {
        let c = config, t = c.maxNumTiles, d = c.hiddenSize, l = c.tokensPerTile, lp = c.paddedTokensPerTile
        let tokens = tokensPerImage, k = exported.count, dv = d * (k + 1)
        let out = Tensor(zeros: [bi, t, l, dv])
        for img in 0..<bi {
            for tile in 0..<t {
                for pos in 0..<l {
                    let src = (img * tokens + tile * lp + pos) * d
                    let dst = out.ptr + ((img * t + tile) * l + pos) * dv
                    dst.update(from: h.ptr + src, count: d)
                    for (slot, x) in exported.enumerated() {
                        for j in 0..<d { dst[d + j * k + slot] = x.ptr[src + j] }
                    }
                }
            }
        }
        return out
    }

    // MARK: - backward steps

    /// The transpose of `concatenate`: dOut (BI, T, L, Dv) → the padded global gradient and one per
    /// exported layer, each (BI·T·Lp, D).
    private func splitOutputGradient(_ dOut: Tensor, images bi: Int) -> (global: Tensor, exported: [Tensor]) {
        let c = config, t = c.maxNumTiles, d = c.hiddenSize, l = c.tokensPerTile, lp = c.paddedTokensPerTile
        let tokens = tokensPerImage, k = c.intermediateLayersIndices.count, dv = d * (k + 1)
        let dh = Tensor(zeros: [bi * tokens, d])
        let dExported = (0..<k).map { _ in Tensor(zeros: [bi * tokens, d]) }
        for img in 0..<bi {
            for tile in 0..<t {
                for pos in 0..<l {
                    let dst = (img * tokens + tile * lp + pos) * d
                    let src = dOut.ptr + ((img * t + tile) * l + pos) * dv
                    (dh.ptr + dst).update(from: src, count: d)
                    for slot in 0..<k {
                        for j in 0..<d { dExported[slot].ptr[dst + j] = src[d + j * k + slot] }
                    }
                }
            }
        }
        return (dh, dExported)
    }

    /// The post-tile embedding's table and gate gradients from dh (BI·T·Lp, D).
    private func postTileEmbeddingBackward(_ dh: Tensor, arIds: [Int], params p: ParameterSet, grads: ParameterSet) {
        let c = config, t = c.maxNumTiles, d = c.hiddenSize, lp = c.paddedTokensPerTile, tokens = tokensPerImage
        let P = Self.prefix
        let tg = tanhf(p[P + "post_tile_positional_embedding.gate"].ptr[0])
        let e = p[P + "post_tile_positional_embedding.embedding.weight"]
        let de = grads[P + "post_tile_positional_embedding.embedding.weight"]
        var dg = 0.0
        for img in 0..<arIds.count {
            for tile in 0..<t {
                for pos in 0..<lp {
                    let row = dh.ptr + (img * tokens + tile * lp + pos) * d, off = arIds[img] * t * d + tile * d
                    axpy(tg, row, de.ptr + off, d)
                    dg += Double(dot(row, e.ptr + off, d))
                }
            }
        }
        grads[P + "post_tile_positional_embedding.gate"].ptr[0] += Float((1 - Double(tg * tg)) * dg)
    }

    /// layernorm_post backward: dh (BI·T·Lp, D) → the gradient of the local encoder's output.
    private func layerNormPostBackward(_ dh: Tensor, saved s: Saved, params p: ParameterSet,
                                       grads: ParameterSet?) -> Tensor {
        let P = Self.prefix, rows = s.images * tokensPerImage
        let dLocal = Tensor(zeros: [rows, config.hiddenSize])
        LayerNorm.backward(dx: dLocal.ptr, dw: grads?[P + "layernorm_post.weight"].ptr,
                           db: grads?[P + "layernorm_post.bias"].ptr, dy: dh.ptr, x: s.localOut.ptr,
                           w: p[P + "layernorm_post.weight"].ptr, mean: s.meanPost.ptr, rstd: s.rstdPost.ptr,
                           n: rows, c: config.hiddenSize)
        return dLocal
    }

    /// Padding, layernorm_pre, positional and tile embeddings, CLS and patch embedding, backward.
    private func embeddingsBackward(_ dh: Tensor, saved s: Saved, params p: ParameterSet, grads: ParameterSet) {
        let c = config, bi = s.images, t = c.maxNumTiles, d = c.hiddenSize, l = c.tokensPerTile
        let lp = c.paddedTokensPerTile, P = Self.prefix
        let dln = Tensor(zeros: [bi * t * l, d])
        for tileRow in 0..<(bi * t) {
            (dln.ptr + tileRow * l * d).update(from: dh.ptr + tileRow * lp * d, count: l * d)
        }
        let dx0 = Tensor(zeros: [bi * t * l, d])
        LayerNorm.backward(dx: dx0.ptr, dw: grads[P + "layernorm_pre.weight"].ptr,
                           db: grads[P + "layernorm_pre.bias"].ptr, dy: dln.ptr, x: s.x0.ptr,
                           w: p[P + "layernorm_pre.weight"].ptr, mean: s.meanPre.ptr, rstd: s.rstdPre.ptr,
                           n: bi * t * l, c: d)
        let de = tileEmbeddingsBackward(dx0, arIds: s.arIds, params: p, grads: grads)
        Linear.backward(dx: nil, dw: grads[P + "patch_embedding.weight"].ptr, db: nil, dy: de.ptr, x: s.patches.ptr,
                        w: p[P + "patch_embedding.weight"].ptr, n: bi * t * c.numPatches,
                        c: c.numChannels * c.patchSize * c.patchSize, oc: d)
    }

    /// The transpose of `embedTiles`: dx0 (BI·T·L, D) → the patch embeddings' gradient (BI·T·P, D),
    /// accumulating the CLS, positional, tile and pre-tile tables' and gates' gradients.
    private func tileEmbeddingsBackward(_ dx0: Tensor, arIds: [Int], params p: ParameterSet,
                                        grads: ParameterSet) -> Tensor {
        let c = config, bi = arIds.count, t = c.maxNumTiles, d = c.hiddenSize, l = c.tokensPerTile
        let np = c.numPatches, P = Self.prefix
        let tPre = tanhf(p[P + "pre_tile_positional_embedding.gate"].ptr[0])
        let tPos = tanhf(p[P + "gated_positional_embedding.gate"].ptr[0])
        let pe = p[P + "gated_positional_embedding.embedding"]
        let tpe = p[P + "gated_positional_embedding.tile_embedding.weight"]
        let epre = p[P + "pre_tile_positional_embedding.embedding.weight"]
        let dpe = grads[P + "gated_positional_embedding.embedding"]
        let dtpe = grads[P + "gated_positional_embedding.tile_embedding.weight"]
        let depre = grads[P + "pre_tile_positional_embedding.embedding.weight"], dcls = grads[P + "class_embedding"]
        let de = Tensor(zeros: [bi * t * np, d])
        var dgPos = 0.0, dgPre = 0.0
        for img in 0..<bi {
            let ar = arIds[img]
            for tile in 0..<t {
                for pos in 0..<l {
                    let g = dx0.ptr + ((img * t + tile) * l + pos) * d
                    let tRow = tpe.ptr + ar * t * l * d + (tile * l + pos) * d
                    axpy(1 - tPos, g, dpe.ptr + pos * d, d)
                    axpy(tPos, g, dtpe.ptr + ar * t * l * d + (tile * l + pos) * d, d)
                    dgPos += Double(dot(g, tRow, d)) - Double(dot(g, pe.ptr + pos * d, d))
                    if pos == 0 {
                        axpy(1, g, dcls.ptr, d)
                    } else {
                        (de.ptr + ((img * t + tile) * np + pos - 1) * d).update(from: g, count: d)
                        axpy(tPre, g, depre.ptr + ar * t * d + tile * d, d)
                        dgPre += Double(dot(g, epre.ptr + ar * t * d + tile * d, d))
                    }
                }
            }
        }
        grads[P + "gated_positional_embedding.gate"].ptr[0] += Float((1 - Double(tPos * tPos)) * dgPos)
        grads[P + "pre_tile_positional_embedding.gate"].ptr[0] += Float((1 - Double(tPre * tPre)) * dgPre)
        return de
    }
}
