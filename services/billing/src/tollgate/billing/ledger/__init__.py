"""The credit ledger: debits from the request stream, top-ups and adjustments."""
