"""Rundfunk: broadcast channels with a clear hierarchy and private 1:1 conversations."""

__version__ = "0.1.0"
