/// How `MllamaModel.generate` picks and stops: greedy when `temperature` is 0, else sampling from
/// softmax(logits / temperature) restricted to the top-p nucleus, seeded so a seed gives the same tokens.
public struct GenerationOptions: Sendable, Equatable {
    /// New tokens per sample at most, in 1...max_position_embeddings − prompt length.
    public var maxNewTokens: Int
    /// 0 = greedy (argmax); > 0 samples. Must be finite.
    public var temperature: Double
    /// Nucleus size in (0, 1]: sampling keeps the most likely tokens until their mass reaches top_p.
    public var topP: Double
    /// Seeds the engine's SplitMix64 for sampling (unused when greedy).
    public var seed: UInt64
    /// A sample stops after producing any of these ids (the id is part of its output), e.g. the
    /// config's eos ids and `<|eot_id|>`. Empty = always `maxNewTokens` tokens.
    public var stopTokenIds: [Int]

    public init(maxNewTokens: Int = 20, temperature: Double = 0, topP: Double = 1, seed: UInt64 = 0,
                stopTokenIds: [Int] = []) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
        self.stopTokenIds = stopTokenIds
    }

    /// Checks every field for a prompt of `promptLength` tokens, with errors naming the option.
    func validate(promptLength s: Int, config t: MllamaTextConfig) throws {
        let room = t.maxPositionEmbeddings - s
        try require(room >= 1, "the prompt's \(s) tokens leave no room under max_position_embeddings "
                        + "(\(t.maxPositionEmbeddings))")
        try require((1...room).contains(maxNewTokens),
                    "max_new_tokens must be in 1...\(room) (max_position_embeddings \(t.maxPositionEmbeddings) "
                        + "− prompt length \(s)), got \(maxNewTokens)")
        try require(temperature.isFinite && temperature >= 0,
                    "temperature must be a finite number ≥ 0 (0 = greedy), got \(temperature)")
        try require(topP.isFinite && topP > 0 && topP <= 1, "top_p must be in (0, 1], got \(topP)")
        try require(stopTokenIds.count <= 1 << 16, "at most 65536 stop ids, got \(stopTokenIds.count)")
        if let bad = stopTokenIds.first(where: { $0 < 0 || $0 >= t.vocabSize }) {
            throw LoRANASError.invalidArgument("stop token id \(bad) is outside the vocabulary 0..<\(t.vocabSize)")
        }
    }
}
