import Foundation

/// One part of a message's list content: an image (rendered as `<|image|>`) or text.
public enum ChatPart: Sendable, Equatable {
    /// `{"type": "image"}`, rendered as `<|image|>`.
    case image
    /// `{"type": "text", "text": ...}`, copied verbatim.
    case text(String)
}

/// A message's content: a plain string, or a list of parts (HF's `[{"type": "image"}, {"type": "text", ...}]`).
public enum ChatContent: Sendable, Equatable {
    /// String content, copied verbatim.
    case string(String)
    /// List content, rendered part by part.
    case parts([ChatPart])
}

/// One chat message, as in HF's `messages` list.
public struct ChatMessage: Sendable, Equatable {
    /// The role: `user`, `assistant` or `system` (any other name is rendered as is, except `tool`/`ipython`).
    public var role: String
    /// The content.
    public var content: ChatContent

    /// A message of `role` with `content`.
    public init(role: String, content: ChatContent) {
        self.role = role
        self.content = content
    }

    /// Parses HF's messages JSON: an array of `{"role": ..., "content": str | [{"type": "image"} |
    /// {"type": "text", "text": ...}]}`. Parts of another type are skipped, as the template skips them.
    public static func list(json text: String) throws -> [ChatMessage] {
        guard let list = try JSON.parse(text).array else { throw LoRANASError.format("messages must be a JSON array") }
        var out: [ChatMessage] = []
        for (i, m) in list.enumerated() {
            guard let role = m["role"]?.string else {
                throw LoRANASError.format("messages[\(i)].role must be a string")
            }
            if let s = m["content"]?.string {
                out.append(ChatMessage(role: role, content: .string(s)))
                continue
            }
            guard let items = m["content"]?.array else {
                throw LoRANASError.format("messages[\(i)].content must be a string or an array of parts")
            }
            var parts: [ChatPart] = []
            for (j, item) in items.enumerated() {
                switch item["type"]?.string {
                case "image"?:
                    parts.append(.image)
                case "text"?:
                    guard let t = item["text"]?.string else {
                        throw LoRANASError.format("messages[\(i)].content[\(j)].text must be a string")
                    }
                    parts.append(.text(t))
                default:
                    continue
                }
            }
            out.append(ChatMessage(role: role, content: .parts(parts)))
        }
        return out
    }
}

/// A rendered chat and where its assistant answers lie.
public struct RenderedChat: Sendable, Equatable {
    /// The prompt string.
    public var text: String
    /// Per assistant message, the UTF-8 byte range of its content and the `<|eot_id|>` after it
    /// (the header is not included): the tokens that overlap these are trained on (see ``Labels``).
    public var assistantSpans: [Range<Int>]
}

/// The Llama-3.2-Vision-Instruct chat format.
///
/// This is the logic of the **published** chat template (`chat_template.jinja` of
/// Llama-3.2-11B-Vision-Instruct) as HF renders it (`trim_blocks`, `lstrip_blocks`, `strftime_now`
/// defined), written as code; it is not a Jinja engine and does not read templates:
/// - the output starts with the BOS token, with no newline after it;
/// - a leading `system` message is taken out and its content trimmed (Python's `str.strip`);
/// - if any message has an image part, there is no system block, and a non-empty system message is an error;
///   otherwise a system block with "Cutting Knowledge Date: December 2023", the date and the system message;
/// - each message is `<|start_header_id|>role<|end_header_id|>\n\n` + content + `<|eot_id|>`, where string
///   content is copied verbatim and list content is its parts in order (image → `<|image|>`, text verbatim);
/// - `add_generation_prompt` appends the assistant header.
/// Tools (`tools`, `custom_tools`, `tool`/`ipython` roles, `tool_calls`) are not supported and are refused.
public enum ChatFormat {
    /// The BOS token of the published tokenizer.
    public static let bosToken = "<|begin_of_text|>"
    /// The image token.
    public static let imageToken = "<|image|>"

    /// The date as the template's `strftime_now("%d %b %Y")` gives it (C locale, local time), e.g. "26 Jul 2024".
    public static func today() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone.current
        f.dateFormat = "dd MMM yyyy"
        return f.string(from: Date())
    }

    /// Renders `messages`; `dateString` (nil: ``today()``) only appears in the system block of a chat
    /// without images.
    public static func render(
        _ messages: [ChatMessage], addGenerationPrompt: Bool = false, dateString: String? = nil,
        bosToken: String = ChatFormat.bosToken
    ) throws -> RenderedChat {
        guard let first = messages.first else {
            throw LoRANASError.invalidArgument("a chat needs at least one message")
        }
        var body = messages[...]
        var systemMessage = ""
        if first.role == "system" {
            guard case .string(let s) = first.content else {
                throw LoRANASError.unsupported("a system message whose content is a list (give it as a string)")
            }
            systemMessage = pythonStrip(s)
            body = messages.dropFirst()
        }
        var hasImages = false
        for m in body {
            if case .parts(let parts) = m.content, parts.contains(.image) { hasImages = true }
        }
        if hasImages && !systemMessage.isEmpty {
            throw LoRANASError.invalidArgument("Prompting with images is incompatible with system messages.")
        }
        var out = bosToken
        if !hasImages {
            out += "<|start_header_id|>system<|end_header_id|>\n\n"
            out += "Cutting Knowledge Date: December 2023\n"
            out += "Today Date: " + (dateString ?? today()) + "\n\n"
            out += systemMessage
            out += "<|eot_id|>"
        }
        var spans: [Range<Int>] = []
        for m in body {
            if m.role == "tool" || m.role == "ipython" {
                throw LoRANASError.unsupported("the \(m.role) role (tool calls are not supported)")
            }
            out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n"
            let start = out.utf8.count
            switch m.content {
            case .string(let s):
                out += s
            case .parts(let parts):
                for p in parts {
                    switch p {
                    case .image: out += imageToken
                    case .text(let t): out += t
                    }
                }
            }
            out += "<|eot_id|>"
            if m.role == "assistant" { spans.append(start..<out.utf8.count) }
        }
        if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
        return RenderedChat(text: out, assistantSpans: spans)
    }

    /// Python's `str.strip()` with no argument: removes the characters `str.isspace` accepts at both ends.
    static func pythonStrip(_ s: String) -> String {
        let scalars = Array(s.unicodeScalars)
        var lo = 0
        var hi = scalars.count
        while lo < hi && isPythonSpace(scalars[lo]) { lo += 1 }
        while hi > lo && isPythonSpace(scalars[hi - 1]) { hi -= 1 }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[lo..<hi])
        return String(view)
    }

    /// CPython's `Py_UNICODE_ISSPACE`: bidirectional class WS, B or S, or category Zs.
    static func isPythonSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }
}
