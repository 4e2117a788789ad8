"""The notebook face: the kernel side the notebooks call, and the batch runner (papermill) that executes them.

Nothing is re-exported here: import each name from its module (importing this package stays free, which
matters in every notebook kernel).

session: what the notebooks import. `open_session(...)` builds the settings from the settings file +
environment + the notebook's parameters, anchors relative paths (the settings' and the path parameters') to
the project folder without changing the working directory, shares one memoised embedding model per kernel
(`shared_embedder`) and hands the notebook's result to the runner (`NotebookSession.report`);
`notebook_settings()` gives the settings alone; `find_project_root()` finds the project (the runner's
`project_root` parameter, else $AXIOM_PROJECT_ROOT, else the parents of the working folder), `settings_file()`
the settings file, `in_project()` resolves a path parameter.

markup: what the notebooks show as Markdown, with outside text escaped: `markdown_text` (a value as literal
text in a Markdown paragraph) and `answer_markdown` (02_query's answer view). Tables are DataFrames, whose
HTML escapes.

parameter_table: every notebook parameter, declared once (`PARAMETERS`): the settings field it overrides,
whether it names a path, decides a collection's content or is set by the runner; the notebooks' parameters
cells and the session's keywords are checked against it, the session, the runner and the sweep read it.
The runner gives every notebook the `project_root` and `config` parameters (the project folder and the
command's settings file).

parameters: notebook parameters as the commands take them: `parse_value` (`-p KEY VALUE`), `load_params_file`
(`--params`), `absolute_paths` (the table's path parameters against the working directory).

kernel: `WarmKernel`, one `python3` kernel kept alive across notebooks (preloading what they import).

engine: the only module that imports papermill. It registers the warm-kernel papermill engine at import,
executes one notebook (`execute_notebook`, a failure becomes a NotebookError naming the cell) and reads a
notebook's declared parameters (`notebook_parameters`).

report_html: `render_html`, the executed evaluation notebook as `report.html` (no code cells).

runner: `run_notebooks`, the orchestrator behind `axiom notebooks run` and `axiom sweep`: resolves the
notebooks, runs them in order in a warm kernel, and moves the executed notebooks and the HTML report into the
evaluation's run folder (`NotebookRun`); `resolve_notebook` serves the sweep. Folder names (the runner's, the
sweep's, a run's) come from `axiom.evaluation.naming`.
"""
