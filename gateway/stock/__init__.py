"""Stock intelligence (issue 16): history from counts and receipts, demand, forecasts."""
