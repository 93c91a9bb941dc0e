#!/usr/bin/env bash
# Runs once, when the primary's data directory is first initialised (the official image's
# /docker-entrypoint-initdb.d): the role the standby replicates with, allowed to connect for
# replication with its password from REPLICATION_PASSWORD, and the schema registry's database.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set password="$REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'password';
CREATE DATABASE registry;
SQL
echo "host replication replicator all scram-sha-256" >>"$PGDATA/pg_hba.conf"
