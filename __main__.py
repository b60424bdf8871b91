"""Pulumi entry point: the whole program lives in providers.program (see its docstring)."""

from providers.program import main

main()
