"""Checkups built on the training code and on finished runs: the HTML report, the lr range test, overfit-one-batch,
and the doctor's test suites of deliberately broken runs. (What runs inside the loop — preflight, monitors, the
diagnosis, crash records — is ``trainwise.doctor``.)"""
