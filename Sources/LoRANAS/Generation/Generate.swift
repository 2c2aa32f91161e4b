extension MllamaModel {
    /// Generates up to `options.maxNewTokens` tokens after each prompt, as transformers'
    /// `MllamaForConditionalGeneration.generate` does: the vision tower and the prompt run once (prefill),
    /// then one token per step against a KV cache; generated tokens see the prompt's last
    /// cross-attention row. Adapters attached to the model apply as in `forward`.
    ///
    /// - Parameter prompt: B ≥ 1 prompts, left-padded when B > 1 (attention_mask 0 before the tokens);
    ///   labels are ignored.
    /// - Returns: each sample's new token ids, ending with the stop id when one was produced.
    public func generate(_ prompt: MllamaBatch, options: GenerationOptions) throws -> [[Int]] {
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
