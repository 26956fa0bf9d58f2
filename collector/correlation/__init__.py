"""Correlation of container visits with customs declarations: a pure core and its shell."""
