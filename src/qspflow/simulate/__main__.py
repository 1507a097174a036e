"""`python -m qspflow.simulate`: compile the integrators into the default cache (`bin/setup` runs it)."""
from qspflow.simulate.compile import compile_integrators

compile_integrators()
