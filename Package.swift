// swift-tools-version:6.0
import Foundation
import PackageDescription

// Release builds target AVX2 + FMA: SwiftPM's baseline x86-64 target scalarizes SIMD code
// (measured 10-50x slower on the elementwise kernels). See ../shared/swift-facts.md.
let cpuFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"], .when(configuration: .release))]

// Open MPI (Debian's libopenmpi-dev) when it is installed, for data-parallel runs under mpirun; without it
// the engine builds for one process and says so. LORANAS_MPI=0 or 1 overrides the detection.
let pkgConfigDirs = ["/usr/lib/x86_64-linux-gnu/pkgconfig", "/usr/lib/aarch64-linux-gnu/pkgconfig",
                     "/usr/lib/pkgconfig", "/usr/local/lib/pkgconfig"]
let withMPI = Context.environment["LORANAS_MPI"].map { $0 == "1" }
    ?? pkgConfigDirs.contains { FileManager.default.fileExists(atPath: $0 + "/ompi-c.pc") }
let mpiTargets: [Target] = withMPI
    ? [.systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])])]
    : []
let mpiDependency: [Target.Dependency] = withMPI ? ["CMPI"] : []
let engineFlags = cpuFlags + (withMPI ? [.define("LORANAS_MPI")] : [])

let package = Package(
    name: "loranas",
    products: [
        .library(name: "loranas", type: .dynamic, targets: ["LoRANASCAPI"]),
        .executable(name: "loranas-cli", targets: ["loranas"]),
        .executable(name: "loranas-bench", targets: ["loranas-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG", providers: [.apt(["libjpeg62-turbo-dev"])]),
        // CRC-32 for packs (IO/PackFormat.swift).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "CRuntime"),
        // AVX512-BF16 GEMM kernels for the bf16 mode, dispatched at run time (see include/lr_bf16.h).
        .target(name: "CBF16"),
        // setjmp glue for libpng and libjpeg, whose errors are longjmps (see include/lr_image.h).
        .target(name: "CImageIO", dependencies: ["CPNG", "CJPEG"],
                linkerSettings: [.linkedLibrary("png16"), .linkedLibrary("jpeg")]),
        .target(name: "LoRANAS", dependencies: ["COpenBLAS", "CRuntime", "CImageIO", "CZlib", "CBF16"] + mpiDependency,
                swiftSettings: engineFlags),
        .target(name: "CLoRANAS"),
        .target(name: "LoRANASCAPI", dependencies: ["LoRANAS", "CLoRANAS"], swiftSettings: cpuFlags),
        .executableTarget(name: "loranas",
                          dependencies: ["LoRANAS", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: cpuFlags),
        .executableTarget(name: "loranas-bench", dependencies: ["LoRANAS"], path: "bench/swift", swiftSettings: cpuFlags),
        .testTarget(name: "LoRANASTests", dependencies: ["LoRANAS", "LoRANASCAPI"],
                    exclude: ["Fixtures"]),
    ] + mpiTargets,
    swiftLanguageModes: [.v5]
)

// libFuzzer targets (Tests/Fuzz), declared only when LORANAS_FUZZ=1: they link only with
// `-sanitize=fuzzer` (their main starts libFuzzer), so a plain `swift build` / `swift test` never sees them.
// Build and run them with tools/fuzz.sh (scratch path .build-fuzz); see Tests/Fuzz/README.md.
if Context.environment["LORANAS_FUZZ"] == "1" {
    package.targets.append(.target(name: "LoRANASFuzzDriver", path: "Tests/Fuzz/driver"))
    for name in ["safetensors", "json", "config", "adapter-config", "run-state", "image", "pack", "tokenizer"] {
        package.targets.append(.executableTarget(name: "fuzz-\(name)", dependencies: ["LoRANAS", "LoRANASFuzzDriver"],
                                                 path: "Tests/Fuzz/\(name)"))
    }
}
