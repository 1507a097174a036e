"""The blocks of real PEtab problems (`CalibrationSpec.blocks`): the estimated parameters of each state's
equation, which basin hopping draws anew together."""

from __future__ import annotations

from qspflow.calibrate.spec import CalibrationSpec
from qspflow.petab import load_problem


def test_weber_blocks_are_its_three_modules_states(cases):
    spec = CalibrationSpec(load_problem(cases / "petab-collection" / "Weber_BMC2015" / "Weber_BMC2015.yaml"))
    blocks = [sorted(spec.names[i] for i in block) for block in spec.blocks]
    # PKD, PKDDAGa, PI4K3B, PI4K3Ba, CERTERa, CERT, CERTTGNa: the scales and σ are in no state's equation
    assert blocks == [
        ["a11", "m11", "m31", "p11", "p12", "p13", "p31", "pu5", "pu6", "s12"],
        ["a12", "m11", "m31", "p11", "p12", "p13", "p31", "pu5", "pu6"],
        ["a21", "m22", "p21", "p22", "pu3", "s21"],
        ["a22", "m22", "p21", "p22"],
        ["a31", "m31", "p31", "p32", "pu4", "s31"],
        ["a32", "m33", "p32", "p33"],
        ["a33", "m31", "m33", "p31", "p33"],
    ]
