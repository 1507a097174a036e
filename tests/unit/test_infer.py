"""Boolean-network inference: exact optima, published cases, best-fit recovery and clean failures."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qspflow import steps
from qspflow.boolean import (
    BooleanNetwork,
    Pkn,
    attractors,
    bnet_text,
    format_expression,
    read_bnet,
    read_sbml_qual,
    read_sif,
    sbml_qual_text,
    sign_of,
    truth_table,
)
from qspflow.data import prepare
from qspflow.errors import ConfigError, DataError, NetworkError
from qspflow.infer import (
    Experiment,
    SteadyStateData,
    best_fit,
    dnf_rule,
    ensemble_texts,
    infer_networks,
    infer_steady_state,
    logic_space,
    network_mismatches,
    steady_state,
    steady_state_data,
    time_series_data,
)
from qspflow.io import table_text

# --- helpers -----------------------------------------------------------------------------------


def _toy(cases: Path):
    pkn = read_sif(cases / "cellnopt_toy" / "ToyPKNMMB.sif")
    prepared = prepare(cases / "cellnopt_toy" / "ToyDataMMB.csv", fmt="midas", known_nodes=pkn.nodes)
    return pkn, prepared


def _or_of_activators_and_not_inhibitors(edges, nodes) -> BooleanNetwork:
    """CellNOpt's reading of a SIF model: activations OR-ed, each AND-NOT-ed with every inhibition."""
    rules = {}
    for node in nodes:
        positive = [(s, 1) for s, sign, t in edges if t == node and sign > 0]
        negative = tuple((s, -1) for s, sign, t in edges if t == node and sign < 0)
        if not positive and not negative:
            rules[node] = node
        else:
            rules[node] = dnf_rule([(p, *negative) for p in positive] if positive else [negative])
    return BooleanNetwork.from_rules(rules)


def _experiment_rows(rows) -> SteadyStateData:
    return SteadyStateData(tuple(Experiment(*r) for r in rows), ("S",), 1.0)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- published case and example study ----------------------------------------------------------


def test_toy_model_inference_fits_at_least_as_well_as_the_generating_network(cases: Path) -> None:
    pkn, prepared = _toy(cases)
    result = infer_networks(pkn, prepared.binarized, prepared.experiments)
    data = steady_state_data(prepared.binarized, prepared.experiments)
    space = logic_space(pkn, data)
    model_edges = read_sif(cases / "cellnopt_toy" / "ToyModelMMB2.sif").edges
    inside = [e for e in model_edges if e in set(pkn.edges)]
    generating = _or_of_activators_and_not_inhibitors(inside, pkn.nodes)
    generating_missed = network_mismatches(generating, data, horizon=space.horizon)
    print(f"\ngenerating network (ToyModelMMB2 ∩ PKN, {len(inside)} of {len(model_edges)} edges): "
          f"{len(generating_missed)} mismatches {generating_missed}\n{bnet_text(generating)}")
    print(result.index.to_string())
    for name, net in zip(result.index["network"], result.networks):
        print(f"{name}:\n{bnet_text(net)}")
    assert data.time == 10 and len(data.experiments) == 9 and len(data.readouts) == 7
    assert result.method == "steady_state" and result.complete
    assert (result.index["mismatches"] <= len(generating_missed)).all()
    for net, mismatches, missed in zip(result.networks, result.index["mismatches"], result.index["missed"]):
        recomputed = network_mismatches(net, data, horizon=space.horizon)  # Python semantics agree with the ASP
        assert len(recomputed) == mismatches and ";".join(f"{e}:{r}" for e, r in recomputed) == missed
        # the inhibitors act on the nodes CellNOpt's MIDAS names them for
        assert {"Raf", "PI3K"} <= set(net.nodes)


def test_example_study_top_network_recovers_the_true_edges(example: Path) -> None:
    pkn = read_sif(example / "pkn.sif")
    prepared = prepare(example / "measurements.tsv", experiments_path=example / "experiments.tsv",
                       known_nodes=pkn.nodes)
    result = infer_networks(pkn, prepared.binarized, prepared.experiments, time=8, drug_target="MEK",
                            inhibiting_dose=300)
    truth = {(s, t) for s, _, t in read_bnet(example / "truth" / "network.bnet").edges()}
    found = {(s, t) for s, _, t in result.networks[0].edges()}
    precision, recall = len(found & truth) / len(found), len(found & truth) / len(truth)
    print(f"\nexample: precision {precision:.2f}, recall {recall:.2f}\n{result.index.to_string()}\n"
          f"{bnet_text(result.networks[0])}")
    assert precision >= 0.9 and recall >= 0.8


# --- exactness ---------------------------------------------------------------------------------


def _random_instance(seed: int) -> tuple[Pkn, SteadyStateData]:
    """A 6-node PKN with a negative feedback loop (so some models oscillate), 6 experiments and
    random readouts (so fits are imperfect)."""
    rng = np.random.default_rng(seed)
    edges = {("S", 1, "A"), ("T", 1, "B"), ("A", 1, "C"), ("B", -1, "C"), ("C", 1, "D"), ("D", -1, "A")}
    source, target = [("S", "B"), ("A", "D"), ("T", "C"), ("B", "D")][seed % 4]
    edges.add((source, 1 if rng.random() < 0.6 else -1, target))
    experiments = []
    for i, (s, t) in enumerate(itertools.product((0, 1), repeat=2)):
        for inhibit in (False, True):
            clamps = {"S": s, "T": t} | ({"A": 0} if inhibit else {})
            observed = {r: int(rng.integers(0, 2)) for r in ("C", "D", "B")}
            experiments.append(Experiment(f"e{i}{int(inhibit)}", clamps, observed))
    return Pkn(tuple(edges)), SteadyStateData(tuple(experiments[:6]), ("S", "T"), 1.0)


def _brute_force(pkn: Pkn, data: SteadyStateData) -> list[tuple[int, int, str]]:
    """(mismatches, size, bnet) of every candidate model whose terms do not contain one another."""
    space = logic_space(pkn, data)
    terms = [(node, term) for node in space.terms for term in space.terms[node]]
    assert len(terms) <= 12
    found = []
    for mask in range(1 << len(terms)):
        chosen: dict[str, list] = {}
        for i, (node, term) in enumerate(terms):
            if mask >> i & 1:
                chosen.setdefault(node, []).append(term)
        if any(set(a) < set(b) for ts in chosen.values() for a in ts for b in ts):
            continue
        net = space.network(chosen)
        found.append((len(network_mismatches(net, data, horizon=space.horizon)),
                      sum(len(t) for ts in chosen.values() for t in ts), bnet_text(net)))
    return found


@pytest.mark.parametrize(("seed", "penalty"), [(seed, (1e-4, 0.01, 0.3)[seed % 3]) for seed in range(12)])
def test_asp_optimum_and_tolerance_set_equal_brute_force_enumeration(seed: int, penalty: float) -> None:
    pkn, data = _random_instance(seed)
    every = _brute_force(pkn, data)
    best = min(m + penalty * s for m, s, _ in every)
    optimal = {text for m, s, text in every if m + penalty * s == pytest.approx(best)}
    result = infer_steady_state(pkn, data, size_penalty=penalty)
    assert result.index["score"][0] == pytest.approx(best)
    assert {bnet_text(n) for n in result.networks} == optimal

    top_m, top_s = min(((m, s) for m, s, _ in every if m + penalty * s == pytest.approx(best)), key=lambda ms: ms[1])
    within = {text for m, s, text in every if m <= top_m + 1 and s <= top_s} | optimal
    tolerant = infer_steady_state(pkn, data, size_penalty=penalty, tolerance=1)
    assert {bnet_text(n) for n in tolerant.networks} == within
    assert (np.diff(tolerant.index["score"]) >= 0).all() and len(tolerant.networks) == len(within)


def test_a_model_without_a_fixpoint_misses_every_readout_of_that_experiment() -> None:
    net = BooleanNetwork.from_rules({"S": "S", "A": "S & !B", "B": "A", "C": "S"})
    data = _experiment_rows([("on", {"S": 1}, {"A": 1, "C": 1}), ("off", {"S": 0}, {"A": 0, "C": 0})])
    assert steady_state(net, {"S": 1}, 10) is None
    assert network_mismatches(net, data) == [("on", "A"), ("on", "C")]


def test_a_negative_self_loop_is_a_candidate_that_oscillates_hand_checked() -> None:
    # A's candidates: S, !A and S & !A. Observed A = 1 with and without S. A = S misses only
    # "off" (1 mismatch); A = !A oscillates in both (2); A = S | !A settles at 1 under S but
    # oscillates without it (1 mismatch, 2 literals); no term: A = 0 (2 mismatches).
    pkn = Pkn((("S", 1, "A"), ("A", -1, "A")))
    data = _experiment_rows([("on", {"S": 1}, {"A": 1}), ("off", {"S": 0}, {"A": 1})])
    result = infer_steady_state(pkn, data)
    assert [bnet_text(n).splitlines()[1] for n in result.networks] == ["A, S"]
    assert list(result.index["missed"]) == ["off:A"]
    tolerant = infer_steady_state(pkn, data, tolerance=1)
    assert sorted(bnet_text(n).splitlines()[1] for n in tolerant.networks) == ["A, !A", "A, 0", "A, S"]
    assert sorted(tolerant.index["mismatches"]) == [1, 2, 2]


@pytest.mark.parametrize("seed", range(4))
def test_asp_equals_brute_force_on_a_pkn_with_self_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pkn = Pkn((("S", 1, "A"), ("A", -1, "A"), ("A", 1, "B"), ("B", 1, "B"), ("T", 1, "B")))
    experiments = tuple(Experiment(f"e{s}{t}", {"S": s, "T": t}, {r: int(rng.integers(0, 2)) for r in "AB"})
                        for s, t in itertools.product((0, 1), repeat=2))
    data = SteadyStateData(experiments, ("S", "T"), 1.0)
    every = _brute_force(pkn, data)
    best = min(m + 1e-4 * s for m, s, _ in every)
    result = infer_steady_state(pkn, data)
    assert result.index["score"][0] == pytest.approx(best)
    assert {bnet_text(n) for n in result.networks} == {t for m, s, t in every if m + 1e-4 * s == pytest.approx(best)}


# --- time series -------------------------------------------------------------------------------


def _random_function_network(rng, n: int, monotone: bool) -> BooleanNetwork:
    """Each node: 1–3 regulators among the other nodes and a random function depending on all of them."""
    names = [f"g{i}" for i in range(n)]
    rules = {}
    for node in names:
        regulators = sorted(rng.choice([m for m in names if m != node], size=int(rng.integers(1, 4)), replace=False))
        k = len(regulators)
        signs = {r: int(rng.choice([1, -1])) for r in regulators}
        while True:
            if monotone:  # an OR of terms over the signed regulators, none inside another
                picks = [rng.choice(regulators, size=int(rng.integers(1, k + 1)), replace=False) for _ in range(2)]
                terms = {tuple(sorted((str(r), signs[r]) for r in pick)) for pick in picks}
                rule = dnf_rule(t for t in terms if not any(set(o) < set(t) for o in terms))
            else:  # any truth table, as its minterms
                table = rng.integers(0, 2, size=1 << k)
                rule = dnf_rule(tuple((str(r), 1 if c >> (k - 1 - i) & 1 else -1) for i, r in enumerate(regulators))
                                for c in np.flatnonzero(table))
            if _depends_on(rule, [str(r) for r in regulators]):
                break
        rules[node] = rule
    return BooleanNetwork(tuple(names), rules)


def _depends_on(rule, regulators) -> bool:
    table = truth_table(rule, regulators)
    k = len(regulators)
    index = np.arange(1 << k)
    return all((table[index | (1 << b)] != table[index & ~(1 << b)]).any() for b in range(k))


def _trajectories(net: BooleanNetwork, rng, starts: int, steps: int) -> pd.DataFrame:
    rows = []
    for e in range(starts):
        state = tuple(int(v) for v in rng.integers(0, 2, size=len(net.nodes)))
        for t in range(steps):
            rows += [(f"traj{e:02d}", float(t), node, value) for node, value in zip(net.nodes, state)]
            state = net.step(state)
    return pd.DataFrame(rows, columns=["experiment", "time", "observable", "state"])


@pytest.mark.parametrize(("monotone", "seed"), [(False, 3), (False, 4), (True, 5), (True, 6)])
def test_best_fit_finds_the_true_functions_among_the_zero_inconsistency_optima(monotone: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = _random_function_network(rng, 7, monotone)
    edges = {(s, sign_of(truth.rules[t], s) or 1, t) for t in truth.nodes for s in truth.regulators(t)}
    while len(edges) < len(truth.edges()) + 5:  # decoys
        s, t = rng.choice(truth.nodes, size=2, replace=False)
        if not any(e[0] == s and e[2] == t for e in edges):
            edges.add((str(s), int(rng.choice([1, -1])), str(t)))
    pkn = Pkn(tuple(edges))
    data = time_series_data(_trajectories(truth, rng, starts=25, steps=6), pkn.nodes)
    fits = best_fit(pkn, data, max_inputs=3, respect_signs=monotone)
    for node in truth.nodes:
        regulators = tuple(s for s, _ in pkn.parents(node) if s in truth.regulators(node))
        table = tuple(int(v) for v in truth_table(truth.rules[node], regulators))
        assert all(f.errors == 0 for f in fits[node])
        optimal = {(f.regulators, f.table) for f in fits[node]}
        assert (regulators, table) in optimal, (node, format_expression(truth.rules[node]))


def test_time_series_route_ranks_by_size_and_reports_missed_transitions() -> None:
    truth = BooleanNetwork.from_rules({"a": "c", "b": "a & !c", "c": "!b | a"})
    frame = _trajectories(truth, np.random.default_rng(0), starts=6, steps=5)
    frame.loc[(frame["experiment"] == "traj00") & (frame["time"] == 3) & (frame["observable"] == "b"), "state"] ^= 1
    pkn = Pkn((("c", 1, "a"), ("a", 1, "b"), ("c", -1, "b"), ("a", 1, "c"), ("b", -1, "c"), ("b", 1, "a")))
    result = infer_networks(pkn, frame, pd.DataFrame({"experiment": sorted(frame["experiment"].unique())}))
    assert result.method == "time_series"
    assert list(result.index["network"][:2]) == ["net_1", "net_2"]
    assert (np.diff(result.index["score"]) >= 0).all()
    assert result.index["mismatches"][0] > 0 and "traj00:" in result.index["missed"][0]


def test_time_series_with_a_self_loop_recovers_the_oscillator_and_its_attractor() -> None:
    # A(t+1) = !A(t) (negative autoregulation), B(t+1) = A(t): the state (A, B) goes
    # 00 -> 10 -> 01 -> 10 -> ...; every state ends on the 2-cycle {01, 10}.
    frame = pd.DataFrame([("e1", float(t), node, value) for t, state in enumerate(["00", "10", "01", "10", "01"])
                          for node, value in zip("AB", map(int, state))],
                         columns=["experiment", "time", "observable", "state"])
    pkn = Pkn((("A", -1, "A"), ("A", 1, "B")))
    result = infer_networks(pkn, frame, pd.DataFrame({"experiment": ["e1"]}))
    assert result.method == "time_series" and result.index["mismatches"][0] == 0
    net = result.networks[0]
    assert bnet_text(net).splitlines()[1:] == ["A, !A", "B, A"]
    assert [(a.type, a.states, a.basin) for a in attractors(net)] == [("cycle", ((0, 1), (1, 0)), 4)]


# --- output ------------------------------------------------------------------------------------


def test_infer_from_data_writes_index_bnet_and_sbml_that_read_back(tmp_path: Path, cases: Path) -> None:
    pkn, prepared = _toy(cases)
    result = infer_networks(pkn, prepared.binarized, prepared.experiments, tolerance=4)
    assert len(result.networks) > 3
    toy = {"pkn": cases / "cellnopt_toy" / "ToyPKNMMB.sif", "data": cases / "cellnopt_toy" / "ToyDataMMB.csv",
           "fmt": "midas", "networks": tmp_path / "networks", "max_networks": 3, "tolerance": 4}
    steps.infer_from_data(**toy)
    first = {p.name: p.read_bytes() for p in (tmp_path / "networks").iterdir()}
    assert set(first) == {"index.tsv"} | {f"net_{i}.{ext}" for i in (1, 2, 3) for ext in ("bnet", "sbml")}
    assert first["index.tsv"].decode() == table_text(result.index.iloc[:3])
    assert first["index.tsv"].decode().splitlines()[0] == "network\tscore\tmismatches\tsize\tmissed"
    for i, net in enumerate(result.networks[:3], start=1):
        assert read_bnet(tmp_path / "networks" / f"net_{i}.bnet") == net
        assert dict(read_sbml_qual(tmp_path / "networks" / f"net_{i}.sbml").rules) == dict(net.rules)
    steps.infer_from_data(**toy)
    assert {p.name: p.read_bytes() for p in (tmp_path / "networks").iterdir()} == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["networks"]


def test_ensemble_texts_keep_the_best_networks_in_rank_order(cases: Path) -> None:
    pkn, prepared = _toy(cases)
    result = infer_networks(pkn, prepared.binarized, prepared.experiments, tolerance=4)
    index, texts = ensemble_texts(result, 2)
    assert index.splitlines()[1:] == [table_text(result.index).splitlines()[i] for i in (1, 2)]
    assert list(texts) == ["net_1", "net_2"]
    assert texts["net_2"] == (bnet_text(result.networks[1]), sbml_qual_text(result.networks[1]))
    assert len(ensemble_texts(result, 1000)[1]) == len(result.networks)


def test_a_network_that_cannot_be_written_leaves_the_old_folder_untouched(tmp_path: Path) -> None:
    pkn, binarized, experiments = _files(tmp_path)
    given = {"pkn": pkn, "binarized": binarized, "experiments": experiments, "networks": tmp_path / "networks",
             "max_networks": 5}
    steps.infer(**given)
    before = {p.name: p.read_bytes() for p in (tmp_path / "networks").iterdir()}
    _write(pkn, SIF.replace("A", "A.1"))  # '.' is no SBML id: the SBML-qual text cannot be rendered
    _write(experiments, EXPERIMENTS.replace("inhibitor:A", "inhibitor:A.1"))
    with pytest.raises(NetworkError, match="valid SBML id"):
        steps.infer(**given)
    assert {p.name: p.read_bytes() for p in (tmp_path / "networks").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binarized.tsv", "experiments.tsv", "networks", "pkn.sif"]


def test_max_networks_is_checked_before_inference(tmp_path: Path) -> None:
    pkn, binarized, experiments = _files(tmp_path)
    with pytest.raises(ConfigError, match="infer.max_networks"):
        steps.infer(pkn=pkn, binarized=binarized, experiments=experiments, networks=tmp_path / "networks",
                    max_networks=0)
    assert not (tmp_path / "networks").exists()


def test_cli_binarizes_midas_in_memory_and_writes_the_rule_outputs(tmp_path: Path, cases: Path) -> None:
    steps.infer_from_data(pkn=cases / "cellnopt_toy" / "ToyPKNMMB.sif", data=cases / "cellnopt_toy" / "ToyDataMMB.csv",
                          fmt="midas", networks=tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["index.tsv", "net_1.bnet", "net_1.sbml"]


# --- bad input ---------------------------------------------------------------------------------

BINARIZED = "experiment\ttime\tobservable\tstate\ne1\t10\tB\t1\ne2\t10\tB\t0\n"
EXPERIMENTS = "experiment\tstimulus:S\tinhibitor:A\ne1\t1\t0\ne2\t1\t1\n"
SIF = "S\t1\tA\nA\t1\tB\n"


def _files(tmp_path: Path, sif: str = SIF, binarized: str = BINARIZED, experiments: str = EXPERIMENTS):
    return (_write(tmp_path / "pkn.sif", sif), _write(tmp_path / "binarized.tsv", binarized),
            _write(tmp_path / "experiments.tsv", experiments))


def infer_files(pkn: Path, binarized: Path, experiments: Path, **options):
    """The `infer` step on prepared files; the networks folder goes beside them."""
    return steps.infer(pkn=pkn, binarized=binarized, experiments=experiments, networks=pkn.parent / "networks",
                       max_networks=5, **options)


def test_files_that_fit_give_a_perfect_network(tmp_path: Path) -> None:
    result = infer_files(*_files(tmp_path))
    assert result.index["mismatches"][0] == 0
    assert bnet_text(result.networks[0]).splitlines()[1:] == ["A, S", "B, A", "S, S"]


@pytest.mark.parametrize(
    ("change", "error", "words"),
    [
        ({"binarized": BINARIZED.replace("B\t0", "B\t0.5")}, DataError, ["binarized.tsv", "row 3", "state", "0.5"]),
        ({"binarized": BINARIZED.replace("\tB\t1", "\tX\t1")}, DataError, ["binarized.tsv", "observable", "X"]),
        ({"experiments": EXPERIMENTS.replace("stimulus:S", "stimulus:Q")}, DataError,
         ["experiments.tsv", "stimulus:Q"]),
        ({"sif": SIF + "B\t+-1\tC\n"}, NetworkError, ["pkn.sif", "line 3", "sign 1 or -1", "'+-1'"]),
        ({"sif": SIF + "A\t-1\tB\n"}, NetworkError, ["pkn.sif", "line 3", "sign -1 here and 1 on line 2"]),
        ({"binarized": BINARIZED.replace("e2\t10", "e3\t10")}, DataError, ["experiments.tsv", "e3"]),
    ],
    ids=["non-binary-state", "unknown-readout", "unknown-stimulus", "bad-sign", "contradictory-edge",
         "unknown-experiment"],
)
def test_bad_input_is_a_clear_error_naming_file_and_place(tmp_path: Path, change, error, words) -> None:
    with pytest.raises(error) as info:
        infer_files(*_files(tmp_path, **change))
    for word in words:
        assert word in str(info.value)


def test_cli_on_bad_input_writes_no_networks_folder(tmp_path: Path) -> None:
    pkn = _write(tmp_path / "pkn.sif", SIF + "B\tactivates\tC\n")
    data = _write(tmp_path / "data.tsv", "experiment\ttime\tobservable\tvalue\ne1\t1\tB\t0.9\ne2\t1\tB\t0.1\n")
    experiments = _write(tmp_path / "experiments.tsv", EXPERIMENTS)
    with pytest.raises(NetworkError):
        steps.infer_from_data(pkn=pkn, data=data, fmt="tidy", experiments=experiments, networks=tmp_path / "networks")
    assert not (tmp_path / "networks").exists()


def test_duplicate_edges_and_too_many_parents_are_logged_warnings(tmp_path: Path, caplog) -> None:
    sif = "S\t1\tA\nS\t1\tA\nS\t1\tP\nS\t1\tQ\nS\t1\tR\nA\t1\tB\nP\t1\tB\nQ\t-1\tB\nR\t1\tB\n"
    binarized = "".join(f"e{i}\t10\tB\t{v}\n" for i, v in ((1, 1), (2, 0)))
    with caplog.at_level(logging.WARNING):
        result = infer_files(*_files(tmp_path, sif=sif, binarized=BINARIZED.splitlines()[0] + "\n" + binarized),
                             max_inputs=3)
    assert "repeats the edge S 1 A" in caplog.text
    assert "'B' has 4 PKN parents; its AND terms are limited to 3 literals" in caplog.text
    assert result.index["mismatches"][0] == 0


def test_unfittable_data_is_a_warning_with_the_best_mismatch_count(tmp_path: Path, caplog) -> None:
    sif = SIF + "T\t1\tC\n"  # C is 1 where its only stimulus T is not given
    binarized = BINARIZED + "e1\t10\tC\t1\ne2\t10\tC\t0\n"
    experiments = "experiment\tstimulus:S\tstimulus:T\tinhibitor:A\ne1\t1\t0\t0\ne2\t1\t0\t1\n"
    with caplog.at_level(logging.WARNING):
        result = infer_files(*_files(tmp_path, sif=sif, binarized=binarized, experiments=experiments))
    assert "no network fits all data; the best has 1 mismatches: e1:C" in caplog.text
    assert result.index["missed"][0] == "e1:C"


def test_doses_map_to_the_drug_target_and_partial_doses_are_left_out(tmp_path: Path, caplog) -> None:
    experiments = "experiment\tstimulus:S\tdose:drug\ne1\t1\t0\ne2\t1\t300\ne3\t1\t30\n"
    binarized = BINARIZED + "e3\t10\tB\t1\n"
    files = _files(tmp_path, binarized=binarized, experiments=experiments)
    with pytest.raises(ConfigError, match="drug.target"):
        infer_files(*files)
    with pytest.raises(ConfigError, match="infer.inhibiting_dose"):
        infer_files(*files, drug_target="A")
    with caplog.at_level(logging.WARNING):
        result = infer_files(*files, drug_target="A", inhibiting_dose=300)
    assert "experiment 'e3' left out: dose:drug = 30 is below the inhibiting dose 300" in caplog.text
    assert result.index["mismatches"][0] == 0 and result.index["size"][0] == 2


def test_options_and_times_are_checked(tmp_path: Path) -> None:
    files = _files(tmp_path)
    with pytest.raises(ConfigError, match="infer.size_penalty"):
        infer_files(*files, size_penalty=0)
    with pytest.raises(ConfigError, match="infer.method"):
        infer_files(*files, method="genetic")
    with pytest.raises(DataError, match="infer.time to be one of the measured times 10, found '5'"):
        infer_files(*files, time=5)


def test_time_series_needs_every_node_observed_and_few_regulators(tmp_path: Path, caplog) -> None:
    with pytest.raises(DataError, match="never observed: A, S"):
        infer_files(*_files(tmp_path), method="time_series")
    many = Pkn(tuple((s, 1, "T") for s in "ABCDE"))
    frame = _trajectories(BooleanNetwork.from_rules({**{s: s for s in "ABCDE"}, "T": "A & B"}),
                          np.random.default_rng(1), starts=8, steps=3)
    with pytest.raises(ConfigError, match="infer.max_inputs"):
        best_fit(many, time_series_data(frame, many.nodes), max_inputs=5)
    with caplog.at_level(logging.WARNING):
        fits = best_fit(many, time_series_data(frame, many.nodes), max_inputs=2)
    assert "'T' has 5 PKN parents; best-fit considers regulator sets of at most 2" in caplog.text
    assert ("A", "B") in {f.regulators for f in fits["T"]} and set(fits) == {"T"}
