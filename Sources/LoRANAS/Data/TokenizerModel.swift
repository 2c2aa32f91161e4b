/// A tokenizer model: turns one pre-tokenized word into ids, and maps tokens and ids both ways.
protocol TokenizerModel: Sendable {
    /// Appends the ids of `word` to `ids`.
    func tokenize(_ word: String, into ids: inout [Int]) throws
    /// The id of a token string, nil when it is not in the vocabulary.
    func id(of token: String) -> Int?
    /// The token string of an id, nil when no token has it.
    func token(of id: Int) -> String?
    /// The token strings of the vocabulary (without the added tokens).
    var tokens: [String] { get }
}

/// A vocabulary keyed by UTF-8 bytes, not by `String`: Swift's `String` equality is canonical
/// equivalence, and two tokens that differ only in composition ("é" and "e\u{301}") are distinct.
struct TokenVocabulary: Sendable {
    private(set) var ids: [TokenBytes: Int] = [:]
    private(set) var tokenOfId: [Int: String] = [:]

    /// Reads a `{"token": id, ...}` object; `field` names it in errors.
    init(json: JSON?, field: String) throws {
        guard let entries = json?.object else {
            throw LoRANASError.format("\(field) must be an object of token: id")
        }
        ids.reserveCapacity(entries.count)
        tokenOfId.reserveCapacity(entries.count)
        for (token, value) in entries {
            guard let id = value.int, id >= 0, id <= Int(Int32.max) else {
                throw LoRANASError.format("\(field)[\(JSON.quote(token))] must be an id in 0...2^31-1")
            }
            let key = TokenBytes(Array(token.utf8))
            guard ids[key] == nil else {
                throw LoRANASError.format("\(field) has the token \(JSON.quote(token)) twice")
            }
            guard tokenOfId[id] == nil else { throw LoRANASError.format("\(field) gives the id \(id) to two tokens") }
            ids[key] = id
            tokenOfId[id] = token
        }
    }

    subscript(token: String) -> Int? { ids[TokenBytes(Array(token.utf8))] }
    subscript(bytes bytes: [UInt8]) -> Int? { ids[TokenBytes(bytes)] }
    var count: Int { ids.count }
}

/// A token's UTF-8 bytes as a dictionary key, hashed in one call (an `[UInt8]` key hashes byte by byte).
struct TokenBytes: Hashable, Sendable {
    let bytes: [UInt8]
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}
