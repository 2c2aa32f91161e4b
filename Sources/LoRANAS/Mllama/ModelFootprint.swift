import Foundation

/// The memory a config's parameters take, added up from `MllamaModel.specs` with overflow checks,
/// and a rough floor for the activations of the smallest batch (one sample, one image, one token).
struct ModelFootprint {
    /// Floats in one `ParameterSet` of the config, alignment padding included.
    let parameterFloats: Int
    /// The largest parameter, named in errors: it usually points at the field that is too big.
    let largest: (name: String, shape: [Int])
    /// At least this many bytes of activations for a forward pass.
    let activationFloorBytes: Double

    var parameterBytes: Double { Double(parameterFloats) * 4 }

    /// Throws a format error when the parameter count does not fit in `Int` bytes; the config's
    /// per-field limits (`MllamaConfig.Limit`) keep each shape product itself in range.
    init(_ config: MllamaConfig) throws {
        var total = 0, largest = ("", [Int]()), largestCount = 0
        for (name, shape) in MllamaModel.specs(config) {
            let count = Size.product(shape)
            let padded = count.flatMap { Size.sum([$0, 15]) }.map { $0 / 16 * 16 }
            if (count ?? Int.max) > largestCount { (largest, largestCount) = ((name, shape), count ?? Int.max) }
            guard let padded, let sum = Size.sum([total, padded]), sum <= Int.max / 4 else {
                throw LoRANASError.format("config.json asks for more than \(Memory.format(Double(Int.max))) "
                                          + "of parameters (\(name) \(shape))")
            }
            total = sum
        }
        parameterFloats = total
        self.largest = largest
        activationFloorBytes = Self.activationFloor(config) * 4
    }

    /// Throws when the parameters and the activation floor do not fit in `available` bytes.
    func requireFits(available: Double) throws {
        guard parameterBytes + activationFloorBytes > available else { return }
        throw LoRANASError.invalidArgument(
            "config.json asks for \(Memory.format(parameterBytes)) of parameters (\(parameterFloats.formatted()) "
                + "floats; the largest is \(largest.name) \(largest.shape)) and at least "
                + "\(Memory.format(activationFloorBytes)) of activations; \(Memory.format(available)) are available")
    }

    /// Floats of the activations one sample with one image and one text token needs: the vision
    /// tower's widest rows and the exported features, the cross-attention states, and one text row.
    private static func activationFloor(_ c: MllamaConfig) -> Double {
        let v = c.vision, t = c.text
        let visionTokens = Double(v.maxNumTiles) * Double(v.paddedTokensPerTile)
        let vision = visionTokens * Double(v.visionOutputDim + v.intermediateSize + 6 * v.hiddenSize)
        let crossStates = Double(v.maxNumTiles) * Double(v.tokensPerTile) * Double(t.hiddenSize)
        let text = Double(t.vocabSize + 3 * t.intermediateSize + 6 * t.hiddenSize)
        return vision + crossStates + text
    }
}
