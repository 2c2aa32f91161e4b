import Foundation

/// A small strict JSON parser that keeps object keys in order and reports duplicates, which
/// safetensors headers must not contain (Foundation's parser silently keeps one of them).
/// Non-finite numbers are written and read as NaN / Infinity / -Infinity, as Python's json does.
public indirect enum JSON: Equatable, Sendable {
    case null, bool(Bool), number(Double), string(String), array([JSON]), object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    /// The value of `key` in an object; of duplicated keys the last wins, as in Python's json.
    public subscript(key: String) -> JSON? {
        if case .object(let kv) = self { return kv.last { $0.0 == key }?.1 }
        return nil
    }
    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var double: Double? {
        if case .number(let d) = self { return d }
        return nil
    }
    /// An exact integer, or nil.
    public var int: Int? {
        if case .number(let d) = self, d.rounded() == d, abs(d) < 9.0e15 { return Int(d) }
        return nil
    }
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    public var array: [JSON]? {
        if case .array(let a) = self { return a }
        return nil
    }
    public var object: [(String, JSON)]? {
        if case .object(let o) = self { return o }
        return nil
    }
    public var isNull: Bool { self == .null }

    /// Parses `bytes`; duplicate keys in an object are an error when `rejectDuplicateKeys`.
    public static func parse(_ bytes: UnsafeRawBufferPointer, rejectDuplicateKeys: Bool = true) throws -> JSON {
        var p = Parser(b: bytes, rejectDuplicates: rejectDuplicateKeys)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.i == bytes.count else { throw p.fail("trailing characters") }
        return v
    }

    public static func parse(_ data: Data, rejectDuplicateKeys: Bool = true) throws -> JSON {
        try data.withUnsafeBytes { try parse($0, rejectDuplicateKeys: rejectDuplicateKeys) }
    }

    public static func parse(_ text: String) throws -> JSON { try parse(Data(text.utf8)) }

    /// Compact serialization (keys in their stored order).
    public var serialized: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let d):
            // Python's json module reads and writes these three; strict JSON has no spelling for them.
            if d.isNaN { return "NaN" }
            if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
            if d.rounded() == d && abs(d) < 1e15 { return String(Int64(d)) }
            return "\(d)"
        case .string(let s): return JSON.quote(s)
        case .array(let a): return "[" + a.map(\.serialized).joined(separator: ",") + "]"
        case .object(let o):
            return "{" + o.map { JSON.quote($0.0) + ":" + $0.1.serialized }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    private struct Parser {
        let b: UnsafeRawBufferPointer
        let rejectDuplicates: Bool
        var i = 0

        func fail(_ m: String) -> LoRANASError { .format("malformed JSON at byte \(i): \(m)") }

        mutating func skipSpace() {
            while i < b.count, [0x20, 0x09, 0x0a, 0x0d].contains(b[i]) { i += 1 }
        }

        mutating func expect(_ word: String) throws {
            for c in word.utf8 {
                guard i < b.count, b[i] == c else { throw fail("expected \(word)") }
                i += 1
            }
        }

        mutating func value(depth: Int) throws -> JSON {
            guard depth < 64 else { throw fail("nesting too deep") }
            guard i < b.count else { throw fail("unexpected end") }
            switch b[i] {
            case UInt8(ascii: "{"):
                i += 1
                var kv: [(String, JSON)] = []
                var seen = Set<String>()
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "}") {
                    i += 1
                    return .object(kv)
                }
                while true {
                    skipSpace()
                    guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                    let k = try string()
                    if rejectDuplicates && !seen.insert(k).inserted {
                        throw LoRANASError.format("duplicate key \"\(k)\" in JSON")
                    }
                    skipSpace()
                    try expect(":")
                    skipSpace()
                    kv.append((k, try value(depth: depth + 1)))
                    skipSpace()
                    guard i < b.count else { throw fail("unterminated object") }
                    if b[i] == UInt8(ascii: ",") {
                        i += 1
                        continue
                    }
                    if b[i] == UInt8(ascii: "}") {
                        i += 1
                        return .object(kv)
                    }
                    throw fail("expected , or }")
                }
            case UInt8(ascii: "["):
                i += 1
                var a: [JSON] = []
                skipSpace()
                if i < b.count, b[i] == UInt8(ascii: "]") {
                    i += 1
                    return .array(a)
                }
                while true {
                    skipSpace()
                    a.append(try value(depth: depth + 1))
                    skipSpace()
                    guard i < b.count else { throw fail("unterminated array") }
                    if b[i] == UInt8(ascii: ",") {
                        i += 1
                        continue
                    }
                    if b[i] == UInt8(ascii: "]") {
                        i += 1
                        return .array(a)
                    }
                    throw fail("expected , or ]")
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"):
                try expect("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try expect("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try expect("null")
                return .null
            case UInt8(ascii: "N"):
                try expect("NaN")
                return .number(.nan)
            case UInt8(ascii: "I"):
                try expect("Infinity")
                return .number(.infinity)
            default: return .number(try number())
            }
        }

        mutating func number() throws -> Double {
            if i + 1 < b.count, b[i] == UInt8(ascii: "-"), b[i + 1] == UInt8(ascii: "I") {
                i += 1
                try expect("Infinity")
                return -.infinity
            }
            let start = i
            while i < b.count, let c = Optional(b[i]),
                (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".")
                    || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
            { i += 1 }
            let text = String(decoding: UnsafeRawBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            if text == "NaN" || text.isEmpty { throw fail("invalid value") }
            guard let d = Double(text), d.isFinite else { throw fail("invalid number '\(text)'") }
            return d
        }

        mutating func string() throws -> String {
            i += 1
            var bytes: [UInt8] = []
            while true {
                guard i < b.count else { throw fail("unterminated string") }
                let c = b[i]
                i += 1
                if c == UInt8(ascii: "\"") { break }
                if c < 0x20 { throw fail("control character in string") }
                if c != UInt8(ascii: "\\") {
                    bytes.append(c)
                    continue
                }
                guard i < b.count else { throw fail("unterminated escape") }
                let e = b[i]
                i += 1
                switch e {
                case UInt8(ascii: "\""): bytes.append(0x22)
                case UInt8(ascii: "\\"): bytes.append(0x5c)
                case UInt8(ascii: "/"): bytes.append(0x2f)
                case UInt8(ascii: "b"): bytes.append(0x08)
                case UInt8(ascii: "f"): bytes.append(0x0c)
                case UInt8(ascii: "n"): bytes.append(0x0a)
                case UInt8(ascii: "r"): bytes.append(0x0d)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800..<0xDC00).contains(code) {
                        try expect("\\u")
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("bad surrogate pair") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let s = Unicode.Scalar(code) else { throw fail("bad \\u escape") }
                    bytes.append(contentsOf: Array(String(Character(s)).utf8))
                default: throw fail("bad escape")
                }
            }
            guard let s = String(validating: bytes, as: UTF8.self) else { throw fail("invalid UTF-8 in string") }
            return s
        }

        mutating func hex4() throws -> UInt32 {
            guard i + 4 <= b.count else { throw fail("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                i += 1
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                default: throw fail("bad hex digit")
                }
                v = v * 16 + d
            }
            return v
        }
    }
}
