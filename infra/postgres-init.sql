-- One database per service (docker-compose only; `make up` creates them itself).
CREATE DATABASE tollgate_accounts;
CREATE DATABASE tollgate_usage;
CREATE DATABASE tollgate_billing;
CREATE DATABASE tollgate_notifier;
