"""Linearizing one conversation of each export dialect into its visible messages."""
