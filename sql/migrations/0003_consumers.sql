-- 0003: the Kafka tables and every view, made anew in the order that loses nothing:
--   1. the tables views write into (kafka_errors is new), then the views that read
--      `events` (current servers), so that they exist before anything fills `events`;
--   2. the Kafka tables, with the times typed DateTime('UTC');
--   3. last, the views that read a Kafka table: each one starts consuming as it is made;
--   4. 18.16: the aggregates get from `events` what they missed while only some of the
--      views existed.
-- Broken records (current servers): kafka_handle_error_mode = 'stream' hands every
-- record that does not parse to the views with _error and _raw_message set instead of
-- skipping it in silence (kafka_skip_broken_messages did); the *_errors_mv views keep
-- them in kafka_errors (topic, partition, offset, error, raw, time) and the other views
-- skip them. 18.16 has no error mode and no virtual columns (_topic, _offset, ...): its
-- profile skips broken records (input_format_allow_errors_num), nothing can capture
-- them there, and kafka_errors stays empty.
-- The consumer groups are 0001's: each view resumes at its group's committed offsets,
-- so what was produced while the views were gone is read now. Safe to repeat: every
-- object is dropped if it exists and made again.

-- Stopping, as in 0002 (the views first; kafka_errors' views before the others: the
-- records read in between miss only kafka_errors).
DROP TABLE IF EXISTS events_db.enriched_events_errors_mv;
DROP TABLE IF EXISTS events_db.dlq_errors_mv;
DROP TABLE IF EXISTS events_db.country_event_averages_errors_mv;
DROP TABLE IF EXISTS events_db.events_mv;                                 -- @current
DROP TABLE IF EXISTS events_db.daily_active_users_mv;
DROP TABLE IF EXISTS events_db.country_minute_counts_mv;
DROP TABLE IF EXISTS events_db.events_mv;                                 -- @ch18
DROP TABLE IF EXISTS events_db.dlq_mv;
DROP TABLE IF EXISTS events_db.country_event_averages_mv;
DROP TABLE IF EXISTS events_db.enriched_events_queue;
DROP TABLE IF EXISTS events_db.dlq_queue;
DROP TABLE IF EXISTS events_db.country_event_averages_queue;

-- ---------------------------------------------------------------- 1. targets and their readers
-- Records of the three topics that ClickHouse could not parse (current servers). Kept
-- 30 days: they are for finding the writer that sent them, and the topic keeps them too.
CREATE TABLE IF NOT EXISTS events_db.kafka_errors
(
    topic     String,                                                     -- @ch18
    topic     LowCardinality(String),                                     -- @current
    partition Int32,
    offset    Int64,                                                      -- @ch18
    offset    Int64 CODEC(Delta, ZSTD(1)),                                -- @current
    error     String,                                                     -- @ch18
    error     String CODEC(ZSTD(1)),                                      -- @current
    raw       String,                                                     -- @ch18
    raw       String CODEC(ZSTD(3)),                                      -- @current
    time      DateTime('UTC')                                             -- @ch18
    time      DateTime('UTC') CODEC(Delta, ZSTD(1))                       -- @current
)
-- A record read twice (at-least-once) is one row after merges.
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (topic, partition, offset)
TTL time + INTERVAL 30 DAY;                                               -- @current
;                                                                         -- @ch18

-- Current servers fire a view for rows another view inserted: these read `events`, and
-- exist before events_mv fills it. (18.16 does not: there they read the Kafka table, below.)
CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.daily_active_users_mv TO events_db.daily_active_users_state AS -- @current
SELECT toDate(timestamp) AS event_date, country, uniqExactState(user_id) AS users -- @current
FROM events_db.events GROUP BY event_date, country;                      -- @current
CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.country_minute_counts_mv TO events_db.country_minute_counts AS -- @current
SELECT toStartOfMinute(timestamp) AS minute, country,                     -- @current
       uniqExactState(source_partition, source_offset) AS events, countState() AS delivered -- @current
FROM events_db.events GROUP BY minute, country;                           -- @current

-- The views that read the tables 0002 swapped, made again: a current server keeps a
-- view's column types from when it was made (DateTime without a zone, from 0001).
DROP TABLE IF EXISTS events_db.daily_active_users_final;
CREATE VIEW events_db.daily_active_users_final AS
SELECT event_date, country, toUInt32(uniqExactMerge(users)) AS dau
FROM events_db.daily_active_users_state
GROUP BY event_date, country;

DROP TABLE IF EXISTS events_db.country_event_averages;
CREATE VIEW events_db.country_event_averages AS
SELECT country, window_start, window_end, average_events, event_count
FROM events_db.country_event_averages_raw FINAL;

DROP TABLE IF EXISTS events_db.country_minute_counts_final;
CREATE VIEW events_db.country_minute_counts_final AS
SELECT minute, country, uniqExactMerge(events) AS event_count, countMerge(delivered) AS delivered_rows
FROM events_db.country_minute_counts
GROUP BY minute, country;

DROP TABLE IF EXISTS events_db.country_event_averages_ch;
CREATE VIEW events_db.country_event_averages_ch AS
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

-- ---------------------------------------------------------------- 2. Kafka tables
CREATE TABLE IF NOT EXISTS events_db.enriched_events_queue
(
    event_type       String,
    user_id          UInt64,
    page_url         String,
    button_id        String,
    timestamp        DateTime('UTC'),
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
    kafka_handle_error_mode = 'stream',                                   -- @current
    kafka_max_block_size = 500,                                           -- @ch18
    kafka_format = 'JSONEachRow';

CREATE TABLE IF NOT EXISTS events_db.dlq_queue
(
    code             String,
    message          String,
    stage            String,
    rejected_by      String,
    source_topic     String,
    source_partition Int32,
    source_offset    Int64,
    source_time      DateTime('UTC'),
    dlq_time         DateTime('UTC'),
    raw              String,
    raw_encoding     String
)
ENGINE = Kafka SETTINGS
    kafka_broker_list = '{{KAFKA_BROKERS}}',
    kafka_topic_list = 'dlq',
    kafka_group_name = 'clickhouse_dlq',
    kafka_handle_error_mode = 'stream',                                   -- @current
    kafka_max_block_size = 500,                                           -- @ch18
    kafka_format = 'JSONEachRow';

CREATE TABLE IF NOT EXISTS events_db.country_event_averages_queue
(
    country               String,
    window_start          DateTime('UTC'),
    window_end            DateTime('UTC'),
    average_events        Float64,
    event_count           UInt64,
    enriched_partition    Nullable(Int32),
    enriched_read_through Nullable(Int64)
)
ENGINE = Kafka SETTINGS
    kafka_broker_list = '{{KAFKA_BROKERS}}',
    kafka_topic_list = 'country_event_averages',
    kafka_group_name = 'clickhouse_averages',
    kafka_handle_error_mode = 'stream',                                   -- @current
    kafka_format = 'JSONEachRow';

-- ---------------------------------------------------------------- 3. the consumers, last
-- The views of one Kafka table are made one right after the other: its consumer starts
-- with the first, and joining its group takes seconds before the first block is read.
-- The view into the main table first: what is read before the next one exists then
-- misses only kafka_errors, or, on 18.16, the two aggregates, filled again at the end.
CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.events_mv TO events_db.events AS
SELECT event_type, user_id, page_url, button_id, timestamp, country,
       device_type, source_partition, source_offset, processed_by, extra
FROM events_db.enriched_events_queue
WHERE length(_error) = 0                                                  -- @current
;
CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.enriched_events_errors_mv TO events_db.kafka_errors AS -- @current
SELECT _topic AS topic, toInt32(_partition) AS partition, toInt64(_offset) AS offset, -- @current
       _error AS error, _raw_message AS raw, now('UTC') AS time                -- @current
FROM events_db.enriched_events_queue WHERE length(_error) > 0;            -- @current
-- 18.16: one more reader each of the Kafka table (see step 1 for current servers).
CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.daily_active_users_mv TO events_db.daily_active_users_state AS -- @ch18
SELECT toDate(timestamp) AS event_date, country, uniqExactState(user_id) AS users -- @ch18
FROM events_db.enriched_events_queue GROUP BY event_date, country;       -- @ch18
CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.country_minute_counts_mv TO events_db.country_minute_counts AS -- @ch18
SELECT toStartOfMinute(timestamp) AS minute, country,                     -- @ch18
       uniqExactState(source_partition, source_offset) AS events, countState() AS delivered -- @ch18
FROM events_db.enriched_events_queue GROUP BY minute, country;           -- @ch18

CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.dlq_mv TO events_db.dlq_table AS
SELECT code, message, stage, rejected_by, source_topic, source_partition, source_offset,
       source_time, dlq_time, raw, raw_encoding
FROM events_db.dlq_queue
WHERE length(_error) = 0                                                  -- @current
;
CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.dlq_errors_mv TO events_db.kafka_errors AS -- @current
SELECT _topic AS topic, toInt32(_partition) AS partition, toInt64(_offset) AS offset, -- @current
       _error AS error, _raw_message AS raw, now('UTC') AS time                -- @current
FROM events_db.dlq_queue WHERE length(_error) > 0;                        -- @current

CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.country_event_averages_mv TO events_db.country_event_averages_raw AS
SELECT country, window_start, window_end, average_events, event_count,
       enriched_partition, enriched_read_through,
       ifNull(toUInt64(enriched_read_through + 1), 0) AS version
FROM events_db.country_event_averages_queue
WHERE length(_error) = 0                                                  -- @current
;
CREATE MATERIALIZED VIEW IF NOT EXISTS events_db.country_event_averages_errors_mv TO events_db.kafka_errors AS -- @current
SELECT _topic AS topic, toInt32(_partition) AS partition, toInt64(_offset) AS offset, -- @current
       _error AS error, _raw_message AS raw, now('UTC') AS time                -- @current
FROM events_db.country_event_averages_queue WHERE length(_error) > 0;     -- @current

-- 18.16: the records read while only some of enriched_events_queue's views existed (here
-- and in 0002) are in `events`; the aggregates get them from there. uniqExact states
-- merge as sets, so what they had already is not counted twice; `delivered` (rows
-- delivered, re-deliveries included) is left as it was.
INSERT INTO events_db.daily_active_users_state (event_date, country, users)      -- @ch18
SELECT toDate(timestamp) AS event_date, country, uniqExactState(user_id) AS users -- @ch18
FROM events_db.events GROUP BY event_date, country;                               -- @ch18
INSERT INTO events_db.country_minute_counts (minute, country, events)             -- @ch18
SELECT toStartOfMinute(timestamp) AS minute, country,                             -- @ch18
       uniqExactState(source_partition, source_offset) AS events                  -- @ch18
FROM events_db.events GROUP BY minute, country;                                   -- @ch18
