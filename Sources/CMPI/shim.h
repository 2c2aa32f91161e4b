// Open MPI's C API for Swift. Its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE) are
// macros over casts and addresses, which Swift does not import: these inline functions name them.
#pragma once
#include <dlfcn.h>
#include <mpi.h>

static inline MPI_Comm lr_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype lr_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype lr_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype lr_mpi_int(void) { return MPI_INT; }
static inline MPI_Datatype lr_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op lr_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op lr_mpi_min(void) { return MPI_MIN; }
static inline void *lr_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int lr_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }

// Open MPI loads its transports as plugins that resolve symbols of libmpi. When libloranas.so is
// loaded by Python's ctypes (RTLD_LOCAL), libmpi's symbols are not global and the plugins fail to
// load; reopening the already loaded libmpi with RTLD_GLOBAL fixes that (mpi4py does the same).
static inline int lr_mpi_make_global(void) {
    return dlopen("libmpi.so.40", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD) != NULL;
}
