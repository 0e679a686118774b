"""Test support for Tollgate: the pytest harness and helpers tests import.

The fixtures (real Kafka-protocol broker, Postgres, Redis; see `plugin` for where each
comes from) are provided by the pytest plugin registered as the `tollgate` entry point,
so tests just name them. Plain helpers live here for direct import:

    from tollgate.kit.testing import unique_name

Helpers with dependencies of their own are imported from their modules, so loading
the plugin stays cheap: `tokens` (access tokens), `polling` (`eventually`) and `fuzz`
(the schemathesis loop over a service's OpenAPI document).
"""

from tollgate.kit.testing.plugin import BrokerControl, DependencySource, Harness, unique_name

__all__ = ["BrokerControl", "DependencySource", "Harness", "unique_name"]
