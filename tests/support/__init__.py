"""Harnesses shared by several test kinds."""
