"""The run doctor: preflight checks, live monitors, and a diagnosis of the finished (or crashed) run."""
