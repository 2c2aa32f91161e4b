import Foundation

/// What a search found: a rank per module, the α history, counts and timings. Round-trips through JSON.
public struct SearchResult: Sendable, Equatable {
    /// (module, rank) in model order.
    public var ranks: [(String, Int)]
    public var space: [Int]
    public var loraAlpha: Float
    /// softmax(α) per module at the end, in `space` order.
    public var finalWeights: [String: [Float]]
    /// α per module after every step: history[module][step][choice].
    public var alphaHistory: [String: [[Float]]]
    public var loraParameters: Int
    /// Parameters uniform rank R would cost on the same modules.
    public var uniformMaxParameters: Int
    public var budgetParameters: Int?
    /// With a budget: whether the ranks land within ±5% of it (false: no assignment from the
    /// space can, and the closest total was taken).
    public var budgetMet: Bool?
    public var modelParameters: Int
    public var steps: Int
    /// True when the run ended early because the progress callback asked it to stop.
    public var stopped: Bool
    public var epochTimes: [Double]
    public var trainLosses: [Float]
    public var validationLosses: [Float]

    public static func == (a: SearchResult, b: SearchResult) -> Bool { a.json == b.json }

    public var rankMap: [String: Int] { Dictionary(ranks, uniquingKeysWith: { _, last in last }) }

    public var json: JSON {
        func n(_ x: Double) -> JSON { .number(x) }
        func floats(_ xs: [Float]) -> JSON { .array(xs.map { n(Double($0)) }) }
        return .object([
            ("ranks", .object(ranks.map { ($0.0, n(Double($0.1))) })),
            ("space", .array(space.map { n(Double($0)) })),
            ("lora_alpha", n(Double(loraAlpha))),
            ("final_weights", .object(ranks.map { m, _ in (m, floats(finalWeights[m] ?? [])) })),
            ("alpha_history", .object(ranks.map { m, _ in (m, .array((alphaHistory[m] ?? []).map(floats))) })),
            ("lora_parameters", n(Double(loraParameters))),
            ("uniform_max_parameters", n(Double(uniformMaxParameters))),
            ("budget_parameters", budgetParameters.map { n(Double($0)) } ?? .null),
            ("budget_met", budgetMet.map { .bool($0) } ?? .null),
            ("model_parameters", n(Double(modelParameters))),
            ("lora_share", n(Double(loraParameters) / Double(max(1, modelParameters)))),
            ("steps", n(Double(steps))),
            ("stopped", .bool(stopped)),
            ("epoch_times", .array(epochTimes.map(n))),
            ("train_losses", floats(trainLosses)),
            ("validation_losses", floats(validationLosses)),
        ])
    }

    public init(json: JSON) throws {
        let r = SearchResultReader(json: json)
        ranks = try r.ranks()
        space = try r.ints("space")
        loraAlpha = Float(try r.number("lora_alpha"))
        finalWeights = try r.perModule("final_weights") { try r.floats($0) }
        alphaHistory = try r.perModule("alpha_history") { row in
            guard let steps = row.array else { throw r.error("alpha_history: expected a list of steps") }
            return try steps.map { try r.floats($0) }
        }
        loraParameters = try r.count("lora_parameters")
        uniformMaxParameters = try r.count("uniform_max_parameters")
        budgetParameters = json["budget_parameters"]?.int
        budgetMet = json["budget_met"]?.bool
        modelParameters = try r.count("model_parameters")
        steps = try r.count("steps")
        stopped = json["stopped"]?.bool ?? false
        epochTimes = (json["epoch_times"]?.array ?? []).compactMap(\.double)
        trainLosses = try r.floats(json["train_losses"])
        validationLosses = try r.floats(json["validation_losses"])
    }

    init(
        ranks: [(String, Int)], space: [Int], loraAlpha: Float, finalWeights: [String: [Float]],
        alphaHistory: [String: [[Float]]], loraParameters: Int, uniformMaxParameters: Int, budgetParameters: Int?,
        budgetMet: Bool?, modelParameters: Int, steps: Int, stopped: Bool, epochTimes: [Double],
        trainLosses: [Float], validationLosses: [Float]
    ) {
        self.ranks = ranks
        self.space = space
        self.loraAlpha = loraAlpha
        self.finalWeights = finalWeights
        self.alphaHistory = alphaHistory
        self.loraParameters = loraParameters
        self.uniformMaxParameters = uniformMaxParameters
        self.budgetParameters = budgetParameters
        self.budgetMet = budgetMet
        self.modelParameters = modelParameters
        self.steps = steps
        self.stopped = stopped
        self.epochTimes = epochTimes
        self.trainLosses = trainLosses
        self.validationLosses = validationLosses
    }
}

/// Typed reads of a search result's JSON, each failing with a message naming the field.
private struct SearchResultReader {
    let json: JSON

    func error(_ message: String) -> LoRANASError { .format("search result: \(message)") }

    func ranks() throws -> [(String, Int)] {
        guard let r = json["ranks"]?.object else { throw error("no ranks") }
        return try r.map { k, v in
            guard let i = v.int, i > 0, i <= RunLimits.maxRank else { throw error("rank of \(k) is not a rank") }
            return (k, i)
        }
    }

    func number(_ key: String) throws -> Double {
        guard let d = json[key]?.double, d.isFinite else { throw error("\(key) is not a number") }
        return d
    }

    func count(_ key: String) throws -> Int {
        guard let i = json[key]?.int, i >= 0 else { throw error("\(key) is not a count") }
        return i
    }

    func ints(_ key: String) throws -> [Int] {
        guard let a = json[key]?.array else { throw error("\(key) is not a list") }
        return try a.map { v in
            guard let i = v.int else { throw error("\(key) holds a non-integer") }
            return i
        }
    }

    func floats(_ j: JSON?) throws -> [Float] {
        guard let a = j?.array else { throw error("expected a list of numbers") }
        return try a.map { v in
            guard let d = v.double else { throw error("not a number") }
            return Float(d)
        }
    }

    func perModule<T>(_ key: String, _ read: (JSON) throws -> T) throws -> [String: T] {
        var out: [String: T] = [:]
        for (k, v) in json[key]?.object ?? [] { out[k] = try read(v) }
        return out
    }
}
