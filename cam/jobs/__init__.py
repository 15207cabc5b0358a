"""Running jobs: execution ids, leases, the registry of jobs, q2 entry points and schedules."""
