"""Pure complaint rules: the lifecycle transition table and replay, the SLA clock."""
