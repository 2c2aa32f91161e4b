import Foundation

/// A text tokenizer read from a Hugging Face `tokenizer.json`, giving the ids HF `tokenizers` gives.
///
/// Supported: models BPE (byte-level, as Llama 3) and WordLevel; pre-tokenizers Split,
/// ByteLevel, Whitespace, WhitespaceSplit and Sequence; normalizers NFC and Sequence;
/// post-processors TemplateProcessing and ByteLevel; the ByteLevel decoder (or none); added
/// tokens with all their flags. Any other component is refused with `LoRANASError.unsupported`.
///
/// Encoding follows HF: added tokens are cut out of the raw text first (those with
/// `normalized: false`), the rest is normalized and cut at the normalized added tokens, each
/// remaining piece is pre-tokenized into words, each word goes through the model, and the
/// post-processor adds the special tokens.
public final class Tokenizer: Sendable {
    let model: any TokenizerModel
    let normalizer: TokenizerNormalizer?
    let preTokenizer: PreTokenizer?
    let postProcessor: TokenizerPostProcessor?
    let decoder: TokenizerDecoder
    /// The added tokens, in the file's order.
    public let addedTokens: [AddedToken]
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let addedById: [Int: AddedToken]
    private let addedIdOfContent: [[UInt8]: Int]
    /// The number of distinct tokens, the added ones included (HF's `get_vocab_size(True)`).
    public let vocabSize: Int

    /// Reads a `tokenizer.json` file.
    public convenience init(path: String) throws {
        let data = try Files.read(path)
        do {
            try self.init(json: data)
        } catch LoRANASError.format(let m) {
            throw LoRANASError.format("\(path): \(m)")
        }
    }

    /// Reads the contents of a `tokenizer.json`.
    public convenience init(json data: Data) throws {
        // Duplicate keys are checked where they matter (a vocabulary compares token bytes, which
        // the JSON reader's String keys would conflate when canonically equivalent).
        let json = try JSON.parse(data, rejectDuplicateKeys: false)
        guard json.object != nil else { throw LoRANASError.format("tokenizer.json must be a JSON object") }
        for key in ["truncation", "padding"] {
            if let v = json[key], !v.isNull { throw LoRANASError.unsupported("tokenizer.json with \(key) set") }
        }
        try self.init(
            model: try TokenizerLoader.model(json["model"]),
            normalizer: try TokenizerLoader.normalizer(json["normalizer"]),
            preTokenizer: try TokenizerLoader.preTokenizer(json["pre_tokenizer"]),
            postProcessor: try TokenizerLoader.postProcessor(json["post_processor"]),
            decoder: try TokenizerLoader.decoder(json["decoder"]),
            addedTokens: try TokenizerLoader.addedTokens(json["added_tokens"]))
    }

    init(
        model: any TokenizerModel, normalizer: TokenizerNormalizer?, preTokenizer: PreTokenizer?,
        postProcessor: TokenizerPostProcessor?, decoder: TokenizerDecoder, addedTokens: [AddedToken]
    ) throws {
        self.model = model
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.postProcessor = postProcessor
        self.decoder = decoder
        self.addedTokens = addedTokens
        rawMatcher = AddedTokenMatcher(addedTokens.filter { !$0.normalized })
        normalizedMatcher = AddedTokenMatcher(addedTokens.filter { $0.normalized })
        var byId: [Int: AddedToken] = [:]
        var idOfContent: [[UInt8]: Int] = [:]
        for t in addedTokens {
            if byId[t.id] == nil { byId[t.id] = t }
            if idOfContent[Array(t.content.utf8)] == nil { idOfContent[Array(t.content.utf8)] = t.id }
        }
        addedById = byId
        addedIdOfContent = idOfContent
        let addedOutsideModel = idOfContent.keys.filter { model.id(of: String(decoding: $0, as: UTF8.self)) == nil }
        vocabSize = model.tokens.count + addedOutsideModel.count
    }

    /// The ids of `text` (and of `pair`, when given); `addSpecialTokens` applies the
    /// post-processor's template (Llama 3's published file has none: its BOS comes from the chat format).
    public func encode(_ text: String, pair: String? = nil, addSpecialTokens: Bool = true) throws -> [Int] {
        let a = try encodeSequence(text)
        let b = try pair.map { try encodeSequence($0) }
        guard let postProcessor else { return a + (b ?? []) }
        return postProcessor.apply(a, pair: b, addSpecialTokens: addSpecialTokens)
    }

    private func encodeSequence(_ text: String) throws -> [Int] {
        var ids: [Int] = []
        for (piece, id) in rawMatcher.split(text) {
            if let id {
                ids.append(id)
                continue
            }
            let normalized = normalizer?.apply(piece) ?? piece
            for (part, id) in normalizedMatcher.split(normalized) {
                if let id {
                    ids.append(id)
                    continue
                }
                for word in preTokenizer?.apply([part]) ?? [part] { try model.tokenize(word, into: &ids) }
            }
        }
        return ids
    }

    /// The text of `ids`, as HF's `decode`: added tokens by their content, the others by the
    /// model's vocabulary, then the decoder. Ids that no token has are skipped, as HF skips them.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let t = addedById[id] {
                if !(skipSpecialTokens && t.special) { tokens.append(t.content) }
            } else if let t = model.token(of: id) {
                if !(skipSpecialTokens && isSpecial(t)) { tokens.append(t) }
            }
        }
        return decoder.decode(tokens)
    }

    private func isSpecial(_ token: String) -> Bool {
        guard let id = addedIdOfContent[Array(token.utf8)] else { return false }
        return addedById[id]?.special ?? false
    }

    /// The id of a token (an added token first, then the model's vocabulary), nil when none has it.
    public func tokenToId(_ token: String) -> Int? {
        addedIdOfContent[Array(token.utf8)] ?? model.id(of: token)
    }

    /// The string of an id, nil when no token has it.
    public func idToToken(_ id: Int) -> String? {
        addedById[id]?.content ?? model.token(of: id)
    }
}
