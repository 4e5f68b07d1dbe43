"""Rollouts: a pure state machine, and the controller loop that wires it to the world."""
