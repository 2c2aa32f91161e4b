extension MllamaModel {
    /// Generates up to `options.maxNewTokens` tokens after each prompt, as transformers'
    /// `MllamaForConditionalGeneration.generate` does: the vision tower and the prompt run once (prefill),
    /// then one token per step against a KV cache; generated tokens see the prompt's last
    /// cross-attention row. Adapters attached to the model apply as in `forward`.
    ///
    /// - Parameter prompt: B ≥ 1 prompts, left-padded when B > 1 (attention_mask 0 before the tokens);
    ///   labels are ignored.
    /// - Returns: each sample's new token ids, ending with the stop id when one was produced.
    ///
    /// Greedy decoding of several prompts is split across the world's ranks (each decodes its shard, the
    /// answers are gathered on every rank); sampling runs the whole batch on every rank, since its draws
    /// depend on the batch's rows.
    public func generate(_ prompt: MllamaBatch, options: GenerationOptions) throws -> [[Int]] {
        let world = try World.current()
        guard world.isDistributed, options.temperature == 0, prompt.batchSize > 1 else {
            return try generateHere(prompt, options: options)
        }
        try prompt.validate(for: config)
        let mine = world.shardRange(prompt.batchSize)
        let local = try world.agree { mine.isEmpty ? [] : try generateHere(prompt.rows(mine), options: options) }
        return world.gather(local, offset: mine.lowerBound, total: prompt.batchSize)
    }

    /// `generate` in this process alone.
    func generateHere(_ prompt: MllamaBatch, options: GenerationOptions) throws -> [[Int]] {
        try options.validate(promptLength: prompt.seqLen, config: config.text)
        let session = try GenerationSession(model: self, prompt: prompt, maxNewTokens: options.maxNewTokens)
        let b = prompt.batchSize, vocab = config.text.vocabSize, stops = Set(options.stopTokenIds)
        // Finished samples keep being fed a token so the batch stays aligned; their outputs are dropped.
        let filler = config.text.padTokenId ?? 0
        var sampler = TokenSampler(options)
        var outputs = [[Int]](repeating: [], count: b), done = [Bool](repeating: false, count: b)
        var logits = try session.prefill()
        for step in 0..<options.maxNewTokens {
            var next = [Int](repeating: filler, count: b)
            for i in 0..<b where !done[i] {
                let token = try sampler.next(logits.ptr + i * vocab, count: vocab)
                outputs[i].append(token)
                next[i] = token
                done[i] = stops.contains(token)
            }
            if done.allSatisfy({ $0 }) || step == options.maxNewTokens - 1 { break }
            logits = session.decode(next)
        }
        return outputs
    }
}
