"""Worker processes of the calibration: forked from a server that imported the calibration once."""

import os
import sys
from concurrent.futures import ProcessPoolExecutor

from qspflow import workers


def _origin() -> tuple[int, bool]:
    """This process's parent, and whether the calibration was imported before this task came."""
    return os.getppid(), "qspflow.calibrate.session" in sys.modules


def test_workers_fork_from_a_server_that_imported_the_calibration():
    workers.start(2)
    with ProcessPoolExecutor(max_workers=2, mp_context=workers.context()) as pool:
        origins = {pool.submit(_origin).result() for _ in range(2)}
    # spawned workers would be this process's children and import only this test module
    assert len(origins) == 1
    parent, imported = origins.pop()
    assert parent != os.getpid()
    assert imported
