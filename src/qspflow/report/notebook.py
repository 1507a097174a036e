"""Running a report notebook: papermill into a byte-stable notebook and a self-contained HTML page.

papermill records when and where a notebook ran (start and end times, durations, the absolute input
and output paths, a random id for the injected-parameters cell) and the kernel stamps every cell
with execution times; nbconvert's stock HTML loads require.js, MathJax and Mermaid from CDNs.
`run_notebook` removes all of that, so the same inputs give the same bytes and a report opens
offline without a single network request (the `qspflow` template in `templates/`: JupyterLab's
page without those scripts; CSS and images are inline).

The kernel is ipykernel in this interpreter, whatever `python3` kernelspec happens to be installed,
started with a fixed hash seed (no set or dict order can differ between runs) and without the
working directory on `sys.path`. A matplotlib `Figure` that a cell returns is shown as PNG at `DPI`
without a software tag (the inline backend, set up at kernel start, so the object API is enough).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import nbformat
import papermill
from ipykernel.kernelspec import RESOURCES, get_kernel_dict
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbconvert import HTMLExporter
from papermill.exceptions import PapermillExecutionError, strip_color

from qspflow.errors import QspflowError
from qspflow.io import output_file

PathLike = str | os.PathLike[str]

DPI = 100  # as qspflow.plots.DPI (not imported: the engine itself does not need matplotlib)
KERNEL_ARGUMENTS = [
    "--IPKernelApp.matplotlib=inline",
    "--InlineBackend.figure_formats={'png'}",
    f"--InlineBackend.print_figure_kwargs={{'dpi': {DPI}, 'bbox_inches': 'tight', 'metadata': {{'Software': None}}}}",
    "--IPKernelApp.log_level=ERROR",  # not ipykernel's warning about unencrypted localhost TCP in every rule log
]
KERNEL_ENV = {"PYTHONHASHSEED": "0"}
TEMPLATES = Path(__file__).parent / "templates"
#: what is kept of papermill's notebook metadata: the parameters, not the times and paths of the run
PAPERMILL_METADATA = ("default_parameters", "parameters", "version")


class _Kernel(AsyncKernelManager):
    """ipykernel run by this interpreter (`-P`: the working directory is not importable), with
    `KERNEL_ARGUMENTS` and `KERNEL_ENV`."""

    @property
    def kernel_spec(self) -> KernelSpec:
        spec = get_kernel_dict(extra_arguments=KERNEL_ARGUMENTS, python_arguments=["-P"])
        return KernelSpec(resource_dir=RESOURCES, env=KERNEL_ENV, **spec)


def run_notebook(notebook: PathLike, parameters: Mapping[str, object], ipynb: PathLike, html: PathLike, *,
                 cwd: PathLike, title: str) -> None:
    """Execute `notebook` in folder `cwd` with `parameters` injected (papermill), and write the
    executed notebook to `ipynb` and its HTML page, titled `title`, to `html`.

    Both files are byte-stable and written only once every cell has run, so a failure leaves no
    report behind; a failing cell raises `QspflowError` naming the notebook, the cell and its error.
    """
    source = Path(notebook).resolve()  # papermill runs inside `cwd`
    if not source.is_file():
        raise QspflowError(notebook, expected="a report notebook", message="file not found")
    try:
        executed = papermill.execute_notebook(source, None, parameters=dict(parameters), kernel_name="python3",
                                              progress_bar=False, log_output=False, cwd=cwd,
                                              kernel_manager_class=_Kernel,
                                              shutdown_kernel="immediate")  # every output is in: no graceful wait
    except PapermillExecutionError as err:
        raise QspflowError(notebook, message=cell_failure(err, nbformat.read(source, as_version=4).cells)) from None
    executed.metadata["title"] = title
    normalize(executed)
    page = html_page(executed)
    with output_file(ipynb) as staged_ipynb, output_file(html) as staged_html:
        nbformat.write(executed, staged_ipynb)
        staged_html.write_text(page, encoding="utf-8")


def cell_failure(err: PapermillExecutionError, cells: list[nbformat.NotebookNode]) -> str:
    """Which cell of the notebook (`cells`: as written, before papermill injected the parameters)
    failed, on which of its lines, with what error: one line, no traceback."""
    position = next((k for k in (err.cell_index, err.cell_index - 1)  # after the injected cell: one less
                     if 0 <= k < len(cells) and cells[k].source == err.source), None)
    where = f"cell {position + 1}" if position is not None else f"cell In [{err.exec_count}]"
    frame = re.search(rf"^Cell In\[{err.exec_count}\], line (\d+)", strip_color("\n".join(err.traceback)), re.M)
    lines = err.source.splitlines()
    if frame and 0 < int(frame.group(1)) <= len(lines):
        where += f", line {frame.group(1)} `{lines[int(frame.group(1)) - 1].strip()}`"
    return f"{where} failed: {err.ename}: {err.evalue}"


def normalize(nb: nbformat.NotebookNode) -> None:
    """Remove from `nb` what differs between runs of the same notebook: papermill's times,
    durations and paths, the kernel's per-cell timestamps; each cell's id becomes its position."""
    kept = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {key: kept[key] for key in PAPERMILL_METADATA if key in kept}
    nb.nbformat_minor = max(nb.nbformat_minor, 5)  # the first minor version with cell ids
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)


def html_page(nb: nbformat.NotebookNode) -> str:
    """The notebook as one self-contained HTML page (the `qspflow` template: no scripts from a
    CDN, CSS and PNGs inline), titled by its `title` metadata, without In/Out prompts."""
    exporter = HTMLExporter(template_name="qspflow", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input_prompt=True, exclude_output_prompt=True)
    page, _ = exporter.from_notebook_node(nb)
    return page
