import Foundation
import XCTest
@testable import LoRANAS

/// The parts of data-parallel runs that one process can check: how batches are sharded, how gradients are
/// bucketed, how errors travel between ranks, and that a process not started by mpirun is a world of one.
/// Runs on two ranks are tested under mpirun by python/tests/test_mpi.py.
final class WorldTests: XCTestCase {
    func testAProcessNotStartedByMpirunIsAWorldOfOne() throws {
        let world = try World.current()
        XCTAssertEqual(world.rank, 0)
        XCTAssertEqual(world.size, 1)
        XCTAssertTrue(world.summary.hasPrefix("one process ("), world.summary)
        XCTAssertEqual(world.shard([3, 1, 4]), [3, 1, 4])
    }

    func testShardsPartitionEveryBatchInOrder() {
        for size in 1...7 {
            for count in 0...20 {
                let shards = (0..<size).map {
                    World(rank: $0, size: size, summary: "", transport: nil).shardRange(count)
                }
                XCTAssertEqual(shards.flatMap { Array($0) }, Array(0..<count), "count \(count) on \(size) ranks")
                let lengths = shards.map(\.count)
                XCTAssertLessThanOrEqual((lengths.max() ?? 0) - (lengths.min() ?? 0), 1)
                XCTAssertEqual(lengths, lengths.sorted(by: >), "the first ranks take the longer shards")
            }
        }
    }

    func testAgreeInOneProcessReturnsOrRethrowsUnchanged() throws {
        let world = World.single("test")
        XCTAssertEqual(try world.agree { 42 }, 42)
        XCTAssertThrowsError(try world.agree { throw LoRANASError.numeric("loss is nan") }) {
            XCTAssertEqual($0 as? LoRANASError, .numeric("loss is nan"))
        }
        XCTAssertFalse(world.failedTogether)
    }

    func testErrorsKeepTheirKindAndMessageBetweenRanks() {
        let errors: [LoRANASError] = [
            .invalidArgument("a"), .io("b"), .format("c"), .notFound("d"), .numeric("e"), .unsupported("f"),
        ]
        for e in errors {
            XCTAssertEqual(WireError(e).engineError, e)
        }
        XCTAssertEqual(WireError(CocoaError(.fileNoSuchFile)).code, 2, "a foreign error travels as an I/O error")
    }

    /// Every float is summed exactly once (a reduce that doubles its buffer doubles every tensor), small
    /// tensors share buckets of at most `bucketFloats`, and large ones are reduced in place.
    func testGradientBucketsReduceEveryTensorOnce() {
        let sizes = [3, GradientBuckets.bucketFloats / 2, 7, GradientBuckets.bucketFloats / 3, 1, 5_000_000, 2]
        let tensors = sizes.map { n in Tensor((0..<n).map { Float($0 % 1000) }, shape: [n]) }
        var calls: [Int] = []
        GradientBuckets(tensors).reduce { p, n in
            calls.append(n)
            for i in 0..<n { p[i] *= 2 }
        }
        for (t, n) in zip(tensors, sizes) {
            XCTAssertEqual(t.array, (0..<n).map { Float($0 % 1000) * 2 })
        }
        XCTAssertEqual(calls.reduce(0, +), sizes.reduce(0, +))
        XCTAssertTrue(calls.allSatisfy { $0 <= GradientBuckets.bucketFloats || $0 == 5_000_000 })
        XCTAssertLessThan(calls.count, sizes.count, "small tensors were packed together")
    }
}
