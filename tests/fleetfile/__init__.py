"""Tests of lattigo_fleet.fleetfile: fleet.yaml → validated, normalised desired state."""
