"""The run doctor, inside the loop: preflight checks, live monitors, crash records, and the diagnosis of the finished
(or crashed) run. The commands built on runs (report, lr-find, overfit-batch, the suites) are ``trainwise.checkup``."""
