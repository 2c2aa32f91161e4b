/// HF's WordLevel model: each word is one token, or the unknown token.
struct WordLevelModel: TokenizerModel {
    let vocab: TokenVocabulary
    /// `unk_token` (HF's default is "<unk>"); a word outside the vocabulary is an error when the
    /// unknown token is not in the vocabulary either, as in HF.
    let unkToken: String

    init(json: JSON) throws {
        vocab = try TokenVocabulary(json: json["vocab"], field: "model.vocab")
        guard let s = (json["unk_token"] ?? .string("<unk>")).string else {
            throw LoRANASError.format("model.unk_token must be a string")
        }
        unkToken = s
    }

    func tokenize(_ word: String, into ids: inout [Int]) throws {
        if let id = vocab[word] {
            ids.append(id)
        } else if let unk = vocab[unkToken] {
            ids.append(unk)
        } else {
            throw LoRANASError.invalidArgument(
                "WordLevel: \(JSON.quote(word)) is not in the vocabulary, and neither is unk_token "
                    + JSON.quote(unkToken))
        }
    }

    func id(of token: String) -> Int? { vocab[token] }
    func token(of id: Int) -> String? { vocab.tokenOfId[id] }
    var tokens: [String] { Array(vocab.tokenOfId.values) }
}
