"""One seam per task: each task module owns how outputs are decoded and scored and what its part
of the report says (``validate``, ``report_rows``, ``report_notes``, ``report_details``,
``console_lines``), so the pipeline and the reports ask the task instead of branching on it."""
