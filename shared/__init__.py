"""Contracts every Worklets service imports: messages, subjects, error codes, settings.

Nothing in this package does I/O or holds business logic.
"""
