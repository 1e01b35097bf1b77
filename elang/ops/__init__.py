"""Operating a server: the launcher, the deep health check, the supervisor that heals, the chart's prepare step."""
