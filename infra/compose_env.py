"""Print the `.env` docker-compose reads: `python3 infra/compose_env.py > .env`.

Standard library only, so it runs before anything is installed. Always fresh secrets: the
sealing key is a Fernet key (URL-safe base64 of 32 random bytes), the pepper keys the API
key hashes, the identity secret signs the caller headers the gateway sends upstream, the
proxy secret proves the console to accounts. Keep
the file: new values make every issued API key and sealed secret unreadable.

Optional settings are taken from this script's own environment and written through:

    RESEND_API_KEY=re_...           email through Resend (else the `log` backend)
    TOLLGATE_ADMIN_EMAIL=you@...    first platform admin; TOLLGATE_ADMIN_PASSWORD or a
                                    generated one (printed on stderr)
    TOLLGATE_CONSOLE_URL, TOLLGATE_OTLP_ENDPOINT, TOLLGATE_EMAIL_FROM,
    TOLLGATE_SMS_PUBLIC_URL, TOLLGATE_SMS_TWILIO_AUTH_TOKEN, TOLLGATE_SMS_HMAC_SECRET
    TOLLGATE_STRIPE_SECRET_KEY=sk_..., TOLLGATE_STRIPE_WEBHOOK_SECRET=whsec_...
                                    card payments through Stripe (else billing's `manual`
                                    provider); Stripe's webhook endpoint for it is
                                    https://<billing>/v1/payments/stripe/webhook
"""

import base64
import os
import secrets
import sys

PASSED_THROUGH = (
    "TOLLGATE_CONSOLE_URL",
    "TOLLGATE_STRIPE_SECRET_KEY",
    "TOLLGATE_STRIPE_WEBHOOK_SECRET",
    "TOLLGATE_OTLP_ENDPOINT",
    "TOLLGATE_EMAIL_FROM",
    "TOLLGATE_SMS_PUBLIC_URL",
    "TOLLGATE_SMS_TWILIO_AUTH_TOKEN",
    "TOLLGATE_SMS_HMAC_SECRET",
)


def main() -> None:
    print(f"TOLLGATE_SEALING_KEYS={base64.urlsafe_b64encode(os.urandom(32)).decode()}")
    print(f"TOLLGATE_KEY_PEPPER={secrets.token_urlsafe(32)}")
    # Fernet key sealing the console's session cookies (sessions survive restarts).
    print(f"TOLLGATE_SESSION_KEYS={base64.urlsafe_b64encode(os.urandom(32)).decode()}")
    # HMAC key of the caller identity headers the gateway signs and upstreams (the
    # notifier's SMS API) verify.
    print(f"TOLLGATE_IDENTITY_SECRETS={secrets.token_urlsafe(32)}")
    # The console's proof to accounts that the visitor addresses it passes on are true.
    print(f"TOLLGATE_PROXY_SECRET={secrets.token_urlsafe(32)}")

    # Compose cannot choose a value by whether another one is set, so the choice is made here.
    resend_key = os.environ.get("RESEND_API_KEY", "")
    print(f"TOLLGATE_EMAIL_BACKEND={'resend' if resend_key else 'log'}")
    if resend_key:
        print(f"RESEND_API_KEY={resend_key}")

    admin_email = os.environ.get("TOLLGATE_ADMIN_EMAIL", "")
    if admin_email:
        password = os.environ.get("TOLLGATE_ADMIN_PASSWORD") or secrets.token_urlsafe(18)
        print(f"TOLLGATE_ADMIN_EMAIL={admin_email}")
        print(f"TOLLGATE_ADMIN_PASSWORD={password}")
        if "TOLLGATE_ADMIN_PASSWORD" not in os.environ:
            print(f"first admin: {admin_email} / {password}", file=sys.stderr)

    for name in PASSED_THROUGH:
        if os.environ.get(name):
            print(f"{name}={os.environ[name]}")


if __name__ == "__main__":
    main()
