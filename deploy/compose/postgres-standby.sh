#!/usr/bin/env bash
# The standby's entrypoint: on first start a copy of the primary (pg_basebackup, which also
# writes the settings to follow it), then PostgreSQL as a hot standby answering reads.
set -euo pipefail
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    export PGPASSWORD="$REPLICATION_PASSWORD"
    until pg_basebackup --host="$PRIMARY_HOST" --username=replicator --pgdata="$PGDATA" \
        --write-recovery-conf --wal-method=stream --checkpoint=fast; do
        echo "the primary is not ready for a base backup yet; trying again in 2 s" >&2
        find "$PGDATA" -mindepth 1 -delete
        sleep 2
    done
    chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c hot_standby_feedback=on
