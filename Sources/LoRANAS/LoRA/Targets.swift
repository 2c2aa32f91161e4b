import Foundation

/// Which linear modules get LoRA (or a supernet): module types, optionally one side only.
public struct TargetSpec: Sendable, Equatable {
    public enum Side: String, Sendable { case both, vision, text }
    public var types: Set<ModuleType>
    public var side: Side

    public init(types: Set<ModuleType>, side: Side = .both) {
        self.types = types
        self.side = side
    }

    /// The paper's three target sets.
    public static let all = TargetSpec(types: Set(ModuleType.allCases))
    public static let mlp = TargetSpec(types: [.gate, .up, .down])
    public static let qk = TargetSpec(types: [.q, .k])

    /// Parses "q,k,v,o,gate,up,down,fc1,fc2" (PEFT's names are accepted too: q_proj, gate_proj, …)
    /// or the presets "all", "mlp", "qk"; `side` is "both", "vision" or "text".
    public init(parsing list: String, side: String = "both") throws {
        guard let s = Side(rawValue: side) else {
            throw LoRANASError.invalidArgument("target side must be both, vision or text, got \"\(side)\"")
        }
        self.side = s
        switch list {
        case "all": types = TargetSpec.all.types
        case "mlp": types = TargetSpec.mlp.types
        case "qk": types = TargetSpec.qk.types
        default:
            var t = Set<ModuleType>()
            for raw in list.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !raw.isEmpty {
                guard let m = ModuleType(rawValue: raw) ?? ModuleType(rawValue: raw + "_proj") else {
                    throw LoRANASError.invalidArgument(
                        "unknown target module type \"\(raw)\" (use q, k, v, o, gate, up, down, fc1, fc2)")
                }
                t.insert(m)
            }
            guard !t.isEmpty else { throw LoRANASError.invalidArgument("no target module types given") }
            types = t
        }
    }

    public func matches(_ module: String) -> Bool {
        guard let last = module.split(separator: ".").last, let type = ModuleType(rawValue: String(last)),
            types.contains(type)
        else { return false }
        let isVision = module.hasPrefix("vision_model.")
        switch side {
        case .both: return true
        case .vision: return isVision
        case .text: return !isVision
        }
    }
}

/// Module names in PEFT's form (transformers' in-memory names) and back.
public enum PEFTNames {
    /// "vision_model.X" → "model.vision_model.X"; "language_model.model.X" → "model.language_model.X".
    public static func peft(_ module: String) -> String {
        if module.hasPrefix("language_model.model.") {
            return "model.language_model." + module.dropFirst("language_model.model.".count)
        }
        if module == "language_model.lm_head" { return "lm_head" }
        return "model." + module
    }

    /// The inverse of `peft(_:)`; nil for a name outside the model.
    public static func checkpoint(_ peftModule: String) -> String? {
        var m = peftModule
        if m.hasPrefix("base_model.model.") { m = String(m.dropFirst("base_model.model.".count)) }
        if m == "lm_head" { return "language_model.lm_head" }
        guard m.hasPrefix("model.") else { return nil }
        m = String(m.dropFirst("model.".count))
        if m.hasPrefix("language_model.") { return "language_model.model." + m.dropFirst("language_model.".count) }
        return m
    }

    /// The escaped full module path: under PEFT's `(.*\.)?(KEY)$` matching it resolves to exactly this module.
    public static func exactPattern(_ peftModule: String) -> String {
        NSRegularExpression.escapedPattern(for: peftModule)
    }
}

extension MllamaModel {
    /// The targetable linear layers that `spec` selects, in model order.
    public func linears(matching spec: TargetSpec) -> [LinearLayer] {
        targetableLinears.filter { spec.matches($0.name) }
    }

    /// Removes every adapter.
    public func removeAdapters() { for l in allLinears { l.adapter = nil } }

    public var loraAdapters: [LoRAAdapter] { targetableLinears.compactMap { $0.adapter as? LoRAAdapter } }
    public var supernetAdapters: [SupernetAdapter] { targetableLinears.compactMap { $0.adapter as? SupernetAdapter } }

    /// Attaches a LoRA adapter of `ranks[module]` to every module in `ranks`, after checking the
    /// names, the ranks and that the adapters (with gradients and Adam moments) fit in memory.
    @discardableResult
    public func attachLoRA(
        ranks: [String: Int], loraAlpha: (String, Int) -> Float, dropout: Float = 0,
        seed: UInt64
    ) throws -> [LoRAAdapter] {
        let byName = Dictionary(targetableLinears.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var sizes: [Int?] = []
        for (name, r) in ranks {
            guard let l = byName[name] else { throw LoRANASError.notFound("no targetable linear module \(name)") }
            guard r > 0 && r <= RunLimits.maxRank else {
                throw LoRANASError.invalidArgument("rank of \(name) must be in 1...\(RunLimits.maxRank), got \(r)")
            }
            sizes.append(Size.product([r, l.inFeatures + l.outFeatures, 16]))
        }
        try Memory.require(Size.sum(sizes), for: "LoRA adapters on \(ranks.count) modules")
        let rng = SplitMix64(seed: seed)
        var out: [LoRAAdapter] = []
        for l in targetableLinears {
            guard let r = ranks[l.name] else { continue }
            var g = rng.derived(l.name)
            let a = LoRAAdapter(
                module: l.name, inFeatures: l.inFeatures, outFeatures: l.outFeatures, rank: r,
                loraAlpha: loraAlpha(l.name, r), dropout: dropout, rng: &g)
            l.adapter = a
            out.append(a)
        }
        return out
    }
}
