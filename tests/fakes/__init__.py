"""Stand-ins for outside services that tests talk to over real HTTP on loopback."""
