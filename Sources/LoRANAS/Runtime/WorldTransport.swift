import Foundation

#if LORANAS_MPI
    import CMPI

    /// The collectives of `World` on Open MPI's `MPI_COMM_WORLD`. MPI's default error handler on the world
    /// communicator is fatal, and Open MPI's runtime (mpirun and its daemons) kills every rank when one
    /// dies, so no call here can wait for a rank that has gone.
    struct WorldTransport {
        /// Starts MPI when `mpirun` started this process; otherwise this process is the world.
        static func start() -> Result<World, LoRANASError> {
            guard let launched = launchedSize() else { return .success(.single("not started by mpirun")) }
            var initialized: Int32 = 0
            MPI_Initialized(&initialized)
            if initialized == 0 {
                _ = lr_mpi_make_global()
                var provided: Int32 = 0
                guard MPI_Init_thread(nil, nil, lr_mpi_thread_serialized(), &provided) == MPI_SUCCESS else {
                    return .failure(.unsupported("MPI_Init_thread failed (started by mpirun with \(launched) ranks)"))
                }
                atexit { WorldTransport.finalize() }
                guard provided >= lr_mpi_thread_serialized() else {
                    return .failure(.unsupported("this Open MPI cannot serve calls from several threads in turn"))
                }
            }
            var rank: Int32 = 0
            var size: Int32 = 0
            MPI_Comm_rank(lr_mpi_comm_world(), &rank)
            MPI_Comm_size(lr_mpi_comm_world(), &size)
            let summary = "rank \(rank) of \(size) (\(libraryVersion()))"
            return .success(World(rank: Int(rank), size: Int(size), summary: summary, transport: WorldTransport()))
        }

        /// `mpirun` tells its processes the job's size in the environment.
        static func launchedSize() -> Int? {
            guard let raw = getenv("OMPI_COMM_WORLD_SIZE") else { return nil }
            return Int(String(cString: raw))
        }

        /// MPI_Finalize at exit, unless someone (mpi4py, say) finalized MPI already.
        fileprivate static func finalize() {
            var finalized: Int32 = 0
            MPI_Finalized(&finalized)
            if finalized == 0 { MPI_Finalize() }
        }

        private static func libraryVersion() -> String {
            var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_LIBRARY_VERSION_STRING) + 1)
            var length: Int32 = 0
            MPI_Get_library_version(&buffer, &length)
            let text = String(decoding: buffer.prefix(Int(max(0, length))).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return text.split(separator: ",").first.map(String.init) ?? "Open MPI"
        }

        /// MPI counts are Int32: longer buffers go in chunks.
        private static let chunk = Int(Int32.max) / 2

        private func allreduce(_ p: UnsafeMutableRawPointer, _ count: Int, _ type: MPI_Datatype, _ stride: Int,
                               _ op: MPI_Op) {
            var offset = 0
            while offset < count {
                let n = Swift.min(Self.chunk, count - offset)
                MPI_Allreduce(lr_mpi_in_place(), p + offset * stride, Int32(n), type, op, lr_mpi_comm_world())
                offset += n
            }
        }

        func sum(_ p: UnsafeMutablePointer<Float>, count: Int) {
            allreduce(p, count, lr_mpi_float(), 4, lr_mpi_sum())
        }

        func sum(_ p: UnsafeMutablePointer<Double>, count: Int) {
            allreduce(p, count, lr_mpi_double(), 8, lr_mpi_sum())
        }

        func sum(_ p: UnsafeMutablePointer<Int32>, count: Int) {
            allreduce(p, count, lr_mpi_int(), 4, lr_mpi_sum())
        }

        func min(_ p: UnsafeMutablePointer<Int32>, count: Int) {
            allreduce(p, count, lr_mpi_int(), 4, lr_mpi_min())
        }

        /// Rank `root`'s value on every rank.
        func broadcast(_ value: Int32, from root: Int) -> Int32 {
            var v = value
            MPI_Bcast(&v, 1, lr_mpi_int(), Int32(root), lr_mpi_comm_world())
            return v
        }

        /// Rank `root`'s text on every rank (its length, then its bytes).
        func broadcast(_ text: String, from root: Int) -> String {
            let count = broadcast(Int32(clamping: text.utf8.count), from: root)
            var bytes = Array(text.utf8.prefix(Int(count)))
            if bytes.count < Int(count) { bytes = [UInt8](repeating: 0, count: Int(count)) }
            MPI_Bcast(&bytes, count, lr_mpi_byte(), Int32(root), lr_mpi_comm_world())
            return String(decoding: bytes, as: UTF8.self)
        }

        func abort() {
            MPI_Abort(lr_mpi_comm_world(), 1)
        }
    }
#else
    /// This build has no Open MPI (libopenmpi-dev was not installed when it was built): the world is
    /// always this process, and the transport cannot exist.
    enum WorldTransport {
        static func start() -> Result<World, LoRANASError> {
            if let raw = getenv("OMPI_COMM_WORLD_SIZE"), let n = Int(String(cString: raw)), n > 1 {
                return .failure(.unsupported(
                    "mpirun started \(n) processes, but this build of loranas has no Open MPI: each would run the "
                        + "whole job alone. Install libopenmpi-dev and rebuild (tools/setup.sh)"))
            }
            return .success(.single("this build has no Open MPI"))
        }

        func sum(_ p: UnsafeMutablePointer<Float>, count: Int) {}
        func sum(_ p: UnsafeMutablePointer<Double>, count: Int) {}
        func sum(_ p: UnsafeMutablePointer<Int32>, count: Int) {}
        func min(_ p: UnsafeMutablePointer<Int32>, count: Int) {}
        func broadcast(_ value: Int32, from root: Int) -> Int32 { switch self {} }
        func broadcast(_ text: String, from root: Int) -> String { switch self {} }
        func abort() {}
    }
#endif
