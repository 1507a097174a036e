"""Speed of the Boolean network analyses (qspflow.boolean).

- steady states of a 30-node random network (seed 0, 2–3 regulators per node) by clingo;
  the budget is 5 s (2^30 states are far beyond exhaustive search);
- the exhaustive synchronous and asynchronous attractor search on the Fauré 2006 cell cycle
  (10 nodes), from ../shared/cases, and on random networks at the sizes the search is meant
  for (20 nodes synchronous, 16 asynchronous).

Usage: python benchmarks/steady_states.py [CASES_DIR]
The last line is `steady_states_30_nodes_s=… cellcycle_attractors_s=…`; exit status 1 when the
steady-state search is over budget.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from qspflow.boolean import attractors, random_network, read_bnet, steady_states

BUDGET_S = 5.0
ROOT = Path(__file__).resolve().parents[1]


def best_of(repeats: int, function, *args):
    """The fastest of `repeats` runs (seconds) and the result of the last one."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> int:
    cases = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "cases"
    net = random_network(30, seed=0)
    steady_s, found = best_of(3, steady_states, net)
    print(f"30-node random network (seed 0): {len(found)} steady state(s) in {steady_s:.4f} s")

    cellcycle = read_bnet(cases / "boolnet_cellcycle" / "cellcycle.bnet")
    sync_s, sync = best_of(5, attractors, cellcycle, "synchronous")
    async_s, asynchronous = best_of(5, attractors, cellcycle, "asynchronous")
    print(f"cell cycle, synchronous: {[(a.type, a.size, a.basin) for a in sync]} in {sync_s:.4f} s")
    print(f"cell cycle, asynchronous: {[(a.type, a.size) for a in asynchronous]} in {async_s:.4f} s")
    for n, update in ((20, "synchronous"), (16, "asynchronous")):
        seconds, found = best_of(1, attractors, random_network(n, seed=0), update)
        print(f"{n}-node random network (seed 0), {update}: {len(found)} attractor(s) in {seconds:.3f} s")

    print(f"steady_states_30_nodes_s={steady_s:.4f} cellcycle_attractors_s={sync_s:.4f}")
    return 0 if steady_s <= BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
