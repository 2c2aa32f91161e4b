import Foundation

/// A normalizer: rewrites text before the pre-tokenizer (HF's `normalizer`; only these kinds).
indirect enum TokenizerNormalizer: Sendable {
    /// Unicode canonical composition.
    case nfc
    case sequence([TokenizerNormalizer])

    func apply(_ text: String) -> String {
        switch self {
        case .nfc:
            return text.precomposedStringWithCanonicalMapping
        case .sequence(let steps):
            var out = text
            for step in steps { out = step.apply(out) }
            return out
        }
    }
}
