"""Hotline: a call-center backend for Asterisk."""

__version__ = "0.1.0"
