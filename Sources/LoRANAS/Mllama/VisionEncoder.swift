import Foundation

/// One vision encoder layer: pre-LayerNorm attention and GELU MLP, each on a residual branch,
/// tanh-gated in the global encoder. Rows are (BI, T·Lp) tokens of width D.
final class VisionLayer {
    let q, k, v, o, fc1, fc2: LinearLayer
    let ln1w, ln1b, ln2w, ln2b: String     // parameter names
    let gateAttn, gateFFN: String?
    let eps: Float
    let heads: Int

    init(prefix: String, gated: Bool, config: MllamaVisionConfig, params: ParameterSet, grads: ParameterSet?) {
        func lin(_ n: String, bias: Bool) -> LinearLayer { LinearLayer(name: prefix + n, params: params, grads: grads, hasBias: bias) }
        q = lin("self_attn.q_proj", bias: false); k = lin("self_attn.k_proj", bias: false)
        v = lin("self_attn.v_proj", bias: false); o = lin("self_attn.o_proj", bias: false)
        fc1 = lin("mlp.fc1", bias: true); fc2 = lin("mlp.fc2", bias: true)
        ln1w = prefix + "input_layernorm.weight"; ln1b = prefix + "input_layernorm.bias"
        ln2w = prefix + "post_attention_layernorm.weight"; ln2b = prefix + "post_attention_layernorm.bias"
        gateAttn = gated ? prefix + "gate_attn" : nil
        gateFFN = gated ? prefix + "gate_ffn" : nil
        eps = config.normEps
        heads = config.attentionHeads
    }

    static func specs(prefix: String, gated: Bool, _ c: MllamaVisionConfig) -> [(String, [Int])] {
        let d = c.hiddenSize, i = c.intermediateSize
        var s: [(String, [Int])] = ["q", "k", "v", "o"].map { (prefix + "self_attn.\($0)_proj.weight", [d, d]) }
        s += [(prefix + "mlp.fc1.weight", [i, d]), (prefix + "mlp.fc1.bias", [i]),
              (prefix + "mlp.fc2.weight", [d, i]), (prefix + "mlp.fc2.bias", [d]),
              (prefix + "input_layernorm.weight", [d]), (prefix + "input_layernorm.bias", [d]),
              (prefix + "post_attention_layernorm.weight", [d]), (prefix + "post_attention_layernorm.bias", [d])]
        if gated { s += [(prefix + "gate_attn", [1]), (prefix + "gate_ffn", [1])] }
        return s
    }

    var linears: [LinearLayer] { [q, k, v, o, fc1, fc2] }

    /// What backward reads.
    final class Cache {
        var x, ln1, mean1, rstd1, o, h, ln2, mean2, rstd2, f1, g, f2: Tensor?
        var attention: AttentionBlock.Saved?
    }

    func forward(_ x: Tensor, images: Int, tokens: Int, mask: AttentionMask, params p: ParameterSet, cache: Cache?) -> Tensor {
        let n = images * tokens, d = x.shape.last!
        let dims = Attention.Dims(b: images, sq: tokens, sk: tokens, nh: heads, nkv: heads, hd: d / heads)
        let ln1 = Tensor(uninitialized: [n, d]), mean1 = Tensor(uninitialized: [n]), rstd1 = Tensor(uninitialized: [n])
        LayerNorm.forward(y: ln1.ptr, mean: mean1.ptr, rstd: rstd1.ptr, x: x.ptr, w: p[ln1w].ptr, b: p[ln1b].ptr, n: n, c: d, eps: eps)
        let (ot, saved) = AttentionBlock(o: o, dims: dims).forward(q: q.forward(ln1), k: k.forward(ln1), v: v.forward(ln1),
                                                                   mask: mask, keep: cache != nil)
        let h = x.copy()
        TanhGate.forward(y: h.ptr, a: ot.ptr, gate: gateAttn.map { p[$0].ptr[0] } ?? .infinity, n: n * d)
        let ln2 = Tensor(uninitialized: [n, d]), mean2 = Tensor(uninitialized: [n]), rstd2 = Tensor(uninitialized: [n])
        LayerNorm.forward(y: ln2.ptr, mean: mean2.ptr, rstd: rstd2.ptr, x: h.ptr, w: p[ln2w].ptr, b: p[ln2b].ptr, n: n, c: d, eps: eps)
        let f1 = fc1.forward(ln2)
        let g = Tensor(uninitialized: f1.shape)
        GELU.forward(y: g.ptr, x: f1.ptr, n: g.count)
        let f2 = fc2.forward(g)
        let y = h.copy()
        TanhGate.forward(y: y.ptr, a: f2.ptr, gate: gateFFN.map { p[$0].ptr[0] } ?? .infinity, n: n * d)
        if let c = cache {
            c.x = x; c.ln1 = ln1; c.mean1 = mean1; c.rstd1 = rstd1; c.attention = saved
            c.h = h; c.ln2 = ln2; c.mean2 = mean2; c.rstd2 = rstd2; c.f1 = f1; c.g = g
            if gateAttn != nil { c.o = ot; c.f2 = f2 }
        }
        return y
    }

    /// dy → dx; accumulates parameter gradients into `grads` (when training the base) and the adapters.
    /// Without `needInput` (nothing below trains) the input gradient is not finished: the result is
    /// only meaningful when it is needed.
    func backward(_ dy: Tensor, images: Int, tokens: Int, mask: AttentionMask, cache c: Cache,
                  params p: ParameterSet, grads: ParameterSet?, needInput: Bool = true) -> Tensor {
        let n = images * tokens, d = dy.shape.last!
        let dims = Attention.Dims(b: images, sq: tokens, sk: tokens, nh: heads, nkv: heads, hd: d / heads)
        // MLP branch: y = h + tanh(gf)·fc2(gelu(fc1(LN2(h))))
        let dh = dy.copy()
        let df2 = gatedGrad(dy, branch: c.f2, gate: gateFFN, params: p, grads: grads)
        let dg = Tensor(zeros: c.g!.shape)
        fc2.backward(df2, x: c.g!, dx: dg)
        let df1 = Tensor(zeros: c.f1!.shape)
        GELU.backward(dx: df1.ptr, dy: dg.ptr, x: c.f1!.ptr, n: df1.count)
        let dln2 = Tensor(zeros: [n, d])
        fc1.backward(df1, x: c.ln2!, dx: dln2)
        LayerNorm.backward(dx: dh.ptr, dw: grads?[ln2w].ptr, db: grads?[ln2b].ptr, dy: dln2.ptr, x: c.h!.ptr, w: p[ln2w].ptr,
                           mean: c.mean2!.ptr, rstd: c.rstd2!.ptr, n: n, c: d)
        // Attention branch: h = x + tanh(ga)·o(attn(LN1(x)))
        let dout = gatedGrad(dh, branch: c.o, gate: gateAttn, params: p, grads: grads)
        let (dq, dk, dv) = AttentionBlock(o: o, dims: dims).backward(dout, mask: mask, c.attention!)
        let dln1 = needInput || grads != nil ? Tensor(zeros: [n, d]) : nil
        q.backward(dq, x: c.ln1!, dx: dln1); k.backward(dk, x: c.ln1!, dx: dln1); v.backward(dv, x: c.ln1!, dx: dln1)
        guard let dln1 else { return dh }
        LayerNorm.backward(dx: dh.ptr, dw: grads?[ln1w].ptr, db: grads?[ln1b].ptr, dy: dln1.ptr, x: c.x!.ptr, w: p[ln1w].ptr,
                           mean: c.mean1!.ptr, rstd: c.rstd1!.ptr, n: n, c: d)
        return dh
    }
}

/// For y = x + tanh(g)·a: returns ∂L/∂a = tanh(g)·dy (dy itself when ungated) and accumulates ∂L/∂g.
func gatedGrad(_ dy: Tensor, branch a: Tensor?, gate: String?, params: ParameterSet, grads: ParameterSet?) -> Tensor {
    guard let gate else { return dy }
    let g = params[gate].ptr[0]
    let da = Tensor(zeros: dy.shape)
    let dg = TanhGate.backward(da: da.ptr, dy: dy.ptr, a: a!.ptr, gate: g, n: dy.count)
    if let grads { grads[gate].ptr[0] += dg }
    return da
}

/// The Mllama vision model: patch embedding, tile and position embeddings, the local encoder
/// (whose chosen layer outputs are exported), the gated global encoder, and the concatenated output.
final class VisionModel {
    let config: MllamaVisionConfig
    let local: [VisionLayer]
    let global: [VisionLayer]
    static let prefix = "vision_model."

    init(config: MllamaVisionConfig, params: ParameterSet, grads: ParameterSet?) {
        self.config = config
        local = (0..<config.numHiddenLayers).map {
            VisionLayer(prefix: Self.prefix + "transformer.layers.\($0).", gated: false, config: config, params: params, grads: grads)
        }
        global = (0..<config.numGlobalLayers).map {
            VisionLayer(prefix: Self.prefix + "global_transformer.layers.\($0).", gated: true, config: config, params: params, grads: grads)
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
        for j in 0..<c.numHiddenLayers { s += VisionLayer.specs(prefix: p + "transformer.layers.\(j).", gated: false, c) }
        for j in 0..<c.numGlobalLayers { s += VisionLayer.specs(prefix: p + "global_transformer.layers.\(j).", gated: true, c) }
        return s
    }

    var linears: [LinearLayer] { (local + global).flatMap(\.linears) }

    final class Cache {
        var bi = 0
        var arIds: [Int] = []
        var invalid: [UInt8] = []
        var patches: Tensor?          // (BI·T·P, C·p·p) unfolded pixels, for the patch-embedding gradient
        var x0: Tensor?               // (BI·T·L, D) input of layernorm_pre
        var meanPre: Tensor?, rstdPre: Tensor?
        var localCaches: [VisionLayer.Cache] = []
        var localOut: Tensor?         // input of layernorm_post
        var meanPost: Tensor?, rstdPost: Tensor?
        var globalCaches: [VisionLayer.Cache] = []
    }

    /// pixels (BI, T, C, H, W), aspect-ratio ids (BI), aspect-ratio mask (BI·T) → (BI, T, L, Dv).
    func forward(pixels: Tensor, arIds: [Int], arMask: [Int], params p: ParameterSet, cache: Cache?) -> Tensor {
        let c = config, bi = arIds.count, t = c.maxNumTiles, d = c.hiddenSize
        let pp = c.numChannels * c.patchSize * c.patchSize, np = c.numPatches, l = c.tokensPerTile, lp = c.paddedTokensPerTile
        let tokens = t * lp, k = c.intermediateLayersIndices.count
        let P = Self.prefix

        // 1. Patch embedding as a matmul over unfolded patches.
        let u = unfold(pixels, tiles: bi * t)
        let e = Tensor(zeros: [bi * t * np, d])
        Linear.forward(y: e.ptr, x: u.ptr, w: p[P + "patch_embedding.weight"].ptr, b: nil, n: bi * t * np, c: pp, oc: d)
        // 2-3. CLS, pre-tile embedding (patches only), gated positional + tile embedding.
        let x0 = Tensor(zeros: [bi * t * l, d])
        let tPre = tanhf(p[P + "pre_tile_positional_embedding.gate"].ptr[0])
        let tPos = tanhf(p[P + "gated_positional_embedding.gate"].ptr[0])
        let cls = p[P + "class_embedding"], pe = p[P + "gated_positional_embedding.embedding"]
        let tpe = p[P + "gated_positional_embedding.tile_embedding.weight"], epre = p[P + "pre_tile_positional_embedding.embedding.weight"]
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
        // 4. layernorm_pre (eps 1e-5, whatever norm_eps is), then zero-pad each tile from L to Lp.
        let ln = Tensor(zeros: [bi * t * l, d]), meanPre = Tensor(zeros: [bi * t * l]), rstdPre = Tensor(zeros: [bi * t * l])
        LayerNorm.forward(y: ln.ptr, mean: meanPre.ptr, rstd: rstdPre.ptr, x: x0.ptr, w: p[P + "layernorm_pre.weight"].ptr,
                          b: p[P + "layernorm_pre.bias"].ptr, n: bi * t * l, c: d, eps: 1e-5)
        var h = Tensor(zeros: [bi * tokens, d])
        for tileRow in 0..<(bi * t) { (h.ptr + tileRow * lp * d).update(from: ln.ptr + tileRow * l * d, count: l * d) }
        // 5. Mask: a token is invalid if its tile is padding or it is a pad patch; only (invalid, invalid) pairs are masked.
        var invalid = [UInt8](repeating: 0, count: bi * tokens)
        for img in 0..<bi { for tile in 0..<t { for pos in 0..<lp where arMask[img * t + tile] == 0 || pos >= l {
            invalid[img * tokens + tile * lp + pos] = 1
        } } }
        // 6. Local encoder, keeping the outputs it exports.
        var inter: [Tensor?] = Array(repeating: nil, count: k)
        let localCaches = cache.map { _ in local.map { _ in VisionLayer.Cache() } } ?? []
        invalid.withUnsafeBufferPointer { inv in
            for (j, layer) in local.enumerated() {
                h = layer.forward(h, images: bi, tokens: tokens, mask: .outer(invalid: inv.baseAddress!), params: p,
                                  cache: cache == nil ? nil : localCaches[j])
                for (slot, idx) in c.intermediateLayersIndices.enumerated() where idx == j { inter[slot] = h }
            }
        }
        // 7-8. layernorm_post, post-tile embedding on every position (CLS and pads included).
        let localOut = h
        h = Tensor(zeros: [bi * tokens, d])
        let meanPost = Tensor(zeros: [bi * tokens]), rstdPost = Tensor(zeros: [bi * tokens])
        LayerNorm.forward(y: h.ptr, mean: meanPost.ptr, rstd: rstdPost.ptr, x: localOut.ptr, w: p[P + "layernorm_post.weight"].ptr,
                          b: p[P + "layernorm_post.bias"].ptr, n: bi * tokens, c: d, eps: 1e-5)
        let tPost = tanhf(p[P + "post_tile_positional_embedding.gate"].ptr[0])
        let epost = p[P + "post_tile_positional_embedding.embedding.weight"]
        for img in 0..<bi { for tile in 0..<t { for pos in 0..<lp {
            axpy(tPost, epost.ptr + arIds[img] * t * d + tile * d, h.ptr + (img * tokens + tile * lp + pos) * d, d)
        } } }
        // 9. Global encoder.
        let globalCaches = cache.map { _ in global.map { _ in VisionLayer.Cache() } } ?? []
        invalid.withUnsafeBufferPointer { inv in
            for (j, layer) in global.enumerated() {
                h = layer.forward(h, images: bi, tokens: tokens, mask: .outer(invalid: inv.baseAddress!), params: p,
                                  cache: cache == nil ? nil : globalCaches[j])
            }
        }
        // 10. Unpad and concatenate [global (D), intermediates interleaved (d·K + k)].
        let dv = d * (k + 1)
        let out = Tensor(zeros: [bi, t, l, dv])
        for img in 0..<bi { for tile in 0..<t { for pos in 0..<l {
            let src = (img * tokens + tile * lp + pos) * d
            let dst = out.ptr + ((img * t + tile) * l + pos) * dv
            dst.update(from: h.ptr + src, count: d)
            for (slot, it) in inter.enumerated() { for j in 0..<d { dst[d + j * k + slot] = it!.ptr[src + j] } }
        } } }
        if let cc = cache {
            cc.bi = bi; cc.arIds = arIds; cc.invalid = invalid; cc.patches = u; cc.x0 = x0; cc.meanPre = meanPre; cc.rstdPre = rstdPre
            cc.localCaches = localCaches; cc.localOut = localOut; cc.meanPost = meanPost; cc.rstdPost = rstdPost
            cc.globalCaches = globalCaches
        }
        return out
    }

    /// dOut (BI, T, L, Dv) → parameter gradients (into `grads` when training the base, and the adapters).
    func backward(_ dOut: Tensor, cache cc: Cache, params p: ParameterSet, grads: ParameterSet?) {
        let c = config, bi = cc.bi, t = c.maxNumTiles, d = c.hiddenSize, l = c.tokensPerTile, lp = c.paddedTokensPerTile
        let tokens = t * lp, k = c.intermediateLayersIndices.count, dv = d * (k + 1), P = Self.prefix
        // 10. Split the output gradient back into the padded global and intermediate streams.
        var dh = Tensor(zeros: [bi * tokens, d])
        let dInter = (0..<k).map { _ in Tensor(zeros: [bi * tokens, d]) }
        for img in 0..<bi { for tile in 0..<t { for pos in 0..<l {
            let dst = (img * tokens + tile * lp + pos) * d
            let src = dOut.ptr + ((img * t + tile) * l + pos) * dv
            (dh.ptr + dst).update(from: src, count: d)
            for slot in 0..<k { for j in 0..<d { dInter[slot].ptr[dst + j] = src[d + j * k + slot] } }
        } } }
        cc.invalid.withUnsafeBufferPointer { inv in
            let mask = AttentionMask.outer(invalid: inv.baseAddress!)
            for (j, layer) in global.enumerated().reversed() {
                dh = layer.backward(dh, images: bi, tokens: tokens, mask: mask, cache: cc.globalCaches[j], params: p, grads: grads)
            }
            // 8. Post-tile embedding.
            if let grads {
                let gate = p[P + "post_tile_positional_embedding.gate"].ptr[0], tg = tanhf(gate)
                let e = p[P + "post_tile_positional_embedding.embedding.weight"], de = grads[P + "post_tile_positional_embedding.embedding.weight"]
                var dg = 0.0
                for img in 0..<bi { for tile in 0..<t { for pos in 0..<lp {
                    let row = dh.ptr + (img * tokens + tile * lp + pos) * d, off = cc.arIds[img] * t * d + tile * d
                    axpy(tg, row, de.ptr + off, d)
                    dg += Double(dot(row, e.ptr + off, d))
                } } }
                grads[P + "post_tile_positional_embedding.gate"].ptr[0] += Float((1 - Double(tg * tg)) * dg)
            }
            // 7. layernorm_post.
            let dLocal = Tensor(zeros: [bi * tokens, d])
            LayerNorm.backward(dx: dLocal.ptr, dw: grads?[P + "layernorm_post.weight"].ptr, db: grads?[P + "layernorm_post.bias"].ptr,
                               dy: dh.ptr, x: cc.localOut!.ptr, w: p[P + "layernorm_post.weight"].ptr,
                               mean: cc.meanPost!.ptr, rstd: cc.rstdPost!.ptr, n: bi * tokens, c: d)
            dh = dLocal
            // 6. Local encoder; an exported layer output also receives its slice of the output gradient.
            for (j, layer) in local.enumerated().reversed() {
                for (slot, idx) in c.intermediateLayersIndices.enumerated() where idx == j { axpy(1, dInter[slot].ptr, dh.ptr, dh.count) }
                // Below layer 0 only the embeddings are left: their input gradient is needed only when the base trains.
                dh = layer.backward(dh, images: bi, tokens: tokens, mask: mask, cache: cc.localCaches[j], params: p, grads: grads,
                                    needInput: j > 0 || grads != nil)
            }
        }
        guard let grads else { return }
        embeddingsBackward(dh, cache: cc, params: p, grads: grads)
    }

    /// Steps 1-5 backward: padding, layernorm_pre, positional and tile embeddings, CLS, patch embedding.
    private func embeddingsBackward(_ dh: Tensor, cache cc: Cache, params p: ParameterSet, grads: ParameterSet) {
        let c = config, bi = cc.bi, t = c.maxNumTiles, d = c.hiddenSize, l = c.tokensPerTile, lp = c.paddedTokensPerTile
        let np = c.numPatches, pp = c.numChannels * c.patchSize * c.patchSize, P = Self.prefix
        let dln = Tensor(zeros: [bi * t * l, d])
        for tileRow in 0..<(bi * t) { (dln.ptr + tileRow * l * d).update(from: dh.ptr + tileRow * lp * d, count: l * d) }
        let dx0 = Tensor(zeros: [bi * t * l, d])
        LayerNorm.backward(dx: dx0.ptr, dw: grads[P + "layernorm_pre.weight"].ptr, db: grads[P + "layernorm_pre.bias"].ptr,
                           dy: dln.ptr, x: cc.x0!.ptr, w: p[P + "layernorm_pre.weight"].ptr,
                           mean: cc.meanPre!.ptr, rstd: cc.rstdPre!.ptr, n: bi * t * l, c: d)
        let tPre = tanhf(p[P + "pre_tile_positional_embedding.gate"].ptr[0])
        let tPos = tanhf(p[P + "gated_positional_embedding.gate"].ptr[0])
        let pe = p[P + "gated_positional_embedding.embedding"], tpe = p[P + "gated_positional_embedding.tile_embedding.weight"]
        let epre = p[P + "pre_tile_positional_embedding.embedding.weight"]
        let dpe = grads[P + "gated_positional_embedding.embedding"], dtpe = grads[P + "gated_positional_embedding.tile_embedding.weight"]
        let depre = grads[P + "pre_tile_positional_embedding.embedding.weight"], dcls = grads[P + "class_embedding"]
        let de = Tensor(zeros: [bi * t * np, d])
        var dgPos = 0.0, dgPre = 0.0
        for img in 0..<bi {
            let ar = cc.arIds[img]
            for tile in 0..<t { for pos in 0..<l {
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
            } }
        }
        grads[P + "gated_positional_embedding.gate"].ptr[0] += Float((1 - Double(tPos * tPos)) * dgPos)
        grads[P + "pre_tile_positional_embedding.gate"].ptr[0] += Float((1 - Double(tPre * tPre)) * dgPre)
        Linear.backward(dx: nil, dw: grads[P + "patch_embedding.weight"].ptr, db: nil, dy: de.ptr, x: cc.patches!.ptr,
                        w: p[P + "patch_embedding.weight"].ptr, n: bi * t * np, c: pp, oc: d)
    }

    /// (tiles, C, H, W) → (tiles·P, C·p·p): patch (r, c) of a tile becomes row r·G + c, ordered channel, row, column.
    func unfold(_ px: Tensor, tiles: Int) -> Tensor {
        let c = config, ch = c.numChannels, ps = c.patchSize, g = c.gridSize, side = c.imageSize
        let u = Tensor(zeros: [tiles * g * g, ch * ps * ps])
        for tile in 0..<tiles {
            let src = px.ptr + tile * ch * side * side
            for r in 0..<g { for col in 0..<g {
                let row = u.ptr + ((tile * g + r) * g + col) * ch * ps * ps
                for k in 0..<ch { for i in 0..<ps {
                    (row + (k * ps + i) * ps).update(from: src + (k * side + r * ps + i) * side + col * ps, count: ps)
                } }
            } }
        }
        return u
    }
}
