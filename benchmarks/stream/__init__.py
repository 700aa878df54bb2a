"""The stream harness: ceilings, peers, the broker-alone probe, py-spy profiles, report."""
