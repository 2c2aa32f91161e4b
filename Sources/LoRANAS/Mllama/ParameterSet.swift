/// A set of named tensors living in one contiguous buffer (llm.c style), each a view.
/// The model's weights are one `ParameterSet`; their gradients, when wanted, are another with
/// the same layout, so optimizers and checkpoints walk both in step.
///
/// The caller guarantees that the total size fits in memory and in `Int` (`MllamaModel` checks
/// a config's footprint before building its sets).
public final class ParameterSet: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let shape: [Int]
        public let offset: Int
    }
    public let entries: [Entry]
    public let storage: Tensor
    private let index: [String: Int]
    private let views: [Tensor]

    public init(_ specs: [(String, [Int])]) {
        var offset = 0
        var entries: [Entry] = []
        for (name, shape) in specs {
            entries.append(Entry(name: name, shape: shape, offset: offset))
            offset += Self.paddedCount(shape)
        }
        self.entries = entries
        let storage = Tensor(zeroPages: [offset])
        self.storage = storage
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
        views = entries.map { storage.view(offset: $0.offset, shape: $0.shape) }
    }

    /// Floats a tensor of `shape` takes in the buffer: each starts 16-float aligned for SIMD loads.
    static func paddedCount(_ shape: [Int]) -> Int { (shape.reduce(1, *) + 15) / 16 * 16 }

    public var names: [String] { entries.map(\.name) }
    public var parameterCount: Int { entries.reduce(0) { $0 + $1.shape.reduce(1, *) } }
    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// The view of a parameter the code itself names; an unknown name is a programming error.
    public subscript(_ name: String) -> Tensor {
        guard let i = index[name] else { preconditionFailure("no parameter \(name)") }
        return views[i]
    }
    public func tensor(_ name: String) -> Tensor? { index[name].map { views[$0] } }

    /// Gives the memory of parameter `name` back (its values read as zeros afterwards): for a weight whose values
    /// now live elsewhere (the bf16 mode's packed linear weights).
    func releaseMemory(of name: String) {
        guard let i = index[name] else { return }
        let e = entries[i]
        storage.releasePages(e.offset..<(e.offset + e.shape.reduce(1, *)))
    }
}
