/// A post-processor: adds special tokens around the encoded sequence(s) (HF's `post_processor`).
enum TokenizerPostProcessor: Sendable {
    /// Offsets only; the ids are unchanged.
    case byteLevel
    case template(TemplateProcessing)

    func apply(_ a: [Int], pair b: [Int]?, addSpecialTokens: Bool) -> [Int] {
        switch self {
        case .byteLevel:
            return a + (b ?? [])
        case .template(let t):
            guard addSpecialTokens else { return a + (b ?? []) }
            return t.apply(a, pair: b)
        }
    }
}

/// HF's TemplateProcessing: `single` and `pair` are lists of special tokens and the sequences
/// `$A` and `$B`.
struct TemplateProcessing: Sendable {
    enum Piece: Sendable, Equatable {
        case special([Int])
        case sequenceA
        case sequenceB
    }
    let single: [Piece]
    let pair: [Piece]

    init(json: JSON) throws {
        guard let specials = json["special_tokens"]?.object else {
            throw LoRANASError.format("post_processor.special_tokens must be an object")
        }
        var idsOf: [String: [Int]] = [:]
        for (name, value) in specials {
            guard let list = value["ids"]?.array else {
                throw LoRANASError.format("post_processor.special_tokens[\(JSON.quote(name))].ids must be an array")
            }
            let ids = list.compactMap(\.int).filter { $0 >= 0 && $0 <= Int(Int32.max) }
            guard ids.count == list.count else {
                throw LoRANASError.format(
                    "post_processor.special_tokens[\(JSON.quote(name))].ids must hold ids in 0...2^31-1")
            }
            idsOf[name] = ids
        }
        single = try Self.pieces(json["single"], "post_processor.single", idsOf)
        pair = try Self.pieces(json["pair"], "post_processor.pair", idsOf)
    }

    private static func pieces(_ json: JSON?, _ field: String, _ idsOf: [String: [Int]]) throws -> [Piece] {
        guard let list = json?.array else { throw LoRANASError.format("\(field) must be an array") }
        return try list.enumerated().map { i, item in
            if let s = item["SpecialToken"] {
                guard let name = s["id"]?.string else { throw LoRANASError.format("\(field)[\(i)].SpecialToken.id") }
                guard let ids = idsOf[name] else {
                    throw LoRANASError.format(
                        "\(field)[\(i)] uses the special token \(JSON.quote(name)), missing from special_tokens")
                }
                return .special(ids)
            }
            if let s = item["Sequence"] {
                switch s["id"]?.string {
                case "A"?: return .sequenceA
                case "B"?: return .sequenceB
                default: throw LoRANASError.format("\(field)[\(i)].Sequence.id must be \"A\" or \"B\"")
                }
            }
            throw LoRANASError.format("\(field)[\(i)] must be a SpecialToken or a Sequence")
        }
    }

    func apply(_ a: [Int], pair b: [Int]?) -> [Int] {
        var out: [Int] = []
        for piece in (b == nil ? single : pair) {
            switch piece {
            case .special(let ids): out += ids
            case .sequenceA: out += a
            case .sequenceB: out += b ?? []
            }
        }
        return out
    }
}
