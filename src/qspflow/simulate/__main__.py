"""`python -m qspflow.simulate`: compile the integrators into the default cache (`bin/setup` runs it).

A cache that cannot be written is said in one line, with exit status 1: a workflow run then compiles them
where it can (the model's cache folder)."""
import sys

from qspflow.simulate.compile import compile_integrators, default_cache_dir

try:
    compile_integrators()
except OSError as error:
    sys.exit(f"qspflow.simulate: the integrators cannot be compiled into {default_cache_dir()}: {error}")
