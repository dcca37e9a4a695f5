"""Sweep results: load (`results`), Pareto fronts and hypervolume (`pareto`), plots (`plots`),
the report (`report`: `write_report`, `report_command`) and the paper's table (`paper_results`,
`compare`). Reads only stored results (Parquet, MLflow): no Ray, Optuna or training here."""
