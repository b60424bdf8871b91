"""Pulumi entry point: the whole program lives in lattigo_fleet.program (see its docstring)."""

from lattigo_fleet.program import main

main()
