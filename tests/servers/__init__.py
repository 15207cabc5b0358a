"""Real servers on loopback that tests talk to in place of the outside world."""
