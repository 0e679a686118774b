"""tollgate.kit: the shared runtime plumbing of every Tollgate service.

One place for each piece: settings (`settings`), database engine and sessions (`db`),
Alembic wiring (`migrations`), Kafka producer/broker factory and topic creation
(`kafka`), the transactional outbox (`outbox`), JWT verification (`auth`), sealing of
secrets that must travel between services (`sealing`), problem+json errors
(`problems`), JSON logging (`logs`), tracing (`telemetry`), Prometheus metrics
(`metrics`), the FastAPI app factory with health/readiness (`service`), the service
command line (`cli`), local dependency starters (`localdeps`) and the pytest harness
(`testing`). Services import from here and never from each other.
"""
