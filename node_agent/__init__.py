"""The fogd node agent: synthetic telemetry for one node, delivered without loss."""
