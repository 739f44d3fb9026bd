"""The simulated PBX: an AMI server faithful to Asterisk 22, driven by call scenarios."""
