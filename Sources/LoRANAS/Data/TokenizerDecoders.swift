/// A decoder: turns token strings back into text (HF's `decoder`).
enum TokenizerDecoder: Sendable {
    /// No decoder: HF joins the tokens with single spaces.
    case none
    /// GPT-2's byte alphabet back to UTF-8 (invalid sequences become U+FFFD).
    case byteLevel

    func decode(_ tokens: [String]) -> String {
        switch self {
        case .none: return tokens.joined(separator: " ")
        case .byteLevel: return ByteLevelAlphabet.decode(tokens)
        }
    }
}
