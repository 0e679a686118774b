"""Monthly statements: opening balance, credits in, usage by API, closing balance."""
