"""Models that cannot be integrated from their start are refused with the state named."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy

from qspflow.errors import ModelError
from qspflow.model import OdeModel, Parameter, symbol
from qspflow.model.sbml import read_sbml

SBML = """<?xml version="1.0" encoding="UTF-8"?>
<sbml xmlns="http://www.sbml.org/sbml/level3/version2/core" level="3" version="2">
  <model id="m">
    <listOfCompartments><compartment id="cell" size="1" constant="true"/></listOfCompartments>
    <listOfSpecies>
      <species id="S" compartment="cell" initialConcentration="{s0}" hasOnlySubstanceUnits="false"
               boundaryCondition="false" constant="false"/>
    </listOfSpecies>
    <listOfParameters><parameter id="k" value="1" constant="true"/></listOfParameters>
    <listOfReactions>
      <reaction id="r" reversible="false">
        <listOfReactants><speciesReference species="S" stoichiometry="1" constant="true"/></listOfReactants>
        <kineticLaw><math xmlns="http://www.w3.org/1998/Math/MathML">
          <apply><divide/><ci>k</ci><ci>S</ci></apply></math></kineticLaw>
      </reaction>
    </listOfReactions>
  </model>
</sbml>
"""


def test_negative_initial_concentration_names_the_species(tmp_path: Path) -> None:
    path = tmp_path / "negative.xml"
    path.write_text(SBML.format(s0="-0.5"))
    with pytest.raises(ModelError, match=r"negative.xml, element 'S'.*negative initial value") as err:
        read_sbml(path)
    assert "-0.5" in str(err.value)


def test_division_by_zero_at_time_zero_names_the_state(tmp_path: Path) -> None:
    path = tmp_path / "divide.xml"
    path.write_text(SBML.format(s0="0"))
    model = read_sbml(path)
    with pytest.raises(ModelError, match=r"divide.xml, element 'S': expected a finite rate of change at t = 0"):
        model.check_start(source=str(path))
    path.write_text(SBML.format(s0="2"))
    read_sbml(path).check_start()  # finite at a positive start


def test_check_start_uses_the_given_parameter_values() -> None:
    k = symbol("k")
    model = OdeModel("m", ["x"], {"k": Parameter("k", 1.0)}, {"x": 1 / k}, {"x": sympy.Integer(1)})
    model.check_start()
    with pytest.raises(ModelError, match="element 'x'"):
        model.check_start({"k": 0.0})
