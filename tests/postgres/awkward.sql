-- Every kind of value and object a PostgreSQL copy must bring back exactly.
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy', 'über');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TYPE pair AS (a integer, b text);
CREATE ROLE reader_role NOLOGIN;

CREATE TABLE awkward (
    id bigserial PRIMARY KEY,
    b bytea,
    j jsonb,
    js json,
    ints integer[],
    texts text[],
    grid integer[][],
    n numeric(30, 10),
    nn numeric,
    f8 double precision,
    f4 real,
    ts timestamptz,
    t timestamp,
    d date,
    tm time,
    ttz timetz,
    iv interval,
    m mood,
    p posint,
    c pair,
    cs pair[],
    txt text,
    vc varchar(20),
    ch char(5),
    u uuid,
    ip inet,
    net cidr,
    mac macaddr,
    bits bit varying(20),
    r int4range,
    tsr tstzrange,
    pt point,
    cash money,
    x xml,
    ok boolean,
    doubled integer GENERATED ALWAYS AS (p * 2) STORED
);
GRANT SELECT ON awkward TO reader_role;
COMMENT ON TABLE awkward IS 'a comment with ''quotes'' and a
newline';

INSERT INTO awkward (b, j, js, ints, texts, grid, n, nn, f8, f4, ts, t, d, tm, ttz, iv, m, p, c, cs,
                     txt, vc, ch, u, ip, net, mac, bits, r, tsr, pt, cash, x, ok)
VALUES
('\x00010203ff'::bytea, '{"a": [1, 2.5, null, "x\ty"], "b": {"c": true}}', '{"keep":  "spacing"}',
 '{1,2,NULL,4}', '{"tab\there","new\nline","back\\slash","quote\"d",NULL,""}',
 '{{1,2},{3,4}}', 12345678901234567890.0123456789, 'NaN', 1e-308, 3.14159,
 '2024-02-29 23:59:59.999999+05:30', '1999-12-31 23:59:59', '0001-01-01 BC', '24:00:00',
 '12:34:56+14', '1 year 2 mons 3 days 04:05:06.789', 'über', 7, ROW(1, 'a,b'),
 ARRAY[ROW(1, 'x')::pair, ROW(NULL, NULL)::pair],
 E'tab\there, newline\nthere, carriage\rreturn, backslash\\ here, \\N not null',
 'varchar', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2001:db8::1/64', '10.0.0.0/8',
 '08:00:2b:01:02:03', B'10101', '[1,10)', '[2024-01-01 00:00+00,infinity)', '(1.5,-2)',
 '1234.56', '<a b="c">text &amp; more</a>', true),
(NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'Infinity', '-Infinity', 'NaN', 'infinity', '-infinity',
 'infinity', NULL, NULL, '-178000000 years', 'sad', 1, NULL, '{}', '', NULL, NULL, NULL, NULL, NULL,
 NULL, B'', 'empty', NULL, NULL, '-0.01', NULL, false),
('\x'::bytea, '[]', 'null', '{}', '{}', '{}', -0.0000000001, 0, -0.0, 1.5e38, '1970-01-01 00:00:00+00',
 '2038-01-19 03:14:07', '2000-01-01', '00:00', '00:00-12', '-1 day +00:00:01', 'happy', 1073741823,
 ROW(-1, E'\\'), NULL, E'unicode: 日本語 ✓ \u00e9 and a \x01 control',
 'x', 'xxxxx', '00000000-0000-0000-0000-000000000000', '0.0.0.0', '::/0', 'ff:ff:ff:ff:ff:ff',
 B'11111111111111111111', '(,)', 'empty', '(0,0)', '-92233720368547758.08', NULL, NULL);

-- a value large enough to be TOASTed out of line, and not compressible
INSERT INTO awkward (txt, p, b)
SELECT string_agg(md5(i::text || 'salt'), '' ORDER BY i), 3,
       decode(string_agg(md5(i::text), '' ORDER BY i), 'hex')
  FROM generate_series(1, 40000) AS i;

-- names that need quoting, and names no path can hold as they are
CREATE SCHEMA "Odd Schema/with slash";
CREATE TABLE "Odd Schema/with slash"."Weird ""Name"" 100%" (
    id serial PRIMARY KEY,
    "Mixed Case" text,
    "select" integer
);
INSERT INTO "Odd Schema/with slash"."Weird ""Name"" 100%" ("Mixed Case", "select")
SELECT 'row ' || i, i FROM generate_series(1, 50) AS i;
CREATE TABLE "." (dot integer);
INSERT INTO "." VALUES (1), (2);

-- a partitioned table: rows live in its leaves
CREATE TABLE measurements (id integer, at date NOT NULL, v double precision) PARTITION BY RANGE (at);
CREATE TABLE measurements_2024 PARTITION OF measurements
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE measurements_2025 PARTITION OF measurements
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01') PARTITION BY LIST (id);
CREATE TABLE measurements_2025_small PARTITION OF measurements_2025 FOR VALUES IN (1, 2, 3);
CREATE TABLE measurements_2025_other PARTITION OF measurements_2025 DEFAULT;
INSERT INTO measurements
SELECT i, date '2024-01-01' + (i * 7 % 700), i / 7.0 FROM generate_series(1, 3000) AS i;

-- inheritance: a parent's COPY must not include its child's rows
CREATE TABLE parent_inh (a integer);
CREATE TABLE child_inh (b text) INHERITS (parent_inh);
INSERT INTO parent_inh VALUES (1), (2);
INSERT INTO child_inh VALUES (3, 'child');

-- no columns, no rows, unlogged
CREATE TABLE no_columns ();
INSERT INTO no_columns DEFAULT VALUES;
INSERT INTO no_columns DEFAULT VALUES;
CREATE TABLE empty_table (a integer PRIMARY KEY);
CREATE UNLOGGED TABLE scratch (k text);
INSERT INTO scratch VALUES ('unlogged');

-- sequences: standalone, owned, identity
CREATE SEQUENCE standalone_seq START 100;
SELECT setval('standalone_seq', 4242);
CREATE SEQUENCE fresh_seq;
CREATE TABLE with_identity (id integer GENERATED ALWAYS AS IDENTITY, v text);
INSERT INTO with_identity (v) VALUES ('one'), ('two');

-- post-data: indexes, constraints, triggers, a materialized view
CREATE INDEX awkward_txt ON awkward (left(txt, 10));
ALTER TABLE child_inh ADD CONSTRAINT b_not_empty CHECK (b <> '');
CREATE TABLE referencing (id integer REFERENCES empty_table (a));
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER touch_awkward BEFORE UPDATE ON awkward FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW awkward_view AS SELECT id, txt FROM awkward;
CREATE MATERIALIZED VIEW awkward_counts AS SELECT m, count(*) FROM awkward GROUP BY m;

-- large objects: empty, small, and larger than what is read in one query
SELECT lo_create(424242);
SELECT lo_from_bytea(424243, '\x00ff00ff'::bytea);
SELECT lo_from_bytea(424244, decode(string_agg(md5(i::text), '' ORDER BY i), 'hex'))
  FROM generate_series(1, 30000) AS i;
ALTER LARGE OBJECT 424243 OWNER TO reader_role;
