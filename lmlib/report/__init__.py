"""The report: profiles (params/*.yaml), run comparison and analysis, notebook helpers, HTML, the papermill pipeline."""
