"""Probes: what the harness measures inside the testbed.

sampler (MemAvailable, PSI, vmstat at >= 50 Hz), tracing (tracefs events:
signals, OOM kills, exits, direct reclaim), attribution (who killed whom),
bystander (a heartbeat workload that must survive).
"""
