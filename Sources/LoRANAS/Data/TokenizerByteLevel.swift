import Foundation

/// GPT-2's byte-level alphabet: every byte is shown as one printable character, so that any
/// UTF-8 text becomes a string over 256 characters (HF tokenizers' `bytes_char`).
enum ByteLevelAlphabet {
    /// The character of each byte.
    static let charOfByte: [Unicode.Scalar] = {
        var printable = Set<UInt32>()
        for r in [0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF] as [ClosedRange<UInt32>] { printable.formUnion(r) }
        var out: [Unicode.Scalar] = []
        var n: UInt32 = 0
        for b in UInt32(0)..<256 {
            if printable.contains(b) {
                out.append(Unicode.Scalar(UInt8(b)))
                continue
            }
            out.append(scalar(256 + n))
            n += 1
        }
        return out
    }()

    /// The byte of each alphabet character.
    static let byteOfChar: [UInt32: UInt8] = {
        var m: [UInt32: UInt8] = [:]
        for (b, c) in charOfByte.enumerated() { m[c.value] = UInt8(b) }
        return m
    }()

    private static func scalar(_ v: UInt32) -> Unicode.Scalar { Unicode.Scalar(v) ?? "?" }

    /// `text`'s UTF-8 bytes written in the alphabet.
    static func encode(_ text: String) -> String {
        var s = String.UnicodeScalarView()
        for b in text.utf8 { s.append(charOfByte[Int(b)]) }
        return String(s)
    }

    /// Tokens back to text, as HF's ByteLevel decoder: a token with a character outside the
    /// alphabet contributes its own UTF-8 bytes; invalid UTF-8 becomes U+FFFD.
    static func decode(_ tokens: [String]) -> String {
        var bytes: [UInt8] = []
        for t in tokens {
            var mapped: [UInt8] = []
            var inAlphabet = true
            for c in t.unicodeScalars {
                guard let b = byteOfChar[c.value] else {
                    inAlphabet = false
                    break
                }
                mapped.append(b)
            }
            bytes.append(contentsOf: inAlphabet ? mapped : Array(t.utf8))
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
