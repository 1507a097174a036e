"""The worker processes of a calibration's parallel stages (local starts, basin hops, refinements, profiles).

They are forked from one server process that imported the calibration (multiprocessing's "forkserver",
its preload): each spawned worker imported PEtab, Pyomo, numba and the rest afresh, 3.2 s of CPU each,
and spent it while this process ran the global search on the same two cores (Boehm_JProteomeRes2014:
the search 8.4–12.2 s alone, 13.9–16.2 s beside two spawning workers). The server is a process of its
own that only imports, so forking it is safe where forking this one, whose simulator threads run, is not.

This module imports nothing heavy, so that `start` can run before this process imports the calibration.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
from multiprocessing.context import BaseContext

PRELOAD = ["qspflow.calibrate.session"]


def context() -> BaseContext:
    """The start method of the workers: forked from the server that imported `PRELOAD`."""
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(PRELOAD)
    return forkserver


def start(threads: int) -> None:
    """Start the server now when there will be workers (threads > 1), so that it imports the calibration
    while this process imports it too, on the other core; a pool otherwise starts it on first use."""
    if threads > 1:
        context()
        multiprocessing.forkserver.ensure_running()
