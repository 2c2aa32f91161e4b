import Foundation

/// Search and fine-tune options from JSON objects (the C ABI's and the CLI's form), with
/// unknown keys rejected so that a typo never passes silently.
public enum OptionsJSON {
    public static func parse(_ text: UnsafePointer<CChar>?) throws -> JSON {
        guard let text else { return .object([]) }
        let s = String(cString: text)
        if s.isEmpty { return .object([]) }
        let j: JSON
        do { j = try JSON.parse(s) } catch {
            throw LoRANASError.invalidArgument("options are not valid JSON: \(error)")
        }
        guard j.object != nil else { throw LoRANASError.invalidArgument("options must be a JSON object") }
        return j
    }

    static let searchKeys: Set<String> = [
        "targets", "side", "space", "slices", "lora_alpha", "budget", "budget_weight", "epochs",
        "batch_size", "lr", "weight_decay", "alpha_lr", "alpha_weight_decay", "seed",
        "checkpoint_dir", "checkpoint_every", "max_steps", "group_by_length",
    ]
    static let finetuneKeys: Set<String> = [
        "ranks", "targets", "side", "init", "lora_alpha", "dropout", "epochs", "batch_size",
        "eval_batch_size", "lr", "weight_decay", "seed", "checkpoint_dir", "checkpoint_every", "max_steps",
        "group_by_length",
    ]

    static let pretrainKeys: Set<String> = [
        "epochs", "batch_size", "eval_batch_size", "lr", "warmup_steps", "min_lr_ratio", "weight_decay",
        "max_grad_norm", "seed", "checkpoint_dir", "checkpoint_every", "max_steps", "group_by_length",
    ]

    public static func pretrain(_ j: JSON) throws -> PretrainOptions {
        try checkKeys(j, pretrainKeys)
        let r = ConfigReader(json: j, section: "options")
        var o = PretrainOptions()
        o.evalBatchSize = try r.int("eval_batch_size") ?? o.evalBatchSize
        o.warmupSteps = try nonNegative(r, "warmup_steps") ?? o.warmupSteps
        o.minLRRatio = try r.float("min_lr_ratio") ?? o.minLRRatio
        o.maxGradNorm = try r.float("max_grad_norm") ?? o.maxGradNorm
        try readRunSettings(&o, r)
        return o
    }

    public static func search(_ j: JSON) throws -> SearchOptions {
        try checkKeys(j, searchKeys)
        let r = ConfigReader(json: j, section: "options")
        var o = SearchOptions()
        o.targets = try targets(j)
        if let s = try r.ints("space") { o.space = s }
        if let s = try r.string("slices") {
            guard let m = SliceMode(rawValue: s) else {
                throw LoRANASError.invalidArgument("slices must be centered or prefix, got \(s)")
            }
            o.slices = m
        }
        o.loraAlpha = try r.float("lora_alpha")
        if let b = j["budget"], !b.isNull {
            if let n = b.int {
                o.budget = .parameters(n)
            } else if let f = b["fraction"]?.double {
                o.budget = .fraction(f)
            } else {
                throw LoRANASError.invalidArgument("budget must be a parameter count or {\"fraction\": f}")
            }
        }
        o.budgetWeight = try r.float("budget_weight") ?? o.budgetWeight
        o.alphaLR = try r.float("alpha_lr") ?? o.alphaLR
        o.alphaWeightDecay = try r.float("alpha_weight_decay") ?? o.alphaWeightDecay
        try readRunSettings(&o, r)
        return o
    }

    public static func finetune(_ j: JSON) throws -> FinetuneOptions {
        try checkKeys(j, finetuneKeys)
        let r = ConfigReader(json: j, section: "options")
        var o = FinetuneOptions()
        o.targets = try targets(j)
        if let ranks = j["ranks"], !ranks.isNull {
            if let n = ranks.int {
                o.ranks = .uniform(n)
            } else if let target = ranks["random"]?.int {
                let r = ConfigReader(json: ranks, section: "ranks")
                let space = try r.ints("space") ?? [4, 8, 16, 32, 64]
                o.ranks = .random(parameters: target, space: space, seed: try seed(r))
            } else if let kv = ranks.object {
                o.ranks = .perModule(
                    Dictionary(
                        uniqueKeysWithValues: try kv.map { k, v in
                            guard let i = v.int else {
                                throw LoRANASError.invalidArgument("rank of \(k) must be an integer")
                            }
                            return (k, i)
                        }))
            } else {
                throw LoRANASError.invalidArgument(
                    "ranks must be an integer, a {module: rank} object or {\"random\": count}")
            }
        }
        if let i = try r.string("init") {
            guard let v = AdapterInit(rawValue: i) else {
                throw LoRANASError.invalidArgument("init must be warm or fresh, got \(i)")
            }
            o.initialization = v
        }
        o.loraAlpha = try r.float("lora_alpha")
        o.dropout = try r.float("dropout") ?? o.dropout
        o.evalBatchSize = try r.int("eval_batch_size") ?? o.evalBatchSize
        try readRunSettings(&o, r)
        return o
    }

    /// Reads the settings every training run has, keeping the run's defaults for absent keys.
    static func readRunSettings<O: RunSettings>(_ o: inout O, _ r: ConfigReader) throws {
        o.epochs = try r.int("epochs") ?? o.epochs
        o.batchSize = try r.int("batch_size") ?? o.batchSize
        o.lr = try r.float("lr") ?? o.lr
        o.weightDecay = try r.float("weight_decay") ?? o.weightDecay
        o.seed = try seed(r)
        o.checkpointDir = try r.string("checkpoint_dir")
        o.checkpointEvery = try r.int("checkpoint_every") ?? o.checkpointEvery
        o.maxSteps = try nonNegative(r, "max_steps")
        if let v = r.value("group_by_length") {
            guard let flag = v.bool else { throw LoRANASError.invalidArgument("group_by_length must be true or false") }
            o.groupByLength = flag
        }
    }

    static func nonNegative(_ r: ConfigReader, _ key: String) throws -> Int? {
        let v = try r.int(key)
        if let v, v < 0 { throw LoRANASError.invalidArgument("\(key) must be non-negative, got \(v)") }
        return v
    }

    static func checkKeys(_ j: JSON, _ allowed: Set<String>) throws {
        for (k, _) in j.object ?? [] where !allowed.contains(k) {
            throw LoRANASError.invalidArgument(
                "unknown option \"\(k)\" (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    static func targets(_ j: JSON) throws -> TargetSpec {
        let r = ConfigReader(json: j, section: "options")
        let side = try r.string("side") ?? "both"
        if let list = j["targets"]?.array {
            let names = try list.map { e -> String in
                guard let s = e.string else {
                    throw LoRANASError.invalidArgument("targets must be strings, got \(e.serialized)")
                }
                return s
            }
            return try TargetSpec(parsing: names.joined(separator: ","), side: side)
        }
        return try TargetSpec(parsing: try r.string("targets") ?? "all", side: side)
    }

    /// A seed: an integer in 0...2^53 (what a JSON number holds exactly).
    static func seed(_ r: ConfigReader) throws -> UInt64 {
        let s = try r.int("seed") ?? 0
        guard s >= 0 else { throw LoRANASError.invalidArgument("seed must be non-negative, got \(s)") }
        return UInt64(s)
    }
}
