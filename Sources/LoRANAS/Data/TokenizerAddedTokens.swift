/// A token of `added_tokens`, with HF's flags.
public struct AddedToken: Sendable, Equatable {
    /// The token's id.
    public let id: Int
    /// The text it matches, and its text in `decode`.
    public let content: String
    /// Skipped by `decode(_:skipSpecialTokens: true)`.
    public let special: Bool
    /// Also takes the whitespace on its left.
    public let lstrip: Bool
    /// Also takes the whitespace on its right.
    public let rstrip: Bool
    /// Only matches where it is not inside a word.
    public let singleWord: Bool
    /// Matched in the normalized text rather than in the raw text.
    public let normalized: Bool
}

/// Finds added tokens in text before the pre-tokenizer, as HF's `AddedVocabulary`: the leftmost
/// and then longest match wins, matches do not overlap, and a match that breaks its token's
/// `single_word` rule is skipped.
struct AddedTokenMatcher: Sendable {
    private struct Node: Sendable {
        var next: [UInt32: Int] = [:]
        var token: Int? = nil  // index in `tokens` of the token ending here
    }
    private var nodes = [Node()]
    let tokens: [AddedToken]

    /// A matcher of `tokens` (empty contents never match).
    init(_ tokens: [AddedToken]) {
        self.tokens = tokens
        for (index, t) in tokens.enumerated() where !t.content.isEmpty {
            var at = 0
            for c in t.content.unicodeScalars {
                if let n = nodes[at].next[c.value] {
                    at = n
                } else {
                    nodes.append(Node())
                    nodes[at].next[c.value] = nodes.count - 1
                    at = nodes.count - 1
                }
            }
            if nodes[at].token == nil { nodes[at].token = index }
        }
    }

    /// `text` cut into pieces: (text, nil) between tokens, (content with stripped spaces, id) at
    /// tokens. Empty pieces are dropped.
    func split(_ text: String) -> [(text: String, id: Int?)] {
        let s = Array(text.unicodeScalars)
        if nodes[0].next.isEmpty || s.isEmpty { return s.isEmpty ? [] : [(text, nil)] }
        var out: [(text: String, id: Int?)] = []
        var done = 0  // the end of the last piece
        var i = 0
        while i < s.count {
            guard let (end, token) = longestMatch(s, at: i) else {
                i += 1
                continue
            }
            var start = i
            var stop = end
            i = end
            if token.singleWord {
                let leftOK = start == 0 || !Self.isWordCharacter(s[start - 1])
                let rightOK = stop == s.count || !Self.isWordCharacter(s[stop])
                if !(leftOK && rightOK) { continue }
            }
            if token.lstrip {
                var j = start
                while j > done && s[j - 1].properties.isWhitespace { j -= 1 }
                start = j
            }
            if token.rstrip {
                // HF's search resumes at the match's end, so a token that begins with whitespace may
                // match inside what rstrip took, overlapping it; here the search resumes after it.
                while stop < s.count && s[stop].properties.isWhitespace { stop += 1 }
                i = stop
            }
            if done < start { out.append((Self.string(s[done..<start]), nil)) }
            out.append((Self.string(s[start..<stop]), token.id))
            done = stop
        }
        if done < s.count { out.append((Self.string(s[done...]), nil)) }
        return out
    }

    private func longestMatch(_ s: [Unicode.Scalar], at i: Int) -> (end: Int, token: AddedToken)? {
        var at = 0
        var best: (end: Int, token: AddedToken)? = nil
        var j = i
        while j < s.count, let n = nodes[at].next[s[j].value] {
            at = n
            j += 1
            if let t = nodes[at].token { best = (j, tokens[t]) }
        }
        return best
    }

    /// A `\w` character of Rust's regex crate, which HF's single_word test uses: Alphabetic, a mark,
    /// a decimal digit, a connector punctuation (`_`) or a join control.
    static func isWordCharacter(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return c.properties.isAlphabetic || c.properties.isJoinControl
        }
    }

    static func string(_ s: ArraySlice<Unicode.Scalar>) -> String {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: s)
        return String(v)
    }
}
