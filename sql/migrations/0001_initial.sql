-- 0001: the schema as sql/schema.sql had it before migrations, statement for statement:
-- a volume made by that file is this migration applied (sql/migrate records it).
-- ONE source for both servers:
--   * lines ending in `-- @ch18`    are kept only for ClickHouse 18.16 (Debian's package, the local stack);
--   * lines ending in `-- @current` are kept only for a current ClickHouse (docker-compose);
--   * {{KAFKA_BROKERS}} is the broker list as ClickHouse sees it.
-- Every statement is idempotent (IF NOT EXISTS): applying twice changes nothing.
-- kafka_max_block_size on 18.16: its Kafka engine ends a block only when a poll comes
-- back empty or the block is full (65536 rows by default), so a steady stream stayed
-- invisible until it stopped (bench/tradeoff, docs/clickhouse.md).

CREATE DATABASE IF NOT EXISTS events_db;

-- ---------------------------------------------------------------- enriched events
-- Target first, then the Kafka table, then the view: the view starts consuming as soon
-- as it exists, so its target must already be there.
CREATE TABLE IF NOT EXISTS events_db.events
(
    event_type       String,                                  -- @ch18
    event_type       LowCardinality(String),                  -- @current
    user_id          UInt64,
    page_url         String,
    button_id        String,
    timestamp        DateTime,
    country          String,                                  -- @ch18
    country          LowCardinality(String),                  -- @current
    device_type      Nullable(String),
    source_partition Int32,
    source_offset    Int64,
    processed_by     String,
    -- The event's fields outside the schema (new producer fields, plugin additions) as
    -- one JSON object text: queryable at once with JSONExtract*, no migration needed.
    -- docs/clickhouse.md says how to promote one to a column of its own.
    extra            String
)
-- Re-deliveries (at-least-once) carry the same source position: they collapse on merge.
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toDate(timestamp), country, source_partition, source_offset);

CREATE TABLE IF NOT EXISTS events_db.enriched_events_queue
(
    event_type       String,
    user_id          UInt64,
    page_url         String,
    button_id        String,
    timestamp        DateTime,
    country          String,
    device_type      Nullable(String),
    source_partition Int32,
    source_offset    Int64,
    processed_by     String,
    extra            String
)
ENGINE = Kafka SETTINGS
    kafka_broker_list = '{{KAFKA_BROKERS}}',
    kafka_topic_list = 'enriched_events',
    kafka_group_name = 'clickhouse_events',
    kafka_skip_broken_messages = 1000,                        -- @current
    kafka_max_block_size = 500,                               -- @ch18
    kafka_format = 'JSONEachRow';

CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.events_mv TO events_db.events AS
SELECT event_type, user_id, page_url, button_id, timestamp, country,
       device_type, source_partition, source_offset, processed_by, extra
FROM events_db.enriched_events_queue;

-- ---------------------------------------------------------------- daily active users
-- The brief's count(DISTINCT user_id) per insert block overcounts a user seen in two
-- blocks. The state table keeps exact per-day sets (uniqExact states) that merge
-- correctly across blocks; daily_active_users_final reads them as the brief's columns.
CREATE TABLE IF NOT EXISTS events_db.daily_active_users_state
(
    event_date Date,
    country    String,
    users      AggregateFunction(uniqExact, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(event_date)
ORDER BY (event_date, country);

-- 18.16 does not fire a view for rows another view inserted, so there it reads the
-- Kafka table directly (same rows as events_mv sees); current servers read `events`.
CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.daily_active_users_mv TO events_db.daily_active_users_state AS
SELECT toDate(timestamp) AS event_date, country, uniqExactState(user_id) AS users
FROM events_db.enriched_events_queue                          -- @ch18
FROM events_db.events                                         -- @current
GROUP BY event_date, country;

CREATE VIEW IF NOT EXISTS events_db.daily_active_users_final AS
SELECT event_date, country, toUInt32(uniqExactMerge(users)) AS dau
FROM events_db.daily_active_users_state
GROUP BY event_date, country;

-- ---------------------------------------------------------------- dead-letter queue
CREATE TABLE IF NOT EXISTS events_db.dlq_table
(
    code             String,
    message          String,
    stage            String,
    rejected_by      String,
    source_topic     String,
    source_partition Int32,
    source_offset    Int64,
    source_time      DateTime,
    dlq_time         DateTime,
    raw              String,
    raw_encoding     String
)
-- One row per (source record, reason): re-deliveries collapse. Partitioned by the
-- source time, which a re-delivery shares (dlq_time it does not).
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(source_time)
ORDER BY (code, source_topic, source_partition, source_offset);

CREATE TABLE IF NOT EXISTS events_db.dlq_queue
(
    code             String,
    message          String,
    stage            String,
    rejected_by      String,
    source_topic     String,
    source_partition Int32,
    source_offset    Int64,
    source_time      DateTime,
    dlq_time         DateTime,
    raw              String,
    raw_encoding     String
)
ENGINE = Kafka SETTINGS
    kafka_broker_list = '{{KAFKA_BROKERS}}',
    kafka_topic_list = 'dlq',
    kafka_group_name = 'clickhouse_dlq',
    kafka_skip_broken_messages = 1000,                        -- @current
    kafka_max_block_size = 500,                               -- @ch18
    kafka_format = 'JSONEachRow';

CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.dlq_mv TO events_db.dlq_table AS
SELECT * FROM events_db.dlq_queue;

-- ---------------------------------------------------------------- window averages
CREATE TABLE IF NOT EXISTS events_db.country_event_averages_raw
(
    country        String,
    window_start   DateTime,
    window_end     DateTime,
    average_events Float64,
    event_count    UInt64
)
-- A window re-emitted after a restart replaces its row: (country, window_start) is its identity.
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(window_start)
ORDER BY (country, window_start);

CREATE TABLE IF NOT EXISTS events_db.country_event_averages_queue
(
    country        String,
    window_start   DateTime,
    window_end     DateTime,
    average_events Float64,
    event_count    UInt64
)
ENGINE = Kafka SETTINGS
    kafka_broker_list = '{{KAFKA_BROKERS}}',
    kafka_topic_list = 'country_event_averages',
    kafka_group_name = 'clickhouse_averages',
    kafka_skip_broken_messages = 1000,                        -- @current
    kafka_format = 'JSONEachRow';

CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.country_event_averages_mv TO events_db.country_event_averages_raw AS
SELECT * FROM events_db.country_event_averages_queue;

-- What dashboards read: one row per (country, window) even before merges ran.
CREATE VIEW IF NOT EXISTS events_db.country_event_averages AS
SELECT country, window_start, window_end, average_events, event_count
FROM events_db.country_event_averages_raw FINAL;

-- ---------------------------------------------------------------- window averages computed by ClickHouse
-- The host's windows (5 min, hopping by 1 min), computed inside ClickHouse instead: a
-- view fills one row per (country, minute) and insert block, merged into one per
-- (country, minute); country_event_averages_ch sums 5 consecutive minutes into each
-- window. `events` holds the distinct source positions (source_partition,
-- source_offset), so an event re-delivered after a host crash counts once (exact);
-- `delivered` counts every row delivered, as a SummingMergeTree of count() would.
-- Unlike the host's windows it counts late events too, and shows open windows.
-- Exactness has a price: a uniqExact state keeps a 128-bit hash per event (16 MB for a
-- day of 1,000,000 events, more than `events` itself: bench/tradeoff). On 18.16 this
-- view is one more reader of enriched_events_queue: a schema change that swaps that
-- table must drop and recreate it with events_mv and daily_active_users_mv.
CREATE TABLE IF NOT EXISTS events_db.country_minute_counts
(
    minute    DateTime,
    country   String,
    events    AggregateFunction(uniqExact, Int32, Int64),
    delivered AggregateFunction(count)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (minute, country);

-- As for daily_active_users_mv: the Kafka table on 18.16, `events` on current servers.
CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.country_minute_counts_mv TO events_db.country_minute_counts AS
SELECT toStartOfMinute(timestamp) AS minute, country,
       uniqExactState(source_partition, source_offset) AS events, countState() AS delivered
FROM events_db.enriched_events_queue                          -- @ch18
FROM events_db.events                                         -- @current
GROUP BY minute, country;

-- Per (country, minute): distinct events and delivered rows (they differ by the re-deliveries).
CREATE VIEW IF NOT EXISTS events_db.country_minute_counts_final AS
SELECT minute, country, uniqExactMerge(events) AS event_count, countMerge(delivered) AS delivered_rows
FROM events_db.country_minute_counts
GROUP BY minute, country;

-- The columns of country_event_averages: each window is the sum of its 5 minutes.
-- A dashboard query for a time range should filter `minute` in the innermost query
-- (18.16 does not push a filter on window_start into the view): bench/tradeoff has one.
CREATE VIEW IF NOT EXISTS events_db.country_event_averages_ch AS
SELECT country, window_start, window_start + 300 AS window_end,
       event_count / 5 AS average_events, event_count
FROM
(
    SELECT country, minute - arrayJoin([0, 60, 120, 180, 240]) AS window_start, sum(n) AS event_count
    FROM
    (
        SELECT minute, country, uniqExactMerge(events) AS n
        FROM events_db.country_minute_counts
        GROUP BY minute, country
    )
    GROUP BY country, window_start
);
