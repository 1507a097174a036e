"""Bad measurement input: one `DataError` naming file and place, and no output written."""

from __future__ import annotations

import logging

import pytest

from qspflow import steps
from qspflow.data import prepare
from qspflow.errors import DataError

HEADER = "experiment,time,observable,value\n"
GOOD = HEADER + "e1,0,A,0.1\ne1,10,A,0.9\ne2,0,A,0.2\ne2,10,A,0.8\n"
EXPERIMENTS = "experiment,stimulus:EGF\ne1,0\ne2,1\n"
MIDAS_HEAD = "TR:x:CellLine,TR:EGF,TR:Rafi,"

# (files: first is the data file, others by name; prepare options; file the message names; fragments)
CASES = [
    pytest.param({"d.csv": HEADER + "e1,0,A,0.1\ne1,10,A\n"}, {}, "d.csv", ["row 3", "4 fields", "found '3 fields'"],
                 id="ragged-row"),
    pytest.param({"d.csv": HEADER + "e1,0,A,0.1\ne1,10,A,high\n"}, {}, "d.csv", ["row 3", "column 'value'", "'high'"],
                 id="non-numeric-value"),
    pytest.param({"d.csv": HEADER + "e1,zero,A,0.1\n"}, {}, "d.csv", ["row 2", "column 'time'", "'zero'"],
                 id="non-numeric-time"),
    pytest.param({"d.csv": HEADER + "e1,0,A,0.1\ne1,-1,A,0.2\n"}, {}, "d.csv", ["row 3", "column 'time'", "≥ 0", "'-1'"],
                 id="negative-time"),
    pytest.param({"d.csv": GOOD + "e2,10.0,A,0.7\n"}, {}, "d.csv", ["row 6", "already in row 5"], id="duplicate-row"),
    pytest.param({"d.csv": GOOD + "e1,0,Foo,1\n", "p.sif": "A\t1\tB\n"}, {"pkn": "p.sif"}, "d.csv",
                 ["row 6", "column 'observable'", "PKN", "'Foo'"], id="unknown-observable"),
    pytest.param({"d.csv": ""}, {}, "d.csv", ["row 1", "empty"], id="empty-file"),
    pytest.param({"d.csv": "\n  \n"}, {}, "d.csv", ["row 1", "empty"], id="blank-lines-only"),
    pytest.param({"d.csv": HEADER}, {}, "d.csv", ["row 2", "only a header"], id="header-only"),
    pytest.param({"d.csv": "experiment,time,observable,val\ne1,0,A,1\n"}, {}, "d.csv", ["row 1", "column 'value'"],
                 id="missing-column"),
    pytest.param({"d.csv": GOOD + "e3,0,A,inf\n"}, {}, "d.csv", ["row 6", "column 'value'", "finite", "'inf'"],
                 id="infinite-value"),
    pytest.param({"d.csv": GOOD + "e3,0,A,1e999\n"}, {}, "d.csv", ["row 6", "column 'value'", "finite"],
                 id="overflowing-value"),
    pytest.param({"d.csv": GOOD + "e1,0,B,\ne2,0,B,NA\n"}, {}, "d.csv", ["column 'value'", "'B'", "rows 6, 7"],
                 id="all-missing-observable"),
    pytest.param({"d.csv": GOOD + "e 3,0,A,0.5\n"}, {}, "d.csv", ["row 6", "column 'experiment'", "'e 3'"],
                 id="bad-experiment-id"),
    pytest.param({"d.csv": GOOD.replace("e1", "../e1")}, {}, "d.csv", ["row 2", "column 'experiment'"],
                 id="path-like-experiment-id"),
    pytest.param({"d.csv": "experiment,time,observable,value,sd\ne1,0,A,0.1,0.01\ne1,10,A,0.9,0\n"}, {}, "d.csv",
                 ["row 3", "column 'sd'", "> 0", "found '0'"], id="zero-sd"),
    pytest.param({"d.csv": "experiment,time,observable,value,sd\ne1,0,A,0.1,-0.2\n"}, {}, "d.csv",
                 ["row 2", "column 'sd'", "'-0.2'"], id="negative-sd"),
    pytest.param({"d.csv": "experiment,time,experiment,value\ne1,0,e1,1\n"}, {}, "d.csv",
                 ["row 1", "column 'experiment'", "twice"], id="duplicate-column"),
    pytest.param({"d.csv": b"experiment,time,observable,value\ne1,0,A,\xff\n"}, {}, "d.csv", ["UTF-8", "0xff"],
                 id="not-utf8"),
    pytest.param({"d.csv": GOOD, "x.csv": "experiment,treatment:EGF\ne1,0\ne2,1\n"}, {"experiments": "x.csv"}, "x.csv",
                 ["row 1", "column 'treatment:EGF'", "stimulus:<Node>"], id="unknown-factor-prefix"),
    pytest.param({"d.csv": GOOD, "x.csv": "exp,stimulus:EGF\ne1,0\ne2,1\n"}, {"experiments": "x.csv"}, "x.csv",
                 ["row 1", "column 'experiment'"], id="experiment-table-without-experiment-column"),
    pytest.param({"d.csv": GOOD, "x.csv": "experiment,stimulus:EGF\ne1,0\n"}, {"experiments": "x.csv"}, "x.csv",
                 ["column 'experiment'", "'e2'", "row 4"], id="experiment-missing-from-table"),
    pytest.param({"d.csv": GOOD, "x.csv": EXPERIMENTS + "e3,1\n"}, {"experiments": "x.csv"}, "x.csv",
                 ["row 4", "column 'experiment'", "'e3'"], id="experiment-not-measured"),
    pytest.param({"d.csv": GOOD, "x.csv": "experiment,stimulus:EGF\ne1,-1\ne2,1\n"}, {"experiments": "x.csv"}, "x.csv",
                 ["row 2", "column 'stimulus:EGF'", "≥ 0", "'-1'"], id="negative-level"),
    pytest.param({"d.csv": GOOD, "x.csv": "experiment,dose:drug\ne1,low\ne2,1\n"}, {"experiments": "x.csv"}, "x.csv",
                 ["row 2", "column 'dose:drug'", "'low'"], id="non-numeric-level"),
    pytest.param({"d.csv": GOOD, "x.csv": "experiment,inhibitor:Raf\ne1,0\ne2,0.5\n"}, {"experiments": "x.csv"},
                 "x.csv", ["row 3", "column 'inhibitor:Raf'", "0 or 1"], id="inhibitor-not-0-or-1"),
    pytest.param({"m.csv": MIDAS_HEAD + "DA:Erk,DA:Akt\n1,1,0,0,0\n"}, {}, "m.csv", ["row 1", "DV:<readout>"],
                 id="midas-without-dv"),
    pytest.param({"m.csv": MIDAS_HEAD + "DA:Erk,DA:Akt,DV:Erk\n1,1,0,0,0,0.5\n"}, {}, "m.csv",
                 ["row 1", "column 'DA:Akt'", "DV:Akt"], id="midas-da-without-dv"),
    pytest.param({"m.csv": MIDAS_HEAD + "DA:Erk,DV:Erk,DV:Akt\n1,1,0,0,0.5,0.4\n"}, {}, "m.csv",
                 ["row 1", "column 'DV:Akt'", "DA:ALL"], id="midas-dv-without-da"),
    pytest.param({"m.csv": MIDAS_HEAD + "DA:Erk,DV:Erk\r1,1,0,0,0.5\r1,1,0,10,x\r"}, {}, "m.csv",
                 ["row 3", "column 'DV:Erk'", "'x'"], id="midas-cr-non-numeric-value"),
    pytest.param({"m.csv": MIDAS_HEAD + "DA:Erk,DV:Erk\n1,1,0,10,0.5\n1,1,0,10,0.6\n"}, {}, "m.csv",
                 ["row 3", "column 'DV:Erk'", "row 2"], id="midas-replicate"),
    pytest.param({"m.csv": MIDAS_HEAD + "DA:Erk,DV:Erk\n1,1,2,10,0.5\n"}, {}, "m.csv",
                 ["row 2", "column 'TR:Rafi'", "0 or 1"], id="midas-inhibitor-level"),
    pytest.param({"m.csv": MIDAS_HEAD + "DA:Erk,DV:Erk\n1,0,0,0,0.4\n1,7,0,10,0.5\n"}, {}, "m.csv",
                 ["row 3", "column 'TR:EGF'", "expected 0 or 1", "found '7'"], id="midas-stimulus-cue-7"),
    pytest.param({"m.csv": MIDAS_HEAD + "DA:Erk,DV:Erk\n1,0.5,0,10,0.5\n"}, {}, "m.csv",
                 ["row 2", "column 'TR:EGF'", "expected 0 or 1", "found '0.5'"], id="midas-fractional-cue"),
    pytest.param({"m.csv": MIDAS_HEAD + "DA:Erk,DV:Erk\n1,0,0,0,0.5\n"}, {}, "m.csv", ["row 2", "baseline"],
                 id="midas-only-baseline"),
    pytest.param({"m.csv": MIDAS_HEAD + "DA:Erk,DV:Erk\n1,1,0,-5,0.5\n"}, {}, "m.csv", ["row 2", "column 'DA:Erk'", "'-5'"],
                 id="midas-negative-time"),
    pytest.param({"d.csv": GOOD, "x.csv": "experiment,stimulus:EGF\ne1,1\ne2,1\n"},
                 {"experiments": "x.csv", "normalization": "fold_change"}, "d.csv",
                 ["key 'prepare.controls'", "all factor levels 0", "--controls EXPERIMENT", "prepare.controls)"],
                 id="fold-change-without-control"),
    pytest.param({"d.csv": GOOD}, {"normalization": "fold_change"}, "d.csv",
                 ["key 'prepare.controls'", "--controls EXPERIMENT", "config's prepare.controls"],
                 id="fold-change-without-experiment-table"),
    pytest.param({"d.csv": HEADER + "c,0,A,1\nc,10,A,0\nt,0,A,1\nt,10,A,2\n"},
                 {"normalization": "fold_change", "controls": ["c"]}, "d.csv",
                 ["key 'prepare.controls'", "'A' at time 10"],
                 id="fold-change-zero-control"),
]


@pytest.mark.parametrize(("files", "options", "culprit", "fragments"), CASES)
def test_bad_input_raises_data_error_naming_the_place_and_writes_nothing(tmp_path, files, options, culprit, fragments):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    options = {k: tmp_path / v if k in ("experiments", "pkn") else v for k, v in options.items()}
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DataError) as info:
        steps.prepare(data=tmp_path / next(iter(files)), **steps.in_folder(out, steps.files("prepare")), **options)
    message = str(info.value)
    assert message.startswith(str(tmp_path / culprit))
    for fragment in fragments:
        assert fragment in message
    assert "Traceback" not in message
    assert list(out.iterdir()) == []


def test_unknown_observables_warn_policy_logs_and_drops(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text(GOOD + "e1,0,Foo,1\ne2,0,Foo,2\n")
    with caplog.at_level(logging.WARNING, logger="qspflow.data"):
        prepared = prepare(path, known_nodes=["A"], unknown_observables="warn")
    assert any(r.name == "qspflow.data" and "Foo" in r.getMessage() for r in caplog.records)
    assert set(prepared.measurements["observable"]) == {"A"}
    assert len(prepared.measurements) == 4


def test_only_unknown_observables_is_an_error_even_when_warning(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(HEADER + "e1,0,Foo,1\n")
    with pytest.raises(DataError, match="column 'observable'"):
        prepare(path, known_nodes=["A"], unknown_observables="warn")


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        prepare(tmp_path / "absent.csv")


def test_midas_with_experiment_table_is_rejected(cases, tmp_path):
    table = tmp_path / "x.csv"
    table.write_text(EXPERIMENTS)
    with pytest.raises(DataError, match="MIDAS"):
        prepare(cases / "cellnopt_toy" / "ToyDataMMB.csv", experiments_path=table)
