"""Figures and the readable results report."""
