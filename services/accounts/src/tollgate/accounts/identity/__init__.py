"""Identity: users, passwords, sessions (access + refresh tokens), password reset, TOTP."""
