import Foundation

/// What a model directory's `tokenizer_config.json` and chat template say about the text path: the special
/// tokens, the padding side, and which chat template the model uses.
public struct MllamaTokenizerSettings: Sendable, Equatable {
    /// `bos_token` (transformers' `<|begin_of_text|>` for Llama 3).
    public var bosToken: String = ChatFormat.bosToken
    /// `eos_token`; generation also stops on `<|eot_id|>`.
    public var eosToken: String = "<|eot_id|>"
    /// `pad_token`; nil when the tokenizer has none (pads then take config.json's `pad_token_id`).
    public var padToken: String?
    /// `padding_side`.
    public var paddingSide: PaddingSide = .right
    /// Where the chat template was found (`chat_template.jinja`, …); nil when the directory has none.
    public var chatTemplateSource: String?

    /// The FNV-1a 64 hash of the published Llama-3.2-Vision-Instruct template with trailing whitespace removed:
    /// the one template ``ChatFormat`` renders.
    static let publishedTemplateHash: UInt64 = 0x955c_6b5c_72a9_6f18

    /// Creates the defaults (no tokenizer_config.json: right padding, no pad token, no chat template).
    public init() {}

    /// Reads `tokenizer_config.json` (when present) and the chat template of `directory`, looked up in
    /// transformers' order: `chat_template.jinja`, `chat_template.json`, then `tokenizer_config.json`'s
    /// `chat_template`. A template other than the published Llama-3.2-Vision one is an error: loranas renders
    /// that format in code and would otherwise train on a format the model's users never see.
    public static func load(directory: URL) throws -> MllamaTokenizerSettings {
        var settings = MllamaTokenizerSettings()
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        var config: JSON?
        if FileManager.default.fileExists(atPath: configURL.path) {
            let json = try Files.readJSON(configURL.path)
            try settings.read(ConfigReader(json: json, section: "tokenizer_config.json"))
            config = json
        }
        settings.chatTemplateSource = try checkChatTemplate(directory: directory, tokenizerConfig: config)
        return settings
    }

    private mutating func read(_ r: ConfigReader) throws {
        bosToken = try Self.token(r, "bos_token") ?? bosToken
        eosToken = try Self.token(r, "eos_token") ?? eosToken
        padToken = try Self.token(r, "pad_token")
        if let side = try r.string("padding_side") {
            guard let parsed = PaddingSide(rawValue: side) else {
                throw LoRANASError.format("tokenizer_config.json padding_side must be right or left, got \(side)")
            }
            paddingSide = parsed
        }
    }

    /// A token given as a string or as an AddedToken object `{"content": ...}`; null is absent.
    private static func token(_ r: ConfigReader, _ key: String) throws -> String? {
        guard let v = r.value(key), !v.isNull else { return nil }
        if let s = v.string { return s }
        guard let s = v["content"]?.string else {
            throw LoRANASError.format("\(r.section).\(key) must be a string or an object with content")
        }
        return s
    }

    /// The file the chat template came from, after checking that it is the published one.
    private static func checkChatTemplate(directory: URL, tokenizerConfig: JSON?) throws -> String? {
        var found: (template: String, source: String)?
        let jinja = directory.appendingPathComponent("chat_template.jinja")
        let json = directory.appendingPathComponent("chat_template.json")
        if FileManager.default.fileExists(atPath: jinja.path) {
            let data = try Files.read(jinja.path)
            found = (String(decoding: data, as: UTF8.self), "chat_template.jinja")
        } else if FileManager.default.fileExists(atPath: json.path) {
            guard let t = try Files.readJSON(json.path)["chat_template"]?.string else {
                throw LoRANASError.format("chat_template.json has no chat_template string")
            }
            found = (t, "chat_template.json")
        } else if let v = tokenizerConfig?["chat_template"], !v.isNull {
            guard let t = v.string ?? v.array?.first(where: { $0["name"]?.string == "default" })?["template"]?.string
            else {
                throw LoRANASError.format("tokenizer_config.json chat_template must be a string or have a default")
            }
            found = (t, "tokenizer_config.json")
        }
        guard let found else { return nil }
        guard fnv1a(found.template.trimmingTrailingWhitespace) == publishedTemplateHash else {
            throw LoRANASError.unsupported(
                "the chat template in \(found.source) is not the published Llama-3.2-Vision template; loranas "
                    + "renders only that format (see ../shared/llama32-vision-chat-template.jinja)")
        }
        return found.source
    }

    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return h
    }
}

extension String {
    /// The string without trailing spaces, tabs and newlines.
    var trimmingTrailingWhitespace: String {
        var s = Substring(self)
        while let last = s.last, last == " " || last == "\n" || last == "\t" || last == "\r\n" || last == "\r" {
            s = s.dropLast()
        }
        return String(s)
    }
}
