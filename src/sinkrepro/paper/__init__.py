"""Paper outputs: tables, claims and figures built from results/stats and results/dynamics."""
