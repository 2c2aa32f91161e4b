import Foundation

/// An optional LoRA parameter budget for the search.
public enum Budget: Sendable, Equatable {
    /// A count of LoRA parameters.
    case parameters(Int)
    /// A fraction of what uniform rank R (the largest choice) would cost.
    case fraction(Double)
}

/// Settings of a supernet search (all have defaults).
public struct SearchOptions: Sendable {
    public var targets = TargetSpec.all
    public var space = [4, 8, 16, 32, 64]
    public var slices = SliceMode.centered
    /// lora_alpha; the search scales by lora_alpha / R, the derived model by lora_alpha / r. Default 2·R.
    public var loraAlpha: Float? = nil
    public var budget: Budget? = nil
    /// λ of the penalty λ·(E[params] / budget − 1)² added to the α step's loss.
    public var budgetWeight: Float = 1
    public var epochs = 1
    public var batchSize = 4
    /// AdamW on A and B.
    public var lr: Float = 1e-4
    public var weightDecay: Float = 0.01
    /// Adam on the architecture weights α (β = (0.5, 0.999), L2 weight decay), as in DARTS.
    public var alphaLR: Float = 3e-3
    public var alphaWeightDecay: Float = 1e-3
    public var seed: UInt64 = 0
    public var groupByLength = false
    public var checkpointDir: String? = nil
    /// Save every this many steps (and at each epoch end) when checkpointDir is set.
    public var checkpointEvery = 50
    /// Stop after this many steps in all (for smoke runs); nil runs every epoch.
    public var maxSteps: Int? = nil

    public init() {}

    /// The largest rank choice R.
    var maxRank: Int { space.last ?? 1 }

    /// lora_alpha as given, else 2·R.
    var resolvedLoraAlpha: Float { loraAlpha ?? Float(2 * maxRank) }

    func validate() throws {
        try validateAdapterRun()
        try require(
            !space.isEmpty && space.allSatisfy { $0 > 0 && $0 <= RunLimits.maxRank }
                && space == space.sorted() && Set(space).count == space.count,
            "search space must be distinct ranks in 1...\(RunLimits.maxRank) in increasing order, got \(space)")
        try require(space.count <= 255, "search space has \(space.count) choices; at most 255")
        try require(alphaLR > 0 && alphaLR.isFinite, "alpha_lr must be a positive number, got \(alphaLR)")
        try require(alphaWeightDecay >= 0 && alphaWeightDecay.isFinite, "alpha_weight_decay must be non-negative")
        try require(budgetWeight >= 0 && budgetWeight.isFinite, "budget_weight must be non-negative")
        switch budget {
        case .fraction(let f)?: try require(f > 0 && f <= 1, "budget fraction must be in (0, 1], got \(f)")
        case .parameters(let n)?: try require(n > 0, "budget must be a positive parameter count, got \(n)")
        case nil: break
        }
    }

    var fingerprint: String {
        let types = targets.types.map(\.rawValue).sorted()
        return "search|\(types)|\(targets.side)|\(space)|\(slices)|\(resolvedLoraAlpha)|\(String(describing: budget))|"
            + "\(budgetWeight)|\(alphaLR)|\(alphaWeightDecay)|\(adapterRunFingerprint)"
    }
}

extension SearchOptions: AdapterRunSettings {}
