"""Messenger channels: one package per messenger behind the ``Channel`` protocol."""
