"""Analytics API: summary, time series, top-N, errors, per-key stats, live stream."""
