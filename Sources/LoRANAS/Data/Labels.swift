import Foundation

/// Training labels for a rendered chat: train only on the assistant answers and their `<|eot_id|>`.
///
/// The rule is transformers 5.24's `return_assistant_tokens_mask` with `{% generation %}` around each answer and
/// its `<|eot_id|>` (mllama-processor.md §3.3): the whole string is encoded once, and token i is labelled
/// (`labels[i] = ids[i]`) iff its span of the text overlaps an assistant span (token end > span start and
/// token start < span end). Everything else is ``ignoreIndex``: BOS, the headers (the `\n\n` after the assistant
/// header included), user turns and their `<|image|>`, and the tokens the post-processor adds. Labels are not
/// shifted (the loss shifts).
///
/// Token spans are byte ranges of the UTF-8 text, found by spelling each token (added tokens by their content,
/// the others through the byte-level alphabet). That needs a tokenizer whose tokens spell the text byte for byte
/// (byte-level BPE without a normalizer, as Llama 3's); for any other the spelling check fails and labelling is
/// refused. Answers start at a character boundary, so byte overlap equals HF's character overlap.
public enum Labels {
    /// The label of a position the loss ignores.
    public static let ignoreIndex = -100

    /// The ids of `chat.text` (with the post-processor's special tokens when `addSpecialTokens`) and their labels.
    public static func encode(
        _ chat: RenderedChat, tokenizer: Tokenizer, addSpecialTokens: Bool = true
    ) throws -> (ids: [Int], labels: [Int]) {
        let plain = try tokenizer.encode(chat.text, addSpecialTokens: false)
        let full = try tokenizer.encode(chat.text, addSpecialTokens: addSpecialTokens)
        let prefix = addSpecialTokens ? templatePrefixCount(tokenizer) : 0
        guard prefix + plain.count <= full.count, Array(full[prefix..<(prefix + plain.count)]) == plain else {
            throw LoRANASError.unsupported("labels with a post-processor that changes the text's own tokens")
        }
        let spans = try tokenSpans(plain, of: chat.text, tokenizer: tokenizer)
        var labels = [Int](repeating: ignoreIndex, count: full.count)
        var k = 0
        let answers = chat.assistantSpans
        for (i, span) in spans.enumerated() {
            // Both lists are sorted; skip the answers that end before this token starts.
            while k < answers.count && answers[k].upperBound <= span.lowerBound { k += 1 }
            guard k < answers.count else { break }
            if span.upperBound > answers[k].lowerBound && span.lowerBound < answers[k].upperBound {
                labels[prefix + i] = plain[i]
            }
        }
        return (full, labels)
    }

    /// The number of special tokens the post-processor's single-sequence template puts before `$A`.
    static func templatePrefixCount(_ tokenizer: Tokenizer) -> Int {
        guard case .template(let t)? = tokenizer.postProcessor else { return 0 }
        var n = 0
        for piece in t.single {
            switch piece {
            case .special(let ids): n += ids.count
            case .sequenceA, .sequenceB: return n
            }
        }
        return n
    }

    /// The UTF-8 byte range of each token of `ids`, the encoding of `text` without special tokens; an error
    /// unless the tokens spell `text` exactly.
    static func tokenSpans(_ ids: [Int], of text: String, tokenizer: Tokenizer) throws -> [Range<Int>] {
        let bytes = Array(text.utf8)
        var added: [Int: [UInt8]] = [:]
        for t in tokenizer.addedTokens where added[t.id] == nil { added[t.id] = Array(t.content.utf8) }
        var spans: [Range<Int>] = []
        spans.reserveCapacity(ids.count)
        var at = 0
        for id in ids {
            let spelled: [UInt8]
            if let a = added[id] {
                spelled = a
            } else if let token = tokenizer.model.token(of: id) {
                spelled = byteLevelBytes(token)
            } else {
                throw LoRANASError.format("token id \(id) has no token")
            }
            let end = at + spelled.count
            guard end <= bytes.count, bytes[at..<end].elementsEqual(spelled) else {
                throw LoRANASError.unsupported(
                    "labels with this tokenizer: its tokens do not spell the text byte for byte (byte-level BPE "
                        + "without a normalizer is needed)")
            }
            spans.append(at..<end)
            at = end
        }
        guard at == bytes.count else {
            throw LoRANASError.unsupported("labels with this tokenizer: its tokens do not cover the whole text")
        }
        return spans
    }

    /// A vocabulary token's bytes through the byte-level alphabet (its own UTF-8 if it uses other characters).
    private static func byteLevelBytes(_ token: String) -> [UInt8] {
        var out: [UInt8] = []
        for c in token.unicodeScalars {
            guard let b = ByteLevelAlphabet.byteOfChar[c.value] else { return Array(token.utf8) }
            out.append(b)
        }
        return out
    }
}
