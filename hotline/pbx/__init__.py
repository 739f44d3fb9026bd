"""The PBX adapter: AMI messages to domain events, domain commands to AMI actions."""
