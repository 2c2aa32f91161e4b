// libFuzzer target: Tokenizer(json:) (model, normalizer, pre-tokenizer, post-processor, decoder, added
// tokens), then encoding a few fixed strings (with and without special tokens, with a pair) and decoding.
import Foundation
import LoRANASFuzzDriver
@testable import LoRANAS

private let texts = [
    "Hello world", "the cat sat.", " ça va? naïve café 日本語 🙂", "<|image|>What is this?<|eot_id|>", "",
    "a\n\nb  c\t 12345 it's", "e\u{301} \u{FFFD}\u{0}",
]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let json = Data(UnsafeRawBufferPointer(start: data, count: size))
    guard let tokenizer = try? Tokenizer(json: json) else { return 0 }
    for text in texts {
        for special in [true, false] {
            guard let ids = try? tokenizer.encode(text, addSpecialTokens: special) else { continue }
            guard ids.allSatisfy({ $0 >= 0 }) else { fatalError("a negative id encoding \(text.debugDescription)") }
            _ = tokenizer.decode(ids)
            _ = tokenizer.decode(ids, skipSpecialTokens: true)
        }
        _ = try? tokenizer.encode(text, pair: "and a pair")
    }
    _ = tokenizer.decode([0, 1, -1, Int.max, Int.min, tokenizer.vocabSize])
    return 0
}

@main
enum FuzzTokenizerMain {
    static func main() {
        exit(loranas_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzTokenizer))
    }
}
