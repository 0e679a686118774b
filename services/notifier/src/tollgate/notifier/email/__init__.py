"""Email: a durable queue of templated mails sent through Resend or written to files."""
