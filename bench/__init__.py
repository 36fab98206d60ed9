"""The benchmark behind `make bench` (figures go into the README, never into a test)."""
