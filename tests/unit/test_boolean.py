"""Boolean networks: expressions, parser, dynamics, attractors and steady states."""

from __future__ import annotations

import itertools
import logging
import time

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qspflow import steps
from qspflow.boolean import (
    MAX_DEPTH,
    And,
    Attractor,
    BooleanNetwork,
    Const,
    Not,
    Or,
    Var,
    attractors,
    attractors_table,
    bnet_text,
    evaluate,
    format_expression,
    parse_bnet,
    parse_expression,
    parse_sbml_qual,
    random_network,
    read_bnet,
    sbml_qual_text,
    sign_of,
    steady_states,
    truth_table,
    variables,
)
from qspflow.errors import NetworkError
from qspflow.io import table_text

a, b, c, d = Var("a"), Var("b"), Var("c"), Var("d")


@pytest.fixture(scope="module")
def cellcycle(cases) -> BooleanNetwork:
    return read_bnet(cases / "boolnet_cellcycle" / "cellcycle.bnet")


# --- expressions and parser --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a | b & !c", Or((a, And((b, Not(c)))))),
        ("!a & b | c & d", Or((And((Not(a), b)), And((c, d))))),
        ("(a | b) & c", And((Or((a, b)), c))),
        ("!(a & b)", Not(And((a, b)))),
        ("!!a", Not(Not(a))),
        ("a & (b & c)", And((a, b, c))),  # associative nesting is flattened
        ("((a))", a),
        ("a|b&c", Or((a, And((b, c))))),
        ("x.1_y & _z", And((Var("x.1_y"), Var("_z")))),
        ("1 & true | 0 & false", Or((And((Const(True), Const(True))), And((Const(False), Const(False)))))),
    ],
)
def test_parser_follows_precedence_not_and_or(text, expected):
    assert parse_expression(text) == expected


@pytest.mark.parametrize(
    ("text", "col", "expected", "found"),
    [
        ("a & ", 4, "a node name, 0, 1, '!' or '('", "found the end of the rule"),
        ("a & & b", 5, "a node name, 0, 1, '!' or '('", "found '&'"),
        ("(a | b", 7, "'&', '|' or ')'", "found the end of the rule"),
        ("a b", 3, "'&', '|' or the end of the rule", "found 'b'"),
        ("a $ b", 3, "'&', '|' or the end of the rule", "found '$'"),
        ("2x | a", 1, "a node name, 0, 1, '!' or '('", "found '2x'"),
        ("a)", 2, "'&', '|' or the end of the rule", "found ')'"),
        ("", 1, "a node name, 0, 1, '!' or '('", "found the end of the rule"),
        ("!(a | ()", 8, "a node name, 0, 1, '!' or '('", "found ')'"),
    ],
)
def test_syntax_error_names_source_line_column_and_expectation(text, col, expected, found):
    with pytest.raises(NetworkError) as info:
        parse_expression(text, source="net.bnet", line=7)
    message = str(info.value)
    assert (info.value.line, info.value.col) == (7, col)
    assert message.startswith(f"net.bnet, line 7, column {col}: expected {expected}")
    assert found in message


def test_syntax_error_column_counts_from_where_the_rule_starts():
    with pytest.raises(NetworkError) as info:
        parse_expression("a & | b", source="net.bnet", line=2, column=5)
    assert (info.value.line, info.value.col) == (2, 9)


def test_syntax_error_column_is_counted_in_the_file_line():
    with pytest.raises(NetworkError) as info:
        parse_bnet("targets, factors\nA, A\nB,  A & | A\n", source="x.bnet")
    assert (info.value.line, info.value.col) == (3, 9)
    assert str(info.value).startswith("x.bnet, line 3, column 9: expected a node name")


def test_format_uses_minimal_parentheses():
    assert format_expression(Or((a, And((b, Not(c)))))) == "a | b & !c"
    assert format_expression(And((Or((a, b)), Not(Or((c, d)))))) == "(a | b) & !(c | d)"
    assert format_expression(Not(Not(And((a, b))))) == "!!(a & b)"
    assert format_expression(And(())) == "1" and format_expression(Or(())) == "0"


names = st.sampled_from(["a", "b", "c", "d", "e.1"])
expressions = st.recursive(
    st.one_of(names.map(Var), st.booleans().map(Const)),
    lambda inner: st.one_of(
        inner.map(Not),
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, database=None)
@given(expressions)
def test_format_then_parse_keeps_the_logic_and_the_text(expr):
    text = format_expression(expr)
    again = parse_expression(text)
    assert format_expression(again) == text
    assert variables(again) == variables(expr)
    order = sorted(variables(expr))
    assert (truth_table(again, order) == truth_table(expr, order)).all()
    assert parse_expression(format_expression(again)) == again


def _fully_parenthesized(expr) -> str:
    match expr:
        case Var(name):
            return f"(({name}))"
        case Const(value):
            return "(1)" if value else "(0)"
        case Not(arg):
            return f"(!{_fully_parenthesized(arg)})"
        case And(args) | Or(args):
            op = " & " if isinstance(expr, And) else " | "
            return "(" + op.join(_fully_parenthesized(x) for x in args) + ")"


@settings(max_examples=100, deadline=None, database=None)
@given(expressions)
def test_redundant_parentheses_do_not_change_the_parsed_rule(expr):
    text = format_expression(expr)
    assert parse_expression("(((" + text + ")))") == parse_expression(text)
    again = parse_expression(_fully_parenthesized(expr))
    order = sorted(variables(expr))
    assert (truth_table(again, order) == truth_table(expr, order)).all()


def _deep(levels: int) -> str:
    """A rule of `levels` nesting levels: alternately `!` and an OR in parentheses."""
    text, depth = "a", 1
    while depth < levels:
        text, depth = (f"!{text}", depth + 1) if depth % 2 else (f"(b | {text})", depth + 1)
    return text


def test_thousands_of_parentheses_parse_without_recursion():
    assert parse_expression("(" * 5000 + "!a" + ")" * 5000) == Not(a)
    assert parse_expression("((a) & ((b)))" * 1 + " | " + "(" * 3000 + "c" + ")" * 3000) == Or((And((a, b)), c))


def test_rules_deeper_than_max_depth_are_refused_where_they_start():
    assert MAX_DEPTH == 100
    with pytest.raises(NetworkError, match=r"^deep.bnet, line 4, column 4: expected a rule nested at most 100 "
                                           r"levels deep, the part starting here nests 101 levels$"):
        parse_bnet("a, a\nb, b\nc, c\nx, " + "!" * 100 + "a\n", source="deep.bnet")
    with pytest.raises(NetworkError, match="line 1, column 8: expected a rule nested at most 100 levels deep"):
        parse_expression("c & !(" + _deep(100) + ")", line=1, column=4)
    rule = "(b | !(" * 1500 + "a" + "))" * 1500  # 3,000 levels: one line, not a RecursionError
    with pytest.raises(NetworkError, match=r"^line 1, column 10151: expected a rule nested at most 100 levels deep"):
        parse_expression(rule)  # the innermost part that is too deep: 50 levels of '(b | !(' around 'a'
    assert rule[10150:].startswith("(b | !(") and rule[10150:].count("(b | !(") == 50


def _with_stack_in_use(frames: int, work):
    return work() if frames == 0 else _with_stack_in_use(frames - 1, work)


def test_the_deepest_allowed_rules_work_everywhere_with_stack_to_spare():
    for rule in ("!" * 99 + "a", _deep(100)):
        net = parse_bnet(f"a, a\nb, b\nx, {rule}\n")
        assert parse_expression(format_expression(net.rules["x"])) == net.rules["x"]

        def everything():
            again = parse_sbml_qual(sbml_qual_text(net))
            return (again == net, hash(net) == hash(again), sign_of(net.rules["x"], "a"), steady_states(net),
                    len(attractors(net)), evaluate(net.rules["x"], {"a": 1, "b": 0}))

        expected = 1 if rule.count("!") % 2 == 0 else -1
        assert _with_stack_in_use(400, everything)[:3] == (True, True, expected)


def test_sbml_qual_math_deeper_than_max_depth_is_refused():
    deep = Var("a")
    for _ in range(150):
        deep = Not(deep)
    text = sbml_qual_text(BooleanNetwork(("a", "x"), {"a": Var("a"), "x": deep}))
    with pytest.raises(NetworkError, match="element 'tr_x': expected MathML nested at most 100 levels deep"):
        parse_sbml_qual(text)


def test_evaluate_and_truth_table_agree():
    expr = parse_expression("a & !b | c")
    table = truth_table(expr, ["a", "b", "c"])
    for row, values in enumerate(itertools.product((0, 1), repeat=3)):
        assert table[row] == evaluate(expr, dict(zip("abc", values))) == (values[0] and not values[1] or values[2])


@pytest.mark.parametrize(
    ("text", "var", "sign"),
    [
        ("a & !b", "a", 1),
        ("a & !b", "b", -1),
        ("a & !b | a & b", "b", 0),  # no effect
        ("a & !b | !a & b", "a", 0),  # dual (xor)
        ("!(a | c)", "c", -1),
        ("a", "z", 0),
    ],
)
def test_sign_of_reads_monotonicity_from_the_truth_table(text, var, sign):
    assert sign_of(parse_expression(text), var) == sign


# --- networks ----------------------------------------------------------------------------------


def test_network_structure_of_the_cell_cycle(cellcycle):
    assert cellcycle.nodes[:3] == ("CycD", "Rb", "E2F") and len(cellcycle.nodes) == 10
    assert cellcycle.inputs == ("CycD",)
    assert cellcycle.regulators("CycD") == ()
    assert cellcycle.regulators("CycE") == ("Rb", "E2F")
    edges = cellcycle.edges()
    assert edges == tuple(sorted(edges))
    assert ("Rb", -1, "CycE") in edges and ("E2F", 1, "CycE") in edges and ("p27", 1, "p27") in edges


def test_step_is_the_synchronous_update():
    net = BooleanNetwork.from_rules({"a": "a", "b": "a & !c", "c": "b"})
    assert net.step((1, 0, 0)) == (1, 1, 0)
    assert net.step((1, 1, 0)) == (1, 1, 1)
    assert net.step((1, 1, 1)) == (1, 0, 1)
    with pytest.raises(ValueError):
        net.step((1, 0))


def test_networks_are_immutable_values():
    net = BooleanNetwork.from_rules({"a": "a", "b": "!a"})
    changed = net.with_rules(b="a")
    assert changed.rules["b"] == a and net.rules["b"] == Not(a)
    assert net.with_rules(b=Not(a)) == net and hash(net.with_rules(b=Not(a))) == hash(net)
    with pytest.raises(TypeError):
        net.rules["b"] = a
    with pytest.raises(NetworkError, match="unknown node 'z'"):
        net.with_rules(z="a")


def test_from_rules_names_an_undefined_node():
    with pytest.raises(NetworkError, match="^rules.yaml: undefined node 'ghost' in the rule of 'b'$"):
        BooleanNetwork.from_rules({"a": "a", "b": "a & ghost"}, source="rules.yaml")


def test_from_rules_names_the_node_of_a_syntax_error():
    with pytest.raises(NetworkError, match=r"^rules.yaml, key 'b': expected '&', '\|' or the end of the rule, "
                                           r"found 'a', at column 4 of '!a a'$"):
        BooleanNetwork.from_rules({"a": "a", "b": "!a a"}, source="rules.yaml")


# --- attractors --------------------------------------------------------------------------------


def test_cell_cycle_has_two_attractors_with_equal_basins(cellcycle):
    found = attractors(cellcycle, update="synchronous")
    assert sorted((a.size, a.basin) for a in found) == [(1, 512), (7, 512)]
    steady, cycle = found
    assert steady.type == "steady" and cycle.type == "cycle"
    assert steady.states == ((0, 1, 0, 0, 0, 1, 0, 1, 0, 0),)  # CycD off: Rb, p27, Cdh1 on (Fauré 2006)
    assert cycle.states[0] == min(cycle.states)
    assert all(cellcycle.step(s) == cycle.states[(i + 1) % 7] for i, s in enumerate(cycle.states))
    assert all(s[0] == 1 for s in cycle.states)


def test_cell_cycle_asynchronous_attractors(cellcycle):
    found = attractors(cellcycle, update="asynchronous")
    # Fauré et al. 2006: the same steady state, and one complex attractor of 112 states with CycD on
    assert [(a.type, a.size, a.basin) for a in found] == [("steady", 1, None), ("complex", 112, None)]
    assert found[0].states == ((0, 1, 0, 0, 0, 1, 0, 1, 0, 0),)
    assert list(found[1].states) == sorted(found[1].states)


def test_steady_states_match_the_synchronous_fixed_points_of_the_cell_cycle(cellcycle):
    assert steady_states(cellcycle) == [a.states[0] for a in attractors(cellcycle) if a.type == "steady"]


@pytest.mark.parametrize("seed", range(8))
def test_steady_states_match_exhaustive_search_on_random_networks(seed):
    net = random_network(12, seed=seed, min_inputs=1, max_inputs=3)
    expected = [a.states[0] for a in attractors(net) if a.type == "steady"]
    assert steady_states(net) == expected
    assert [a.states[0] for a in attractors(net, "asynchronous") if a.type == "steady"] == expected


def test_toggle_switch_and_negative_loop_by_hand():
    toggle = BooleanNetwork.from_rules({"a": "!b", "b": "!a"})
    assert attractors(toggle) == [
        Attractor(((0, 1),), "steady", 1),
        Attractor(((1, 0),), "steady", 1),
        Attractor(((0, 0), (1, 1)), "cycle", 2),
    ]
    assert attractors(toggle, "asynchronous") == [
        Attractor(((0, 1),), "steady", None),
        Attractor(((1, 0),), "steady", None),
    ]
    loop = BooleanNetwork.from_rules({"a": "!b", "b": "a"})
    assert attractors(loop) == [Attractor(((0, 0), (1, 0), (1, 1), (0, 1)), "cycle", 4)]
    assert attractors(loop, "asynchronous") == [Attractor(((0, 0), (0, 1), (1, 0), (1, 1)), "complex", None)]
    assert steady_states(loop) == []


def test_constant_rules_and_inputs_in_all_combinations():
    net = BooleanNetwork.from_rules({"u": "u", "on": "1", "off": "false", "y": "u & on | off"})
    assert steady_states(net) == [(0, 1, 0, 0), (1, 1, 0, 1)]
    assert [(a.states, a.basin) for a in attractors(net)] == [(((0, 1, 0, 0),), 8), (((1, 1, 0, 1),), 8)]


def _oracle(net: BooleanNetwork, update: str) -> dict[frozenset, int | None]:
    """Attractor state sets and their synchronous basin sizes, from PyBoolNet's state transition
    graph (built from the prime implicants of the rules) and networkx's terminal components."""
    from pyboolnet.file_exchange import bnet2primes
    from pyboolnet.state_transition_graphs import primes2stg

    primes = bnet2primes("\n".join(bnet_text(net).splitlines()[1:]))
    order = sorted(net.nodes)  # PyBoolNet writes states as strings over the sorted names

    def state(text: str) -> tuple[int, ...]:
        values = dict(zip(order, map(int, text)))
        return tuple(values[n] for n in net.nodes)

    stg = primes2stg(primes, update)
    condensed = nx.condensation(stg)
    found = {}
    for component in condensed:
        if condensed.out_degree(component) == 0:
            members = condensed.nodes[component]["members"]
            first = next(iter(members))
            basin = len(nx.ancestors(stg, first) | {first}) if update == "synchronous" else None
            found[frozenset(map(state, members))] = basin
    return found


@settings(max_examples=25, deadline=None, database=None)
@given(n=st.integers(6, 10), seed=st.integers(0, 2**32 - 1))
def test_attractors_agree_with_pyboolnet_on_random_networks(n, seed):
    logging.getLogger("pyboolnet").setLevel(logging.ERROR)
    net = random_network(n, seed=seed)
    for update in ("synchronous", "asynchronous"):
        found = attractors(net, update)
        expected = _oracle(net, update)
        assert {frozenset(a.states): a.basin for a in found} == expected
        assert len(found) == len(expected)
        steady = sorted(next(iter(states)) for states in expected if len(states) == 1)
        assert [a.states[0] for a in found if a.type == "steady"] == steady
        assert steady_states(net) == steady


def test_attractor_search_refuses_networks_too_large_to_enumerate():
    with pytest.raises(NetworkError, match="big.bnet: expected at most 22 nodes for an exhaustive synchronous "
                                           "attractor search, found '23 nodes'"):
        attractors(random_network(23, seed=1), source="big.bnet")


def test_steady_states_of_a_30_node_network_are_fixed_points_in_seconds():
    net = random_network(30, seed=0)
    start = time.perf_counter()
    found = steady_states(net)
    assert time.perf_counter() - start < 5
    assert found and all(net.step(s) == s for s in found)
    assert found == sorted(set(found))


def test_attractors_table_is_canonical(cellcycle):
    text = table_text(attractors_table(attractors(cellcycle), cellcycle))
    lines = text.splitlines()
    order = "CycD,Rb,E2F,CycE,CycA,p27,Cdc20,Cdh1,UbcH10,CycB"  # every row names the node of each bit
    assert lines[0] == "attractor\ttype\tsize\tbasin\tstates\tnodes"
    assert lines[1] == f"1\tsteady\t1\t512\t0100010100\t{order}"
    assert lines[2].startswith("2\tcycle\t7\t512\t1") and lines[2].count(";") == 6
    assert lines[2].endswith(f"\t{order}")
    asynchronous = table_text(attractors_table(attractors(cellcycle, "asynchronous"), cellcycle))
    assert asynchronous.splitlines()[1] == f"1\tsteady\t1\t\t0100010100\t{order}"


def test_attractors_step_gives_the_table_of_a_bnet_file(cases, cellcycle):
    path = cases / "boolnet_cellcycle" / "cellcycle.bnet"
    assert steps.attractors(network=path) == table_text(attractors_table(attractors(cellcycle), cellcycle))
    asynchronous = steps.attractors(network=path, update="asynchronous")
    assert asynchronous.splitlines()[1].startswith("1\tsteady\t1\t\t0100010100\t")


# --- random networks ---------------------------------------------------------------------------


def test_random_networks_are_reproducible_and_use_every_regulator():
    net = random_network(15, seed=42)
    assert net == random_network(15, seed=42) and net != random_network(15, seed=43)
    assert net.nodes == tuple(f"x{i:02d}" for i in range(1, 16))
    for node in net.nodes:
        regulators = net.regulators(node)
        assert 2 <= len(regulators) <= 3
        table = truth_table(net.rules[node], regulators)
        assert 0 < table.sum() < table.size  # not constant
    assert len(net.edges()) == sum(len(net.regulators(n)) for n in net.nodes)
