"""Time Boolean-network inference with the optimum proven (`qspflow.infer`).

1. CellNOpt's ToyModel (`../shared/cases/cellnopt_toy`, MIDAS, t = 10, prepare's default
   binarization): target ≤ 30 s.
2. A seeded random 20-node PKN with 60 signed edges (3 stimuli, 3 inhibited nodes, 8 readouts,
   a few feedback edges) and 30 perturbation experiments, data simulated from a random
   sub-network of it with 3 values flipped: target ≤ 5 min.

Run: `.venv/bin/python benchmarks/infer.py`; the last line is `toy_s=… pkn20_s=…`.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np

from qspflow.boolean import Pkn, bnet_text, read_sif
from qspflow.data import prepare
from qspflow.infer import Experiment, SteadyStateData, infer_networks, infer_steady_state, logic_space, steady_state

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT.parent / "shared" / "cases" / "cellnopt_toy"
SEED = 20261127


def random_problem(seed: int = SEED, n_nodes: int = 20, n_edges: int = 60, n_experiments: int = 30,
                   n_flips: int = 3) -> tuple[Pkn, SteadyStateData, object]:
    """A random PKN, perturbation design and noisy data from a random sub-network of the PKN.

    Edges mostly run forward in node order (signalling cascades), a few run backward (feedback);
    about a quarter are inhibitory. Returns (pkn, data, true network).
    """
    rng = np.random.default_rng(seed)
    names = [f"n{i:02d}" for i in range(1, n_nodes + 1)]
    stimuli, inhibited, readouts = names[:3], names[5:8], names[-10:-2]
    edges: set[tuple[str, int, str]] = set()
    pairs = set()
    for target in range(3, n_nodes):  # every non-stimulus node gets a parent from upstream
        source = int(rng.integers(max(0, target - 4), target))
        pairs.add((source, target))
    while len(pairs) < n_edges:
        source, target = (int(v) for v in rng.integers(0, n_nodes, size=2))
        backward = rng.random() < 0.08
        if source == target or target < 3 or (source > target) != backward or (target, source) in pairs:
            continue
        pairs.add((source, target))
    for source, target in sorted(pairs):
        edges.add((names[source], -1 if rng.random() < 0.25 else 1, names[target]))
    pkn = Pkn(tuple(edges))

    designs = [(s, i) for s in itertools.product((0, 1), repeat=3) for i in (None, *inhibited)]
    chosen = sorted(rng.choice(len(designs), size=n_experiments, replace=False))
    experiments = []
    for number, d in enumerate(chosen, start=1):
        levels, inhibitor = designs[d]
        clamps = dict(zip(stimuli, levels))
        if inhibitor:
            clamps[inhibitor] = 0
        experiments.append(Experiment(f"e{number:02d}", clamps, dict.fromkeys(readouts, 0)))
    space = logic_space(pkn, SteadyStateData(tuple(experiments), tuple(stimuli), 1.0), max_inputs=3)
    truth_terms = {}
    for node, terms in space.terms.items():  # one or two random terms per node, none inside another
        picked = [terms[int(rng.integers(len(terms)))]]
        other = terms[int(rng.integers(len(terms)))]
        if rng.random() < 0.5 and not (set(other) <= set(picked[0]) or set(picked[0]) <= set(other)):
            picked.append(other)
        truth_terms[node] = picked
    truth = space.network(truth_terms)
    observed = []
    for experiment in experiments:
        state = steady_state(truth, experiment.clamps, space.horizon)
        values = {r: 0 if state is None else state[r] for r in readouts}
        observed.append(Experiment(experiment.name, experiment.clamps, values))
    for _ in range(n_flips):
        e, r = int(rng.integers(n_experiments)), readouts[int(rng.integers(len(readouts)))]
        flipped = dict(observed[e].observed)
        flipped[r] = 1 - flipped[r]
        observed[e] = Experiment(observed[e].name, observed[e].clamps, flipped)
    return pkn, SteadyStateData(tuple(observed), tuple(stimuli), 1.0), truth


def main() -> int:
    pkn = read_sif(TOY / "ToyPKNMMB.sif")
    prepared = prepare(TOY / "ToyDataMMB.csv", fmt="midas", known_nodes=pkn.nodes)
    start = time.perf_counter()
    toy = infer_networks(pkn, prepared.binarized, prepared.experiments, method="steady_state")
    toy_s = time.perf_counter() - start
    print(f"toy: {len(toy.networks)} optimal network(s) (complete: {toy.complete}), "
          f"{toy.index['mismatches'][0]} mismatches, {toy.index['size'][0]} literals, {toy_s:.2f} s (target 30 s)")

    pkn20, data, truth = random_problem()
    start = time.perf_counter()
    result = infer_steady_state(pkn20, data)
    pkn20_s = time.perf_counter() - start
    print(f"pkn20: {len(pkn20.nodes)} nodes, {len(pkn20.edges)} edges, {len(data.experiments)} experiments, "
          f"{len(data.readouts)} readouts; {len(result.networks)} optimal network(s) "
          f"(complete: {result.complete}), {result.index['mismatches'][0]} mismatches, "
          f"{result.index['size'][0]} literals, {pkn20_s:.2f} s (target 300 s)")
    print("true sub-network:\n" + bnet_text(truth) + "best:\n" + bnet_text(result.networks[0]), end="")
    print(f"toy_s={toy_s:.3f} pkn20_s={pkn20_s:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
