/// Typed access to one section of a config, with errors naming the field.
struct ConfigReader {
    let json: JSON
    let section: String

    /// The value of `key`, or nil when it is missing or null.
    func value(_ key: String) -> JSON? {
        guard let v = json[key], !v.isNull else { return nil }
        return v
    }

    func int(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v.int else { throw mistyped(key, v, "an integer") }
        return i
    }

    func double(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard let d = v.double else { throw mistyped(key, v, "a number") }
        return d
    }

    func float(_ key: String) throws -> Float? { try double(key).map(Float.init) }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.string else { throw mistyped(key, v, "a string") }
        return s
    }

    func ints(_ key: String) throws -> [Int]? {
        guard let v = value(key) else { return nil }
        guard let a = v.array else { throw mistyped(key, v, "a list of integers") }
        let ints = a.compactMap(\.int)
        guard ints.count == a.count else { throw mistyped(key, v, "a list of integers") }
        return ints
    }

    private func mistyped(_ key: String, _ v: JSON, _ expected: String) -> LoRANASError {
        .format("\(section).\(key) must be \(expected), got \(v.serialized)")
    }
}
