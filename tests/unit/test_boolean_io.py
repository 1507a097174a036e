"""Boolean network exchange formats: `.bnet`, SBML-qual and SIF."""

from __future__ import annotations

import logging
from pathlib import Path

import libsbml
import pytest

from qspflow.boolean import (
    BooleanNetwork,
    Pkn,
    bnet_text,
    parse_bnet,
    parse_sbml_qual,
    random_network,
    read_bnet,
    read_sbml_qual,
    read_sif,
    sbml_qual_text,
    sif_text,
    truth_table,
    variables,
)
from qspflow.errors import NetworkError

DATA = Path(__file__).parent / "data" / "boolean"


@pytest.fixture(scope="module")
def cellcycle(cases) -> BooleanNetwork:
    return read_bnet(cases / "boolnet_cellcycle" / "cellcycle.bnet")


def same_logic(first: BooleanNetwork, second: BooleanNetwork) -> bool:
    """Same nodes in the same order, and every rule with the same truth table."""
    if first.nodes != second.nodes:
        return False
    for node in first.nodes:
        names = sorted(variables(first.rules[node]) | variables(second.rules[node]))
        if not (truth_table(first.rules[node], names) == truth_table(second.rules[node], names)).all():
            return False
    return True


# --- .bnet -------------------------------------------------------------------------------------


def test_bnet_round_trip_is_canonical(cellcycle, tmp_path):
    text = bnet_text(cellcycle)
    assert text.startswith("targets, factors\nCycD, CycD\nRb, ") and text.endswith("CycB, !Cdc20 & !Cdh1\n")
    assert parse_bnet(text) == cellcycle
    (tmp_path / "net.bnet").write_bytes(text.encode())
    assert bnet_text(read_bnet(tmp_path / "net.bnet")) == text


def test_bnet_header_comments_and_blank_lines_are_optional():
    plain = parse_bnet("a, a\nb, !a\n")
    decorated = parse_bnet("# toy\n\nTargets,   Factors\r\na, a   # an input\n\n b ,  !a\n")
    assert plain == decorated and plain.nodes == ("a", "b")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("targets, factors\na, a\nb, a\na, !b\n", 4, "second rule for 'a' (first on line 2)"),
        ("a, a\n\nb, a & ghost\n", 3, "undefined node 'ghost' in the rule of 'b'"),
        ("a, a\nb !a\n", 2, "expected 'node, rule'"),
        ("a, a\nb-1, a\n", 2, "expected a node name"),
        ("a, a\nb, a &\n", 2, "column 7: expected a node name, 0, 1"),
    ],
)
def test_bnet_errors_name_file_and_line(tmp_path, text, line, fragment):
    path = tmp_path / "bad.bnet"
    path.write_text(text)
    with pytest.raises(NetworkError) as info:
        read_bnet(path)
    assert info.value.line == line
    assert str(info.value).startswith(f"{path}, line {line}")
    assert fragment in str(info.value)


def test_missing_and_empty_bnet_files_are_reported(tmp_path):
    with pytest.raises(NetworkError, match="cannot read the file"):
        read_bnet(tmp_path / "absent.bnet")
    (tmp_path / "empty.bnet").write_text("targets, factors\n# nothing\n")
    with pytest.raises(NetworkError, match="expected at least one 'node, rule' line"):
        read_bnet(tmp_path / "empty.bnet")


# --- SBML-qual ---------------------------------------------------------------------------------


def test_sbml_qual_round_trip_keeps_the_logic(cellcycle, tmp_path):
    (tmp_path / "net.sbml").write_bytes(sbml_qual_text(cellcycle).encode())
    again = read_sbml_qual(tmp_path / "net.sbml")
    assert same_logic(again, cellcycle)
    assert again.inputs == ("CycD",)


@pytest.mark.parametrize("seed", range(5))
def test_sbml_qual_round_trip_on_random_networks(seed):
    net = random_network(12, seed=seed, min_inputs=1, max_inputs=4).with_rules(x01="x01", x02="1")
    assert same_logic(parse_sbml_qual(sbml_qual_text(net)), net)


def test_written_sbml_qual_passes_the_libsbml_consistency_check(cellcycle):
    doc = libsbml.readSBMLFromString(sbml_qual_text(cellcycle))
    doc.checkConsistency()
    errors = [doc.getError(i) for i in range(doc.getNumErrors())]
    assert [e.getMessage() for e in errors if e.getSeverity() >= libsbml.LIBSBML_SEV_ERROR] == []
    assert doc.getPackageRequired("qual") and doc.getModel().getPlugin("qual").getNumTransitions() == 9


def test_sbml_qual_text_is_deterministic_and_signs_inputs(cellcycle):
    text = sbml_qual_text(cellcycle)
    assert text == sbml_qual_text(cellcycle) and "\r" not in text
    rb_into_cyce = 'qual:id="tr_CycE_in_Rb" qual:qualitativeSpecies="Rb" qual:transitionEffect="none" qual:sign="negative"'
    assert rb_into_cyce in text
    assert 'qual:qualitativeSpecies qual:id="CycD" qual:compartment="cell" qual:constant="true"' in text


def test_reads_a_ginsim_style_export():
    net = read_sbml_qual(DATA / "ginsim_style.sbml")
    expected = parse_bnet("EGF, EGF\nRas, EGF & !Erk | Ras & !Erk\nMek, Ras\nErk, Mek\n")
    assert same_logic(net, expected) and net.inputs == ("EGF",)


def test_reads_a_cellcollective_style_export():
    net = read_sbml_qual(DATA / "cellcollective_style.sbml")
    expected = parse_bnet("TCR, TCR\nIL_2, NFAT & !FOXP3\nNFAT, TCR & !(FOXP3 & IL_2)\nFOXP3, IL_2 | !TCR\nBASAL, 1\n")
    assert same_logic(net, expected) and net.inputs == ("TCR",)


def _variant(name: str, old: str, new: str, tmp_path: Path) -> Path:
    text = (DATA / name).read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ('qual:id="Ras" qual:maxLevel="1"', 'qual:id="Ras" qual:maxLevel="2"',
         "element 'Ras': expected a Boolean species (maxLevel 1), found 'maxLevel 2'"),
        ('<qual:output qual:id="tr_Mek_out" qual:qualitativeSpecies="Mek" qual:transitionEffect="assignmentLevel"/>',
         '<qual:output qual:id="tr_Mek_out" qual:qualitativeSpecies="Mek" qual:transitionEffect="assignmentLevel"/>'
         '<qual:output qual:id="tr_Mek_out2" qual:qualitativeSpecies="Erk" qual:transitionEffect="assignmentLevel"/>',
         "element 'tr_Mek': expected one output, found '2 outputs'"),
        ('<apply><gt/><ci> Mek </ci><cn type="integer"> 0 </cn></apply>',
         '<apply><plus/><ci> Mek </ci><cn type="integer"> 0 </cn></apply>',
         "element 'tr_Erk': expected Boolean MathML"),
        ('<qual:defaultTerm qual:resultLevel="0"/>', '<qual:defaultTerm qual:resultLevel="2"/>',
         "element 'tr_Ras': expected result level 0 or 1, found '2'"),
        ("</model>", "<listOfParameters/></model><garbage", "not readable SBML"),
    ],
)
def test_sbml_qual_errors_name_file_and_element(tmp_path, old, new, fragment):
    path = _variant("ginsim_style.sbml", old, new, tmp_path)
    with pytest.raises(NetworkError) as info:
        read_sbml_qual(path)
    assert str(info.value).startswith(str(path))
    assert fragment in str(info.value)


def test_sbml_without_the_qual_package_is_refused(tmp_path):
    doc = libsbml.SBMLDocument(3, 1)
    doc.createModel().setId("core_only")
    path = tmp_path / "core.sbml"
    path.write_text(libsbml.writeSBMLToString(doc))
    with pytest.raises(NetworkError, match=r"core\.sbml, element 'core_only': expected an SBML-qual model"):
        read_sbml_qual(path)
    with pytest.raises(NetworkError, match="no such file"):
        read_sbml_qual(tmp_path / "absent.sbml")


def test_node_names_that_are_not_sbml_ids_are_refused():
    net = BooleanNetwork.from_rules({"a.b": "a.b", "c": "!a.b"})
    with pytest.raises(NetworkError, match="element 'a.b': expected a node name that is a valid SBML id"):
        sbml_qual_text(net)


# --- SIF ---------------------------------------------------------------------------------------


def test_reads_the_cellnopt_toy_pkn(cases, tmp_path):
    pkn = read_sif(cases / "cellnopt_toy" / "ToyPKNMMB.sif")
    assert len(pkn.edges) == 16 and pkn.edges == tuple(sorted(pkn.edges))
    assert ("Akt", -1, "Mek") in pkn.edges
    assert pkn.parents("Mek") == (("Akt", -1), ("Raf", 1))
    assert pkn.parents("EGF") == ()
    assert len(pkn.nodes) == 15 and pkn.nodes == tuple(sorted(pkn.nodes))
    text = sif_text(pkn)
    assert text.splitlines()[0] == "Akt\t-1\tMek" and text.endswith("\n")
    (tmp_path / "pkn.sif").write_bytes(text.encode())
    assert read_sif(tmp_path / "pkn.sif") == pkn


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("A, B\nB, A\n".encode("utf-16"), "net.bnet: expected UTF-8 text, found 'a UTF-16 byte-order mark', save"),
        (b"A, B\r\nB, \xe4\n", "net.bnet, line 2: expected UTF-8 text, found 'byte 0xe4 at offset 9'"),
        (b"A, B\rB, A\rC, \x00\r", "net.bnet, line 3: expected text, found 'a NUL byte'"),
    ],
    ids=["utf-16", "latin-1", "nul"],
)
def test_files_that_are_not_utf8_text_are_named_with_the_line(tmp_path, data, fragment):
    (tmp_path / "net.bnet").write_bytes(data)
    with pytest.raises(NetworkError) as info:
        read_bnet(tmp_path / "net.bnet")
    assert str(info.value).startswith(str(tmp_path / fragment))


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_line(tmp_path):
    (tmp_path / "bom.bnet").write_bytes(b"\xef\xbb\xbftargets, factors\nA, !A\n")
    assert bnet_text(read_bnet(tmp_path / "bom.bnet")) == "targets, factors\nA, !A\n"


def test_self_loops_are_edges_of_the_pkn(tmp_path):
    (tmp_path / "auto.sif").write_text("S\t1\tA\nA\t-1\tA\nB\t1\tB\n")
    pkn = read_sif(tmp_path / "auto.sif")
    assert pkn.edges == (("A", -1, "A"), ("B", 1, "B"), ("S", 1, "A"))
    assert pkn.parents("A") == (("A", -1), ("S", 1)) and pkn.nodes == ("A", "B", "S")


def test_sif_fields_may_be_separated_by_spaces(tmp_path):
    (tmp_path / "spaces.sif").write_text("A 1 B\n\nB  -1   C\n")
    assert read_sif(tmp_path / "spaces.sif") == Pkn((("B", -1, "C"), ("A", 1, "B")))


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("A\t1\tB\nA\t2\tC\n", 2, "expected sign 1 or -1, found '2'"),
        ("A\t1\tB\nA\t1\n", 2, "expected 3 fields 'source sign target', found '2 fields'"),
        ("A\t1\tB\nA\tactivates\tB\tC\n", 2, "found '4 fields'"),
        ("A\t1\tB\nC\t1\tD\nA\t-1\tB\n", 3, "edge A -> B has sign -1 here and 1 on line 1"),
        ("A\t1\tB-2\n", 1, "expected a node name"),
    ],
)
def test_sif_errors_name_file_and_line(tmp_path, text, line, fragment):
    path = tmp_path / "bad.sif"
    path.write_text(text)
    with pytest.raises(NetworkError) as info:
        read_sif(path)
    assert str(info.value).startswith(f"{path}, line {line}: ")
    assert fragment in str(info.value)


def test_duplicate_sif_edge_is_a_warning_and_kept_once(tmp_path, caplog):
    path = tmp_path / "dup.sif"
    path.write_text("A\t1\tB\nB\t-1\tC\nA\t1\tB\n")
    with caplog.at_level(logging.WARNING, logger="qspflow.boolean"):
        pkn = read_sif(path)
    assert pkn.edges == (("A", 1, "B"), ("B", -1, "C"))
    assert [r.getMessage() for r in caplog.records] == [f"{path}, line 3: repeats the edge A 1 B of line 1; kept once"]


def test_pkn_constructor_sorts_deduplicates_and_checks_signs():
    assert Pkn((("b", 1, "c"), ("a", -1, "b"), ("b", 1, "c"))).edges == (("a", -1, "b"), ("b", 1, "c"))
    with pytest.raises(NetworkError, match="expected sign 1 or -1"):
        Pkn((("a", 0, "b"),))
    with pytest.raises(NetworkError, match="both signs"):
        Pkn((("a", 1, "b"), ("a", -1, "b")))
