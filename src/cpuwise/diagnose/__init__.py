"""Decide: pure rules over a Recording produce Findings with evidence and a fix."""
