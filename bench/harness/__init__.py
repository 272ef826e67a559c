"""The parts of bench/run: workloads, the comparison servers' nginx configuration, wrk, the report."""
