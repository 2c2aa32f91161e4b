import ArgumentParser
import Foundation
import LoRANAS

/// Parsing of the rank-related option values.
enum Ranks {
    /// "4,8,16" as ranks; an entry that is not a positive integer is an error, not dropped.
    static func space(_ text: String, option: String = "--space") throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let ranks = try parts.map { part -> Int in
            let s = part.trimmingCharacters(in: .whitespaces)
            guard let r = Int(s), r > 0, r <= 1 << 16 else {
                throw ValidationError("\(option): \"\(s)\" is not a positive rank")
            }
            return r
        }
        guard ranks == ranks.sorted(), Set(ranks).count == ranks.count else {
            throw ValidationError("\(option) must list distinct ranks in increasing order, got \(text)")
        }
        return ranks
    }

    /// "0.4" (a fraction in (0, 1] of uniform max-rank parameters) or "120000" (a count).
    static func budget(_ text: String?) throws -> Budget? {
        guard let text else { return nil }
        if let n = Int(text) {
            guard n > 0 else { throw ValidationError("--budget must be a positive parameter count, got \(text)") }
            return .parameters(n)
        }
        guard let f = Double(text), f > 0, f <= 1 else {
            throw ValidationError("--budget must be a fraction in (0, 1] or a parameter count, got \(text)")
        }
        return .fraction(f)
    }
}
