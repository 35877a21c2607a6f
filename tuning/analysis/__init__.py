"""Reading finished sweeps: the best trial per method, confirmation on test, tables and plots (runs no sweep)."""
