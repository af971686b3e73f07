# Compose service entry point: the steps of scripts/dashboard up, but the migrations and
# `superset init` run on every start, not only the first. The migrations and `superset init` (roles and permissions) are idempotent and bring an
# existing superset-home up to the installed Superset (a newer image, the same volume);
# the admin user is created once.
set -euo pipefail
mkdir -p "$STREAMHOST_SUPERSET_HOME"
first_start=0
[ -f "$STREAMHOST_SUPERSET_HOME/superset.db" ] || first_start=1
echo "superset entrypoint: superset db upgrade" >&2
superset db upgrade
if [ "$first_start" = 1 ]; then
  superset fab create-admin --username "${SUPERSET_USER:-admin}" --password "${SUPERSET_PASSWORD:-admin}" \
    --firstname streamhost --lastname admin --email admin@localhost
fi
superset init
python /app/bundle.py --database-uri "${STREAMHOST_CLICKHOUSE_URI}" --out /tmp/bundle.zip
superset import-dashboards -p /tmp/bundle.zip -u "${SUPERSET_USER:-admin}"
exec gunicorn --workers 2 --threads 4 --timeout 120 --bind 0.0.0.0:8088 "superset.app:create_app()"
