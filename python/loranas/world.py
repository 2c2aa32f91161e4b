"""The processes of a run: ``mpirun -np N python script.py`` runs the same script N times, and the engine makes
them one data-parallel job (README, "Several processes"). mpi4py is not needed: the engine starts Open MPI itself
when ``mpirun`` started the process.

Every process must make the same calls in the same order (each rank runs its part of every batch and the
ranks sum their gradients). Rank 0 writes checkpoints, adapters, merged models and result files; the package's
own writers skip the write on the other ranks, and ``progress=True`` draws its bar on rank 0 only. An uncaught
exception on any rank stops every rank (MPI_Abort), so one failing process never leaves the others waiting.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from dataclasses import dataclass

from . import _bindings as B
from .errors import check


@dataclass(frozen=True)
class World:
    """This process's ``rank`` among ``size`` processes (0 of 1 without mpirun) and how it runs."""

    rank: int
    size: int
    summary: str

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes files and prints."""
        return self.rank == 0


_world: World | None = None


def world() -> World:
    """The processes of this run (started on first use; importing ``loranas`` does it)."""
    global _world
    if _world is None:
        rank, size, length = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int64()
        buf = ctypes.create_string_buffer(256)
        check(B.loranas_world(ctypes.byref(rank), ctypes.byref(size), buf, len(buf), ctypes.byref(length)),
              "loranas_world")
        _world = World(rank.value, size.value, buf.value.decode("utf-8", "replace"))
        if _world.size > 1:
            _abort_on_uncaught_exceptions()
    return _world


def is_main_process() -> bool:
    """True on rank 0 (and in a run of one process)."""
    return world().is_main


def abort(message: str = "stopped") -> None:
    """Stops every process of the job now (MPI_Abort), printing ``message``; never returns."""
    B.loranas_world_abort(message.encode("utf-8", "replace"))


def _abort_on_uncaught_exceptions() -> None:
    """An exception that ends one rank's script would leave the others waiting in a collective: print it, then
    stop the whole job (as ``python -m mpi4py`` does)."""
    previous = sys.excepthook
    previous_thread = threading.excepthook

    def hook(kind, value, traceback):
        previous(kind, value, traceback)
        sys.stderr.flush()
        abort(f"uncaught {kind.__name__}: {value}")

    def thread_hook(args):
        previous_thread(args)
        sys.stderr.flush()
        abort(f"uncaught {args.exc_type.__name__} in thread {args.thread.name if args.thread else '?'}")

    sys.excepthook = hook
    threading.excepthook = thread_hook
