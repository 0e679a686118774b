"""Print fresh secrets for docker-compose's `.env`: `python3 infra/compose_env.py > .env`.

Standard library only, so it runs before anything is installed. The sealing key is a
Fernet key (URL-safe base64 of 32 random bytes); the pepper keys the API key hashes.
Keep the file: new values make every issued API key and sealed secret unreadable.
"""

import base64
import os
import secrets

print(f"TOLLGATE_SEALING_KEYS={base64.urlsafe_b64encode(os.urandom(32)).decode()}")
print(f"TOLLGATE_KEY_PEPPER={secrets.token_urlsafe(32)}")
