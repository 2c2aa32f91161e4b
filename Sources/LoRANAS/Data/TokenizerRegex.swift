import Foundation

/// A compiled pattern of a tokenizer's Split pre-tokenizer (or of a built-in one), on ICU's
/// NSRegularExpression, which has the `\p{L}`, `\p{N}`, `(?i:...)` and lookahead that the
/// Llama-3 and GPT-2 patterns use.
struct TokenizerRegex: @unchecked Sendable {  // NSRegularExpression is immutable and thread-safe
    let regex: NSRegularExpression

    /// Compiles `pattern`; `field` names it in the error when it does not compile.
    init(pattern: String, field: String) throws {
        do {
            regex = try NSRegularExpression(pattern: pattern)
        } catch {
            throw LoRANASError.format("\(field): the regex \(JSON.quote(pattern)) does not compile")
        }
    }

    /// Compiles a literal string pattern (Split's `{"String": ...}`).
    init(literal: String, field: String) throws {
        try self.init(pattern: NSRegularExpression.escapedPattern(for: literal), field: field)
    }

    /// `text` cut at the matches, as HF's `find_matches`: (range, is a match) pieces covering all of
    /// `text` in order; an empty text is one empty non-match.
    func pieces(of string: String, _ text: NSString) -> [(range: NSRange, isMatch: Bool)] {
        if text.length == 0 { return [(NSRange(location: 0, length: 0), false)] }
        var out: [(range: NSRange, isMatch: Bool)] = []
        var previous = 0
        for m in regex.matches(in: string, range: NSRange(location: 0, length: text.length)) {
            let r = m.range
            if r.location != previous {
                out.append((NSRange(location: previous, length: r.location - previous), false))
            }
            out.append((r, true))
            previous = r.location + r.length
        }
        if previous != text.length {
            out.append((NSRange(location: previous, length: text.length - previous), false))
        }
        return out
    }
}
