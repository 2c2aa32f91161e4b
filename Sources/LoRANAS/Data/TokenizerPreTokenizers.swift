import Foundation

/// How a Split pre-tokenizer treats the matches (HF's `SplitDelimiterBehavior`).
enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"

    /// The ranges kept from `pieces` (HF's `NormalizedString::split`), empty ones included.
    func apply(_ pieces: [(range: NSRange, isMatch: Bool)]) -> [NSRange] {
        switch self {
        case .isolated:
            return pieces.map(\.range)
        case .removed:
            return pieces.filter { !$0.isMatch }.map(\.range)
        case .contiguous:
            var out: [NSRange] = []
            var previous = false
            for p in pieces {
                if p.isMatch == previous, let last = out.last {
                    out[out.count - 1] = NSRange(location: last.location, length: p.range.upperBound - last.location)
                } else {
                    out.append(p.range)
                }
                previous = p.isMatch
            }
            return out
        case .mergedWithPrevious:
            var out: [NSRange] = []
            var previous = false
            for p in pieces {
                if p.isMatch && !previous, let last = out.last {
                    out[out.count - 1] = NSRange(location: last.location, length: p.range.upperBound - last.location)
                } else {
                    out.append(p.range)
                }
                previous = p.isMatch
            }
            return out
        case .mergedWithNext:
            var out: [NSRange] = []
            var previous = false
            for p in pieces.reversed() {
                if p.isMatch && !previous, let last = out.last {
                    out[out.count - 1] = NSRange(
                        location: p.range.location, length: last.upperBound - p.range.location)
                } else {
                    out.append(p.range)
                }
                previous = p.isMatch
            }
            return out.reversed()
        }
    }
}

/// A pre-tokenizer: cuts each piece of text into the words the model sees.
indirect enum PreTokenizer: Sendable {
    case split(regex: TokenizerRegex, behavior: SplitBehavior, invert: Bool)
    /// GPT-2's: an optional prefix space, an optional split by `regex`, then the byte alphabet.
    case byteLevel(addPrefixSpace: Bool, regex: TokenizerRegex?)
    /// Words of `\w+|[^\w\s]+`, whitespace dropped.
    case whitespace(TokenizerRegex)
    /// Cut at Unicode whitespace, which is dropped.
    case whitespaceSplit
    case sequence([PreTokenizer])

    /// GPT-2's pattern, used by ByteLevel with `use_regex`.
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    /// The Whitespace pre-tokenizer's pattern.
    static let whitespacePattern = #"\w+|[^\w\s]+"#

    /// The words of `pieces`, in order; empty words are dropped as HF drops them.
    func apply(_ pieces: [String]) -> [String] {
        switch self {
        case .split(let regex, let behavior, let invert):
            return pieces.flatMap { piece in
                let ns = piece as NSString
                var found = regex.pieces(of: piece, ns)
                if invert { found = found.map { ($0.range, !$0.isMatch) } }
                return behavior.apply(found).filter { $0.length > 0 }.map { ns.substring(with: $0) }
            }
        case .byteLevel(let addPrefixSpace, let regex):
            return pieces.flatMap { piece -> [String] in
                var text = piece
                if addPrefixSpace && text.unicodeScalars.first != " " { text = " " + text }
                guard let regex else { return text.isEmpty ? [] : [ByteLevelAlphabet.encode(text)] }
                let ns = text as NSString
                return regex.pieces(of: text, ns).map(\.range).filter { $0.length > 0 }.map {
                    ByteLevelAlphabet.encode(ns.substring(with: $0))
                }
            }
        case .whitespace(let regex):
            return PreTokenizer.split(regex: regex, behavior: .removed, invert: true).apply(pieces)
        case .whitespaceSplit:
            return pieces.flatMap { piece -> [String] in
                var out: [String] = []
                var word = String.UnicodeScalarView()
                for c in piece.unicodeScalars {
                    if c.properties.isWhitespace {
                        if !word.isEmpty { out.append(String(word)) }
                        word = String.UnicodeScalarView()
                    } else {
                        word.append(c)
                    }
                }
                if !word.isEmpty { out.append(String(word)) }
                return out
            }
        case .sequence(let steps):
            var words = pieces
            for step in steps { words = step.apply(words) }
            return words
        }
    }
}
