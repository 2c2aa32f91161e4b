// libFuzzer target: the strict JSON parser (JSON.parse), both duplicate-key modes, and the
// serializer's round trip on what it accepts.
import Foundation
import LoRANASFuzzDriver
@testable import LoRANAS

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    _ = try? JSON.parse(bytes, rejectDuplicateKeys: true)
    guard let value = try? JSON.parse(bytes, rejectDuplicateKeys: false) else { return 0 }
    // Whatever parses must serialize to text that parses back to an equal value (NaN aside).
    let text = value.serialized
    guard let again = try? JSON.parse(Data(text.utf8), rejectDuplicateKeys: false) else {
        fatalError("serialized JSON does not parse again: \(text)")
    }
    if !text.contains("NaN") && again != value {
        fatalError("JSON round trip changed the value: \(text)")
    }
    return 0
}

@main
enum FuzzJSONMain {
    static func main() {
        exit(loranas_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzJSON))
    }
}
