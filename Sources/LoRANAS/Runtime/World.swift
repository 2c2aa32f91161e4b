import Foundation

/// The processes of a data-parallel run: Open MPI's `MPI_COMM_WORLD` when the process was started by
/// `mpirun`, else this process alone.
///
/// Every rank runs the same job on the same data, in the same order (SPMD). Each rank takes its
/// `shard` of a global batch; the collectives below sum what the ranks computed, so every rank ends a
/// step with the same gradients and takes the same optimizer step. Every collective must be reached by
/// every rank in the same order, which is why a failure on one rank is made everyone's (`agree`):
/// otherwise the other ranks would wait for it forever.
public final class World: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// How this process runs, for logs: "rank 0 of 2 (Open MPI v4.1.4, …)" or "one process (…)".
    public let summary: String
    private let transport: WorldTransport?

    init(rank: Int, size: Int, summary: String, transport: WorldTransport?) {
        self.rank = rank
        self.size = size
        self.summary = summary
        self.transport = transport
    }

    /// This process alone: every collective is the identity.
    static func single(_ why: String) -> World {
        World(rank: 0, size: 1, summary: "one process (\(why))", transport: nil)
    }

    private static let shared: Result<World, LoRANASError> = WorldTransport.start()

    /// The world of this process, started on first use (MPI_Init when `mpirun` started the process).
    /// Fails when `mpirun` started it but this build has no Open MPI, or MPI could not start.
    public static func current() throws -> World {
        try shared.get()
    }

    public var isDistributed: Bool { size > 1 }

    /// What the sums moved so far: bytes contributed by this rank and seconds spent in them (benchmarks).
    public private(set) var traffic = Traffic()

    public struct Traffic: Sendable {
        public var bytes = 0
        public var seconds = 0.0
    }

    /// Set once a failure was agreed (`agree`): every rank is leaving with the same error.
    public private(set) var failedTogether = false

    // MARK: - sharding

    /// This rank's part of a global batch: contiguous, the first `count % size` ranks one longer.
    /// Empty when the batch has fewer samples than there are ranks.
    public func shard<T>(_ items: [T]) -> [T] {
        Array(items[shardRange(items.count)])
    }

    /// The positions of this rank's shard in 0..<count.
    public func shardRange(_ count: Int) -> Range<Int> {
        Self.part(rank, of: size, count: count)
    }

    /// Part k of 0..<count cut into n contiguous parts, the first `count % n` one longer (ranks' shards, and the
    /// thread parts of a step, `threadShards`).
    static func part(_ k: Int, of n: Int, count: Int) -> Range<Int> {
        let q = count / n, r = count % n
        let lo = k * q + min(k, r)
        return lo..<(lo + q + (k < r ? 1 : 0))
    }

    // MARK: - collectives

    /// Sums `values` over the ranks (in place: every rank gets the sums).
    public func sum(_ values: inout [Double]) {
        guard let transport else { return }
        values.withUnsafeMutableBufferPointer { v in
            if let base = v.baseAddress { measured(v.count * 8) { transport.sum(base, count: v.count) } }
        }
    }

    /// Sums the tensors over the ranks, in buckets (see `GradientBuckets`).
    public func sum(_ tensors: [Tensor]) {
        guard let transport else { return }
        GradientBuckets(tensors).reduce { p, n in measured(n * 4) { transport.sum(p, count: n) } }
    }

    /// Sums int32 arrays over the ranks (exact).
    func sum(_ values: inout [Int32]) {
        guard let transport else { return }
        values.withUnsafeMutableBufferPointer { v in
            if let base = v.baseAddress { measured(v.count * 4) { transport.sum(base, count: v.count) } }
        }
    }

    private func measured(_ bytes: Int, _ body: () -> Void) {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        traffic.bytes += bytes
        traffic.seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// The ranks' lists gathered on every rank, in order: this rank's `local` lists are items
    /// `offset..<offset + local.count` of `total`. The ranks fill their own slots of zeroed length and value
    /// tables, which are then summed (exact in int32; values must fit in int32).
    public func gather(_ local: [[Int]], offset: Int, total: Int) -> [[Int]] {
        guard isDistributed else { return local }
        var lengths = [Int32](repeating: 0, count: total)
        for (k, list) in local.enumerated() { lengths[offset + k] = Int32(clamping: list.count) }
        sum(&lengths)
        let starts = lengths.reduce(into: [0]) { $0.append($0[$0.count - 1] + Int($1)) }
        var values = [Int32](repeating: 0, count: starts[total])
        for (k, list) in local.enumerated() {
            for (j, v) in list.enumerated() { values[starts[offset + k] + j] = Int32(clamping: v) }
        }
        sum(&values)
        return (0..<total).map { i in values[starts[i]..<starts[i + 1]].map(Int.init) }
    }

    /// True on every rank when `flag` is true on any.
    public func any(_ flag: Bool) -> Bool {
        var n: [Int32] = [flag ? 1 : 0]
        sum(&n)
        return n[0] > 0
    }

    /// Runs `body` on every rank, then agrees: when it threw on any rank, every rank throws the error of
    /// the lowest failing rank (its message prefixed with "rank r: " on the others), so all ranks leave
    /// the job at the same point instead of waiting in a collective for a rank that has gone.
    public func agree<T>(_ body: () throws -> T) throws -> T {
        let outcome = Result<T, Error> { try body() }
        guard let transport else { return try outcome.get() }
        var failed = Int32(outcome.failed ? rank : size)
        transport.min(&failed, count: 1)
        let first = Int(failed)
        if first == size { return try outcome.get() }
        failedTogether = true
        let local = outcome.error.map(WireError.init) ?? WireError()
        let error = WireError(code: transport.broadcast(local.code, from: first),
                              message: transport.broadcast(local.message, from: first))
        if first == rank { _ = try outcome.get() }
        throw error.engineError.prefixed("rank \(first): ")
    }

    /// Runs `body` (a write: checkpoint, result, export) on rank 0 only; the other ranks wait for it and
    /// throw its error if it fails.
    public func onRankZero(_ body: () throws -> Void) throws {
        try agree { if rank == 0 { try body() } }
    }

    /// Fails on every rank unless every rank passes the same `text` (options and data fingerprints):
    /// ranks fed different data would otherwise train on a mix without noticing.
    func requireSame(_ text: String, _ what: String) throws {
        guard let transport else { return }
        let root = transport.broadcast(text, from: 0)
        try agree {
            try require(root == text, "this rank's \(what) differ from rank 0's")
        }
    }

    /// Stops every rank of the job now (MPI_Abort), after printing `message` to stderr.
    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("loranas: rank \(rank) of \(size): \(message)\n".utf8))
        transport?.abort()
        exit(1)
    }
}

extension Result {
    fileprivate var failed: Bool {
        if case .failure = self { return true }
        return false
    }

    fileprivate var error: Failure? {
        if case .failure(let e) = self { return e }
        return nil
    }
}

/// An error as it travels between ranks: the kind (a `LoRANASError` case) and the message.
struct WireError {
    var code: Int32 = 0
    var message = ""

    init(code: Int32 = 0, message: String = "") {
        self.code = code
        self.message = message
    }

    init(_ error: Error) {
        switch error as? LoRANASError ?? .io("\(error)") {
        case .invalidArgument(let m): self.init(code: 1, message: m)
        case .io(let m): self.init(code: 2, message: m)
        case .format(let m): self.init(code: 3, message: m)
        case .notFound(let m): self.init(code: 4, message: m)
        case .numeric(let m): self.init(code: 5, message: m)
        case .unsupported(let m): self.init(code: 6, message: m)
        }
    }

    var engineError: LoRANASError {
        switch code {
        case 1: return .invalidArgument(message)
        case 3: return .format(message)
        case 4: return .notFound(message)
        case 5: return .numeric(message)
        case 6: return .unsupported(message)
        default: return .io(message)
        }
    }
}
