-- @applied-if: SELECT count() FROM system.tables WHERE database = 'events_db' AND name = 'events_0001'
-- 0002: the five tables the views fill, rebuilt in a new layout and their rows copied:
--   * every stored time is DateTime('UTC'): the host writes UTC text, and a DateTime
--     without a zone would parse it in the server's zone (the same text, another instant);
--   * partitions by year, times before 2010 in 2010's: at most 97 partitions for any
--     time the host accepts (1970-2106), under a current server's limit of 100 per
--     insert block (max_partitions_per_insert_block): an insert over more fails, and a
--     Kafka table would retry its block for ever. Monthly partitions broke on a block
--     spanning 101 months;
--   * country_event_averages_raw: ReplacingMergeTree(version), version from the host's
--     enriched_read_through: of two emissions of a window, the one that had read
--     further wins, whatever order they arrive in;
--   * events and dlq_table: the time of the record joins the identity, so a recreated
--     topic's record at an old (partition, offset) does not replace the old row;
--   * current servers: LowCardinality for the few-valued strings, codecs (Delta or
--     DoubleDelta + ZSTD on times and offsets, ZSTD on text). 18.16 has no CODEC clause,
--     and LowCardinality is experimental there: those lines are tagged @current.
-- Only the columns' types change, so old rows are copied as they are (a DateTime holds
-- seconds since the epoch, the zone is only how it reads). The old tables stay, renamed
-- <name>_0001, until someone drops them. Consuming stops first (the consumer groups
-- keep their offsets at the broker) and starts again in 0003.
-- Safe to repeat: the new tables are made anew before each copy, and the one RENAME at
-- the end swaps them all; once it has run, the @applied-if above sees <name>_0001.
-- An `events` with columns outside 0001's (added by hand) fails the copy: nothing moves.

-- Stop consuming, views before their Kafka tables (18.16 aborts when a Kafka table is
-- dropped or detached with views still reading it). A Kafka table goes on reading, and
-- committing, for the views left, so the order decides what misses the records read
-- in between: on current servers events_mv first (the others read `events`); on 18.16,
-- where all three read the Kafka table, events_mv last, and 0003 fills the two others
-- again from `events`.
DROP TABLE IF EXISTS events_db.events_mv;                                 -- @current
DROP TABLE IF EXISTS events_db.daily_active_users_mv;
DROP TABLE IF EXISTS events_db.country_minute_counts_mv;
DROP TABLE IF EXISTS events_db.events_mv;                                 -- @ch18
DROP TABLE IF EXISTS events_db.dlq_mv;
DROP TABLE IF EXISTS events_db.country_event_averages_mv;
DROP TABLE IF EXISTS events_db.enriched_events_queue;
DROP TABLE IF EXISTS events_db.dlq_queue;
DROP TABLE IF EXISTS events_db.country_event_averages_queue;

-- ---------------------------------------------------------------- events
DROP TABLE IF EXISTS events_db.events_0002;
CREATE TABLE events_db.events_0002
(
    event_type       String,                                              -- @ch18
    event_type       LowCardinality(String),                              -- @current
    user_id          UInt64,
    page_url         String,                                              -- @ch18
    page_url         String CODEC(ZSTD(1)),                               -- @current
    button_id        String,                                              -- @ch18
    button_id        String CODEC(ZSTD(1)),                               -- @current
    timestamp        DateTime('UTC'),                                     -- @ch18
    timestamp        DateTime('UTC') CODEC(Delta, ZSTD(1)),               -- @current
    country          String,                                              -- @ch18
    country          LowCardinality(String),                              -- @current
    device_type      Nullable(String),                                    -- @ch18
    device_type      LowCardinality(Nullable(String)),                    -- @current
    source_partition Int32,
    source_offset    Int64,                                               -- @ch18
    source_offset    Int64 CODEC(Delta, ZSTD(1)),                         -- @current
    processed_by     String,                                              -- @ch18
    processed_by     LowCardinality(String),                              -- @current
    extra            String                                               -- @ch18
    extra            String CODEC(ZSTD(3))                                -- @current
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYear(greatest(timestamp, toDateTime('2010-01-01 00:00:00', 'UTC')))
ORDER BY (toDate(timestamp), country, source_partition, source_offset, timestamp);

INSERT INTO events_db.events_0002
    (event_type, user_id, page_url, button_id, timestamp, country, device_type,
     source_partition, source_offset, processed_by, extra)
SELECT * FROM events_db.events;

-- ---------------------------------------------------------------- daily active users
DROP TABLE IF EXISTS events_db.daily_active_users_state_0002;
CREATE TABLE events_db.daily_active_users_state_0002
(
    event_date Date,
    country    String,                                                    -- @ch18
    country    LowCardinality(String),                                    -- @current
    users      AggregateFunction(uniqExact, UInt64)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYear(greatest(event_date, toDate('2010-01-01')))
ORDER BY (event_date, country);

INSERT INTO events_db.daily_active_users_state_0002 (event_date, country, users)
SELECT * FROM events_db.daily_active_users_state;

-- ---------------------------------------------------------------- dead-letter queue
DROP TABLE IF EXISTS events_db.dlq_table_0002;
CREATE TABLE events_db.dlq_table_0002
(
    code             String,                                              -- @ch18
    code             LowCardinality(String),                              -- @current
    message          String,                                              -- @ch18
    message          String CODEC(ZSTD(1)),                               -- @current
    stage            String,                                              -- @ch18
    stage            LowCardinality(String),                              -- @current
    rejected_by      String,                                              -- @ch18
    rejected_by      LowCardinality(String),                              -- @current
    source_topic     String,                                              -- @ch18
    source_topic     LowCardinality(String),                              -- @current
    source_partition Int32,
    source_offset    Int64,                                               -- @ch18
    source_offset    Int64 CODEC(Delta, ZSTD(1)),                         -- @current
    source_time      DateTime('UTC'),                                     -- @ch18
    source_time      DateTime('UTC') CODEC(Delta, ZSTD(1)),               -- @current
    dlq_time         DateTime('UTC'),                                     -- @ch18
    dlq_time         DateTime('UTC') CODEC(Delta, ZSTD(1)),               -- @current
    raw              String,                                              -- @ch18
    raw              String CODEC(ZSTD(3)),                               -- @current
    raw_encoding     String                                               -- @ch18
    raw_encoding     LowCardinality(String)                               -- @current
)
-- One row per (source record, reason): re-deliveries collapse. source_time (the source
-- record's Kafka timestamp) tells a recreated topic's record from an old one at the
-- same position; a re-delivery shares it (dlq_time it does not).
ENGINE = ReplacingMergeTree()
PARTITION BY toYear(greatest(source_time, toDateTime('2010-01-01 00:00:00', 'UTC')))
ORDER BY (code, source_topic, source_partition, source_offset, source_time);

INSERT INTO events_db.dlq_table_0002
    (code, message, stage, rejected_by, source_topic, source_partition, source_offset,
     source_time, dlq_time, raw, raw_encoding)
SELECT * FROM events_db.dlq_table;

-- ---------------------------------------------------------------- window averages
DROP TABLE IF EXISTS events_db.country_event_averages_raw_0002;
CREATE TABLE events_db.country_event_averages_raw_0002
(
    country               String,                                         -- @ch18
    country               LowCardinality(String),                         -- @current
    window_start          DateTime('UTC'),                                -- @ch18
    window_start          DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),    -- @current
    window_end            DateTime('UTC'),                                -- @ch18
    window_end            DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),    -- @current
    average_events        Float64,
    event_count           UInt64,
    -- What the host had read of enriched_events when the window closed (NULL: a host
    -- that did not say, or a row from before 0002).
    enriched_partition    Nullable(Int32),
    enriched_read_through Nullable(Int64),
    -- enriched_read_through + 1, 0 without it: the row that had read furthest wins.
    version               UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYear(greatest(window_start, toDateTime('2010-01-01 00:00:00', 'UTC')))
ORDER BY (country, window_start);

INSERT INTO events_db.country_event_averages_raw_0002
    (country, window_start, window_end, average_events, event_count)
SELECT * FROM events_db.country_event_averages_raw;

-- ---------------------------------------------------------------- ClickHouse's windows
DROP TABLE IF EXISTS events_db.country_minute_counts_0002;
CREATE TABLE events_db.country_minute_counts_0002
(
    minute    DateTime('UTC'),                                            -- @ch18
    minute    DateTime('UTC') CODEC(DoubleDelta, ZSTD(1)),                -- @current
    country   String,                                                     -- @ch18
    country   LowCardinality(String),                                     -- @current
    events    AggregateFunction(uniqExact, Int32, Int64),
    delivered AggregateFunction(count)
)
ENGINE = AggregatingMergeTree()
PARTITION BY toYear(greatest(minute, toDateTime('2010-01-01 00:00:00', 'UTC')))
ORDER BY (minute, country);

INSERT INTO events_db.country_minute_counts_0002 (minute, country, events, delivered)
SELECT * FROM events_db.country_minute_counts;

-- ---------------------------------------------------------------- the swap, in one statement
RENAME TABLE
    events_db.events TO events_db.events_0001,
    events_db.events_0002 TO events_db.events,
    events_db.daily_active_users_state TO events_db.daily_active_users_state_0001,
    events_db.daily_active_users_state_0002 TO events_db.daily_active_users_state,
    events_db.dlq_table TO events_db.dlq_table_0001,
    events_db.dlq_table_0002 TO events_db.dlq_table,
    events_db.country_event_averages_raw TO events_db.country_event_averages_raw_0001,
    events_db.country_event_averages_raw_0002 TO events_db.country_event_averages_raw,
    events_db.country_minute_counts TO events_db.country_minute_counts_0001,
    events_db.country_minute_counts_0002 TO events_db.country_minute_counts;
