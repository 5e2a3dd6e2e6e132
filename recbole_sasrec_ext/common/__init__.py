"""The ground floor: errors, exit codes, paths, atomic writes, strict yaml, command-line helpers.

Nothing here imports torch, RecBole or another floor of the package.
"""
