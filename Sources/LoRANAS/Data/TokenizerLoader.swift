import Foundation

/// Reads the components of an HF `tokenizer.json`. A component of a kind the engine does not
/// implement is refused with `LoRANASError.unsupported` naming it; a malformed one is a format error
/// naming the field.
enum TokenizerLoader {
    static func type(_ json: JSON, _ field: String) throws -> String {
        guard json.object != nil else { throw LoRANASError.format("\(field) must be an object or null") }
        guard let t = json["type"]?.string else { throw LoRANASError.format("\(field).type must be a string") }
        return t
    }

    static func model(_ json: JSON?) throws -> any TokenizerModel {
        guard let json else { throw LoRANASError.format("tokenizer.json has no model") }
        // Files written by old versions of tokenizers have no model.type; their vocab and merges say BPE.
        let kind = json["type"] == nil && json["merges"] != nil ? "BPE" : try type(json, "model")
        switch kind {
        case "BPE": return try BPEModel(json: json)
        case "WordLevel": return try WordLevelModel(json: json)
        default: throw LoRANASError.unsupported("tokenizer model type \(JSON.quote(kind))")
        }
    }

    static func normalizer(_ json: JSON?, _ field: String = "normalizer") throws -> TokenizerNormalizer? {
        guard let json, !json.isNull else { return nil }
        let kind = try type(json, field)
        switch kind {
        case "NFC": return .nfc
        case "Sequence":
            guard let list = json["normalizers"]?.array else {
                throw LoRANASError.format("\(field).normalizers must be an array")
            }
            return .sequence(
                try list.enumerated().compactMap { i, n in try normalizer(n, "\(field).normalizers[\(i)]") })
        default: throw LoRANASError.unsupported("normalizer type \(JSON.quote(kind)) (\(field))")
        }
    }

    static func preTokenizer(_ json: JSON?, _ field: String = "pre_tokenizer") throws -> PreTokenizer? {
        guard let json, !json.isNull else { return nil }
        let kind = try type(json, field)
        switch kind {
        case "Split":
            let regex: TokenizerRegex
            if let p = json["pattern"]?["Regex"]?.string {
                regex = try TokenizerRegex(pattern: p, field: "\(field).pattern")
            } else if let p = json["pattern"]?["String"]?.string {
                regex = try TokenizerRegex(literal: p, field: "\(field).pattern")
            } else {
                throw LoRANASError.format("\(field).pattern must be {\"Regex\": ...} or {\"String\": ...}")
            }
            guard let b = json["behavior"]?.string else {
                throw LoRANASError.format("\(field).behavior must be a string")
            }
            guard let behavior = SplitBehavior(rawValue: b) else {
                throw LoRANASError.unsupported("Split behavior \(JSON.quote(b)) (\(field).behavior)")
            }
            return .split(regex: regex, behavior: behavior, invert: try flag(json, "invert", field, default: false))
        case "ByteLevel":
            let prefix = try flag(json, "add_prefix_space", field, default: true)
            let useRegex = try flag(json, "use_regex", field, default: true)
            let regex = useRegex ? try TokenizerRegex(pattern: PreTokenizer.gpt2Pattern, field: field) : nil
            return .byteLevel(addPrefixSpace: prefix, regex: regex)
        case "Whitespace":
            return .whitespace(try TokenizerRegex(pattern: PreTokenizer.whitespacePattern, field: field))
        case "WhitespaceSplit":
            return .whitespaceSplit
        case "Sequence":
            guard let list = json["pretokenizers"]?.array else {
                throw LoRANASError.format("\(field).pretokenizers must be an array")
            }
            return .sequence(
                try list.enumerated().compactMap { i, p in try preTokenizer(p, "\(field).pretokenizers[\(i)]") })
        default: throw LoRANASError.unsupported("pre-tokenizer type \(JSON.quote(kind)) (\(field))")
        }
    }

    static func postProcessor(_ json: JSON?) throws -> TokenizerPostProcessor? {
        guard let json, !json.isNull else { return nil }
        let kind = try type(json, "post_processor")
        switch kind {
        case "ByteLevel": return .byteLevel
        case "TemplateProcessing": return .template(try TemplateProcessing(json: json))
        default: throw LoRANASError.unsupported("post-processor type \(JSON.quote(kind))")
        }
    }

    static func decoder(_ json: JSON?) throws -> TokenizerDecoder {
        guard let json, !json.isNull else { return .none }
        let kind = try type(json, "decoder")
        switch kind {
        case "ByteLevel": return .byteLevel
        default: throw LoRANASError.unsupported("decoder type \(JSON.quote(kind))")
        }
    }

    static func addedTokens(_ json: JSON?) throws -> [AddedToken] {
        guard let json, !json.isNull else { return [] }
        guard let list = json.array else { throw LoRANASError.format("added_tokens must be an array") }
        return try list.enumerated().map { i, t in
            let field = "added_tokens[\(i)]"
            guard let id = t["id"]?.int, id >= 0, id <= Int(Int32.max) else {
                throw LoRANASError.format("\(field).id must be an id in 0...2^31-1")
            }
            guard let content = t["content"]?.string else {
                throw LoRANASError.format("\(field).content must be a string")
            }
            return AddedToken(
                id: id, content: content, special: try flag(t, "special", field, default: false),
                lstrip: try flag(t, "lstrip", field, default: false),
                rstrip: try flag(t, "rstrip", field, default: false),
                singleWord: try flag(t, "single_word", field, default: false),
                normalized: try flag(t, "normalized", field, default: true))
        }
    }

    static func flag(_ json: JSON, _ key: String, _ field: String, default value: Bool) throws -> Bool {
        guard let v = json[key], !v.isNull else { return value }
        guard let b = v.bool else { throw LoRANASError.format("\(field).\(key) must be true or false") }
        return b
    }
}
