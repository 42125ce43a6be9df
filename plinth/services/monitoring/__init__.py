"""Monitoring: collect interval profiles while serving, roll them up, report and alert."""
