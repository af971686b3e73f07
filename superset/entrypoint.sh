# Compose service entry point: the same steps as scripts/dashboard up.
set -euo pipefail
mkdir -p "$STREAMHOST_SUPERSET_HOME"
if [ ! -f "$STREAMHOST_SUPERSET_HOME/superset.db" ]; then
  superset db upgrade
  superset fab create-admin --username "${SUPERSET_USER:-admin}" --password "${SUPERSET_PASSWORD:-admin}" \
    --firstname streamhost --lastname admin --email admin@localhost
  superset init
fi
python /app/bundle.py --database-uri "${STREAMHOST_CLICKHOUSE_URI}" --out /tmp/bundle.zip
superset import-dashboards -p /tmp/bundle.zip -u "${SUPERSET_USER:-admin}"
exec gunicorn --workers 2 --threads 4 --timeout 120 --bind 0.0.0.0:8088 "superset.app:create_app()"
