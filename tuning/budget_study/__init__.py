"""The budget study: a grid of arm x seed trials at fixed label budgets, its statistics, report and plots."""
