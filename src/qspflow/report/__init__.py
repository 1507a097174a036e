"""Report notebooks: executing the parameterized notebooks of `notebooks/` with papermill into
byte-stable notebooks and self-contained HTML, and the tables the notebooks show."""
